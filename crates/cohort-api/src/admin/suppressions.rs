//! `/api/v1/suppressions`: the addresses the organisation must not mail,
//! with why and since when; add (by hand or from another system's list)
//! and lift with a reason. Every change is logged (`suppression_log`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use cohort_domain::accounts::normalise_email;
use cohort_domain::suppression::SuppressionReason;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::suppressions::{Suppression, SuppressionQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::profiles::parse_limit;
use super::ApiCaller;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// Longest detail or removal reason kept.
const NOTE_MAX_CHARS: usize = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    pub email: String,
    /// `hard_bounce`, `soft_bounces`, `complaint`, `unsubscribed`, `manual`, `imported`
    pub reason: String,
    pub detail: Option<String>,
    /// Where it came from: `api`, a message id, …
    pub source: String,
    pub created_at: String,
}

impl From<Suppression> for SuppressionView {
    fn from(s: Suppression) -> Self {
        Self {
            email: s.email,
            reason: s.reason.as_str().into(),
            detail: s.detail,
            source: s.source,
            created_at: format_rfc3339(from_micros(s.created_at_us)),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionParams {
    /// Part of the address (case-insensitive)
    pub q: Option<String>,
    /// Only this reason
    pub reason: Option<String>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionPage {
    pub data: Vec<SuppressionView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn parse_reason(field: &str, value: &str) -> Result<SuppressionReason, ApiError> {
    value.parse().map_err(|_| {
        ApiError::invalid(
            field,
            "one of hard_bounce, soft_bounces, complaint, unsubscribed, manual, imported",
        )
    })
}

fn encode_cursor(s: &Suppression) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}\n{}",
        s.email,
        s.reason.as_str()
    ))
}

fn decode_cursor(cursor: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::invalid("cursor", "not a cursor this API gave");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (email, reason) = text.split_once('\n').ok_or_else(bad)?;
    Ok((email.to_owned(), reason.to_owned()))
}

fn checked_email(field: &str, email: &str) -> Result<String, ApiError> {
    normalise_email(email).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn checked_note(field: &str, note: Option<String>) -> Result<Option<String>, ApiError> {
    match note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        Some(n) if n.chars().count() > NOTE_MAX_CHARS => Err(ApiError::invalid(
            field,
            format!("at most {NOTE_MAX_CHARS} characters"),
        )),
        other => Ok(other),
    }
}

/// The suppression list, in address order.
#[utoipa::path(
    get,
    path = "/api/v1/suppressions",
    tag = "mail",
    params(SuppressionParams),
    responses(
        (status = 200, description = "A page of suppressions", body = SuppressionPage),
        (status = 400, description = "Bad reason, cursor or limit (the field is named)", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_suppressions(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<SuppressionParams>, QueryRejection>,
) -> Result<Json<SuppressionPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = parse_limit(p.limit.as_deref())?;
    let reason = p
        .reason
        .as_deref()
        .map(|r| parse_reason("reason", r))
        .transpose()?;
    let after = p.cursor.as_deref().map(decode_cursor).transpose()?;
    let search = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let rows = state
        .db()
        .suppressions_page(
            &caller.org,
            &SuppressionQuery {
                search,
                reason,
                after: after.as_ref().map(|(e, r)| (e.as_str(), r.as_str())),
                limit,
            },
        )
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(encode_cursor))
        .flatten();
    Ok(Json(SuppressionPage {
        data: rows.into_iter().map(SuppressionView::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    pub email: String,
    /// `manual` (default), `imported`, `unsubscribed`, `hard_bounce` or `complaint`
    pub reason: Option<String>,
    /// A note kept with it (at most 500 characters)
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionAdded {
    pub suppression: SuppressionView,
    /// `false`: the address was already suppressed for this reason (that record stands)
    pub created: bool,
}

/// Suppresses an address: no marketing mail goes to it from now on (a
/// hard bounce stops transactional mail too). Adding it again for the
/// same reason changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/suppressions",
    tag = "mail",
    request_body = NewSuppression,
    responses(
        (status = 201, description = "Suppressed", body = SuppressionAdded),
        (status = 200, description = "Already suppressed for this reason", body = SuppressionAdded),
        (status = 400, description = "The field that is wrong is named", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn add_suppression(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<NewSuppression>, JsonRejection>,
) -> Result<(StatusCode, Json<SuppressionAdded>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let email = checked_email("email", &body.email)?;
    let reason = match body.reason.as_deref() {
        None => SuppressionReason::Manual,
        Some(r) => parse_reason("reason", r)?,
    };
    if !reason.addable_by_merchant() {
        return Err(ApiError::invalid(
            "reason",
            "soft_bounces is counted from deliveries, not added",
        ));
    }
    let detail = checked_note("detail", body.detail)?;
    let db = state.db();
    let created = db
        .suppress(&caller.org, &email, reason, detail.as_deref(), "api")
        .await?;
    let suppression = db
        .suppressions_of(&caller.org, &email)
        .await?
        .into_iter()
        .find(|s| s.reason == reason)
        .ok_or_else(|| ApiError::not_found("suppression"))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SuppressionAdded {
            suppression: suppression.into(),
            created,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftSuppression {
    /// Why it is lifted (kept in the log), e.g. "the customer asked to be mailed again"
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionLifted {
    pub email: String,
    /// The reasons lifted
    pub lifted: u64,
}

/// Lifts every suppression of an address, with the reason why (logged
/// beside what it lifted).
#[utoipa::path(
    delete,
    path = "/api/v1/suppressions/{email}",
    tag = "mail",
    params(("email" = String, Path, description = "The address")),
    request_body = LiftSuppression,
    responses(
        (status = 200, description = "Lifted", body = SuppressionLifted),
        (status = 400, description = "No reason, or not an address", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "The address is not suppressed in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn lift_suppression(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(email): Path<String>,
    body: Result<Json<LiftSuppression>, JsonRejection>,
) -> Result<Json<SuppressionLifted>, ApiError> {
    let email = checked_email("email", &email)?;
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let why = checked_note("reason", Some(body.reason))?
        .ok_or_else(|| ApiError::invalid("reason", "say why the suppression is lifted"))?;
    let lifted = state
        .db()
        .unsuppress(&caller.org, &email, &why, "api")
        .await?;
    if lifted == 0 {
        return Err(ApiError::not_found("suppression"));
    }
    Ok(Json(SuppressionLifted { email, lifted }))
}
