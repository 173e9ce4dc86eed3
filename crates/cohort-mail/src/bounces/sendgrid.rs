//! SendGrid's Event Webhook: a JSON array of events, delivery and
//! engagement mixed. Only the delivery outcomes are reports; opens, clicks,
//! `processed`, unsubscribes and the like are skipped without error.
//!
//! - `bounce` is hard, unless its `type` is `blocked` (the receiving server
//!   refused the message for now, not the address).
//! - `dropped` is SendGrid not sending at all, because of its own
//!   suppression lists: "Bounced Address" is a hard bounce and "Spam
//!   Reporting Address" a complaint; the other reasons (an unsubscribed
//!   address, invalid headers, a quota) are no news about the address.
//! - `deferred` is soft, `spamreport` a complaint, `delivered` delivered.
//!
//! `smtp-id` is the message's Message-ID in angle brackets;
//! `sg_message_id` is SendGrid's own id.

use super::json::{parse_body, Node};
use super::{
    clip_diagnostic, enhanced_status, find_enhanced_status, normalise_address,
    normalise_message_id, status_class, BounceError, MailReport, ReportKind,
};

/// The reports in one Event Webhook post.
pub fn parse_sendgrid(body: &[u8]) -> Result<Vec<MailReport>, BounceError> {
    let value = parse_body(body)?;
    let root = Node::root(&value);
    if !value.is_array() {
        return Err(BounceError::invalid(
            "the body",
            "should be an array of events",
        ));
    }
    let mut reports = Vec::new();
    for event in root.items()? {
        event.expect_object()?;
        if let Some(report) = event_report(&event)? {
            reports.push(report);
        }
    }
    Ok(reports)
}

fn event_report(event: &Node<'_>) -> Result<Option<MailReport>, BounceError> {
    let name = event.req_str("event")?;
    let reason = event.opt_str("reason")?;
    let kind = match name {
        "bounce" => {
            let bounce_type = event.opt_str("type")?;
            let status_is_temporary = event
                .opt_str("status")?
                .and_then(enhanced_status)
                .and_then(|s| status_class(&s))
                == Some(4);
            match bounce_type {
                Some("blocked") => ReportKind::SoftBounce,
                Some("bounce") => ReportKind::HardBounce,
                _ if status_is_temporary => ReportKind::SoftBounce,
                _ => ReportKind::HardBounce,
            }
        }
        "dropped" => match reason.map(str::trim) {
            Some(r) if r.eq_ignore_ascii_case("Bounced Address") => ReportKind::HardBounce,
            Some(r) if r.eq_ignore_ascii_case("Spam Reporting Address") => ReportKind::Complaint,
            _ => return Ok(None),
        },
        "deferred" => ReportKind::SoftBounce,
        "spamreport" => ReportKind::Complaint,
        "delivered" => ReportKind::Delivered,
        _ => return Ok(None),
    };
    let email = event.req("email")?;
    let recipient = normalise_address(email.as_str()?)
        .ok_or_else(|| BounceError::invalid(&email.path, "is not an email address"))?;
    // A bounce or drop says why in `reason`; a deferral or a delivery
    // quotes the server in `response`.
    let diagnostic = match reason {
        Some(reason) => clip_diagnostic(reason),
        None => event.opt_str("response")?.and_then(clip_diagnostic),
    };
    let status = event
        .opt_str("status")?
        .and_then(enhanced_status)
        .or_else(|| diagnostic.as_deref().and_then(find_enhanced_status));
    Ok(Some(MailReport {
        kind,
        recipient: Some(recipient),
        message_id: event.opt_str("smtp-id")?.and_then(normalise_message_id),
        status,
        diagnostic,
        at: event.opt_unix_time("timestamp")?,
        provider_message_id: event.opt_str("sg_message_id")?.map(str::to_owned),
    }))
}
