//! The store's integration tests: one test binary, one module per area
//! (linking one binary instead of one per file saves CI time).
//! `cargo test -p cohort-store --test it projection::` runs one module.

mod common;

mod conformance;
mod projection;
mod segments;
