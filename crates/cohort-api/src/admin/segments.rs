//! Segments: create (a rule as text or as its JSON AST), list, show, edit,
//! delete; a segment's members; a preview that saves nothing; the segments
//! a profile is in. The rules, their checks and live membership are
//! `cohort_engine::segments`'; this module maps them to JSON and its
//! refusals to 4xx answers (a rule that does not parse names its line and
//! column).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_domain::profile::ProfileView;
use cohort_domain::segments::Rule;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_engine::segments::{RuleSource, SegmentChangeset, SegmentDraft, SegmentError, Segments};
use cohort_store::segments::{ProfileSegment, SegmentMember, SegmentRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::profiles::parse_limit;
use super::ApiCaller;
use crate::error::{ErrorBody, RulePosition};
use crate::{ApiError, AppState};

fn service(state: &AppState) -> Segments {
    Segments::new(state.db().clone()).with_model(state.rule_model())
}

fn time(us: i64) -> String {
    format_rfc3339(from_micros(us))
}

/// The engine's refusals as answers; `rule_field` is where the caller put
/// the rule (`rule` or `ast`).
fn refusal(e: SegmentError, rule_field: &str) -> ApiError {
    match e {
        SegmentError::InvalidRule(p) => ApiError::invalid_rule(
            "rule",
            p.message,
            Some(RulePosition {
                line: p.line,
                column: p.column,
                expected: p.expected,
            }),
        ),
        SegmentError::InvalidAst(m) => {
            ApiError::invalid_rule(rule_field, format!("{rule_field}: {m}"), None)
        }
        SegmentError::Cycle(names) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "segment_cycle",
            format!("segments would form a cycle: {}", names.join(" → ")),
        )
        .with_field(rule_field),
        SegmentError::UnknownSegment(name) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_segment",
            format!("no segment is named \"{name}\""),
        )
        .with_field(rule_field),
        SegmentError::InvalidField { field, message } => ApiError::invalid(field, message),
        SegmentError::NameTaken(name) => {
            ApiError::conflict(format!("a segment named \"{name}\" already exists"))
                .with_field("name")
        }
        e @ SegmentError::Referenced { .. } => {
            ApiError::conflict(format!("{e}: change or delete those segments' rules first"))
        }
        SegmentError::NotFound => ApiError::not_found("segment"),
        SegmentError::NotUnderstood {
            message,
            start,
            end,
        } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_understood",
            format!("{message} (at bytes {start}–{end} of the text)"),
        )
        .with_field("text"),
        SegmentError::Store(s) => s.into(),
    }
}

/// Exactly one face of a rule: the text in `rule` or the AST in `ast`.
/// `None` when neither is given and `required` is false (an edit).
fn rule_source(
    rule: Option<String>,
    ast: Option<Value>,
    required: bool,
) -> Result<Option<(RuleSource, &'static str)>, ApiError> {
    match (rule, ast) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "ast",
            "give either rule (the text form) or ast (the JSON form), not both",
        )),
        (None, None) if required => Err(ApiError::invalid(
            "rule",
            "give rule (the text form) or ast (the JSON form)",
        )),
        (None, None) => Ok(None),
        (Some(text), None) => Ok(Some((RuleSource::Text(text), "rule"))),
        (None, Some(ast)) => {
            let rule: Rule = serde_json::from_value(ast)
                .map_err(|e| ApiError::invalid_rule("ast", format!("ast: {e}"), None))?;
            Ok(Some((RuleSource::Ast(rule), "ast")))
        }
    }
}

/// A segment: its rule in both faces and its current member count.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentView {
    /// `seg_…`
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The rule's text form, canonical (as the printer writes it)
    pub rule: String,
    /// The rule's JSON form (docs/SEGMENTS.md)
    #[schema(value_type = Object)]
    pub ast: Rule,
    /// Members now
    pub count: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<SegmentRecord> for SegmentView {
    fn from(r: SegmentRecord) -> Self {
        Self {
            id: r.segment_id,
            name: r.name,
            description: r.description,
            rule: r.rule_text,
            ast: r.rule,
            count: r.member_count,
            created_at: time(r.created_at_us),
            updated_at: time(r.updated_at_us),
        }
    }
}

