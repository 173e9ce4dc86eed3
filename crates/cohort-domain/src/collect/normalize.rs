//! From request bytes to normalised messages: validation with exact field
//! names, batch-level defaults, `messageId` assignment and clock-skew
//! correction. A request is either wholly valid or wholly refused, so that a
//! refused request stores nothing.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{value::RawValue, Map, Value};

use super::{CollectError, Limits, MessageType};
use crate::time::{format_rfc3339, parse_rfc3339, truncate_to_micros};

/// How the body of a request is shaped, given by the path it arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `/v1/track`, `/v1/t`, …: the body is one message of this type.
    Single(MessageType),
    /// `/v1/batch`, `/v1/b`, `/v1/import`: `{batch: [...], context?, ...}`.
    Batch,
}

/// A valid request: its messages, ready for the log, and the write key the
/// body carried (the header's wins when both are present).
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub write_key_in_body: Option<String>,
    pub messages: Vec<NormalizedMessage>,
}

/// One message as the log stores it: the Segment message (with `writeKey`
/// and `_metadata` dropped, batch defaults merged and times set) and the
/// columns the log indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedMessage {
    pub message_type: MessageType,
    pub message_id: String,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub message: Map<String, Value>,
    /// Things Cohort corrected rather than refused (an unparseable time).
    pub notes: Vec<String>,
}

/// Longest `messageId` accepted.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;

#[derive(Deserialize)]
struct BatchEnvelope<'a> {
    #[serde(borrow, default)]
    batch: Option<&'a RawValue>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    integrations: Option<Value>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<Value>,
    #[serde(rename = "writeKey", default)]
    write_key: Option<Value>,
}

/// Batch-level values that apply to every message that lacks its own.
#[derive(Default)]
struct BatchDefaults {
    context: Option<Map<String, Value>>,
    integrations: Option<Map<String, Value>>,
    sent_at: Option<Value>,
}

