//! The admin web UI (`/app/…`): server-rendered HTML from minijinja
//! templates embedded in the binary, one small stylesheet and one small
//! script (embedded, served under a content hash, cached for a year), SVG
//! charts drawn on the server, live updates over Server-Sent Events. See
//! docs/UI.md for how to add a page.
//!
//! - Every page of an organisation lives under `/app/o/{org}/…`; the
//!   `Member` extractor finds the signed-in user's role there and answers
//!   404 for an organisation they do not belong to, so no handler can
//!   reach another organisation's rows (they all pass `member.org.id` to
//!   storage, which scopes every query).
//! - Every form posts a CSRF token bound to the session (`crate::session`);
//!   the sign-in form, shown before a session exists, a double-submit one.
//!   Viewers see no forms, and their posts are refused with 403.
//! - Every response carries a strict Content-Security-Policy (no inline
//!   script or style, nothing from another origin) and may not be framed.
//! - The pages are in the OpenAPI document under the `ui` tag, as
//!   `text/html`, like the other public routes.
//!
//! A module of `cohort-api` rather than a crate of its own: it shares the
//! application state, the session and CSRF helpers and the one route list
//! that builds both the router and the OpenAPI document.

mod account;
mod assets;
mod auth;
mod chart;
mod commerce;
mod destinations;
mod format;
mod overview;
mod profiles;
mod sources;
mod stores;
mod team;
mod templates;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cohort_store::StoreError;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(crate) use auth::{Member, Signed};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::home))
        .routes(routes!(auth::show_sign_in, auth::sign_in))
        .routes(routes!(auth::sign_out))
        .routes(routes!(auth::switch_org))
        .routes(routes!(assets::asset))
        .routes(routes!(account::show_account, account::change_password))
        .routes(routes!(overview::overview))
        .routes(routes!(sources::list_sources, sources::create_source))
        .routes(routes!(sources::show_source))
        .routes(routes!(sources::source_action))
        .routes(routes!(sources::live_events))
        .routes(routes!(profiles::list_profiles))
        .routes(routes!(profiles::show_profile))
        .routes(routes!(profiles::erase_profile))
        .routes(routes!(profiles::export_profile))
        .routes(routes!(commerce::list_orders))
        .routes(routes!(commerce::list_products))
        .routes(routes!(stores::list_stores))
        .routes(routes!(stores::show_store, stores::store_action))
        .routes(routes!(stores::store_runs))
        .routes(routes!(
            destinations::list_destinations,
            destinations::create_destination
        ))
        .routes(routes!(destinations::new_destination))
        .routes(routes!(
            destinations::show_destination,
            destinations::destination_action
        ))
        .routes(routes!(destinations::list_deliveries))
        .routes(routes!(
            destinations::show_delivery,
            destinations::replay_delivery
        ))
        .routes(routes!(team::list_members, team::add_member))
        .routes(routes!(team::member_action))
        .routes(routes!(team::list_tokens, team::create_token))
        .routes(routes!(team::revoke_token))
        .layer(axum::middleware::map_response(protect))
}

/// Headers every UI response carries: no framing, no inline or foreign
/// script, no sniffing, no caching of pages (assets set their own).
async fn protect(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A page that could not be shown: the status and a sentence for the
/// merchant; never internal detail.
#[derive(Debug)]
pub(crate) struct UiError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl UiError {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "This page does not exist, or you do not have access to it.",
        )
    }

    pub fn expired_form() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired. Go back, reload the page and try again.",
        )
    }

    pub fn read_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your role in this organisation lets you look, not change anything.",
        )
    }

    pub fn bad_form() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "This form could not be read. Go back and try again.",
        )
    }
}

impl From<StoreError> for UiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => UiError::not_found(),
            error => {
                tracing::error!(%error, "storage error in the admin UI");
                UiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "Cohort's database is unavailable. Try again shortly.",
                )
            }
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Message<'a> {
            title: &'a str,
            message: &'a str,
        }
        let body = templates::render_bare(
            "message.html",
            &Message {
                title: self.title,
                message: &self.message,
            },
        );
        html(self.status, body)
    }
}

/// An HTML response.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A `303 See Other` to `location` (a path of this server).
pub(crate) fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub(crate) type UiResult = Result<Response, UiError>;