/// A new segment: give `rule` (text) or `ast` (JSON), not both.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSegment {
    /// Unique in the organisation, at most 100 characters
    pub name: Option<String>,
    pub description: Option<String>,
    /// The rule's text form, e.g. `orders.count >= 2 and performed "Order Completed" within 30 days`
    pub rule: Option<String>,
    /// The rule's JSON form
    #[schema(value_type = Option<Object>)]
    pub ast: Option<Value>,
}

/// An edit: only what is given changes; `rule` or `ast` replaces the rule
/// (and recomputes the members), not both.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateSegment {
    /// A segment other rules name (`in segment "…"`) cannot be renamed
    pub name: Option<String>,
    /// `null` or `""` clears it
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub rule: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub ast: Option<Value>,
}

/// `Some(None)` for an explicit `null`, `None` when absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentPage {
    pub data: Vec<SegmentView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The organisation's segments, in id order.
#[utoipa::path(
    get,
    path = "/api/v1/segments",
    tag = "segments",
    params(PageParams),
    responses(
        (status = 200, description = "A page of segments", body = SegmentPage),
        (status = 400, description = "Bad limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_segments(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<SegmentPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = parse_limit(p.limit.as_deref())?;
    let records = service(&state)
        .list(&caller.org, p.cursor.as_deref(), limit)
        .await
        .map_err(|e| refusal(e, "rule"))?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.segment_id.clone()))
        .flatten();
    Ok(Json(SegmentPage {
        data: records.into_iter().map(SegmentView::from).collect(),
        next_cursor,
    }))
}

