//! Pure types and rules of Cohort. Nothing in this crate performs IO: it is
//! where a newcomer reads *what* Cohort decides, while `cohort-store` and
//! `cohort-api` decide *how* it is stored and served.

pub mod accounts;
pub mod collect;
pub mod commerce;
pub mod connect;
pub mod destinations;
pub mod discounts;
pub mod ids;
pub mod mail;
pub mod members;
pub mod profile;
pub mod public_url;
pub mod secrets;
pub mod segments;
pub mod suppression;
pub mod text_enum;
pub mod time;
pub mod tracking;
