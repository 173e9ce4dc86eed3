//! Profiles: lookup by identity, the customer list, one profile with its
//! orders, its timeline, export and erasure.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cohort_domain::profile::{Identity, OrderView, ProfileView};
use cohort_domain::time::parse_rfc3339;
use cohort_store::projection::{OrderFilter, ProfileFilter, ProfileRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::events::EventView;
use super::ApiCaller;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

pub(crate) fn parse_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(super::events::DEFAULT_LIMIT),
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=super::events::MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and {}", super::events::MAX_LIMIT),
            )),
        },
    }
}

/// A profile: traits (with when and where each last changed), identities,
/// tags, metrics, open cart and checkout, merges.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileBody {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub profile: ProfileView,
    /// One of its identities belonged to a profile erased earlier.
    pub previously_erased: bool,
    /// The id asked for, when it was merged into this profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_id: Option<String>,
    /// Its orders, newest first (on the single-profile endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub orders: Option<Vec<OrderView>>,
}

impl ProfileBody {
    fn new(record: ProfileRecord, orders: Option<Vec<OrderView>>) -> Self {
        Self {
            profile: record.profile,
            previously_erased: record.previously_erased,
            requested_id: record.merged_from,
            orders,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfilePage {
    pub data: Vec<ProfileBody>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileListParams {
    /// Exact email (case-insensitive)
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// Only profiles with this tag, e.g. `ecommerce.in_cart`
    pub tag: Option<String>,
    /// Only profiles with at least this many orders
    pub min_orders: Option<String>,
    /// Only profiles seen at or after this RFC 3339 time
    pub seen_since: Option<String>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

/// The customer list, filtered, in profile id order.
#[utoipa::path(
    get,
    path = "/api/v1/profiles",
    tag = "profiles",
    params(ProfileListParams),
    responses(
        (status = 200, description = "A page of profiles", body = ProfilePage),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_profiles(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<ProfileListParams>, QueryRejection>,
) -> Result<Json<ProfilePage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let min_orders =
        p.min_orders
            .as_deref()
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::invalid("min_orders", "min_orders must be a whole number")
                })
            })
            .transpose()?;
    let seen_since_us = p
        .seen_since
        .as_deref()
        .map(|v| {
            parse_rfc3339(v)
                .map(|t| t.timestamp_micros())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "seen_since",
                        "seen_since must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z",
                    )
                })
        })
        .transpose()?;
    let filter = ProfileFilter {
        email: p.email,
        user_id: p.user_id,
        tag: p.tag,
        min_orders,
        seen_since_us,
        after: p.cursor,
        limit: parse_limit(p.limit.as_deref())?,
    };
    let records = state.db().list_profiles(&caller.org, &filter).await?;
    let next_cursor = (records.len() == filter.limit as usize)
        .then(|| records.last().map(|r| r.profile.id.clone()))
        .flatten();
    Ok(Json(ProfilePage {
        data: records
            .into_iter()
            .map(|r| ProfileBody::new(r, None))
            .collect(),
        next_cursor,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupParams {
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
}

/// Finds the profile of one identity: give exactly one of `email`,
/// `user_id`, `anonymous_id`.
#[utoipa::path(
    get,
    path = "/api/v1/profiles/lookup",
    tag = "profiles",
    params(LookupParams),
    responses(
        (status = 200, description = "The profile, with its orders", body = ProfileBody),
        (status = 400, description = "Not exactly one identity given", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No profile has this identity", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn lookup_profile(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<LookupParams>, QueryRejection>,
) -> Result<Json<ProfileBody>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let identity = match (p.email, p.user_id, p.anonymous_id) {
        (Some(email), None, None) => {
            let email = cohort_domain::commerce::normalize_email(&email)
                .ok_or_else(|| ApiError::invalid("email", "email is not an email address"))?;
            Identity::email(&email)
        }
        (None, Some(user), None) if !user.is_empty() => Identity::user(&user),
        (None, None, Some(anon)) if !anon.is_empty() => Identity::anonymous(&anon),
        _ => {
            return Err(ApiError::invalid(
                "query",
                "give exactly one of email, user_id, anonymous_id",
            ))
        }
    };
    let id = state
        .db()
        .profile_id_of(&caller.org, &identity)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    one_profile(&state, &caller, &id).await.map(Json)
}

async fn one_profile(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
) -> Result<ProfileBody, ApiError> {
    let record = state
        .db()
        .profile(&caller.org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    let orders = state
        .db()
        .list_orders(
            &caller.org,
            &OrderFilter {
                profile_id: Some(record.profile.id.clone()),
                limit: 1000,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    Ok(ProfileBody::new(record, Some(orders)))
}

/// One profile with its orders. An id that was merged into another profile
/// answers with that profile (and `requested_id`).
#[utoipa::path(
    get,
    path = "/api/v1/profiles/{id}",
    tag = "profiles",
    params(("id" = String, Path, description = "Profile id (prof_…)")),
    responses(
        (status = 200, description = "The profile", body = ProfileBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_profile(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ProfileBody>, ApiError> {
    one_profile(&state, &caller, &id).await.map(Json)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    pub data: Vec<EventView>,
    pub next_cursor: Option<String>,
}

/// The profile's events, newest first by event time.
#[utoipa::path(
    get,
    path = "/api/v1/profiles/{id}/events",
    tag = "profiles",
    params(("id" = String, Path, description = "Profile id"), TimelineParams),
    responses(
        (status = 200, description = "A page of the timeline", body = TimelinePage),
        (status = 400, description = "Bad cursor or limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn profile_events(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    params: Result<Query<TimelineParams>, QueryRejection>,
) -> Result<Json<TimelinePage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = parse_limit(p.limit.as_deref())?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| {
            c.split_once('_')
                .and_then(|(ts, seq)| Some((ts.parse::<i64>().ok()?, seq.parse::<i64>().ok()?)))
                .ok_or_else(|| ApiError::invalid("cursor", "cursor must be a next_cursor value"))
        })
        .transpose()?;
    let record = state
        .db()
        .profile(&caller.org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    let events = state
        .db()
        .profile_timeline(&caller.org, &record.profile.id, before, limit)
        .await?;
    let next_cursor = (events.len() == limit as usize)
        .then(|| {
            events
                .last()
                .map(|e| format!("{}_{}", e.timestamp_us, e.seq))
        })
        .flatten();
    Ok(Json(TimelinePage {
        data: events.into_iter().map(EventView::from_stored).collect(),
        next_cursor,
    }))
}

/// Everything Cohort holds about the person: profile, orders and every
/// event, as one JSON document (a data-subject access request).
#[utoipa::path(
    get,
    path = "/api/v1/profiles/{id}/export",
    tag = "profiles",
    params(("id" = String, Path, description = "Profile id")),
    responses(
        (status = 200, description = "The export document", body = Object),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn export_profile(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let export = state
        .db()
        .export_profile(&caller.org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    let filename = format!("attachment; filename=\"{}.json\"", export.profile.id);
    let mut response = Json(export).into_response();
    if let Ok(value) = HeaderValue::from_str(&filename) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// What an erasure removed (no personal data).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureBody {
    pub erasure_id: String,
    pub profile_id: String,
    pub erased_at: String,
    /// Identities removed (ids, emails, order links)
    pub identities: i64,
    /// Raw events stripped of personal data
    pub events: i64,
}

/// Erases the person: profile, identities, orders, tags and the personal
/// data of their raw events. An audit record without personal data stays;
/// a later event with one of the same identifiers starts a new profile,
/// flagged `previously_erased`.
#[utoipa::path(
    delete,
    path = "/api/v1/profiles/{id}",
    tag = "profiles",
    params(("id" = String, Path, description = "Profile id")),
    responses(
        (status = 200, description = "Erased", body = ErasureBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn erase_profile(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ErasureBody>, ApiError> {
    let report = state
        .db()
        .erase_profile(&caller.org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    tracing::info!(erasure = %report.erasure_id, profile = %report.profile_id, events = report.events, "profile erased");
    Ok(Json(ErasureBody {
        erasure_id: report.erasure_id,
        profile_id: report.profile_id,
        erased_at: cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(
            report.erased_at_us,
        )),
        identities: report.identities,
        events: report.events,
    }))
}
