//! Destinations (signed webhooks, Everflow postbacks): create, list, show,
//! edit, pause, resume, delete, rotate a webhook's signing secret; each
//! destination's delivery log with search, one delivery, replay of failed
//! deliveries, and "send test conversion". Secrets are encrypted at rest
//! and masked in every answer except the one that creates (or rotates) a
//! generated signing secret.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_engine::destinations::log_filter::DeliveryQuery;
use cohort_engine::destinations::manage::{self, FieldError};
use cohort_engine::destinations::Dispatcher;
pub use cohort_engine::views::deliveries::{delivery_view, DeliveryView};
use cohort_store::destinations::{DeliveryFilter, Destination};
use cohort_store::now_micros;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::profiles::parse_limit;
use super::ApiCaller;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// An optional JSON body: empty (with or without a JSON content type) is
/// the default.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Null) => Ok(T::default()),
        Ok(v) => serde_json::from_value(v).map_err(|e| ApiError::invalid("body", e.to_string())),
        Err(e) => Err(ApiError::invalid(
            "body",
            format!("the body is not JSON: {e}"),
        )),
    }
}

fn sender(state: &AppState) -> Result<&Dispatcher, ApiError> {
    state.destinations().ok_or_else(ApiError::unavailable)
}

fn field_error(e: FieldError) -> ApiError {
    ApiError::invalid(&e.field, e.message)
}

async fn load(state: &AppState, caller: &ApiCaller, id: &str) -> Result<Destination, ApiError> {
    let key = sender(state)?.key();
    state
        .db()
        .get_destination(&caller.org, key, id)
        .await
        .map_err(ApiError::from)
}

/// Which events a destination receives; an empty list matches everything.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FiltersView {
    /// Event names (`track` calls), e.g. `Order Completed`
    pub events: Vec<String>,
    /// Message types: track, identify, page, screen, group, alias, resource
    pub types: Vec<String>,
}

/// A destination, secrets masked (`whsec_***AbCd`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DestinationView {
    pub id: String,
    /// `everflow` or `webhook`
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// `false` while paused: events keep being logged and are delivered
    /// once resumed.
    pub enabled: bool,
    pub filters: FiltersView,
    /// Webhook: `url`. Everflow: `tracking_domain`, `network_id`,
    /// `advertiser_id`, `event_mapping` (`0` = base conversion),
    /// `source_kind`, `attribution_window_days`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Which secrets are set, masked.
    pub secrets: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(d: &Destination) -> Result<DestinationView, ApiError> {
    serde_json::from_value(manage::view(d, now_micros())).map_err(|e| {
        tracing::error!(error = %e, "destination view");
        ApiError::unavailable()
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationList {
    pub data: Vec<DestinationView>,
}

/// A destination just created or whose secret was just rotated.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationCreated {
    #[serde(flatten)]
    pub destination: DestinationView,
    /// The webhook signing secret Cohort generated, shown only in this
    /// answer: configure your receiver with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// A new destination.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateDestination {
    /// `everflow` or `webhook`
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    /// Default true
    pub enabled: Option<bool>,
    /// `{"events": [...], "types": [...]}`; default: an Everflow
    /// destination's mapped events, everything for a webhook
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Value>,
    /// Webhook: `{"url"}`. Everflow: `{"tracking_domain", "network_id",
    /// "event_mapping", "advertiser_id"?, "source_kind"?,
    /// "attribution_window_days"?}`
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Webhook: `signing_secret` (`whsec_…`, generated when absent).
    /// Everflow: `verification_token`, `api_key`.
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Value>,
}

/// An edit: only what is given changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateDestination {
    pub name: Option<String>,
    /// false pauses, true resumes
    pub enabled: Option<bool>,
    /// Replaces the filters; `null` restores the default
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "present")]
    pub filters: Option<Value>,
    /// Keys given replace the stored ones
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Keys given replace the stored secrets; a key set to `null` removes one
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Value>,
}

