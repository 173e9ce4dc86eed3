//! `POST /connect/v1/events` (connect.md §2): behaviour only the store sees
//! (sign-ups and sign-ins on WordPress; cart and checkout events with
//! WooCommerce), as a Segment `batch` body, authenticated by the
//! installation token and stored under the installation's source. The
//! messages go through the same normalisation, rate limit and durable append
//! as the collect API; the plugin gives every message a fixed `messageId`, so
//! a retried call is a duplicate, never a second event.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cohort_domain::collect::{normalize_request, Envelope};
use cohort_domain::ids::SourceId;

use super::InstallationCaller;
use crate::collect::{self, CollectSuccess, SegmentBatch};
use crate::error::ErrorBody;
use crate::AppState;

/// Stores a batch of store-side events.
#[utoipa::path(
    post,
    path = "/connect/v1/events",
    tag = "connect",
    request_body(content = SegmentBatch, description = "A Segment batch (`{batch:[…], context?}`); a `writeKey` in it is ignored: the token names the source"),
    responses(
        (status = 200, description = "Committed to the log", body = CollectSuccess),
        (status = 400, description = "A message is invalid; `field` names it (e.g. `batch[2].event`)", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
        (status = 413, description = "The body or a message is too large", body = ErrorBody),
        (status = 429, description = "Over the source's rate limit; `Retry-After` says when to retry", body = ErrorBody),
        (status = 503, description = "Storage is busy or unavailable; retry after `Retry-After`", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn store_events(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received_at = Utc::now();
    let limits = &state.inner.settings.limits;
    let outcome = async {
        let bytes = collect::body::read_body(body, &headers, limits.max_request_bytes).await?;
        let parsed = normalize_request(&bytes, Envelope::Batch, received_at, limits)?;
        let source = SourceId::from_stored(&installation.source_id);
        collect::append(&state, &installation.org_id, &source, parsed.messages).await
    }
    .await;
    match outcome {
        Ok(()) => collect::success(),
        // The connect API's envelope, with the collect API's codes and
        // Retry-After.
        Err(failure) => failure.into_response(),
    }
}
