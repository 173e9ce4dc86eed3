//! Cohort's admin web UI (`/app/…`) and the other pages a browser opens:
//! the one-time setup page (`/setup/{token}`) and the store authorize page
//! (`/setup/woocommerce`). Server-rendered HTML from minijinja templates
//! embedded in the binary (auto-escaped), one small stylesheet and one
//! small script (embedded, served under a content hash, cached for a year),
//! SVG charts drawn on the server, live updates over Server-Sent Events.
//! See docs/UI.md for how to add a page.
//!
//! - Every page of an organisation lives under `/app/o/{org}/…`; the
//!   `Member` extractor finds the signed-in user's role there and answers
//!   404 for an organisation they do not belong to, so no handler can
//!   reach another organisation's rows (they all pass `member.org.id` to
//!   storage, which scopes every query).
//! - Every form posts a CSRF token bound to the session (`session`); the
//!   sign-in and first-account forms, shown before a session exists, a
//!   double-submit one. Viewers see no forms, and their posts are refused
//!   with 403.
//! - Every response carries a strict Content-Security-Policy (no inline
//!   script or style, nothing from another origin) and may not be framed.
//! - The pages are HTML, not API: they are not in the OpenAPI document.
//!   [`routes`] lists them (the table [`router`] is built from), and the
//!   tests walk that list.
//!
//! A crate beside `cohort-api`, which serves the JSON routes; the binary
//! merges both routers (`cohort_api::router_with_pages`). It does not depend
//! on `cohort-api`: the views of deliveries, installations and sync runs that
//! both show live in `cohort_engine::views`, so a field reads the same on
//! both.

mod account;
mod assets;
mod auth;
mod authorize;
mod chart;
mod commerce;
mod destinations;
mod format;
mod mail;
mod overview;
mod profiles;
mod segments;
pub mod session;
mod setup;
mod sources;
mod state;
mod stores;
mod team;
mod templates;

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use cohort_store::StoreError;
use serde::Serialize;

pub use state::{WebSettings, WebState};

pub(crate) use auth::{Member, Signed};

/// Who may open a route without a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the sign-in form, the assets, and the setup and authorize
    /// pages (which sign in or create the account themselves).
    Public,
    /// A signed-in user; anyone else is redirected to `/app/sign-in`.
    SignedIn,
}

/// One route of the pages: a method, a path template (`{org}` …) and who
/// may open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiRoute {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// The pages' router: every route of [`routes`], with the headers every
/// page carries. Plain axum; the binary merges it with the API's router.
pub fn router(state: WebState) -> Router {
    table()
        .router
        .layer(axum::middleware::from_fn(protect))
        .with_state(state)
}

/// Every route [`router`] serves, from the same table.
pub fn routes() -> Vec<UiRoute> {
    table().routes
}

