//! The `cohort` binary's integration tests: one test binary, one module per
//! area (linking one binary instead of one per file saves CI time).
//! `cargo test -p cohort --test it wordpress_plugin::` runs one module.

mod common;

mod cli;
mod destinations_cli;
mod mail_cli;
mod mail_crash;
mod multi_node;
mod profiles_cli;
mod real_clients;
mod sdk_browser;
mod segments_browser;
mod segments_cli;
mod server_lifecycle;
mod store_cli;
mod ui_browser;
mod woocommerce_plugin;
mod woocommerce_rest;
mod wordpress_plugin;