/// Validates and normalises a whole request body (already decompressed).
pub fn normalize_request(
    body: &[u8],
    envelope: Envelope,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> Result<ParsedRequest, CollectError> {
    if body.len() > limits.max_request_bytes {
        return Err(CollectError::too_large(
            "",
            format!(
                "request body is {} bytes; the limit is {} bytes",
                body.len(),
                limits.max_request_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| CollectError::invalid("", "request body is not UTF-8 JSON"))?;
    if text.trim().is_empty() {
        return Err(CollectError::invalid(
            "",
            "request body is empty; expected a JSON object",
        ));
    }
    let received_at = truncate_to_micros(received_at);
    match envelope {
        Envelope::Single(message_type) => {
            if body.len() > limits.max_message_bytes {
                return Err(CollectError::too_large(
                    "",
                    format!(
                        "message is {} bytes; the limit is {} bytes",
                        body.len(),
                        limits.max_message_bytes
                    ),
                ));
            }
            let map = parse_object(text, "")?;
            let write_key_in_body = write_key_of(&map);
            let received = Received::at(received_at);
            let message = normalize_message(
                map,
                Some(message_type),
                "",
                &BatchDefaults::default(),
                &received,
            )?;
            Ok(ParsedRequest {
                write_key_in_body,
                messages: vec![message],
            })
        }
        Envelope::Batch => normalize_batch(text, received_at, limits),
    }
}

fn normalize_batch(
    text: &str,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> Result<ParsedRequest, CollectError> {
    let top: BatchEnvelope<'_> = serde_json::from_str(text)
        .map_err(|e| CollectError::invalid("", format!("malformed JSON: {e}")))?;
    let raw_batch = top.batch.ok_or_else(|| {
        CollectError::invalid("batch", "batch is required (an array of messages)")
    })?;
    let items: Vec<&RawValue> = serde_json::from_str(raw_batch.get())
        .map_err(|_| CollectError::invalid("batch", "batch must be an array of messages"))?;
    if items.len() > limits.max_batch_messages {
        return Err(CollectError::too_large(
            "batch",
            format!(
                "batch has {} messages; the limit is {}",
                items.len(),
                limits.max_batch_messages
            ),
        ));
    }
    let defaults = BatchDefaults {
        context: optional_object(top.context, "context")?,
        integrations: optional_object(top.integrations, "integrations")?,
        sent_at: top.sent_at.filter(|v| !v.is_null()),
    };
    let mut write_key_in_body = top.write_key.and_then(|v| v.as_str().map(str::to_owned));
    let received = Received::at(received_at);
    let mut messages = Vec::with_capacity(items.len());
    // One buffer for every message's `batch[i]`, rewritten in place.
    let mut prefix = String::with_capacity(16);
    for (index, raw) in items.into_iter().enumerate() {
        prefix.clear();
        let _ = write!(prefix, "batch[{index}]");
        if raw.get().len() > limits.max_message_bytes {
            return Err(CollectError::too_large(
                prefix.as_str(),
                format!(
                    "batch[{index}] is {} bytes; the limit is {} bytes per message",
                    raw.get().len(),
                    limits.max_message_bytes
                ),
            ));
        }
        let map = parse_object(raw.get(), &prefix)?;
        if write_key_in_body.is_none() {
            write_key_in_body = write_key_of(&map);
        }
        messages.push(normalize_message(map, None, &prefix, &defaults, &received)?);
    }
    Ok(ParsedRequest {
        write_key_in_body,
        messages,
    })
}

fn parse_object(text: &str, field: &str) -> Result<Map<String, Value>, CollectError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CollectError::invalid(
            field,
            format!(
                "{} must be a JSON object",
                if field.is_empty() { "the body" } else { field }
            ),
        )),
        Err(e) => Err(CollectError::invalid(field, format!("malformed JSON: {e}"))),
    }
}

fn write_key_of(map: &Map<String, Value>) -> Option<String> {
    map.get("writeKey")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn optional_object(
    value: Option<Value>,
    field: &str,
) -> Result<Option<Map<String, Value>>, CollectError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(CollectError::invalid(
            field,
            format!("{field} must be an object"),
        )),
    }
}

/// Reads an identifier: strings as sent, numbers as their decimal text,
/// `null` and `""` as absent; anything else is refused.
fn take_id(
    map: &mut Map<String, Value>,
    key: &str,
    prefix: &str,
) -> Result<Option<String>, CollectError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Null) => {
            map.remove(key);
            Ok(None)
        }
        Some(Value::String(s)) if s.is_empty() => {
            map.remove(key);
            Ok(None)
        }
        // Already stored as the string it is: nothing to rewrite.
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => {
            let id = n.to_string();
            map.insert(key.to_owned(), Value::String(id.clone()));
            Ok(Some(id))
        }
        Some(_) => Err(CollectError::invalid(
            path(prefix, key),
            format!("{} must be a string", path(prefix, key)),
        )),
    }
}

/// Fills `target` with the keys of `defaults` it lacks, recursively for
/// nested objects: the message's own values always win.
fn merge_defaults(target: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, default) in defaults {
        match (target.get_mut(key), default) {
            (None, _) => {
                target.insert(key.clone(), default.clone());
            }
            (Some(Value::Object(inner)), Value::Object(inner_defaults)) => {
                merge_defaults(inner, inner_defaults)
            }
            (Some(_), _) => {}
        }
    }
}

