//! Cohort's HTTP edge for programs. One route list (utoipa-axum) builds
//! both the router and the OpenAPI document, so a route cannot exist
//! without being documented:
//!
//! - `collect`: the Segment-compatible Tracking API (`/v1/…`);
//! - `admin`: the JSON API for operators (`/api/v1/…`, API tokens);
//! - `connect`: store plugins pairing and reporting (`/connect/v1/…`);
//! - `health`: `/healthz`, `/readyz`;
//! - `openapi`: the document itself at `/openapi.json`.
//!
//! The pages a browser opens (the admin UI, the setup and authorize pages)
//! are `cohort-web`'s; [`router_with_pages`] serves them beside these
//! routes, under the same tracing and panic layers.

pub mod admin;
pub mod collect;
pub(crate) mod connect;
mod error;
mod health;
mod intake;
mod mail_webhooks;
mod openapi;
mod sdk;
mod state;

pub use connect::rest::{
    begin_connection as begin_woocommerce_rest_connection, normalize_store_url,
};
pub use connect::sync::RunView;
pub use error::{ApiError, RulePosition};
pub use state::{ApiSettings, AppState};

use axum::extract::MatchedPath;
use axum::http::Request;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

/// Every route of the API, with the OpenAPI document served at
/// `/openapi.json`.
pub fn router(state: AppState) -> Router {
    router_with_pages(state, Router::new())
}

/// The whole application: the API and `pages` (`cohort_web::router`, the
/// HTML pages, which are not in the document), under one tracing and
/// panic-catching layer.
pub fn router_with_pages(state: AppState, pages: Router) -> Router {
    let (router, api) = routes().split_for_parts();
    let api = openapi::finish(api);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || openapi::serve(api.clone())),
        )
        .with_state(state)
        .merge(pages)
        .layer(
            // Spans name the route template, never the concrete path: the
            // settings path carries a write key, setup paths a secret.
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "unmatched".into());
                tracing::info_span!("http", method = %request.method(), route)
            }),
        )
        .layer(CatchPanicLayer::custom(error::panic_response))
}

/// The route list, with their documentation; `router` serves it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(collect::routes())
        .merge(admin::routes())
        .merge(health::routes())
        .merge(sdk::routes())
        .merge(connect::routes())
        .merge(mail_webhooks::routes())
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, api) = routes().split_for_parts();
    openapi::finish(api)
}