/// The one list of the pages: the router and [`routes`] are both read
/// from it, so a page cannot be served without being listed.
fn table() -> Table {
    use Access::{Public, SignedIn};
    Table::default()
        .get("/app", SignedIn, auth::home)
        .get("/app/sign-in", Public, auth::show_sign_in)
        .post("/app/sign-in", Public, auth::sign_in)
        .post("/app/sign-out", SignedIn, auth::sign_out)
        .get("/app/switch", SignedIn, auth::switch_org)
        .get("/app/assets/{file}", Public, assets::asset)
        .get("/app/account", SignedIn, account::show_account)
        .post("/app/account", SignedIn, account::change_password)
        .get("/app/o/{org}", SignedIn, overview::overview)
        .get("/app/o/{org}/sources", SignedIn, sources::list_sources)
        .post("/app/o/{org}/sources", SignedIn, sources::create_source)
        .get(
            "/app/o/{org}/sources/{source}",
            SignedIn,
            sources::show_source,
        )
        .post(
            "/app/o/{org}/sources/{source}",
            SignedIn,
            sources::source_action,
        )
        .get(
            "/app/o/{org}/sources/{source}/live",
            SignedIn,
            sources::live_events,
        )
        .get("/app/o/{org}/profiles", SignedIn, profiles::list_profiles)
        .get(
            "/app/o/{org}/profiles/{profile}",
            SignedIn,
            profiles::show_profile,
        )
        .post(
            "/app/o/{org}/profiles/{profile}/erase",
            SignedIn,
            profiles::erase_profile,
        )
        .get(
            "/app/o/{org}/profiles/{profile}/export",
            SignedIn,
            profiles::export_profile,
        )
        .get("/app/o/{org}/segments", SignedIn, segments::list_segments)
        .post("/app/o/{org}/segments", SignedIn, segments::create_segment)
        .get("/app/o/{org}/segments/new", SignedIn, segments::new_segment)
        .post(
            "/app/o/{org}/segments/preview",
            SignedIn,
            segments::preview_segment,
        )
        .get(
            "/app/o/{org}/segments/{segment}",
            SignedIn,
            segments::show_segment,
        )
        .post(
            "/app/o/{org}/segments/{segment}",
            SignedIn,
            segments::segment_action,
        )
        .get(
            "/app/o/{org}/segments/{segment}/edit",
            SignedIn,
            segments::edit_segment,
        )
        .get("/app/o/{org}/orders", SignedIn, commerce::list_orders)
        .get("/app/o/{org}/products", SignedIn, commerce::list_products)
        .get("/app/o/{org}/stores", SignedIn, stores::list_stores)
        .get("/app/o/{org}/stores/{store}", SignedIn, stores::show_store)
        .post(
            "/app/o/{org}/stores/{store}",
            SignedIn,
            stores::store_action,
        )
        .get(
            "/app/o/{org}/stores/{store}/runs",
            SignedIn,
            stores::store_runs,
        )
        .get(
            "/app/o/{org}/destinations",
            SignedIn,
            destinations::list_destinations,
        )
        .post(
            "/app/o/{org}/destinations",
            SignedIn,
            destinations::create_destination,
        )
        .get(
            "/app/o/{org}/destinations/new",
            SignedIn,
            destinations::new_destination,
        )
        .get(
            "/app/o/{org}/destinations/{destination}",
            SignedIn,
            destinations::show_destination,
        )
        .post(
            "/app/o/{org}/destinations/{destination}",
            SignedIn,
            destinations::destination_action,
        )
        .get(
            "/app/o/{org}/destinations/{destination}/deliveries",
            SignedIn,
            destinations::list_deliveries,
        )
        .get(
            "/app/o/{org}/destinations/{destination}/deliveries/{message}",
            SignedIn,
            destinations::show_delivery,
        )
        .post(
            "/app/o/{org}/destinations/{destination}/deliveries/{message}",
            SignedIn,
            destinations::replay_delivery,
        )
        .get("/app/o/{org}/mail", SignedIn, mail::list_outbox)
        .get(
            "/app/o/{org}/mail/messages/{mail}",
            SignedIn,
            mail::show_message,
        )
        .post(
            "/app/o/{org}/mail/messages/{mail}",
            SignedIn,
            mail::message_action,
        )
        .get(
            "/app/o/{org}/mail/providers",
            SignedIn,
            mail::list_providers,
        )
        .post(
            "/app/o/{org}/mail/providers",
            SignedIn,
            mail::create_provider,
        )
        .get(
            "/app/o/{org}/mail/providers/{provider}",
            SignedIn,
            mail::show_provider,
        )
        .post(
            "/app/o/{org}/mail/providers/{provider}",
            SignedIn,
            mail::provider_action,
        )
        .get("/app/o/{org}/mail/domains", SignedIn, mail::list_domains)
        .post("/app/o/{org}/mail/domains", SignedIn, mail::add_domain)
        .get(
            "/app/o/{org}/mail/domains/{domain}",
            SignedIn,
            mail::show_domain,
        )
        .get(
            "/app/o/{org}/mail/suppressions",
            SignedIn,
            mail::list_suppressions,
        )
        .post(
            "/app/o/{org}/mail/suppressions",
            SignedIn,
            mail::suppression_action,
        )
        .get("/app/o/{org}/mail/webhooks", SignedIn, mail::list_webhooks)
        .post("/app/o/{org}/mail/webhooks", SignedIn, mail::create_webhook)
        .get(
            "/app/o/{org}/mail/webhooks/{webhook}",
            SignedIn,
            mail::show_webhook,
        )
        .post(
            "/app/o/{org}/mail/webhooks/{webhook}",
            SignedIn,
            mail::webhook_action,
        )
        .get("/app/o/{org}/members", SignedIn, team::list_members)
        .post("/app/o/{org}/members", SignedIn, team::add_member)
        .post("/app/o/{org}/members/{user}", SignedIn, team::member_action)
        .get("/app/o/{org}/tokens", SignedIn, team::list_tokens)
        .post("/app/o/{org}/tokens", SignedIn, team::create_token)
        .get("/app/o/{org}/tokens/{token}", SignedIn, team::show_token)
        .post("/app/o/{org}/tokens/{token}", SignedIn, team::revoke_token)
        .get(authorize::PATH, Public, authorize::show)
        .post(authorize::PATH, Public, authorize::submit)
        .get("/setup/{token}", Public, setup::show_setup)
        .post("/setup/{token}", Public, setup::create_first_admin)
}

#[derive(Default)]
struct Table {
    router: Router<WebState>,
    routes: Vec<UiRoute>,
}

impl Table {
    fn get<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, WebState>,
        T: 'static,
    {
        self.add(Method::GET, path, access, axum::routing::get(handler))
    }

    fn post<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, WebState>,
        T: 'static,
    {
        self.add(Method::POST, path, access, axum::routing::post(handler))
    }

    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<WebState>,
    ) -> Self {
        // Two methods of one path merge into one route.
        self.router = self.router.route(path, handler);
        self.routes.push(UiRoute {
            method,
            path,
            access,
        });
        self
    }
}

/// What a page may load and do: no inline or foreign script or style,
/// forms posted to this server only, never framed.
const PAGE_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The authorize page's: the same without `form-action`, because its
/// decision redirects to the store's own return URL, another origin, which
/// `form-action 'self'` would stop.
const AUTHORIZE_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every response of the pages carries: no framing, no inline or
/// foreign script, no sniffing, no caching of pages (assets set their own).
async fn protect(request: Request, next: Next) -> Response {
    let policy = if request.uri().path() == authorize::PATH {
        AUTHORIZE_POLICY
    } else {
        PAGE_POLICY
    };
    let mut response = next.run(request).await;
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
        HeaderValue::from_static(policy),
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

    /// Storage failed (logged here); the merchant is asked to retry.
    pub fn unavailable(error: StoreError) -> Self {
        tracing::error!(%error, "storage error in the admin UI");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Cohort's database is unavailable. Try again shortly.",
        )
    }
}

impl From<StoreError> for UiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => UiError::not_found(),
            error => UiError::unavailable(error),
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

/// `response` with `cookie` set, when there is one.
pub(crate) fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

pub(crate) type UiResult = Result<Response, UiError>;