/// Creates a segment and computes its members at once; from then on they
/// are kept live as events arrive and windows pass. A rule text that does
/// not parse answers `invalid_rule` with `line`, `column` and `expected`;
/// an AST that is not a rule answers `invalid_rule` naming `ast` (no
/// `line`/`column`); `segment_cycle` names the segments of a cycle;
/// `unknown_segment` a name no segment has. Nothing is saved then.
#[utoipa::path(
    post,
    path = "/api/v1/segments",
    tag = "segments",
    request_body = CreateSegment,
    responses(
        (status = 201, description = "Created, with its member count", body = SegmentView),
        (status = 400, description = "invalid_rule, segment_cycle, unknown_segment, or invalid_request naming the field", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn create_segment(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<CreateSegment>, JsonRejection>,
) -> Result<(StatusCode, Json<SegmentView>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let name = body
        .name
        .ok_or_else(|| ApiError::invalid("name", "a segment needs a name"))?;
    let Some((rule, field)) = rule_source(body.rule, body.ast, true)? else {
        return Err(ApiError::invalid("rule", "give rule or ast"));
    };
    let created = service(&state)
        .create(
            &caller.org,
            SegmentDraft {
                name,
                description: body.description,
                rule,
            },
        )
        .await
        .map_err(|e| refusal(e, field))?;
    tracing::info!(segment = %created.segment_id, members = created.member_count, "segment created");
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// One segment.
#[utoipa::path(
    get,
    path = "/api/v1/segments/{id}",
    tag = "segments",
    params(("id" = String, Path, description = "Segment id (seg_…)")),
    responses(
        (status = 200, description = "The segment", body = SegmentView),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_segment(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<SegmentView>, ApiError> {
    let record = service(&state)
        .get(&caller.org, &id)
        .await
        .map_err(|e| refusal(e, "rule"))?;
    Ok(Json(record.into()))
}

/// Edits a segment: name, description, or its rule (`rule` or `ast`),
/// checked as on creation. A changed rule recomputes its members and those
/// of the segments that name it. A segment other rules name cannot be
/// renamed (409 names them).
#[utoipa::path(
    patch,
    path = "/api/v1/segments/{id}",
    tag = "segments",
    params(("id" = String, Path, description = "Segment id")),
    request_body = UpdateSegment,
    responses(
        (status = 200, description = "The segment as saved", body = SegmentView),
        (status = 400, description = "invalid_rule, segment_cycle, unknown_segment, or invalid_request naming the field", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "The name is taken, or other rules name this segment", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn update_segment(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<UpdateSegment>, JsonRejection>,
) -> Result<Json<SegmentView>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let source = rule_source(body.rule, body.ast, false)?;
    let field = source.as_ref().map(|(_, f)| *f).unwrap_or("rule");
    let saved = service(&state)
        .update(
            &caller.org,
            &id,
            SegmentChangeset {
                name: body.name,
                description: body.description,
                rule: source.map(|(s, _)| s),
            },
        )
        .await
        .map_err(|e| refusal(e, field))?;
    Ok(Json(saved.into()))
}

/// Deletes a segment no other rule names (409 names those that do); its
/// members' exits are recorded in the membership feed.
#[utoipa::path(
    delete,
    path = "/api/v1/segments/{id}",
    tag = "segments",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 409, description = "Other rules name this segment", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn delete_segment(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    service(&state)
        .delete(&caller.org, &id)
        .await
        .map_err(|e| refusal(e, "rule"))?;
    tracing::info!(segment = %id, "segment deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A member of a segment.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub profile_id: String,
    pub email: Option<String>,
    /// When it last entered the segment
    pub entered_at: String,
}

impl From<SegmentMember> for MemberView {
    fn from(m: SegmentMember) -> Self {
        Self {
            profile_id: m.profile_id,
            email: m.email,
            entered_at: time(m.entered_at_us),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub data: Vec<MemberView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A segment's members now, in profile id order.
#[utoipa::path(
    get,
    path = "/api/v1/segments/{id}/members",
    tag = "segments",
    params(("id" = String, Path, description = "Segment id"), PageParams),
    responses(
        (status = 200, description = "A page of members", body = MemberPage),
        (status = 400, description = "Bad limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn segment_members(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<MemberPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = parse_limit(p.limit.as_deref())?;
    let members = service(&state)
        .members(&caller.org, &id, p.cursor.as_deref(), limit)
        .await
        .map_err(|e| refusal(e, "rule"))?;
    let next_cursor = (members.len() == limit as usize)
        .then(|| members.last().map(|m| m.profile_id.clone()))
        .flatten();
    Ok(Json(MemberPage {
        data: members.into_iter().map(MemberView::from).collect(),
        next_cursor,
    }))
}

/// A rule to preview: `rule` (text) or `ast` (JSON), not both.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PreviewSegment {
    pub rule: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub ast: Option<Value>,
}

/// What a rule selects now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    pub count: i64,
    /// Up to 10 members in profile id order, each the profile's fields as
    /// `GET /api/v1/profiles/{id}` shows them (without its orders)
    #[schema(value_type = Vec<Object>)]
    pub sample: Vec<ProfileView>,
    #[schema(value_type = Object)]
    pub ast: Rule,
    /// The canonical text form
    pub rule: String,
}

/// Counts what a rule selects now and shows up to ten of its members;
/// nothing is saved. Refusals as on creation.
#[utoipa::path(
    post,
    path = "/api/v1/segments/preview",
    tag = "segments",
    request_body = PreviewSegment,
    responses(
        (status = 200, description = "The count, a sample and the rule in both faces", body = PreviewView),
        (status = 400, description = "invalid_rule, segment_cycle, unknown_segment, or invalid_request naming the field", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn preview_segment(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<PreviewSegment>, JsonRejection>,
) -> Result<Json<PreviewView>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let Some((source, field)) = rule_source(body.rule, body.ast, true)? else {
        return Err(ApiError::invalid("rule", "give rule or ast"));
    };
    let preview = service(&state)
        .preview(&caller.org, &source)
        .await
        .map_err(|e| refusal(e, field))?;
    Ok(Json(PreviewView {
        count: preview.count,
        sample: preview.sample,
        ast: preview.rule,
        rule: preview.text,
    }))
}

/// Natural language to read into a rule.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SegmentFromText {
    /// The merchant's words, e.g. "customers who bought twice but haven't
    /// opened an email in a month"
    pub text: String,
    /// Ask the operator's model even when the offline grammar placed every
    /// word (it is asked anyway when words are left unplaced).
    #[serde(default)]
    pub model: bool,
}

/// What became of the model's answer, when it was asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelOutcomeView {
    /// Whether the returned rule is the model's
    pub used: bool,
    /// Why its answer was discarded (unreachable, refused, does not parse
    /// in the rule language, names an unknown segment)
    pub reason: Option<String>,
}

/// A word the reading could not place (byte offsets into `text`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UnplacedWords {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// The rule read from the words, with what it selects now.
#[derive(Debug, Serialize, ToSchema)]
pub struct FromTextView {
    /// The canonical text form
    pub rule: String,
    #[schema(value_type = Object)]
    pub ast: Rule,
    /// Words no part of the rule came from: shown to the merchant, never dropped
    pub unplaced: Vec<UnplacedWords>,
    /// What the merchant should know about the reading (an amount in another currency, …)
    pub notes: Vec<String>,
    pub count: i64,
    #[schema(value_type = Vec<Object>)]
    pub sample: Vec<ProfileView>,
    /// `grammar` (the built-in offline reader) or `model`
    pub source: String,
    /// Present when the model was asked
    pub model: Option<ModelOutcomeView>,
}

/// Reads a merchant's words into a rule with the store's own catalogue,
/// tags and segments, offline, and previews it; nothing is saved (save
/// with `POST /api/v1/segments` after the merchant has seen the rule).
/// With a model configured (`[nl]`), it is asked when words are left
/// unplaced or `model` is true; its rule is used only if it parses.
#[utoipa::path(
    post,
    path = "/api/v1/segments/from-text",
    tag = "segments",
    request_body = SegmentFromText,
    responses(
        (status = 200, description = "The rule in both faces, unplaced words, the count and a sample", body = FromTextView),
        (status = 400, description = "not_understood (the part that failed in the message), or invalid_request naming text", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn segment_from_text(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<SegmentFromText>, JsonRejection>,
) -> Result<Json<FromTextView>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid("text", "say who the segment is for"));
    }
    if body.text.len() > 2000 {
        return Err(ApiError::invalid("text", "at most 2000 bytes"));
    }
    let reading = service(&state)
        .from_text(&caller.org, &body.text, body.model)
        .await
        .map_err(|e| refusal(e, "text"))?;
    Ok(Json(FromTextView {
        rule: reading.preview.text,
        ast: reading.preview.rule,
        unplaced: reading
            .unplaced
            .into_iter()
            .map(|s| UnplacedWords {
                start: s.start,
                end: s.end,
                text: s.text,
            })
            .collect(),
        notes: reading.notes,
        count: reading.preview.count,
        sample: reading.preview.sample,
        source: reading.source.as_str().into(),
        model: reading.model.map(|m| ModelOutcomeView {
            used: m.used,
            reason: m.reason,
        }),
    }))
}

/// A segment a profile is in.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileSegmentView {
    pub segment_id: String,
    pub name: String,
    pub entered_at: String,
}

impl From<ProfileSegment> for ProfileSegmentView {
    fn from(s: ProfileSegment) -> Self {
        Self {
            segment_id: s.segment_id,
            name: s.name,
            entered_at: time(s.entered_at_us),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileSegmentList {
    pub data: Vec<ProfileSegmentView>,
}

/// The segments a profile is in now, by name. An id merged into another
/// profile answers for that profile.
#[utoipa::path(
    get,
    path = "/api/v1/profiles/{id}/segments",
    tag = "segments",
    params(("id" = String, Path, description = "Profile id (prof_…)")),
    responses(
        (status = 200, description = "Its segments", body = ProfileSegmentList),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn profile_segments(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ProfileSegmentList>, ApiError> {
    let record = state
        .db()
        .profile(&caller.org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    let segments = state
        .db()
        .profile_segments(&caller.org, &record.profile.id)
        .await?;
    Ok(Json(ProfileSegmentList {
        data: segments.into_iter().map(ProfileSegmentView::from).collect(),
    }))
}
