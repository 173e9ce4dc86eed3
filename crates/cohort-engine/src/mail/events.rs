//! What became of a message, told to the event log as a Segment Email spec
//! event (`Email Delivered` on the `250`, `Email Bounced` on a refusal or a
//! bounce report, `Email Marked as Spam` on a complaint), so
//! segments, flows and destinations see Cohort's own mail like any other
//! source's. Each event's `messageId` is derived from the message, so
//! telling the log twice (after a crash between the two steps) appends it
//! once.

use cohort_domain::ids::SourceId;
use cohort_domain::mail::OutboxState;
use cohort_domain::mail::ReportKind;
use cohort_domain::segments::ast::{EMAIL_BOUNCED, EMAIL_DELIVERED, EMAIL_MARKED_AS_SPAM};
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::events::NewEvent;
use cohort_store::mail::{MailReportRow, OutboxMessage};
use cohort_store::now_micros;
use serde_json::{json, Map, Value};

use super::{Mail, MailError};

/// The source Cohort's own mail events are logged under.
pub const MAIL_SOURCE: &str = "cohort-mail";

/// Messages told to the log per statement.
const LOG_BATCH: i64 = 500;

/// The event a settled message appends, if any.
pub(crate) fn outcome_event(message: &OutboxMessage) -> Option<NewEvent> {
    let (event, suffix) = match message.state {
        OutboxState::Sent => (EMAIL_DELIVERED, "delivered"),
        OutboxState::Bounced => (EMAIL_BOUNCED, "bounced"),
        _ => return None,
    };
    let at_us = message.sent_at_us.unwrap_or(message.updated_at_us);
    let mut properties = message_properties(message);
    if message.state == OutboxState::Bounced {
        properties.insert("bounce_type".into(), Value::String("hard".into()));
        if let Some(reason) = &message.last_error {
            properties.insert("reason".into(), Value::String(reason.clone()));
        }
    }
    let message_id = format!("{}:{suffix}", message.id);
    Some(build_event(
        message.org_id.clone(),
        message.user_id.clone(),
        &message.recipient,
        event,
        message_id,
        at_us,
        properties,
    ))
}

/// What every mail event says of its message.
fn message_properties(message: &OutboxMessage) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("email_id".into(), Value::String(message.id.clone()));
    properties.insert(
        "email_subject".into(),
        Value::String(message.subject.clone()),
    );
    properties.insert(
        "email_message_id".into(),
        Value::String(message.message_id.clone()),
    );
    properties.insert(
        "email_purpose".into(),
        Value::String(message.purpose.as_str().into()),
    );
    for (name, value) in [
        ("campaign_id", &message.campaign_id),
        ("flow_id", &message.flow_id),
    ] {
        if let Some(value) = value {
            properties.insert(name.into(), Value::String(value.clone()));
        }
    }
    properties
}

/// The event a report appends. One `Email Bounced` (hard) per message
/// whether the refusal came at the `250` or later; one `Email Marked as
/// Spam` per message; every soft bounce its own.
pub(crate) fn report_event(report: &MailReportRow, message: Option<&OutboxMessage>) -> NewEvent {
    let (event, key) = match (report.kind, &report.mail_id) {
        (ReportKind::HardBounce, Some(id)) => (EMAIL_BOUNCED, format!("{id}:bounced")),
        (ReportKind::Complaint, Some(id)) => (EMAIL_MARKED_AS_SPAM, format!("{id}:spam")),
        (ReportKind::Delivered, Some(id)) => (EMAIL_DELIVERED, format!("{id}:delivered")),
        (ReportKind::HardBounce | ReportKind::SoftBounce, _) => {
            (EMAIL_BOUNCED, format!("{}:report", report.id))
        }
        (ReportKind::Complaint, None) => (EMAIL_MARKED_AS_SPAM, format!("{}:report", report.id)),
        (ReportKind::Delivered, None) => (EMAIL_DELIVERED, format!("{}:report", report.id)),
    };
    let mut properties = message.map(message_properties).unwrap_or_default();
    match report.kind {
        ReportKind::HardBounce => {
            properties.insert("bounce_type".into(), Value::String("hard".into()));
        }
        ReportKind::SoftBounce => {
            properties.insert("bounce_type".into(), Value::String("soft".into()));
        }
        ReportKind::Complaint | ReportKind::Delivered => {}
    }
    for (name, value) in [("reason", &report.diagnostic), ("status", &report.status)] {
        if let Some(value) = value {
            properties.insert(name.into(), Value::String(value.clone()));
        }
    }
    properties.insert("report_source".into(), Value::String(report.source.clone()));
    let org_id = report.org_id.clone();
    let user_id = message.and_then(|m| m.user_id.clone());
    build_event(
        org_id,
        user_id,
        &report.recipient,
        event,
        key,
        report.reported_at_us,
        properties,
    )
}

fn build_event(
    org_id: cohort_domain::ids::OrgId,
    user_id: Option<String>,
    recipient: &str,
    event: &str,
    message_id: String,
    at_us: i64,
    properties: Map<String, Value>,
) -> NewEvent {
    let time = format_rfc3339(from_micros(at_us));
    let mut payload = Map::new();
    payload.insert("type".into(), Value::String("track".into()));
    payload.insert("event".into(), Value::String(event.into()));
    payload.insert("messageId".into(), Value::String(message_id.clone()));
    if let Some(user) = &user_id {
        payload.insert("userId".into(), Value::String(user.clone()));
    }
    payload.insert("timestamp".into(), Value::String(time.clone()));
    payload.insert("originalTimestamp".into(), Value::String(time));
    payload.insert("properties".into(), Value::Object(properties));
    payload.insert(
        "context".into(),
        json!({"traits": {"email": recipient}, "cohort": {"mail": true}}),
    );
    NewEvent {
        org_id,
        source_id: SourceId::from_stored(MAIL_SOURCE),
        message_id,
        message_type: "track",
        event: Some(event.into()),
        user_id,
        anonymous_id: None,
        email: Some(recipient.to_owned()),
        timestamp_us: at_us,
        received_at_us: now_micros(),
        payload: serde_json::to_string(&payload).unwrap_or_default(),
        notes: None,
    }
}

impl Mail {
    /// Appends the outcome events of every settled message and every
    /// report the log has not been told of, then marks them told.
    pub async fn log_outcomes(&self) -> Result<u64, MailError> {
        let mut appended = 0;
        loop {
            let pending = self.db.mail_log_pending(LOG_BATCH).await?;
            if pending.is_empty() {
                break;
            }
            let events: Vec<NewEvent> = pending.iter().filter_map(outcome_event).collect();
            appended += self.db.append_events(&events).await?;
            let ids: Vec<String> = pending.into_iter().map(|m| m.id).collect();
            self.db.clear_mail_log_pending(&ids).await?;
            if (ids.len() as i64) < LOG_BATCH {
                break;
            }
        }
        loop {
            let pending = self.db.mail_reports_log_pending(LOG_BATCH).await?;
            if pending.is_empty() {
                return Ok(appended);
            }
            let mut events = Vec::with_capacity(pending.len());
            for report in &pending {
                let message = match &report.mail_id {
                    Some(id) => self.db.mail_message(&report.org_id, id).await?,
                    None => None,
                };
                events.push(report_event(report, message.as_ref()));
            }
            appended += self.db.append_events(&events).await?;
            let ids: Vec<String> = pending.into_iter().map(|r| r.id).collect();
            self.db.clear_mail_reports_log_pending(&ids).await?;
            if (ids.len() as i64) < LOG_BATCH {
                return Ok(appended);
            }
        }
    }
}