fn normalize_message(
    mut map: Map<String, Value>,
    path_type: Option<MessageType>,
    prefix: &str,
    defaults: &BatchDefaults,
    received: &Received,
) -> Result<NormalizedMessage, CollectError> {
    let message_type = match path_type {
        Some(t) => t,
        None => match map.get("type") {
            Some(Value::String(s)) => MessageType::parse(s).ok_or_else(|| {
                CollectError::invalid(
                    path(prefix, "type"),
                    format!(
                        "{} must be one of identify, track, page, screen, group, alias (got {s:?})",
                        path(prefix, "type")
                    ),
                )
            })?,
            _ => {
                return Err(CollectError::invalid(
                    path(prefix, "type"),
                    format!(
                        "{} is required (identify, track, page, screen, group or alias)",
                        path(prefix, "type")
                    ),
                ))
            }
        },
    };
    match map.get_mut("type") {
        Some(Value::String(s)) if s == message_type.as_str() => {}
        Some(slot) => *slot = Value::String(message_type.as_str().into()),
        None => {
            map.insert("type".into(), Value::String(message_type.as_str().into()));
        }
    }
    map.remove("writeKey");
    map.remove("_metadata");

    let user_id = take_id(&mut map, "userId", prefix)?;
    let anonymous_id = take_id(&mut map, "anonymousId", prefix)?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(CollectError::invalid(
            path(prefix, "userId"),
            format!(
                "{} or {} is required",
                path(prefix, "userId"),
                path(prefix, "anonymousId")
            ),
        ));
    }

    for key in ["properties", "traits", "context", "integrations"] {
        match map.get(key) {
            None => {}
            Some(Value::Null) => {
                map.remove(key);
            }
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(CollectError::invalid(
                    path(prefix, key),
                    format!("{} must be an object", path(prefix, key)),
                ))
            }
        }
    }

    let event = match message_type {
        MessageType::Track => match map.get("event") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                return Err(CollectError::invalid(
                    path(prefix, "event"),
                    format!("{} must not be empty", path(prefix, "event")),
                ))
            }
            None | Some(Value::Null) => {
                return Err(CollectError::invalid(
                    path(prefix, "event"),
                    format!("{} is required for a track call", path(prefix, "event")),
                ))
            }
            Some(_) => {
                return Err(CollectError::invalid(
                    path(prefix, "event"),
                    format!("{} must be a string", path(prefix, "event")),
                ))
            }
        },
        _ => None,
    };
    if message_type == MessageType::Group && take_id(&mut map, "groupId", prefix)?.is_none() {
        return Err(CollectError::invalid(
            path(prefix, "groupId"),
            format!("{} is required for a group call", path(prefix, "groupId")),
        ));
    }
    if message_type == MessageType::Alias {
        if take_id(&mut map, "previousId", prefix)?.is_none() {
            return Err(CollectError::invalid(
                path(prefix, "previousId"),
                format!(
                    "{} is required for an alias call",
                    path(prefix, "previousId")
                ),
            ));
        }
        if user_id.is_none() {
            return Err(CollectError::invalid(
                path(prefix, "userId"),
                format!("{} is required for an alias call", path(prefix, "userId")),
            ));
        }
    }

    let message_id = match take_id(&mut map, "messageId", prefix)? {
        Some(id) if id.chars().count() > MAX_MESSAGE_ID_CHARS => {
            return Err(CollectError::invalid(
                path(prefix, "messageId"),
                format!(
                    "{} is longer than {MAX_MESSAGE_ID_CHARS} characters",
                    path(prefix, "messageId")
                ),
            ))
        }
        Some(id) => id,
        None => {
            let id = format!("cohort-{}", uuid::Uuid::new_v4());
            map.insert("messageId".into(), Value::String(id.clone()));
            id
        }
    };

    if let Some(batch_context) = &defaults.context {
        merge_into_object(&mut map, "context", batch_context);
    }
    if let Some(batch_integrations) = &defaults.integrations {
        merge_into_object(&mut map, "integrations", batch_integrations);
    }

    let mut notes = Vec::new();
    let timestamp = correct_time(&mut map, defaults, received, prefix, &mut notes);
    let email = email_of(&map);

    Ok(NormalizedMessage {
        message_type,
        message_id,
        event,
        user_id,
        anonymous_id,
        email,
        timestamp,
        received_at: received.time,
        message: map,
        notes,
    })
}

