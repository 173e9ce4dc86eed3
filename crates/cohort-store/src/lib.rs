//! Cohort's storage on SQLite (the embedded default) and PostgreSQL (several
//! nodes on one database). The backend is picked from the URL scheme; both
//! run the same SQL through sqlx's `Any` driver, with one migration folder
//! per backend where their DDL differs; only appending events, the hot
//! path, uses each backend's own driver (`events::append_in_one_transaction`).
//! This crate stores and reads; it decides nothing.

pub mod bulk;
pub mod connect;
pub mod dashboard;
mod db;
pub mod destinations;
mod error;
pub mod events;
mod issued;
pub mod jobs;
pub mod log_cursor;
pub mod mail;
pub mod memberships;
pub mod orgs;
pub mod projection;
mod row;
pub mod segments;
pub mod sessions;
mod sql;
pub mod suppressions;
pub mod sync_runs;
pub mod tokens;
pub mod users;
pub mod woocommerce_rest;
pub mod writer;

pub use db::{Backend, Db, DbOptions, SqliteSynchronous};
pub use error::StoreError;

/// Cohort's clock, in the unit every table stores: UTC microseconds.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
