use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cohort",
        description = "Self-hosted customer data and email marketing. The collect API is compatible with Segment's Tracking API.",
        license(name = "AGPL-3.0-only")
    ),
    tags(
        (name = "collect", description = "Segment-compatible Tracking API"),
        (name = "admin", description = "Admin JSON API (API token)"),
        (name = "profiles", description = "Profiles: identity resolution, traits, tags, metrics, timeline, export, erasure (API token)"),
        (name = "commerce", description = "Orders, products and WooCommerce resource intake (API token)"),
        (name = "segments", description = "Segments: rules in text or JSON form, live members, previews, a profile's segments (API token)"),
        (name = "mail", description = "Mail: the suppression list (API token)"),
        (name = "destinations", description = "Destinations: signed webhooks and Everflow postbacks, delivery log, replay, test conversions (API token)"),
        (name = "connect", description = "Store plugins: pairing, heartbeat, commands (installation token); installations (API token)"),
        (name = "sdk", description = "The JS tracking SDK served by Cohort"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct Base;

pub fn base() -> Document {
    Base::openapi()
}

/// Adds what the route list cannot express: the security schemes.
pub fn finish(mut api: Document) -> Document {
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "writeKey",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Basic)
                .description(Some("The source's write key as the user name, empty password (or writeKey in the body)"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "apiToken",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token from `cohort token create`"))
                .build(),
        ),
    );
    api
}

pub async fn serve(api: Document) -> impl IntoResponse {
    let body = api.to_pretty_json().unwrap_or_else(|_| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], body)
}
