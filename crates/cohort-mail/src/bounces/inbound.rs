//! Reports that arrive as mail at Cohort's inbound SMTP listener: delivery
//! status notifications (RFC 3464) and abuse feedback reports (ARF, RFC
//! 5965), both `multipart/report`.
//!
//! A report is recognised by its parts, not only by the top-level
//! `report-type`: some gateways lose the parameter, and a
//! `message/delivery-status` part says what the message is. The original
//! message comes back as `message/rfc822` (whole), `text/rfc822-headers`
//! (headers only) or their RFC 6533 `global` forms; its Message-ID is what
//! ties the report to the outbox.

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::fields::{parse_groups, FieldGroup};
use super::{
    clip_diagnostic, enhanced_status, find_enhanced_status, normalise_address,
    normalise_message_id, smtp_reply_class, status_class, BounceError, MailReport, ReportKind,
};

/// What can be said of a message to a return path that is no report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnstructuredReply {
    /// An automatic answer (RFC 3834 `Auto-Submitted: auto-replied`, or an
    /// out-of-office reply's usual headers): no bounce at all.
    pub auto_reply: bool,
    pub subject: Option<String>,
}

/// Reads the headers of a message [`parse_inbound`] found no report in:
/// vacation programs answer to the return path too (RFC 3834 §4), and an
/// old MTA's bounce in free text is still a bounce.
pub fn unstructured_reply(raw: &[u8]) -> UnstructuredReply {
    let Some(message) = MessageParser::default().parse_headers(raw) else {
        return UnstructuredReply::default();
    };
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let auto_submitted = header("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied"));
    let vacation = header("X-Autoreply").is_some_and(|v| v == "yes")
        || header("X-Autorespond").is_some()
        || header("Precedence").is_some_and(|v| v == "auto_reply");
    let subject = message.subject().and_then(clip_diagnostic);
    let out_of_office = subject.as_deref().is_some_and(|s| {
        let s = s.to_ascii_lowercase();
        s.starts_with("out of office") || s.starts_with("automatic reply") || s.starts_with("auto:")
    });
    UnstructuredReply {
        auto_reply: auto_submitted || vacation || out_of_office,
        subject,
    }
}

/// The reports in a whole message received by the inbound listener: one
/// per recipient of a DSN, one per reported recipient of an ARF report
/// (one with no recipient when the report redacts it).
///
/// `Err(BounceError::NotAReport)` for a message that is neither (the
/// caller then goes by the VERP address it was sent to). A feedback report
/// of type `not-spam` or `auth-failure` is no complaint and gives no
/// report.
pub fn parse_inbound(raw: &[u8]) -> Result<Vec<MailReport>, BounceError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(BounceError::NotAMessage)?;
    let report_type = message
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);

    let delivery_status = find_part(&message, is_delivery_status);
    let feedback_report = find_part(&message, is_feedback_report);
    let original = original_message_id(&message);
    let sent_at = message.date().and_then(to_utc);

    if let Some(part) = feedback_report {
        return feedback_reports(&part_text(part), original, sent_at);
    }
    if let Some(part) = delivery_status {
        return delivery_reports(&part_text(part), original, sent_at);
    }
    match report_type.as_deref() {
        Some("delivery-status") => Err(BounceError::MissingPart {
            part: "message/delivery-status",
        }),
        Some("feedback-report") => Err(BounceError::MissingPart {
            part: "message/feedback-report",
        }),
        _ => Err(BounceError::NotAReport),
    }
}

/// The first part of the message itself (not of a message it returns)
/// that `wanted` accepts.
fn find_part<'m>(
    message: &'m Message<'_>,
    wanted: fn(&str, &str) -> bool,
) -> Option<&'m MessagePart<'m>> {
    message.parts.iter().find(|part| {
        part.content_type()
            .is_some_and(|ct| wanted(ct.ctype(), ct.subtype().unwrap_or("")))
    })
}

fn is_delivery_status(ctype: &str, subtype: &str) -> bool {
    ctype.eq_ignore_ascii_case("message")
        && (subtype.eq_ignore_ascii_case("delivery-status")
            || subtype.eq_ignore_ascii_case("global-delivery-status"))
}

fn is_feedback_report(ctype: &str, subtype: &str) -> bool {
    ctype.eq_ignore_ascii_case("message") && subtype.eq_ignore_ascii_case("feedback-report")
}

fn is_returned_message(ctype: &str, subtype: &str) -> bool {
    ctype.eq_ignore_ascii_case("message")
        && (subtype.eq_ignore_ascii_case("rfc822") || subtype.eq_ignore_ascii_case("global"))
}

fn is_returned_headers(ctype: &str, subtype: &str) -> bool {
    (ctype.eq_ignore_ascii_case("text") || ctype.eq_ignore_ascii_case("message"))
        && (subtype.eq_ignore_ascii_case("rfc822-headers")
            || subtype.eq_ignore_ascii_case("global-headers"))
}

/// A part's body as text (decoded from its transfer encoding; invalid
/// UTF-8 replaced, the fields that matter are ASCII).
fn part_text(part: &MessagePart<'_>) -> String {
    String::from_utf8_lossy(part.contents()).into_owned()
}

/// The Message-ID of the message the report returns, whole or headers
/// only.
fn original_message_id(message: &Message<'_>) -> Option<String> {
    message.parts.iter().find_map(|part| {
        let ct = part.content_type()?;
        let (ctype, subtype) = (ct.ctype(), ct.subtype().unwrap_or(""));
        if is_returned_message(ctype, subtype) {
            if let PartType::Message(returned) = &part.body {
                return returned.message_id().and_then(normalise_message_id);
            }
        } else if !is_returned_headers(ctype, subtype) {
            return None;
        }
        // Headers only, or a returned message mail-parser kept as bytes.
        MessageParser::default()
            .parse_headers(part.contents())
            .and_then(|headers| headers.message_id().and_then(normalise_message_id))
    })
}

