//! Sources: their write keys (create, rotate, disable), the snippets to
//! paste (Cohort's SDK, analytics.js), and the live event debugger: the
//! page lists the newest events, then a Server-Sent Events stream adds
//! each new one as it is committed to the log (read from the database, so
//! it works whichever node received the event).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Form;
use cohort_domain::ids::OrgId;
use cohort_domain::time::from_micros;
use cohort_store::events::StoredEvent;
use cohort_store::{Db, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::WebState;
use crate::{html, redirect, templates, Member, UiError, UiResult};

/// How often the live debugger looks for new events.
const LIVE_POLL: Duration = Duration::from_millis(250);
/// Events shown when the page opens.
const RECENT: u32 = 25;

/// The loader of Cohort's snippet, after its configuration: the same lines
/// as docs/SDK.md (a test keeps them equal).
pub(crate) const SNIPPET_LOADER: &str = "!function(w,d){var c=w.cohort=w.cohort||[];if(c.loaded)return;function s(m){return function(){c.push([m].concat([].slice.call(arguments)));return c}}
'page track identify alias group reset ready debug'.split(' ').forEach(function(m){c[m]=s(m)});c.consent={grant:s('consent.grant'),revoke:s('consent.revoke')};
var e=d.createElement('script');e.async=true;e.src=w.cohortConfig.apiHost+'/sdk/v1/cohort.js';d.head.appendChild(e)}(window,document);";

fn cohort_snippet(write_key: &str, api_host: &str) -> String {
    format!(
        "<script>\nwindow.cohortConfig = {{\n  writeKey: '{write_key}',\n  apiHost: '{api_host}',\n  consentRequired: false\n}};\n{SNIPPET_LOADER}\n</script>\n"
    )
}

fn analytics_js_snippet(write_key: &str, api_host: &str) -> String {
    format!(
        "import {{ AnalyticsBrowser }} from '@segment/analytics-next'\n\n\
         // cdnURL points analytics.js at Cohort: it loads its settings from\n\
         // {api_host}/v1/projects/{write_key}/settings and sends events here.\n\
         export const analytics = AnalyticsBrowser.load({{\n  writeKey: '{write_key}',\n  cdnURL: '{api_host}',\n}})\n"
    )
}

/// The URL browsers reach this server at.
pub(crate) fn api_host(state: &WebState, headers: &HeaderMap) -> String {
    let (protocol, host) = cohort_domain::public_url::public_host(
        state.public_url(),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok()),
    );
    format!("{protocol}://{host}")
}

#[derive(Serialize)]
struct SourceRow {
    id: String,
    name: String,
    write_key: String,
    enabled: bool,
    created_at: i64,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DoneParams {
    /// What the previous form did (shown as a notice)
    pub done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => {
            "Source created. Paste a snippet below into your site to start sending events."
        }
        "rotated" => {
            "Write key rotated. The old key stops working within 10 seconds: update your sites."
        }
        "disabled" => "Source disabled. Its write key is refused within 10 seconds.",
        "enabled" => "Source enabled.",
        _ => return None,
    })
}

/// The organisation's sources.
pub(crate) async fn list_sources(State(state): State<WebState>, member: Member) -> UiResult {
    sources_page(&state, &member, StatusCode::OK, None).await
}

