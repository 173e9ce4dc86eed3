//! Segments: the list with each one's count and 30-day membership chart,
//! a segment's page (its rule, members page by page, latest entries and
//! exits), the editor (the
//! rule's text in a textarea that saves without script; the builder and
//! the live preview are `assets/segments.js`), and the small JSON endpoint
//! the editor previews through. Everything goes through
//! `cohort_engine::segments::Segments`, scoped to the member's
//! organisation.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use cohort_domain::segments::{ParseError, Rule};
use cohort_engine::segments::{
    RuleSource, SegmentChangeset, SegmentDraft, SegmentError, NAME_MAX_CHARS,
};
use cohort_store::segments::SegmentRecord;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chart;
use crate::WebState;
use crate::{html, redirect, templates, Member, UiError, UiResult};

/// Days of the membership chart.
const CHART_DAYS: u32 = 30;
/// Members per page of a segment's page.
const MEMBER_PAGE: u32 = 50;
/// Entries and exits shown on a segment's page.
const RECENT_CHANGES: u32 = 10;

#[derive(Serialize)]
struct SegmentRow {
    id: String,
    name: String,
    description: Option<String>,
    members: i64,
    updated_at_us: i64,
    chart: String,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => {
            "Segment saved. Its members were computed at once and stay current as events arrive."
        }
        "saved" => "Segment saved. Its members were recomputed.",
        "deleted" => "Segment deleted. Its members' exits are recorded on their profiles.",
        _ => return None,
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    pub done: Option<String>,
}

