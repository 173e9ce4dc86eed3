//! The Segment-compatible Tracking API (`../shared/spec/collect.md`): every
//! endpoint alias, the analytics.js settings document and metrics sink, with
//! CORS for browsers. A `200` is sent only once the events are committed.

pub(crate) mod body;
pub mod rate_limit;
mod response;
mod schema;
pub mod sources;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use cohort_domain::collect::{normalize_request, Envelope, MessageType, NormalizedMessage};
use cohort_domain::ids::{OrgId, SourceId};
use cohort_store::events::NewEvent;
use cohort_store::writer::AppendError;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::error::CollectFailure;
pub use response::{success, CollectSuccess};
pub use schema::{SegmentBatch, SegmentMessage, SettingsDocument};

use crate::{ApiError, AppState};
use sources::write_key_from_header;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(identify))
        .routes(routes!(track))
        .routes(routes!(page))
        .routes(routes!(screen))
        .routes(routes!(group))
        .routes(routes!(alias))
        .routes(routes!(identify_short))
        .routes(routes!(track_short))
        .routes(routes!(page_short))
        .routes(routes!(screen_short))
        .routes(routes!(group_short))
        .routes(routes!(alias_short))
        .routes(routes!(batch))
        .routes(routes!(batch_short))
        .routes(routes!(import))
        .routes(routes!(metrics))
        .routes(routes!(settings))
        .layer(cors())
}

/// Browsers post as `text/plain` to skip preflight, but analytics.js adds
/// `Authorization` (and `X-Retry-Count` on retries), which needs one: allow
/// both, echo the origin, and let browsers cache the answer for a day.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-retry-count"),
        ])
        .max_age(Duration::from_secs(86_400))
}

/// Declares one collect endpoint: its route, its OpenAPI operation and its
/// handler, from one line.
macro_rules! collect_endpoint {
    ($name:ident, $path:literal, $envelope:expr, $body:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "collect",
            request_body(content = $body, description = "JSON whatever the Content-Type; gzip or deflate with Content-Encoding"),
            responses(
                (status = 200, description = "Committed (or already stored under this messageId)", body = CollectSuccess),
                (status = 400, description = "Malformed, invalid or too large; nothing was stored", body = CollectFailure),
                (status = 401, description = "Missing, unknown or disabled write key", body = CollectFailure),
                (status = 429, description = "Rate limited or overloaded; see Retry-After", body = CollectFailure),
                (status = 503, description = "Storage unavailable; see Retry-After", body = CollectFailure),
            ),
            security(("writeKey" = []))
        )]
        async fn $name(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
            collect(&state, $envelope, &headers, body).await
        }
    };
}

collect_endpoint!(
    identify,
    "/v1/identify",
    Envelope::Single(MessageType::Identify),
    SegmentMessage,
    "Identify a user and record their traits."
);
collect_endpoint!(
    track,
    "/v1/track",
    Envelope::Single(MessageType::Track),
    SegmentMessage,
    "Record an action (`event`) a user performed."
);
collect_endpoint!(
    page,
    "/v1/page",
    Envelope::Single(MessageType::Page),
    SegmentMessage,
    "Record a page view."
);
collect_endpoint!(
    screen,
    "/v1/screen",
    Envelope::Single(MessageType::Screen),
    SegmentMessage,
    "Record a mobile screen view."
);
collect_endpoint!(
    group,
    "/v1/group",
    Envelope::Single(MessageType::Group),
    SegmentMessage,
    "Associate a user with a group (`groupId`)."
);
collect_endpoint!(
    alias,
    "/v1/alias",
    Envelope::Single(MessageType::Alias),
    SegmentMessage,
    "Link `previousId` to `userId`."
);
collect_endpoint!(
    identify_short,
    "/v1/i",
    Envelope::Single(MessageType::Identify),
    SegmentMessage,
    "identify, as analytics.js posts it."
);
collect_endpoint!(
    track_short,
    "/v1/t",
    Envelope::Single(MessageType::Track),
    SegmentMessage,
    "track, as analytics.js posts it."
);
collect_endpoint!(
    page_short,
    "/v1/p",
    Envelope::Single(MessageType::Page),
    SegmentMessage,
    "page, as analytics.js posts it."
);
collect_endpoint!(
    screen_short,
    "/v1/s",
    Envelope::Single(MessageType::Screen),
    SegmentMessage,
    "screen, as analytics.js posts it."
);
collect_endpoint!(
    group_short,
    "/v1/g",
    Envelope::Single(MessageType::Group),
    SegmentMessage,
    "group, as analytics.js posts it."
);
collect_endpoint!(
    alias_short,
    "/v1/a",
    Envelope::Single(MessageType::Alias),
    SegmentMessage,
    "alias, as analytics.js posts it."
);
collect_endpoint!(
    batch,
    "/v1/batch",
    Envelope::Batch,
    SegmentBatch,
    "Up to 2,500 messages of any type (Node, Python and most server clients)."
);
collect_endpoint!(
    batch_short,
    "/v1/b",
    Envelope::Batch,
    SegmentBatch,
    "A batch, as analytics.js (batching delivery) and mobile clients post it."
);
collect_endpoint!(
    import,
    "/v1/import",
    Envelope::Batch,
    SegmentBatch,
    "A batch, as Ruby and legacy mobile clients post it."
);

