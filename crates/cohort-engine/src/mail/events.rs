//! What became of a message, told to the event log as a Segment Email spec
//! event (`Email Delivered` on the `250`, `Email Bounced` on a refusal), so
//! segments, flows and destinations see Cohort's own mail like any other
//! source's. Each event's `messageId` is derived from the message, so
//! telling the log twice (after a crash between the two steps) appends it
//! once.

use cohort_domain::ids::SourceId;
use cohort_domain::mail::OutboxState;
use cohort_domain::segments::ast::{EMAIL_BOUNCED, EMAIL_DELIVERED};
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::events::NewEvent;
use cohort_store::mail::OutboxMessage;
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
    if message.state == OutboxState::Bounced {
        properties.insert("bounce_type".into(), Value::String("hard".into()));
        if let Some(reason) = &message.last_error {
            properties.insert("reason".into(), Value::String(reason.clone()));
        }
    }
    let message_id = format!("{}:{suffix}", message.id);
    let time = format_rfc3339(from_micros(at_us));
    let mut payload = Map::new();
    payload.insert("type".into(), Value::String("track".into()));
    payload.insert("event".into(), Value::String(event.into()));
    payload.insert("messageId".into(), Value::String(message_id.clone()));
    if let Some(user) = &message.user_id {
        payload.insert("userId".into(), Value::String(user.clone()));
    }
    payload.insert("timestamp".into(), Value::String(time.clone()));
    payload.insert("originalTimestamp".into(), Value::String(time));
    payload.insert("properties".into(), Value::Object(properties));
    payload.insert(
        "context".into(),
        json!({"traits": {"email": message.recipient}, "cohort": {"mail": true}}),
    );
    Some(NewEvent {
        org_id: message.org_id.clone(),
        source_id: SourceId::from_stored(MAIL_SOURCE),
        message_id,
        message_type: "track",
        event: Some(event.into()),
        user_id: message.user_id.clone(),
        anonymous_id: None,
        email: Some(message.recipient.clone()),
        timestamp_us: at_us,
        received_at_us: now_micros(),
        payload: serde_json::to_string(&payload).unwrap_or_default(),
        notes: None,
    })
}

impl Mail {
    /// Appends the outcome events of every settled message the log has not
    /// been told of, then marks them told.
    pub async fn log_outcomes(&self) -> Result<u64, MailError> {
        let mut appended = 0;
        loop {
            let pending = self.db.mail_log_pending(LOG_BATCH).await?;
            if pending.is_empty() {
                return Ok(appended);
            }
            let events: Vec<NewEvent> = pending.iter().filter_map(outcome_event).collect();
            appended += self.db.append_events(&events).await?;
            let ids: Vec<String> = pending.into_iter().map(|m| m.id).collect();
            self.db.clear_mail_log_pending(&ids).await?;
            if (ids.len() as i64) < LOG_BATCH {
                return Ok(appended);
            }
        }
    }
}
