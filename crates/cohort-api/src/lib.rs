//! Cohort's HTTP edge. One route list (utoipa-axum) builds both the router
//! and the OpenAPI document, so a route cannot exist without being
//! documented:
//!
//! - `collect`: the Segment-compatible Tracking API (`/v1/…`);
//! - `admin`: the JSON API for operators (`/api/v1/…`, API tokens);
//! - `setup`: the one-time page that creates the first admin;
//! - `connect`: store plugins pairing and reporting (`/connect/v1/…`) and
//!   the authorize page (`/setup/woocommerce`); `session`: browser sessions;
//! - `ui`: the admin web UI (`/app/…`, server-rendered, session cookie);
//! - `health`: `/healthz`, `/readyz`;
//! - `openapi`: the document itself at `/openapi.json`.

pub mod admin;
pub mod collect;
pub(crate) mod connect;
mod error;
mod health;
mod html;
mod intake;
mod openapi;
mod sdk;
pub mod session;
mod setup;
mod state;
mod ui;

pub use connect::rest::{
    begin_connection as begin_woocommerce_rest_connection, normalize_store_url,
};
pub use error::ApiError;
pub use state::{ApiSettings, AppState};

use axum::extract::MatchedPath;
use axum::http::Request;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

/// The whole application: every public route, with the OpenAPI document
/// served at `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (router, api) = routes().split_for_parts();
    let api = openapi::finish(api);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || openapi::serve(api.clone())),
        )
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
        .with_state(state)
}

/// The route list, with their documentation; `router` serves it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(collect::routes())
        .merge(admin::routes())
        .merge(setup::routes())
        .merge(health::routes())
        .merge(sdk::routes())
        .merge(connect::routes())
        .merge(ui::routes())
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, api) = routes().split_for_parts();
    openapi::finish(api)
}
