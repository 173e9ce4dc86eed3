//! Pure types and rules of Cohort. Nothing in this crate performs IO: it is
//! where a newcomer reads *what* Cohort decides, while `cohort-store` and
//! `cohort-api` decide *how* it is stored and served.

pub mod collect;
pub mod commerce;
pub mod destinations;
pub mod discounts;
pub mod ids;
pub mod profile;
pub mod secrets;
pub mod time;