async fn sources_page(
    state: &WebState,
    member: &Member,
    status: StatusCode,
    error: Option<String>,
) -> UiResult {
    let sources: Vec<SourceRow> = state
        .db()
        .list_sources(&member.org.id)
        .await?
        .into_iter()
        .map(|s| SourceRow {
            id: s.id.as_str().to_owned(),
            name: s.name,
            write_key: s.write_key,
            enabled: s.enabled,
            created_at: s.created_at,
        })
        .collect();
    let body = templates::render(
        "sources.html",
        &member.layout("sources", "Sources"),
        minijinja::context! { sources, error },
    )?;
    Ok(html(status, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewSourceForm {
    pub csrf: Option<String>,
    /// The source's name, e.g. "Website"
    pub name: Option<String>,
}

/// Creates a source with a new write key.
pub(crate) async fn create_source(
    State(state): State<WebState>,
    member: Member,
    form: Result<Form<NewSourceForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let name = form.name.unwrap_or_default();
    if name.trim().is_empty() || name.chars().count() > 100 {
        return sources_page(
            &state,
            &member,
            StatusCode::BAD_REQUEST,
            Some("Give the source a name of 1 to 100 characters.".into()),
        )
        .await;
    }
    let source = state.db().create_source(&member.org.id, &name).await?;
    Ok(redirect(&member.path(&format!(
        "/sources/{}?done=created",
        source.id.as_str()
    ))))
}

/// One event as the debugger shows it.
#[derive(Debug, Serialize)]
pub(crate) struct EventRow {
    seq: i64,
    message_id: String,
    #[serde(rename = "type")]
    message_type: String,
    label: String,
    who: String,
    received_at: String,
    raw: String,
}

impl EventRow {
    pub(crate) fn from_stored(e: StoredEvent) -> Self {
        let message: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
        let label = match e.message_type.as_str() {
            "track" => e.event.clone().unwrap_or_else(|| "(unnamed event)".into()),
            "page" | "screen" => match message.get("name").and_then(Value::as_str) {
                Some(name) => format!("{} viewed", name),
                None => message
                    .pointer("/context/page/path")
                    .and_then(Value::as_str)
                    .map(|p| format!("Viewed {p}"))
                    .unwrap_or_else(|| "Page viewed".into()),
            },
            "identify" => match message.pointer("/traits/email").and_then(Value::as_str) {
                Some(email) => format!("Identified as {email}"),
                None => "Identified".into(),
            },
            "group" => format!(
                "Joined group {}",
                message.get("groupId").and_then(Value::as_str).unwrap_or("")
            ),
            "alias" => "Alias".into(),
            "resource" => match message.get("topic").and_then(Value::as_str) {
                Some(topic) => format!("Store {topic}"),
                None => "Store resource".into(),
            },
            other => other.to_owned(),
        };
        let who = match (&e.user_id, &e.email, &e.anonymous_id) {
            (Some(user), _, _) => format!("user {user}"),
            (None, Some(email), _) => email.clone(),
            (None, None, Some(anon)) => format!("anonymous {anon}"),
            _ => "no identity".into(),
        };
        EventRow {
            seq: e.seq,
            message_id: e.message_id,
            message_type: e.message_type,
            label,
            who,
            received_at: from_micros(e.received_at_us)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            raw: e.payload,
        }
    }
}

/// A source: its write key, the snippets to paste, the live debugger.
pub(crate) async fn show_source(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    Query(params): Query<DoneParams>,
    headers: HeaderMap,
) -> UiResult {
    let source_id = ids.1;
    let db = state.db();
    let source = db
        .find_source(&member.org.id, &source_id)
        .await?
        .ok_or_else(UiError::not_found)?;
    let events: Vec<EventRow> = db
        .latest_source_events(&member.org.id, &source_id, RECENT)
        .await?
        .into_iter()
        .map(EventRow::from_stored)
        .collect();
    let after = match events.first() {
        Some(e) => e.seq,
        None => db.last_seq(&member.org.id).await?,
    };
    let host = api_host(&state, &headers);
    let body = templates::render(
        "source.html",
        &member.layout("sources", source.name.clone()),
        minijinja::context! {
            source => SourceRow { id: source.id.as_str().to_owned(), name: source.name.clone(), write_key: source.write_key.clone(), enabled: source.enabled, created_at: source.created_at },
            cohort_snippet => cohort_snippet(&source.write_key, &host),
            analytics_snippet => analytics_js_snippet(&source.write_key, &host),
            events,
            after,
            notice => notice(params.done.as_deref()),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SourceActionForm {
    pub csrf: Option<String>,
    /// `rotate` (a new write key), `disable` or `enable`
    pub action: Option<String>,
}

/// Rotates a source's write key, disables or enables it.
pub(crate) async fn source_action(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    form: Result<Form<SourceActionForm>, FormRejection>,
) -> UiResult {
    let source_id = ids.1;
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let db = state.db();
    let org = &member.org.id;
    db.find_source(org, &source_id)
        .await?
        .ok_or_else(UiError::not_found)?;
    let done = match form.action.as_deref() {
        Some("rotate") => {
            db.rotate_write_key(org, &source_id).await?;
            "rotated"
        }
        Some("disable") => {
            db.set_source_enabled(org, &source_id, false).await?;
            "disabled"
        }
        Some("enable") => {
            db.set_source_enabled(org, &source_id, true).await?;
            "enabled"
        }
        _ => return Err(UiError::bad_form()),
    };
    tracing::info!(source = %source_id, action = done, "source changed from the admin UI");
    Ok(redirect(
        &member.path(&format!("/sources/{source_id}?done={done}")),
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LiveParams {
    /// Send the events after this log position (`Last-Event-ID` wins)
    pub after: Option<i64>,
}

/// The live event debugger's stream: each event of the source committed
/// after `after`, as an SSE `event` message whose data is a JSON object
/// (`seq`, `type`, `label`, `who`, `received_at`, `message_id`, `raw`: the
/// stored message). The SSE id is the log position, so a reconnecting
/// browser resumes where it stopped.
pub(crate) async fn live_events(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    Query(params): Query<LiveParams>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let source_id = ids.1;
    let db = state.db().clone();
    db.find_source(&member.org.id, &source_id)
        .await?
        .ok_or_else(UiError::not_found)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let after = match resume.or(params.after) {
        Some(seq) => seq,
        None => db.last_seq(&member.org.id).await?,
    };
    let stream = live_stream(db, member.org.id.clone(), source_id, after);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Live {
    db: Db,
    org: OrgId,
    source: String,
    after: i64,
    queued: std::collections::VecDeque<StoredEvent>,
}

fn live_stream(
    db: Db,
    org: OrgId,
    source: String,
    after: i64,
) -> impl futures::Stream<Item = Result<Event, Infallible>> {
    let live = Live {
        db,
        org,
        source,
        after,
        queued: Default::default(),
    };
    futures::stream::unfold(live, |mut live| async move {
        loop {
            if let Some(e) = live.queued.pop_front() {
                let seq = e.seq;
                let data = serde_json::to_string(&EventRow::from_stored(e)).unwrap_or_default();
                return Some((
                    Ok(Event::default()
                        .event("event")
                        .id(seq.to_string())
                        .data(data)),
                    live,
                ));
            }
            tokio::time::sleep(LIVE_POLL).await;
            match next_events(&live).await {
                Ok(events) => {
                    if let Some(last) = events.last() {
                        live.after = last.seq;
                    }
                    live.queued.extend(events);
                }
                Err(error) => {
                    tracing::warn!(%error, "live debugger: cannot read events; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    })
}

async fn next_events(live: &Live) -> Result<Vec<StoredEvent>, StoreError> {
    let settled = live.db.settled_seq().await?;
    if settled <= live.after {
        return Ok(Vec::new());
    }
    live.db
        .source_events_after(&live.org, &live.source, live.after, settled, 100)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_loader_is_the_one_docs_sdk_md_documents() {
        let docs = include_str!("../../../docs/SDK.md");
        assert!(
            docs.contains(SNIPPET_LOADER),
            "docs/SDK.md and the UI's snippet differ"
        );
        let snippet = cohort_snippet("wk_x", "https://c.example");
        assert!(
            snippet.contains("writeKey: 'wk_x'")
                && snippet.contains("apiHost: 'https://c.example'")
        );
    }
}