/// `Some(Value::Null)` for an explicit `null`, `None` when absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The organisation's destinations.
#[utoipa::path(
    get,
    path = "/api/v1/destinations",
    tag = "destinations",
    responses(
        (status = 200, description = "Every destination, secrets masked", body = DestinationList),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_destinations(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<DestinationList>, ApiError> {
    let key = sender(&state)?.key();
    let all = state.db().list_destinations(&caller.org, key).await?;
    Ok(Json(DestinationList {
        data: all.iter().map(view).collect::<Result<_, _>>()?,
    }))
}

/// Creates a destination; it receives the events that arrive from now on.
/// Every field is checked (URLs, private addresses unless allowed by the
/// server's configuration, mapping, filters, secrets); a 400 names the
/// field at fault.
#[utoipa::path(
    post,
    path = "/api/v1/destinations",
    tag = "destinations",
    request_body = CreateDestination,
    responses(
        (status = 201, description = "Created; a generated signing secret is shown this once", body = DestinationCreated),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn create_destination(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<CreateDestination>, JsonRejection>,
) -> Result<(StatusCode, Json<DestinationCreated>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let sender = sender(&state)?;
    let input = manage::Input {
        kind: body.kind,
        name: body.name,
        enabled: body.enabled,
        filters: body.filters,
        settings: body.settings,
        secrets: body.secrets,
    };
    let prepared = manage::prepare(input, sender.options().allow_private_addresses)
        .await
        .map_err(field_error)?;
    let created = state
        .db()
        .create_destination(&caller.org, sender.key(), &prepared.new)
        .await?;
    tracing::info!(destination = %created.id, kind = %created.kind, "destination created");
    Ok((
        StatusCode::CREATED,
        Json(DestinationCreated {
            destination: view(&created)?,
            signing_secret: prepared.generated_secret,
        }),
    ))
}

/// One destination, secrets masked.
#[utoipa::path(
    get,
    path = "/api/v1/destinations/{id}",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id (dst_…)")),
    responses(
        (status = 200, description = "The destination", body = DestinationView),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_destination(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    Ok(Json(view(&load(&state, &caller, &id).await?)?))
}

async fn save(state: &AppState, d: &Destination) -> Result<Destination, ApiError> {
    let key = sender(state)?.key();
    state
        .db()
        .update_destination(key, d)
        .await
        .map_err(ApiError::from)
}

/// Edits a destination (name, enabled, filters, settings, secrets), checked
/// as on creation. An Everflow destination whose filters are its mapping's
/// events keeps following its mapping.
#[utoipa::path(
    patch,
    path = "/api/v1/destinations/{id}",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    request_body = UpdateDestination,
    responses(
        (status = 200, description = "The destination as saved", body = DestinationView),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn update_destination(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<UpdateDestination>, JsonRejection>,
) -> Result<Json<DestinationView>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let mut d = load(&state, &caller, &id).await?;
    let patch = manage::Patch {
        name: body.name,
        enabled: body.enabled,
        filters: body.filters,
        settings: body.settings,
        secrets: body.secrets,
    };
    manage::apply(
        &mut d,
        patch,
        sender(&state)?.options().allow_private_addresses,
    )
    .await
    .map_err(field_error)?;
    Ok(Json(view(&save(&state, &d).await?)?))
}

async fn set_enabled(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
    enabled: bool,
) -> Result<Json<DestinationView>, ApiError> {
    let mut d = load(state, caller, id).await?;
    d.enabled = enabled;
    let saved = save(state, &d).await?;
    tracing::info!(destination = %id, enabled, "destination paused or resumed");
    Ok(Json(view(&saved)?))
}

/// Pauses a destination: nothing is sent; events arriving meanwhile are
/// delivered once it is resumed.
#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/pause",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    responses(
        (status = 200, description = "Paused", body = DestinationView),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn pause_destination(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    set_enabled(&state, &caller, &id, false).await
}

/// Resumes a paused destination.
#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/resume",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    responses(
        (status = 200, description = "Resumed", body = DestinationView),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn resume_destination(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    set_enabled(&state, &caller, &id, true).await
}

/// Deletes a destination and its delivery log.
#[utoipa::path(
    delete,
    path = "/api/v1/destinations/{id}",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn delete_destination(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.db().delete_destination(&caller.org, &id).await?;
    tracing::info!(destination = %id, "destination deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RotateSecret {
    /// How long the old secret keeps signing too (hours, 0 to 720; default 24)
    pub grace_hours: Option<u32>,
}

/// Rotates a webhook's signing secret: the new one (shown only in this
/// answer) signs from now on, the old one as well until the grace period
/// ends, so both verify during the rotation.
#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/rotate-secret",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    request_body(content = RotateSecret, description = "Optional"),
    responses(
        (status = 200, description = "Rotated; the new secret is shown this once", body = DestinationCreated),
        (status = 400, description = "Not a webhook, or a bad grace period", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<DestinationCreated>, ApiError> {
    let body: RotateSecret = optional_body(&body)?;
    let grace_hours = body.grace_hours.unwrap_or(24);
    if grace_hours > 720 {
        return Err(ApiError::invalid(
            "grace_hours",
            "must be between 0 and 720",
        ));
    }
    let mut d = load(&state, &caller, &id).await?;
    let secret = manage::rotate(&mut d, i64::from(grace_hours) * 3_600_000_000, now_micros())
        .map_err(field_error)?;
    let saved = save(&state, &d).await?;
    tracing::info!(destination = %id, grace_hours, "signing secret rotated");
    Ok(Json(DestinationCreated {
        destination: view(&saved)?,
        signing_secret: Some(secret),
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// pending, retrying, delivered, failed or skipped
    pub status: Option<String>,
    /// Event name, e.g. `Order Completed`
    pub event: Option<String>,
    pub message_id: Option<String>,
    /// Text in the message id, event, request, response or reason (case-insensitive)
    pub q: Option<String>,
    /// Last changed at or after this RFC 3339 time
    pub since: Option<String>,
    /// Last changed before this RFC 3339 time
    pub until: Option<String>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

/// The log filters of a query string.
fn delivery_filter(p: &DeliveryParams) -> Result<DeliveryFilter, ApiError> {
    let query = DeliveryQuery {
        status: p.status.clone(),
        event: p.event.clone(),
        message_id: p.message_id.clone(),
        search: p.q.clone(),
        since: p.since.clone(),
        until: p.until.clone(),
        before: p.cursor.clone(),
        limit: i64::from(parse_limit(p.limit.as_deref())?),
    };
    checked(&query)
}

/// The filter, or the field at fault with this API's names (`cursor`).
fn checked(query: &DeliveryQuery) -> Result<DeliveryFilter, ApiError> {
    query.filter().map_err(|e| {
        let field = if e.field == "before" {
            "cursor"
        } else {
            e.field.as_str()
        };
        ApiError::invalid(field, format!("{field} must be {}", e.message))
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A destination's delivery log, newest event first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/destinations/{id}/deliveries",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id"), DeliveryParams),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    params: Result<Query<DeliveryParams>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let filter = delivery_filter(&p)?;
    load(&state, &caller, &id).await?;
    let rows = state
        .db()
        .list_deliveries(&caller.org, &id, &filter)
        .await?;
    let next_cursor = (rows.len() as i64 == filter.limit)
        .then(|| rows.last().map(|d| d.seq.to_string()))
        .flatten();
    Ok(Json(DeliveryPage {
        data: rows.into_iter().map(delivery_view).collect(),
        next_cursor,
    }))
}

/// One delivery: the masked request, status, response excerpt, attempts
/// and outcome.
#[utoipa::path(
    get,
    path = "/api/v1/destinations/{id}/deliveries/{message_id}",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id"), ("message_id" = String, Path, description = "The event's messageId")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryView),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination or delivery", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_delivery(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    let d = state
        .db()
        .get_delivery(&caller.org, &id, &message_id)
        .await?;
    Ok(Json(delivery_view(d)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOne {
    /// false when the delivery is not `failed` (a delivered one is never
    /// sent again)
    pub replayed: bool,
    pub status: String,
}

/// Sends a failed delivery again (from the first attempt).
#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/deliveries/{message_id}/replay",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id"), ("message_id" = String, Path, description = "The event's messageId")),
    responses(
        (status = 200, description = "Queued again, or why not", body = ReplayOne),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination or delivery", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn replay_delivery(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Json<ReplayOne>, ApiError> {
    let replayed = state
        .db()
        .replay_delivery(&caller.org, &id, &message_id)
        .await?;
    let d = state
        .db()
        .get_delivery(&caller.org, &id, &message_id)
        .await?;
    Ok(Json(ReplayOne {
        replayed,
        status: d.status.as_str().to_owned(),
    }))
}

/// Which failed deliveries to replay; all of them when empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReplayFailed {
    pub event: Option<String>,
    pub message_id: Option<String>,
    /// Text search, as in the delivery log
    pub q: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayCount {
    pub replayed: u64,
}

/// Sends every failed delivery of the destination again (optionally only
/// those matching the filters).
#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/replay",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    request_body(content = ReplayFailed, description = "Optional filters"),
    responses(
        (status = 200, description = "How many were queued again", body = ReplayCount),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn replay_failed(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ReplayCount>, ApiError> {
    let body: ReplayFailed = optional_body(&body)?;
    load(&state, &caller, &id).await?;
    let filter = checked(&DeliveryQuery {
        event: body.event,
        message_id: body.message_id,
        search: body.q,
        since: body.since,
        until: body.until,
        ..Default::default()
    })?;
    let replayed = state.db().replay_failed(&caller.org, &id, &filter).await?;
    tracing::info!(destination = %id, replayed, "failed deliveries replayed");
    Ok(Json(ReplayCount { replayed }))
}

/// What to send as a test; by default the last event in the log that the
/// destination would receive, else a built-in sample.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TestRequest {
    /// A sample event (Segment JSON) to send
    #[schema(value_type = Option<Object>)]
    pub event: Option<Value>,
    /// Or the event with this messageId from the log
    pub message_id: Option<String>,
}

/// What a test conversion sent and got back.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// `given`, `log` or `sample`
    pub event_source: String,
    pub message_id: Option<String>,
    /// delivered, failed, retrying (would be retried) or skipped
    pub outcome: String,
    /// The exact request (method, URL, headers, body), secrets masked;
    /// absent when skipped
    #[schema(value_type = Option<Object>)]
    pub request: Option<Value>,
    pub response_status: Option<u16>,
    pub response_excerpt: Option<String>,
    pub reason: Option<String>,
}

/// "Send test conversion": builds the real request for an event — the one
/// given, the one named by `message_id`, the last one the destination would
/// receive, or a built-in sample — sends it now and shows exactly what was
/// sent (secrets masked) and what came back. Nothing is written to the
/// delivery log.
#[utoipa::path(
    post,
    path = "/api/v1/destinations/{id}/test",
    tag = "destinations",
    params(("id" = String, Path, description = "Destination id")),
    request_body(content = TestRequest, description = "Optional"),
    responses(
        (status = 200, description = "The request sent and the answer", body = TestResult),
        (status = 400, description = "The event is not a JSON object", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such destination, or no event with that messageId", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn test_destination(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TestResult>, ApiError> {
    let body: TestRequest = optional_body(&body)?;
    let sender = sender(&state)?;
    let d = load(&state, &caller, &id).await?;
    if body.event.as_ref().is_some_and(|e| !e.is_object()) {
        return Err(ApiError::invalid("event", "event must be a JSON object"));
    }
    let event = sender
        .test_event(&caller.org, &d, body.event, body.message_id.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let outcome = sender.test_conversion(&caller.org, &d, &event).await?;
    tracing::info!(destination = %id, outcome = %outcome.outcome, "test conversion sent");
    Ok(Json(TestResult {
        event_source: event.source.into(),
        message_id: event
            .message
            .get("messageId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        outcome: outcome.outcome,
        request: outcome
            .request
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
        response_status: outcome.response_status,
        response_excerpt: outcome.response_excerpt,
        reason: outcome.reason,
    }))
}