/// The organisation's segments, by name, each with its count and chart.
pub(crate) async fn list_segments(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<ListParams>,
) -> UiResult {
    let db = state.db();
    let now = state.segments().now_us();
    let mut rows = Vec::new();
    for (i, record) in db
        .segments_of(&member.org.id)
        .await?
        .into_iter()
        .enumerate()
    {
        let days = db
            .segment_daily_counts(&member.org.id, &record, CHART_DAYS, now)
            .await?;
        rows.push(SegmentRow {
            chart: chart::membership_spark(&format!("spark-{i}"), &record.name, &days),
            id: record.segment_id,
            name: record.name,
            description: record.description,
            members: record.member_count,
            updated_at_us: record.updated_at_us,
        });
    }
    // The RFM grid: each group's customers and revenue, in the spec's order.
    let groups = db.rfm_groups(&member.org.id).await?;
    let rfm_run = db.rfm_run(&member.org.id).await?;
    let rfm: Vec<_> = cohort_domain::segments::rfm::GROUPS
        .iter()
        .map(|name| {
            let g = groups.iter().find(|g| g.group == *name);
            minijinja::context! {
                name => name,
                customers => g.map_or(0, |g| g.customers),
                revenue => rust_decimal::Decimal::new(g.map_or(0, |g| g.spent_e4), 4)
                    .round_dp(2)
                    .to_string(),
            }
        })
        .collect();
    let body = templates::render(
        "segments.html",
        &member.layout("segments", "Segments"),
        minijinja::context! {
            segments => rows,
            notice => notice(params.done.as_deref()),
            rfm,
            rfm_computed_at_us => rfm_run.map(|(at, _)| at),
            has_model => state.segments().has_model(),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SegmentParams {
    /// The last profile id of the previous page of members
    pub after: Option<String>,
    pub done: Option<String>,
}

#[derive(Serialize)]
struct MemberRow {
    profile_id: String,
    email: Option<String>,
    entered_at_us: i64,
}

/// A segment: its count, chart, rule and members page by page.
pub(crate) async fn show_segment(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    Query(params): Query<SegmentParams>,
) -> UiResult {
    let record = load(&state, &member, &ids.1).await?;
    segment_page(
        &state,
        &member,
        &record,
        params.after.as_deref(),
        notice(params.done.as_deref()),
        None,
        StatusCode::OK,
    )
    .await
}

async fn segment_page(
    state: &WebState,
    member: &Member,
    record: &SegmentRecord,
    after: Option<&str>,
    notice: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> UiResult {
    let db = state.db();
    let org = &member.org.id;
    let days = db
        .segment_daily_counts(org, record, CHART_DAYS, state.segments().now_us())
        .await?;
    let page = db
        .segment_member_page(org, &record.segment_id, after, MEMBER_PAGE)
        .await?;
    let next = (page.len() == MEMBER_PAGE as usize)
        .then(|| page.last().map(|m| m.profile_id.clone()))
        .flatten();
    let changes: Vec<_> = db
        .segment_recent_changes(org, &record.segment_id, RECENT_CHANGES)
        .await?
        .into_iter()
        .map(|c| {
            minijinja::context! {
                profile_id => c.profile_id,
                email => c.email,
                entered => c.entered,
                at_us => c.at_us,
                reason => c.reason,
            }
        })
        .collect();
    let members: Vec<MemberRow> = page
        .into_iter()
        .map(|m| MemberRow {
            profile_id: m.profile_id,
            email: m.email,
            entered_at_us: m.entered_at_us,
        })
        .collect();
    let body = templates::render(
        "segment.html",
        &member.layout("segments", record.name.clone()),
        minijinja::context! {
            segment => minijinja::context! {
                id => record.segment_id,
                name => record.name,
                description => record.description,
                rule => record.rule_text,
                members => record.member_count,
                created_at_us => record.created_at_us,
                updated_at_us => record.updated_at_us,
            },
            chart => chart::membership_chart(&record.name, &days),
            members,
            changes,
            next,
            first_page => after.is_none(),
            notice,
            error,
        },
    )?;
    Ok(html(status, body))
}

async fn load(state: &WebState, member: &Member, id: &str) -> Result<SegmentRecord, UiError> {
    state
        .db()
        .segment(&member.org.id, id)
        .await?
        .ok_or_else(UiError::not_found)
}

/// What the editor shows: the stored segment, or what was posted.
#[derive(Debug, Clone, Default, Serialize)]
struct EditorValues {
    /// `None` for a new segment.
    id: Option<String>,
    name: String,
    description: String,
    rule: String,
}

/// Where and why a rule was refused, for the editor.
#[derive(Debug, Clone, Default, Serialize)]
struct RuleProblem {
    message: String,
    /// The line of the rule, cut at the error's column (parse errors only).
    mark: Option<ErrorMark>,
}

#[derive(Debug, Clone, Serialize)]
struct ErrorMark {
    line: usize,
    column: usize,
    before: String,
    /// The character the parser stopped at (a space at the end of the line).
    at: String,
    after: String,
    at_end: bool,
}

/// The error's line, split around its column (1-based, in characters).
fn error_mark(text: &str, error: &ParseError) -> ErrorMark {
    let line = text
        .split('\n')
        .nth(error.line.saturating_sub(1))
        .unwrap_or_default()
        .trim_end_matches('\r');
    let chars: Vec<char> = line.chars().collect();
    let at = error.column.saturating_sub(1).min(chars.len());
    let before: String = chars[..at].iter().collect();
    let (at_char, after) = match chars.get(at) {
        Some(c) => (c.to_string(), chars[at + 1..].iter().collect()),
        None => (" ".to_owned(), String::new()),
    };
    ErrorMark {
        line: error.line,
        column: error.column,
        before,
        at_end: chars.get(at).is_none(),
        at: at_char,
        after,
    }
}

/// Field errors of the editor.
#[derive(Debug, Clone, Default, Serialize)]
struct EditorErrors {
    name: Option<String>,
    description: Option<String>,
    rule: Option<RuleProblem>,
    /// A conflict the form cannot fix by itself (a name other rules use).
    conflict: Option<String>,
}

impl EditorErrors {
    fn of(error: &SegmentError, text: &str) -> Option<Self> {
        let rule = |message: String| EditorErrors {
            rule: Some(RuleProblem {
                message,
                mark: None,
            }),
            ..Default::default()
        };
        Some(match error {
            SegmentError::InvalidRule(parse) => EditorErrors {
                rule: Some(RuleProblem {
                    message: parse.message.clone(),
                    mark: Some(error_mark(text, parse)),
                }),
                ..Default::default()
            },
            SegmentError::InvalidAst(m) => rule(m.clone()),
            SegmentError::Cycle(_)
            | SegmentError::UnknownSegment(_)
            | SegmentError::NotUnderstood { .. } => rule(error.to_string()),
            SegmentError::InvalidField {
                field: "description",
                message,
            } => EditorErrors {
                description: Some(format!("The description has {message}.")),
                ..Default::default()
            },
            SegmentError::InvalidField { message, .. } => EditorErrors {
                name: Some(format!("Give the segment a name: {message}.")),
                ..Default::default()
            },
            SegmentError::NameTaken(name) => EditorErrors {
                name: Some(format!(
                    "A segment named “{name}” already exists: choose another name."
                )),
                ..Default::default()
            },
            SegmentError::Referenced { name, by } => EditorErrors {
                conflict: Some(referenced_message(name, by, "renamed")),
                ..Default::default()
            },
            SegmentError::NotFound | SegmentError::Store(_) => return None,
        })
    }

    fn status(&self) -> StatusCode {
        if self.conflict.is_some() {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        }
    }
}

fn referenced_message(name: &str, by: &[String], what: &str) -> String {
    let names = by
        .iter()
        .map(|n| format!("“{n}”"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "“{name}” cannot be {what}: it is named by other segments ({names}). \
         Change their rules first so they no longer say in segment \"{name}\"."
    )
}

/// A segment error that is not the form's: a missing segment, storage.
fn page_error(error: SegmentError) -> UiError {
    match error {
        SegmentError::NotFound => UiError::not_found(),
        SegmentError::Store(e) => UiError::unavailable(e),
        other => UiError::new(StatusCode::BAD_REQUEST, "Not saved", other.to_string()),
    }
}

async fn editor_page(
    state: &WebState,
    member: &Member,
    values: &EditorValues,
    errors: &EditorErrors,
    status: StatusCode,
    read: Option<WordsRead>,
) -> UiResult {
    let names: Vec<String> = state
        .db()
        .segments_of(&member.org.id)
        .await?
        .into_iter()
        .map(|r| r.name)
        .filter(|n| Some(n) != Some(&values.name) || values.id.is_none())
        .collect();
    let title = match &values.id {
        Some(_) => format!("Edit {}", values.name),
        None => "New segment".to_owned(),
    };
    let body = templates::render(
        "segment_edit.html",
        &member.layout("segments", title.clone()),
        minijinja::context! {
            heading => title,
            values,
            errors,
            segment_names => names,
            name_max => NAME_MAX_CHARS,
            read,
            has_errors => errors.name.is_some() || errors.description.is_some() || errors.rule.is_some() || errors.conflict.is_some(),
        },
    )?;
    Ok(html(status, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewSegmentParams {
    /// "Talk to your data": the merchant's words to read into the rule.
    pub text: Option<String>,
    /// "Ask the model" was ticked (shown only with a model configured).
    pub model: Option<String>,
}

/// How the merchant's words were read, for the editor: the words with
/// the unplaced ones marked, and what to know about the reading.
#[derive(Debug, Serialize)]
struct WordsRead {
    /// The text in pieces, each either placed or not.
    pieces: Vec<WordPiece>,
    notes: Vec<String>,
    has_unplaced: bool,
    /// Set when no rule could be made.
    failure: Option<String>,
    /// "model" when the operator's model made the rule.
    source: &'static str,
    /// Why the model's answer was not used, when it was asked.
    model_discarded: Option<String>,
}

#[derive(Debug, Serialize)]
struct WordPiece {
    text: String,
    unplaced: bool,
}

/// Splits `text` at the unplaced spans (byte offsets the grammar gives).
fn word_pieces(text: &str, unplaced: &[(usize, usize)]) -> Vec<WordPiece> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for &(start, end) in unplaced {
        let (Some(before), Some(word)) = (text.get(at..start), text.get(start..end)) else {
            continue;
        };
        if !before.is_empty() {
            pieces.push(WordPiece {
                text: before.to_owned(),
                unplaced: false,
            });
        }
        pieces.push(WordPiece {
            text: word.to_owned(),
            unplaced: true,
        });
        at = end;
    }
    if let Some(rest) = text.get(at..).filter(|r| !r.is_empty()) {
        pieces.push(WordPiece {
            text: rest.to_owned(),
            unplaced: false,
        });
    }
    pieces
}

/// The editor for a new segment; with `text`, the rule read from the
/// merchant's words, shown for review before anything is saved.
pub(crate) async fn new_segment(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<NewSegmentParams>,
) -> UiResult {
    if !member.role.can_manage() {
        return Err(UiError::read_only());
    }
    let mut values = EditorValues {
        rule: "orders.count >= 1".into(),
        ..Default::default()
    };
    let mut read = None;
    if let Some(text) = params.text.filter(|t| !t.trim().is_empty()) {
        let text: String = text.chars().take(2000).collect();
        let ask_model = params.model.is_some();
        match state
            .segments()
            .from_text(&member.org.id, &text, ask_model)
            .await
        {
            Ok(reading) => {
                values.rule = reading.preview.text;
                values.description = text.clone();
                let spans: Vec<(usize, usize)> =
                    reading.unplaced.iter().map(|s| (s.start, s.end)).collect();
                read = Some(WordsRead {
                    pieces: word_pieces(&text, &spans),
                    notes: reading.notes,
                    has_unplaced: !spans.is_empty(),
                    failure: None,
                    source: reading.source.as_str(),
                    model_discarded: reading.model.and_then(|m| m.reason),
                });
            }
            Err(SegmentError::NotUnderstood {
                message,
                start,
                end,
            }) => {
                read = Some(WordsRead {
                    pieces: word_pieces(&text, &[(start, end)]),
                    notes: Vec::new(),
                    has_unplaced: true,
                    failure: Some(message),
                    source: "grammar",
                    model_discarded: None,
                });
            }
            Err(e) => return Err(page_error(e)),
        }
    }
    editor_page(
        &state,
        &member,
        &values,
        &EditorErrors::default(),
        StatusCode::OK,
        read,
    )
    .await
}

/// The editor for a saved segment.
pub(crate) async fn edit_segment(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
) -> UiResult {
    let record = load(&state, &member, &ids.1).await?;
    if !member.role.can_manage() {
        return Err(UiError::read_only());
    }
    let values = EditorValues {
        id: Some(record.segment_id),
        name: record.name,
        description: record.description.unwrap_or_default(),
        rule: record.rule_text,
    };
    editor_page(
        &state,
        &member,
        &values,
        &EditorErrors::default(),
        StatusCode::OK,
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SegmentForm {
    pub csrf: Option<String>,
    /// `save` (the editor) or `delete`; creating takes none
    pub action: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// The rule's text form
    pub rule: Option<String>,
    /// `yes`: the box confirming a deletion
    pub confirm: Option<String>,
}

impl SegmentForm {
    fn values(&self, id: Option<String>) -> EditorValues {
        EditorValues {
            id,
            name: self.name.clone().unwrap_or_default(),
            description: self.description.clone().unwrap_or_default(),
            rule: self.rule.clone().unwrap_or_default(),
        }
    }
}

/// Creates a segment from the editor's form and answers 303 to its page;
/// a refused rule or name shows the form again, nothing saved.
pub(crate) async fn create_segment(
    State(state): State<WebState>,
    member: Member,
    form: Result<Form<SegmentForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let values = form.values(None);
    let draft = SegmentDraft {
        name: values.name.clone(),
        description: Some(values.description.clone()),
        rule: RuleSource::Text(values.rule.clone()),
    };
    match state.segments().create(&member.org.id, draft).await {
        Ok(record) => {
            tracing::info!(segment = %record.segment_id, "segment created from the admin UI");
            Ok(redirect(&member.path(&format!(
                "/segments/{}?done=created",
                record.segment_id
            ))))
        }
        Err(error) => match EditorErrors::of(&error, &values.rule) {
            Some(errors) => {
                editor_page(&state, &member, &values, &errors, errors.status(), None).await
            }
            None => Err(page_error(error)),
        },
    }
}

/// Saves the editor's changes (303 to the segment's page), or deletes the
/// segment after the confirmation box; a segment other rules name is
/// neither renamed nor deleted (409, said on the page).
pub(crate) async fn segment_action(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    form: Result<Form<SegmentForm>, FormRejection>,
) -> UiResult {
    let id = ids.1;
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let record = load(&state, &member, &id).await?;
    let segments = state.segments();
    match form.action.as_deref() {
        Some("save") => {
            let values = form.values(Some(id.clone()));
            let changes = SegmentChangeset {
                name: Some(values.name.clone()),
                description: Some(Some(values.description.clone())),
                rule: Some(RuleSource::Text(values.rule.clone())),
            };
            match segments.update(&member.org.id, &id, changes).await {
                Ok(_) => {
                    tracing::info!(segment = %id, "segment saved from the admin UI");
                    Ok(redirect(
                        &member.path(&format!("/segments/{id}?done=saved")),
                    ))
                }
                Err(error) => match EditorErrors::of(&error, &values.rule) {
                    Some(errors) => {
                        editor_page(&state, &member, &values, &errors, errors.status(), None).await
                    }
                    None => Err(page_error(error)),
                },
            }
        }
        Some("delete") => {
            if form.confirm.as_deref() != Some("yes") {
                return segment_page(
                    &state,
                    &member,
                    &record,
                    None,
                    None,
                    Some("Tick the box to confirm the deletion.".into()),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            }
            match segments.delete(&member.org.id, &id).await {
                Ok(()) => {
                    tracing::info!(segment = %id, "segment deleted from the admin UI");
                    Ok(redirect(&member.path("/segments?done=deleted")))
                }
                Err(SegmentError::Referenced { name, by }) => {
                    segment_page(
                        &state,
                        &member,
                        &record,
                        None,
                        None,
                        Some(referenced_message(&name, &by, "deleted")),
                        StatusCode::CONFLICT,
                    )
                    .await
                }
                Err(error) => Err(page_error(error)),
            }
        }
        _ => Err(UiError::bad_form()),
    }
}

/// What the editor's script previews: the rule's text, or its AST from
/// the builder.
#[derive(Debug, Deserialize)]
pub(crate) struct PreviewRequest {
    pub csrf: Option<String>,
    pub text: Option<String>,
    pub ast: Option<Rule>,
}

#[derive(Serialize)]
struct SampleMember {
    id: String,
    email: Option<String>,
    user_id: Option<String>,
    href: String,
}

fn json_error(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// `POST /app/o/{org}/segments/preview`: the count and up to 10 members a
/// rule selects now, its AST and its canonical text (how the editor
/// switches faces); nothing is saved. A rule that does not parse answers
/// 400 with its line and column.
pub(crate) async fn preview_segment(
    State(state): State<WebState>,
    member: Member,
    request: Result<Json<PreviewRequest>, JsonRejection>,
) -> Response {
    let Ok(Json(request)) = request else {
        return json_error(
            StatusCode::BAD_REQUEST,
            json!({"error": {"kind": "request", "message": "The preview request is not a rule this editor sent."}}),
        );
    };
    if member
        .signed
        .check_csrf(request.csrf.as_deref().unwrap_or_default())
        .is_err()
    {
        return json_error(
            StatusCode::FORBIDDEN,
            json!({"error": {"kind": "csrf", "message": "This page has expired: reload it."}}),
        );
    }
    let (source, text) = match (request.ast, request.text) {
        (Some(ast), _) => (RuleSource::Ast(ast), String::new()),
        (None, Some(text)) => (RuleSource::Text(text.clone()), text),
        (None, None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                json!({"error": {"kind": "request", "message": "Give a rule: its text or its AST."}}),
            )
        }
    };
    match state.segments().preview(&member.org.id, &source).await {
        Ok(preview) => {
            let sample: Vec<SampleMember> = preview
                .sample
                .into_iter()
                .map(|p| SampleMember {
                    href: member.path(&format!("/profiles/{}", p.id)),
                    id: p.id,
                    email: p.email,
                    user_id: p.user_id,
                })
                .collect();
            Json(json!({
                "count": preview.count,
                "text": preview.text,
                "ast": preview.rule,
                "sample": sample,
            }))
            .into_response()
        }
        Err(SegmentError::InvalidRule(parse)) => {
            let mark = error_mark(&text, &parse);
            json_error(
                StatusCode::BAD_REQUEST,
                json!({"error": {
                    "kind": "parse",
                    "message": parse.message,
                    "line": parse.line,
                    "column": parse.column,
                    "expected": parse.expected,
                    "found": parse.found,
                    "mark": mark,
                }}),
            )
        }
        Err(SegmentError::Store(e)) => {
            tracing::error!(error = %e, "storage error in a segment preview");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": {"kind": "unavailable", "message": "Cohort's database is unavailable. Try again shortly."}}),
            )
        }
        Err(other) => json_error(
            StatusCode::BAD_REQUEST,
            json!({"error": {"kind": "rule", "message": other.to_string()}}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_mark_splits_the_line_at_the_column() {
        let text = "orders.count >= 2\nand trait.age >= x";
        let error = cohort_domain::segments::parse(text).unwrap_err();
        let mark = error_mark(text, &error);
        assert_eq!((mark.line, mark.column), (2, 18), "{error:?}");
        assert_eq!(mark.before, "and trait.age >= ");
        assert_eq!(mark.at, "x");
        assert!(!mark.at_end);
        let end = cohort_domain::segments::parse("orders.count >=").unwrap_err();
        let mark = error_mark("orders.count >=", &end);
        assert!(mark.at_end, "{end:?}");
        assert_eq!(mark.before, "orders.count >=");
    }
}
