//! The outbox: every message with its state, filtered by state and
//! recipient and paged from the newest; one message with its attempts, the
//! SMTP answers and the reports received; a dead letter queued again.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use cohort_domain::mail::OutboxState;
use cohort_store::mail::{MailAttempt, OutboxMessage, OutboxQuery};
use serde::{Deserialize, Serialize};

use super::service;
use crate::{html, redirect, templates, Member, UiError, UiResult, WebState};

/// Messages on a page of the outbox.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OutboxParams {
    state: Option<String>,
    recipient: Option<String>,
    /// `{created_at_us}.{id}` of the last message of the previous page.
    before: Option<String>,
    done: Option<String>,
}

/// A message as a row of the outbox and the head of its own page.
#[derive(Debug, Serialize)]
struct MessageRow {
    id: String,
    message_id: String,
    send_key: String,
    recipient: String,
    purpose: &'static str,
    from: String,
    subject: String,
    state: &'static str,
    attempts: i64,
    max_attempts: i64,
    /// When the next try is due (a queued message only).
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    profile_id: Option<String>,
    campaign_id: Option<String>,
    flow_id: Option<String>,
    provider_id: Option<String>,
    provider_message_id: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
    retryable: bool,
}

impl From<&OutboxMessage> for MessageRow {
    fn from(m: &OutboxMessage) -> Self {
        Self {
            id: m.id.clone(),
            message_id: m.message_id.clone(),
            send_key: m.send_key.clone(),
            recipient: m.recipient.clone(),
            purpose: m.purpose.as_str(),
            from: m.from_address.clone(),
            subject: m.subject.clone(),
            state: m.state.as_str(),
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            next_attempt_at: (m.state == OutboxState::Queued).then_some(m.next_attempt_at_us),
            last_error: m.last_error.clone(),
            profile_id: m.profile_id.clone(),
            campaign_id: m.campaign_id.clone(),
            flow_id: m.flow_id.clone(),
            provider_id: m.provider_id.clone(),
            provider_message_id: m.provider_message_id.clone(),
            created_at: m.created_at_us,
            sent_at: m.sent_at_us,
            retryable: m.state == OutboxState::Dead,
        }
    }
}

/// A count of the state filter.
#[derive(Debug, Serialize)]
struct StateCount {
    state: &'static str,
    count: i64,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "retried" => "Queued again with fresh attempts: the outbox sends it within seconds.",
        "not_dead" => "Only a dead letter can be retried; this message was left as it is.",
        _ => return None,
    })
}

fn parse_before(text: &str) -> Option<(i64, &str)> {
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, id))
}

/// The outbox of the organisation, newest first.
pub(crate) async fn list_outbox(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<OutboxParams>,
) -> UiResult {
    let mail = service(&state)?;
    let org = &member.org.id;
    let mut error = None;
    let wanted_state = match params.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match OutboxState::parse(s) {
            Some(s) => Some(s),
            None => {
                error = Some(format!(
                    "state: one of {}",
                    OutboxState::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                None
            }
        },
    };
    let recipient = params
        .recipient
        .as_deref()
        .map(|r| r.trim().to_lowercase())
        .filter(|r| !r.is_empty());
    let before = match params.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => match parse_before(b) {
            Some(p) => Some(p),
            None => {
                error = Some("before: not a position this page gave".into());
                None
            }
        },
    };
    let (status, rows) = if error.is_some() {
        (StatusCode::BAD_REQUEST, Vec::new())
    } else {
        let query = OutboxQuery {
            state: wanted_state,
            recipient: recipient.as_deref(),
            before,
            limit: PAGE,
            ..Default::default()
        };
        (StatusCode::OK, mail.messages(org, &query).await?)
    };
    let older = (rows.len() == PAGE as usize)
        .then(|| rows.last().map(|m| format!("{}.{}", m.created_at_us, m.id)))
        .flatten();
    let counts = state.db().outbox_counts(org, None, None).await?;
    let counts: Vec<StateCount> = OutboxState::ALL
        .iter()
        .map(|s| StateCount {
            state: s.as_str(),
            count: counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n),
        })
        .collect();
    let messages: Vec<MessageRow> = rows.iter().map(MessageRow::from).collect();
    let body = templates::render(
        "mail_outbox.html",
        &member.layout("mail", "Outbox"),
        minijinja::context! {
            tab => "outbox",
            messages,
            counts,
            total => counts.iter().map(|c| c.count).sum::<i64>(),
            filter_state => wanted_state.map(OutboxState::as_str),
            filter_recipient => recipient,
            older,
            error,
            notice => notice(params.done.as_deref()),
        },
    )?;
    Ok(html(status, body))
}

#[derive(Debug, Serialize)]
struct AttemptRow {
    attempt: i64,
    provider: String,
    started_at: i64,
    duration_ms: i64,
    outcome: &'static str,
    answer: Option<String>,
}

impl From<MailAttempt> for AttemptRow {
    fn from(a: MailAttempt) -> Self {
        Self {
            attempt: a.attempt,
            provider: a.provider,
            started_at: a.started_at_us,
            duration_ms: (a.finished_at_us - a.started_at_us).max(0) / 1000,
            outcome: a.outcome.as_str(),
            answer: a.answer,
        }
    }
}

#[derive(Debug, Serialize)]
struct ReportRow {
    kind: &'static str,
    status: Option<String>,
    diagnostic: Option<String>,
    source: String,
    reported_at: i64,
    suppressed: Option<&'static str>,
    soft_in_a_row: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessageParams {
    done: Option<String>,
}

/// One message: its headers, every attempt with the server's answer, the
/// reports received about it, its plain-text part.
pub(crate) async fn show_message(
    State(state): State<WebState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<MessageParams>,
) -> UiResult {
    let mail = service(&state)?;
    let org = &member.org.id;
    let (message, attempts) = mail.message(org, &id).await?;
    let reports: Vec<ReportRow> = mail
        .reports_of(org, &id)
        .await?
        .into_iter()
        .map(|r| ReportRow {
            kind: r.kind.as_str(),
            status: r.status,
            diagnostic: r.diagnostic,
            source: r.source,
            reported_at: r.reported_at_us,
            suppressed: r.suppressed.map(|s| s.as_str()),
            soft_in_a_row: r.soft_in_a_row,
        })
        .collect();
    let attempts: Vec<AttemptRow> = attempts.into_iter().map(AttemptRow::from).collect();
    let body = templates::render(
        "mail_message.html",
        &member.layout("mail", message.subject.clone()),
        minijinja::context! {
            tab => "outbox",
            m => MessageRow::from(&message),
            text => message.text,
            attempts,
            reports,
            notice => notice(params.done.as_deref()),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageForm {
    csrf: String,
}

/// Retries a dead letter (the page's one button).
pub(crate) async fn message_action(
    State(state): State<WebState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
    form: Result<Form<MessageForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(&form.csrf)?;
    let mail = service(&state)?;
    let page = member.path(&format!("/mail/messages/{id}"));
    match mail.retry(&member.org.id, &id).await {
        Ok(_) => {
            tracing::info!(message = %id, "dead letter retried from the admin UI");
            Ok(redirect(&format!("{page}?done=retried")))
        }
        Err(cohort_engine::mail::MailError::Invalid { .. }) => {
            Ok(redirect(&format!("{page}?done=not_dead")))
        }
        Err(e) => Err(e.into()),
    }
}
