//! Cohort's application, between the edges (HTTP in `cohort-api`, the CLI
//! in `cohort`) and storage (`cohort-store`):
//!
//! - `intake`: one way in for store resources (orders, customers,
//!   products), whoever brings them;
//! - `woocommerce_rest`: the no-plugin WooCommerce pull (history, webhook
//!   registration, reconciliation) and its REST client;
//! - `store_discounts`: the signed client of a connected store's discount
//!   endpoints;
//! - `destinations`: the delivery worker, test conversions, and the checks
//!   the admin API, the UI and the CLI share;
//! - `outbound`: the one HTTP policy every client above uses;
//! - `projection`: the profile projection's background loop;
//! - `segments`: saved segments, previews and live membership;
//! - `mail`: the durable outbox, its worker, providers and sending domains.
//!
//! No HTTP server, no HTML, no SQL: decisions that need no IO live in
//! `cohort-domain`.

pub mod destinations;
pub mod intake;
pub mod mail;
pub mod outbound;
pub mod projection;
pub mod segments;
pub mod store_discounts;
pub mod views;
pub mod woocommerce_rest;