fn to_utc(date: &mail_parser::DateTime) -> Option<DateTime<Utc>> {
    if !date.is_valid() {
        return None;
    }
    Utc.timestamp_opt(date.to_timestamp(), 0).single()
}

/// An RFC 5322 date as a DSN field gives it (`Last-Attempt-Date`).
fn field_date(value: &str) -> Option<DateTime<Utc>> {
    mail_parser::DateTime::parse_rfc822(value.trim()).and_then(|d| to_utc(&d))
}

/// The address in a `Final-Recipient` or `Original-Recipient` value
/// (`address-type; address`), when its type is `rfc822` (or not given) and
/// it is an email address.
fn recipient_address(value: &str) -> Option<String> {
    let (kind, address) = match value.split_once(';') {
        Some((kind, address)) => (kind.trim(), address),
        None => ("rfc822", value),
    };
    if !kind.eq_ignore_ascii_case("rfc822") {
        return None;
    }
    normalise_address(address)
}

/// One report per per-recipient group of a `message/delivery-status` body.
fn delivery_reports(
    body: &str,
    message_id: Option<String>,
    sent_at: Option<DateTime<Utc>>,
) -> Result<Vec<MailReport>, BounceError> {
    let recipients: Vec<FieldGroup> = parse_groups(body)
        .into_iter()
        .filter(|group| {
            group.has("Final-Recipient") || group.has("Original-Recipient") || group.has("Action")
        })
        .collect();
    if recipients.is_empty() {
        return Err(BounceError::missing("Final-Recipient"));
    }
    recipients
        .iter()
        .map(|group| delivery_report(group, message_id.clone(), sent_at))
        .collect()
}

fn delivery_report(
    group: &FieldGroup,
    message_id: Option<String>,
    sent_at: Option<DateTime<Utc>>,
) -> Result<MailReport, BounceError> {
    // Original-Recipient is the address as Cohort gave it (before any
    // forwarding at the far end), so the one on Cohort's list.
    let recipient = group
        .get("Original-Recipient")
        .and_then(recipient_address)
        .or_else(|| group.get("Final-Recipient").and_then(recipient_address));
    let action = group
        .get("Action")
        .ok_or_else(|| BounceError::missing("Action"))?;
    // "failed (reason)" and similar: the first word is the action.
    let action = action
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let diagnostic = group.get("Diagnostic-Code").and_then(clip_diagnostic);
    // "Status: 5.0.0 (permanent failure)": the code is the first word.
    let status = group
        .get("Status")
        .and_then(|s| s.split_whitespace().next())
        .and_then(enhanced_status)
        .or_else(|| diagnostic.as_deref().and_then(find_enhanced_status));
    let class = status
        .as_deref()
        .and_then(status_class)
        .or_else(|| diagnostic.as_deref().and_then(smtp_reply_class));
    let kind = match action.as_str() {
        "failed" if class == Some(4) => ReportKind::SoftBounce,
        "failed" => ReportKind::HardBounce,
        "delayed" => ReportKind::SoftBounce,
        "delivered" | "relayed" | "expanded" => ReportKind::Delivered,
        _ => {
            return Err(BounceError::invalid(
                "Action",
                format!("is {action:?}, not failed, delayed, delivered, relayed or expanded"),
            ))
        }
    };
    let at = group
        .get("Last-Attempt-Date")
        .and_then(field_date)
        .or(sent_at);
    Ok(MailReport {
        kind,
        recipient,
        message_id,
        status,
        diagnostic,
        at,
        provider_message_id: None,
    })
}

/// The complaint in a `message/feedback-report` body: one report per
/// `Original-Rcpt-To` (else `Removal-Recipient`), or one without a
/// recipient when the report gives none (most mailbox providers redact
/// it; the Message-ID still finds the message).
fn feedback_reports(
    body: &str,
    message_id: Option<String>,
    sent_at: Option<DateTime<Utc>>,
) -> Result<Vec<MailReport>, BounceError> {
    // One group by the RFC; a stray blank line must not hide fields.
    let mut report = FieldGroup::default();
    for group in parse_groups(body) {
        report.fields.extend(group.fields);
    }
    let feedback_type = report
        .get("Feedback-Type")
        .ok_or_else(|| BounceError::missing("Feedback-Type"))?
        .to_ascii_lowercase();
    // "not-spam" (RFC 6650 registry) says the opposite of a complaint;
    // "auth-failure" (RFC 6591) is about the sender's authentication, not
    // the recipient's wishes.
    if matches!(feedback_type.as_str(), "not-spam" | "auth-failure") {
        return Ok(Vec::new());
    }
    let mut recipients: Vec<String> = report
        .all("Original-Rcpt-To")
        .filter_map(normalise_address)
        .collect();
    if recipients.is_empty() {
        recipients = report
            .all("Removal-Recipient")
            .filter_map(normalise_address)
            .collect();
    }
    recipients.dedup();
    let complaint = |recipient: Option<String>| MailReport {
        kind: ReportKind::Complaint,
        recipient,
        message_id: message_id.clone(),
        status: None,
        diagnostic: clip_diagnostic(&feedback_type),
        at: sent_at,
        provider_message_id: None,
    };
    if recipients.is_empty() {
        return Ok(vec![complaint(None)]);
    }
    Ok(recipients.into_iter().map(|r| complaint(Some(r))).collect())
}
