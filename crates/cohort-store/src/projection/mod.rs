//! The projections of the event log: profiles and identities, orders,
//! products and tags. [`Projector`] keeps them current; the reads serve
//! the admin API; erasure and export act on one person.

mod erasure;
mod projector;
mod reads;

pub use erasure::{ErasureReport, ProfileExport};
pub(crate) use projector::PG_APPEND_LOCK;
pub use projector::{Projector, StepReport, BATCH_EVENTS};
pub use reads::{OrderFilter, ProductFilter, ProductRecord, ProfileFilter, ProfileRecord};
