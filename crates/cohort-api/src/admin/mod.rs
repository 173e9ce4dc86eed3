//! The admin JSON API (`/api/v1/…`), authenticated by API tokens. Every
//! handler receives the caller's organisation from `ApiCaller` and passes it
//! to storage: no handler can name another organisation's rows.

mod auth;
pub mod commerce;
pub mod destinations;
pub mod discounts;
pub mod events;
pub mod installations;
pub mod mail;
pub mod mail_webhooks;
pub mod profiles;
pub mod segments;
pub mod suppressions;

pub use auth::ApiCaller;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events::list_events))
        .routes(routes!(profiles::list_profiles))
        .routes(routes!(profiles::lookup_profile))
        .routes(routes!(profiles::get_profile, profiles::erase_profile))
        .routes(routes!(profiles::profile_events))
        .routes(routes!(profiles::export_profile))
        .routes(routes!(commerce::list_orders))
        .routes(routes!(commerce::list_products))
        .routes(routes!(commerce::ingest_resource))
        .routes(routes!(installations::list_installations))
        .routes(routes!(installations::request_sync))
        .routes(routes!(installations::list_sync_runs))
        .routes(routes!(
            destinations::list_destinations,
            destinations::create_destination
        ))
        .routes(routes!(
            destinations::get_destination,
            destinations::update_destination,
            destinations::delete_destination
        ))
        .routes(routes!(destinations::pause_destination))
        .routes(routes!(destinations::resume_destination))
        .routes(routes!(destinations::rotate_secret))
        .routes(routes!(destinations::list_deliveries))
        .routes(routes!(destinations::get_delivery))
        .routes(routes!(destinations::replay_delivery))
        .routes(routes!(destinations::replay_failed))
        .routes(routes!(destinations::test_destination))
        .routes(routes!(segments::list_segments, segments::create_segment))
        .routes(routes!(segments::preview_segment))
        .routes(routes!(segments::segment_from_text))
        .routes(routes!(
            segments::get_segment,
            segments::update_segment,
            segments::delete_segment
        ))
        .routes(routes!(segments::segment_members))
        .routes(routes!(segments::profile_segments))
        .routes(routes!(
            suppressions::list_suppressions,
            suppressions::add_suppression
        ))
        .routes(routes!(suppressions::lift_suppression))
        .routes(routes!(mail::list_providers, mail::create_provider))
        .routes(routes!(
            mail::get_provider,
            mail::update_provider,
            mail::delete_provider
        ))
        .routes(routes!(mail::test_provider))
        .routes(routes!(mail::list_domains, mail::add_domain))
        .routes(routes!(mail::list_messages))
        .routes(routes!(mail::get_message))
        .routes(routes!(mail::retry_message))
        .routes(routes!(
            mail_webhooks::list_webhooks,
            mail_webhooks::create_webhook
        ))
        .routes(routes!(mail_webhooks::delete_webhook))
        .merge(discounts::routes())
}