fn merge_into_object(map: &mut Map<String, Value>, key: &str, defaults: &Map<String, Value>) {
    match map.get_mut(key) {
        Some(Value::Object(own)) => merge_defaults(own, defaults),
        _ => {
            map.insert(key.to_owned(), Value::Object(defaults.clone()));
        }
    }
}

/// The time a request was received, with its RFC 3339 text formatted once
/// for all the messages of the request.
struct Received {
    time: DateTime<Utc>,
    text: String,
}

impl Received {
    fn at(time: DateTime<Utc>) -> Self {
        Self {
            time,
            text: format_rfc3339(time),
        }
    }
}

/// Sets `originalTimestamp`, `sentAt`, `receivedAt` and the corrected
/// `timestamp = receivedAt − (sentAt − originalTimestamp)` on the message,
/// and returns the corrected time. Unparseable times fall back to
/// `receivedAt` with a note instead of refusing the message.
fn correct_time(
    map: &mut Map<String, Value>,
    defaults: &BatchDefaults,
    received: &Received,
    prefix: &str,
    notes: &mut Vec<String>,
) -> DateTime<Utc> {
    let mut parse = |value: &Value, name: &str| -> Option<DateTime<Utc>> {
        let parsed = value.as_str().and_then(parse_rfc3339);
        if parsed.is_none() {
            notes.push(format!(
                "{} {value} is not an RFC 3339 time; receivedAt was used",
                path(prefix, name)
            ));
        }
        parsed
    };
    // The client's time is `timestamp`, else `originalTimestamp`. Values
    // that stay where they are are read in place; `timestamp` is rewritten
    // below, so its value is moved to `originalTimestamp` rather than copied.
    let moved_timestamp = match map.get_mut("timestamp") {
        Some(value) if !value.is_null() => Some(std::mem::take(value)),
        _ => None,
    };
    let (original, keep_original) = match &moved_timestamp {
        Some(value) => (parse(value, "timestamp"), false),
        None => match map.get("originalTimestamp").filter(|v| !v.is_null()) {
            Some(value) => (parse(value, "timestamp"), true),
            None => (None, false),
        },
    };
    let own_sent_at = map.get("sentAt").filter(|v| !v.is_null());
    let sent = match own_sent_at.or(defaults.sent_at.as_ref()) {
        Some(value) => parse(value, "sentAt"),
        None => None,
    };
    let has_own_sent_at = own_sent_at.is_some();

    let timestamp = match (original, sent) {
        (Some(original), Some(sent)) => received.time - (sent - original),
        (Some(original), None) => original,
        (None, _) => received.time,
    };
    let timestamp = truncate_to_micros(timestamp);

    match moved_timestamp {
        Some(value) => {
            map.insert("originalTimestamp".into(), value);
        }
        None if keep_original => {}
        None => {
            map.remove("originalTimestamp");
        }
    }
    if !has_own_sent_at {
        match &defaults.sent_at {
            Some(value) => {
                map.insert("sentAt".into(), value.clone());
            }
            None => {
                map.remove("sentAt");
            }
        }
    }
    map.insert("receivedAt".into(), Value::String(received.text.clone()));
    let timestamp_text = Value::String(format_rfc3339(timestamp));
    match map.get_mut("timestamp") {
        Some(slot) => *slot = timestamp_text,
        None => {
            map.insert("timestamp".into(), timestamp_text);
        }
    }
    timestamp
}

/// The email a message names, trimmed and lower-cased: from `traits.email`,
/// else `context.traits.email`.
fn email_of(map: &Map<String, Value>) -> Option<String> {
    let from = |traits: Option<&Value>| {
        traits
            .and_then(|t| t.get("email"))
            .and_then(Value::as_str)
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
    };
    from(map.get("traits")).or_else(|| from(map.get("context").and_then(|c| c.get("traits"))))
}

#[cfg(test)]
mod tests;