async fn collect(
    state: &AppState,
    envelope: Envelope,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    match collect_inner(state, envelope, headers, body).await {
        Ok(()) => response::success(),
        Err(failure) => failure.segment_response(),
    }
}

async fn collect_inner(
    state: &AppState,
    envelope: Envelope,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    let received_at = Utc::now();
    let settings = &state.inner.settings;
    let header_key = write_key_from_header(headers);
    // A wrong key in the header is refused before the body is even read.
    let header_source = match &header_key {
        Some(key) => Some(authenticate(state, key).await?),
        None => None,
    };
    let bytes = body::read_body(body, headers, settings.limits.max_request_bytes).await?;
    let parsed = normalize_request(&bytes, envelope, received_at, &settings.limits)?;
    let source = match header_source {
        Some(source) => source,
        None => {
            let key = parsed.write_key_in_body.as_deref().ok_or_else(|| {
                ApiError::invalid_write_key(
                    "no write key: send Authorization: Basic base64(writeKey:) or writeKey in the body",
                )
            })?;
            authenticate(state, key).await?
        }
    };
    append(state, &source.org_id, &source.source_id, parsed.messages).await
}

/// Appends normalized messages of one source to the log, within the
/// source's rate limit; `Ok` only once they are committed. The collect API
/// and the store plugins' `/connect/v1/events` share it.
pub(crate) async fn append(
    state: &AppState,
    org_id: &OrgId,
    source_id: &SourceId,
    messages: Vec<NormalizedMessage>,
) -> Result<(), ApiError> {
    state
        .inner
        .rate_limiter
        .check(source_id, messages.len())
        .map_err(ApiError::rate_limited)?;
    let events: Vec<NewEvent> = messages
        .into_iter()
        .map(|m| NewEvent::from_owned(org_id, source_id, m))
        .collect();
    state
        .inner
        .writer
        .append(events)
        .await
        .map_err(|e| match e {
            AppendError::Overloaded => ApiError::log_overloaded(),
            AppendError::Unavailable(_) => ApiError::log_unavailable(5),
            AppendError::ShuttingDown => ApiError::log_unavailable(2),
        })?;
    Ok(())
}

async fn authenticate(state: &AppState, write_key: &str) -> Result<sources::SourceAuth, ApiError> {
    match state.inner.sources.lookup(write_key).await {
        Ok(Some(source)) => Ok(source),
        Ok(None) => Err(ApiError::invalid_write_key("unknown or disabled write key")),
        Err(error) => {
            tracing::warn!(%error, "write key lookup failed");
            Err(ApiError::log_unavailable(5))
        }
    }
}

/// Client metrics from analytics.js. Accepted and discarded: Cohort has no
/// use for them, but refusing them would make the library log errors.
#[utoipa::path(
    post,
    path = "/v1/m",
    tag = "collect",
    request_body(content = serde_json::Value, description = "analytics.js metrics (`{series:[…]}`); discarded"),
    responses(
        (status = 200, description = "Accepted and discarded", body = CollectSuccess),
        (status = 400, description = "Body too large or unreadable", body = CollectFailure),
    )
)]
async fn metrics(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match body::read_body(
        body,
        &headers,
        state.inner.settings.limits.max_request_bytes,
    )
    .await
    {
        Ok(_) => response::success(),
        Err(failure) => failure.segment_response(),
    }
}

/// The settings document analytics.js loads from its `cdnURL`: it points
/// the library's Segment.io destination back at this server.
#[utoipa::path(
    get,
    path = "/v1/projects/{write_key}/settings",
    tag = "collect",
    params(("write_key" = String, Path, description = "The source's write key")),
    responses(
        (status = 200, description = "Settings for analytics.js", body = SettingsDocument),
        (status = 404, description = "Unknown or disabled write key", body = CollectFailure),
        (status = 503, description = "Storage unavailable", body = CollectFailure),
    )
)]
async fn settings(
    State(state): State<AppState>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.inner.sources.lookup(&write_key).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return ApiError::unknown_write_key("unknown or disabled write key").segment_response()
        }
        Err(_) => return ApiError::log_unavailable(5).segment_response(),
    }
    let (protocol, host) = public_host(state.inner.settings.public_url.as_deref(), &headers);
    let document = schema::settings_document(&write_key, &format!("{host}/v1"), protocol);
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(document),
    )
        .into_response()
}

/// `("https", "cdp.example.com")` for this request (see
/// [`cohort_domain::public_url::public_host`]).
pub fn public_host(public_url: Option<&str>, headers: &HeaderMap) -> (&'static str, String) {
    cohort_domain::public_url::public_host(
        public_url,
        header_text(headers, header::HOST.as_str()),
        header_text(headers, "x-forwarded-proto"),
    )
}

/// Whether a proxy in front says the browser used HTTPS.
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    cohort_domain::public_url::forwarded_https(header_text(headers, "x-forwarded-proto"))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
