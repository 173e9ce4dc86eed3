//! Profiles: search by email, userId or anonymousId (or a profile id); a
//! profile with its identities, traits (when and where each changed),
//! tags, metrics, segments (and its latest entries and exits), orders and a
//! paginated timeline; export and erasure.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use cohort_domain::profile::Identity;
use cohort_store::projection::{OrderFilter, ProfileFilter, ProfileRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sources::EventRow;
use crate::WebState;
use crate::{html, redirect, templates, Member, UiError, UiResult};

const PAGE: u32 = 50;
/// Segment entries and exits shown on a profile, newest first.
const SEGMENT_CHANGES: u32 = 20;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProfileSearch {
    /// An email, a userId, an anonymousId or a profile id; empty lists all
    pub q: Option<String>,
    /// The last profile id of the previous page
    pub after: Option<String>,
    /// What the previous form did (shown as a notice)
    pub done: Option<String>,
}

#[derive(Serialize)]
struct ProfileRow {
    id: String,
    email: Option<String>,
    user_id: Option<String>,
    orders: u64,
    spent: Vec<cohort_domain::commerce::Money>,
    last_seen_at: String,
    tags: Vec<String>,
}

impl From<ProfileRecord> for ProfileRow {
    fn from(r: ProfileRecord) -> Self {
        let p = r.profile;
        ProfileRow {
            id: p.id,
            email: p.email,
            user_id: p.user_id,
            orders: p.metrics.order_count,
            spent: p.metrics.total_spent,
            last_seen_at: p.metrics.last_seen_at,
            tags: p.tags,
        }
    }
}

/// The profile whose identity or id `q` is.
async fn search(
    state: &WebState,
    member: &Member,
    q: &str,
) -> Result<Option<ProfileRecord>, UiError> {
    let db = state.db();
    let org = &member.org.id;
    if q.starts_with("prof_") {
        return Ok(db.profile(org, q).await?);
    }
    let candidates = if q.contains('@') {
        cohort_domain::commerce::normalize_email(q)
            .map(|e| vec![Identity::email(&e)])
            .unwrap_or_default()
    } else {
        vec![Identity::user(q), Identity::anonymous(q)]
    };
    for identity in candidates {
        if let Some(id) = db.profile_id_of(org, &identity).await? {
            return Ok(db.profile(org, &id).await?);
        }
    }
    Ok(None)
}

/// Profiles: search, or the list page by page.
pub(crate) async fn list_profiles(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<ProfileSearch>,
) -> UiResult {
    let q = params.q.as_deref().unwrap_or_default().trim().to_owned();
    let (rows, next): (Vec<ProfileRow>, Option<String>) = if q.is_empty() {
        let filter = ProfileFilter {
            after: params.after.clone(),
            limit: PAGE,
            ..Default::default()
        };
        let records = state.db().list_profiles(&member.org.id, &filter).await?;
        let next = (records.len() == PAGE as usize)
            .then(|| records.last().map(|r| r.profile.id.clone()))
            .flatten();
        (records.into_iter().map(ProfileRow::from).collect(), next)
    } else {
        (
            search(&state, &member, &q)
                .await?
                .into_iter()
                .map(ProfileRow::from)
                .collect(),
            None,
        )
    };
    let cap = super::overview::PROFILE_COUNT_CAP;
    let total = state.db().count_profiles_upto(&member.org.id, cap).await?;
    let notice = (params.done.as_deref() == Some("erased")).then_some("The profile was erased.");
    let body = templates::render(
        "profiles.html",
        &member.layout("profiles", "Profiles"),
        minijinja::context! { q, profiles => rows, next, total, capped => total >= i64::from(cap), searched => !q.is_empty(), notice },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TimelineParams {
    /// `<timestamp µs>_<seq>` of the last event of the previous page
    pub before: Option<String>,
}

#[derive(Serialize)]
struct TraitRow {
    key: String,
    value: String,
    updated_at: Option<String>,
    source: Option<String>,
    message_id: Option<String>,
}

/// One profile.
pub(crate) async fn show_profile(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    Query(params): Query<TimelineParams>,
) -> UiResult {
    let id = ids.1;
    let db = state.db();
    let org = &member.org.id;
    let record = db.profile(org, &id).await?.ok_or_else(UiError::not_found)?;
    if record.profile.id != id {
        return Ok(redirect(
            &member.path(&format!("/profiles/{}", record.profile.id)),
        ));
    }
    let before = params
        .before
        .as_deref()
        .and_then(|c| c.split_once('_'))
        .and_then(|(ts, seq)| Some((ts.parse::<i64>().ok()?, seq.parse::<i64>().ok()?)));
    let events = db.profile_timeline(org, &id, before, PAGE).await?;
    let next = (events.len() == PAGE as usize)
        .then(|| {
            events
                .last()
                .map(|e| format!("{}_{}", e.timestamp_us, e.seq))
        })
        .flatten();
    let timeline: Vec<(String, EventRow)> = events
        .into_iter()
        .map(|e| {
            (
                cohort_domain::time::from_micros(e.timestamp_us)
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string(),
                EventRow::from_stored(e),
            )
        })
        .collect();
    let orders: Vec<_> = db
        .list_orders(
            org,
            &OrderFilter {
                profile_id: Some(id.clone()),
                limit: 100,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    let sources: HashMap<String, String> = db
        .list_sources(org)
        .await?
        .into_iter()
        .map(|s| (s.id.as_str().to_owned(), s.name))
        .collect();
    let segments: Vec<_> = db
        .profile_segments(org, &id)
        .await?
        .into_iter()
        .map(|s| {
            minijinja::context! { id => s.segment_id, name => s.name, entered_at_us => s.entered_at_us }
        })
        .collect();
    let segment_changes: Vec<_> = db
        .profile_segment_changes(org, &id, SEGMENT_CHANGES)
        .await?
        .into_iter()
        .map(|c| {
            minijinja::context! {
                segment_id => c.segment_id,
                name => c.segment_name,
                entered => c.entered,
                at_us => c.at_us,
                reason => c.reason,
            }
        })
        .collect();
    let rfm = db.profile_rfm(org, &id).await?.map(|r| {
        minijinja::context! { recency => r.recency, frequency => r.frequency, monetary => r.monetary, group => r.group }
    });
    let p = &record.profile;
    let traits: Vec<TraitRow> = p
        .traits
        .iter()
        .map(|(key, value)| {
            let from = p.trait_sources.get(key);
            TraitRow {
                key: key.clone(),
                value: match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                updated_at: from.map(|f| f.updated_at.clone()),
                source: from.map(|f| {
                    sources
                        .get(&f.source_id)
                        .cloned()
                        .unwrap_or_else(|| f.source_id.clone())
                }),
                message_id: from.map(|f| f.message_id.clone()),
            }
        })
        .collect();
    let title = p
        .email
        .clone()
        .or_else(|| p.user_id.clone())
        .unwrap_or_else(|| "Anonymous visitor".into());
    let body = templates::render(
        "profile.html",
        &member.layout("profiles", title.clone()),
        minijinja::context! {
            name => title,
            profile => p,
            previously_erased => record.previously_erased,
            traits,
            orders,
            segments,
            rfm,
            segment_changes,
            timeline,
            next,
            first_page => before.is_none(),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EraseForm {
    pub csrf: Option<String>,
    /// `yes`: the box confirming that erasure cannot be undone
    pub confirm: Option<String>,
}

/// Erases the person (as `DELETE /api/v1/profiles/{id}`), after the
/// confirmation box is ticked.
pub(crate) async fn erase_profile(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    form: Result<Form<EraseForm>, FormRejection>,
) -> UiResult {
    let id = ids.1;
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    state
        .db()
        .profile(&member.org.id, &id)
        .await?
        .ok_or_else(UiError::not_found)?;
    if form.confirm.as_deref() != Some("yes") {
        return Err(UiError::new(
            StatusCode::BAD_REQUEST,
            "Not erased",
            "Tick the box to confirm that erasure cannot be undone.",
        ));
    }
    let report = state
        .db()
        .erase_profile(&member.org.id, &id)
        .await?
        .ok_or_else(UiError::not_found)?;
    tracing::info!(erasure = %report.erasure_id, profile = %report.profile_id, "profile erased from the admin UI");
    Ok(redirect(&member.path("/profiles?done=erased")))
}

/// Everything Cohort holds about the person, as a JSON download (as
/// `GET /api/v1/profiles/{id}/export`).
pub(crate) async fn export_profile(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
) -> UiResult {
    let id = ids.1;
    let export = state
        .db()
        .export_profile(&member.org.id, &id)
        .await?
        .ok_or_else(UiError::not_found)?;
    let filename = format!("attachment; filename=\"{}.json\"", export.profile.id);
    let mut response: Response = Json(export).into_response();
    if let Ok(value) = HeaderValue::from_str(&filename) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
