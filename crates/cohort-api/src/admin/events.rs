//! `GET /api/v1/events`: what arrived, newest or oldest first, filtered,
//! with seek pagination (`cursor` = the last `seq` of the previous page).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use cohort_domain::collect::MessageType;
use cohort_domain::time::{format_rfc3339, from_micros, parse_rfc3339};
use cohort_store::events::{EventQuery, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::ApiCaller;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// identify, track, page, screen, group or alias
    #[param(rename = "type")]
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// Event name of track calls, e.g. `Order Completed`
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub message_id: Option<String>,
    /// Events whose (corrected) timestamp is at or after this RFC 3339 time
    pub since: Option<String>,
    /// Events whose (corrected) timestamp is before this RFC 3339 time
    pub until: Option<String>,
    /// `asc` (oldest first, the default) or `desc`
    pub order: Option<String>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

/// One stored event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Position in the log (increasing).
    pub seq: i64,
    pub message_id: String,
    pub source_id: String,
    #[serde(rename = "type")]
    pub message_type: String,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
    /// Corrected event time (UTC)
    pub timestamp: String,
    pub received_at: String,
    /// What Cohort corrected in the message (an unparseable time, …)
    pub notes: Vec<String>,
    /// The Segment message as stored (batch defaults merged, times set)
    #[schema(value_type = Object)]
    pub message: Box<RawValue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<EventView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl EventView {
    pub(crate) fn from_stored(e: StoredEvent) -> Self {
        let message = RawValue::from_string(e.payload)
            .unwrap_or_else(|_| RawValue::from_string("{}".into()).unwrap_or_default());
        Self {
            seq: e.seq,
            message_id: e.message_id,
            source_id: e.source_id,
            message_type: e.message_type,
            event: e.event,
            user_id: e.user_id,
            anonymous_id: e.anonymous_id,
            email: e.email,
            timestamp: format_rfc3339(from_micros(e.timestamp_us)),
            received_at: format_rfc3339(from_micros(e.received_at_us)),
            notes: e
                .notes
                .and_then(|n| serde_json::from_str(&n).ok())
                .unwrap_or_default(),
            message,
        }
    }
}

/// Events of the caller's organisation.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "admin",
    params(EventsParams),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let query = to_query(&params)?;
    let events = state.db().query_events(&caller.org, &query).await?;
    let next_cursor = (events.len() == query.limit as usize)
        .then(|| events.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(EventPage {
        data: events.into_iter().map(EventView::from_stored).collect(),
        next_cursor,
    }))
}

pub fn to_query(p: &EventsParams) -> Result<EventQuery, ApiError> {
    let time = |value: &Option<String>, field: &str| -> Result<Option<i64>, ApiError> {
        value
            .as_deref()
            .map(|v| {
                parse_rfc3339(v)
                    .map(|t| t.timestamp_micros())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            field,
                            format!("{field} must be an RFC 3339 time, e.g. 2026-11-23T00:00:00Z"),
                        )
                    })
            })
            .transpose()
    };
    if let Some(t) = &p.message_type {
        if MessageType::parse(t).is_none() {
            return Err(ApiError::invalid(
                "type",
                "type must be one of identify, track, page, screen, group, alias",
            ));
        }
    }
    let newest_first = match p.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::invalid("order", "order must be asc or desc")),
    };
    let after_seq = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "cursor must be a next_cursor value"))
        })
        .transpose()?;
    let limit = match p.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("limit must be between 1 and {MAX_LIMIT}"),
                ))
            }
        },
    };
    Ok(EventQuery {
        message_type: p.message_type.clone(),
        event: p.event.clone(),
        user_id: p.user_id.clone(),
        anonymous_id: p.anonymous_id.clone(),
        message_id: p.message_id.clone(),
        since_us: time(&p.since, "since")?,
        until_us: time(&p.until, "until")?,
        after_seq,
        newest_first,
        limit,
    })
}
