//! The views of stored rows that both faces show: the admin JSON API
//! (`cohort-api`, which puts them in the OpenAPI document) and the admin UI
//! (`cohort-web`). One place, so a delivery, a store or a sync run reads
//! the same on a page as in the API, with the same secrets masked.

pub mod deliveries;
pub mod installations;
pub mod sync_runs;
