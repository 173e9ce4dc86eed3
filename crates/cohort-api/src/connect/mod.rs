//! Connect: the store plugin ↔ Cohort contract (`../shared/spec/connect.md`
//! §1 and §2), server side.
//!
//! - `pairing`: `POST /connect/v1/pairings` and its poll;
//! - the page where the merchant signs in and approves
//!   (`/setup/woocommerce?pairing=…`) is `cohort-web`'s `authorize`;
//! - `installation`: the calls a connected plugin makes with its
//!   installation token (heartbeat, commands, disconnect, upgrade).
//!
//! Sync runs, batches, resources and events (§2's data calls) arrive with
//! the WooCommerce data issue.

mod events;
mod input;
mod installation;
mod pairing;
mod resources;
pub(crate) mod rest;
pub(crate) mod sync;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use cohort_store::connect::Installation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ConnectDoc::openapi())
        .routes(routes!(pairing::create_pairing))
        .routes(routes!(pairing::poll_pairing))
        .routes(routes!(installation::heartbeat))
        .routes(routes!(events::store_events))
        .routes(routes!(resources::store_changed_resource))
        .routes(routes!(sync::start_run))
        .routes(routes!(sync::store_batch))
        .routes(routes!(sync::complete_run))
        .routes(routes!(installation::list_commands))
        .routes(routes!(installation::ack_command))
        .routes(routes!(installation::disconnect))
        .routes(routes!(installation::upgrade))
        .merge(rest::routes())
}

#[derive(OpenApi)]
#[openapi(modifiers(&SecuritySchemes))]
struct ConnectDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "pollSecret",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The poll_secret returned when the pairing was created",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "installationToken",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The installation_token a plugin received when its pairing was approved",
                    ))
                    .build(),
            ),
        );
    }
}

/// The bearer value of the `Authorization` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

/// A plugin authenticated by its installation token; only connected
/// installations are accepted (unknown, disconnected or replaced → 401).
pub struct InstallationCaller(pub Installation);

const BAD_INSTALLATION_TOKEN: &str =
    "a valid installation token is required: Authorization: Bearer cin_…; this installation may have been disconnected";

impl FromRequestParts<AppState> for InstallationCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized_because(BAD_INSTALLATION_TOKEN))?;
        match state.db().verify_installation_token(token).await? {
            Some(installation) => Ok(InstallationCaller(installation)),
            None => Err(ApiError::unauthorized_because(BAD_INSTALLATION_TOKEN)),
        }
    }
}

/// `https://cdp.example.com` from the configured public URL, else from the
/// request's `Host` (and a proxy's `X-Forwarded-Proto`).
pub(crate) fn base_url(public_url: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(url) = public_url.filter(|u| !u.is_empty()) {
        let url = url.trim_end_matches('/');
        return if url.contains("://") {
            url.to_owned()
        } else {
            format!("https://{url}")
        };
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("127.0.0.1:8080");
    let scheme = if crate::collect::forwarded_https(headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}
