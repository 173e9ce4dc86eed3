//! Postmark's webhooks: bounce (`RecordType: "Bounce"`), spam complaint
//! (`"SpamComplaint"`) and delivery (`"Delivery"`); opens, clicks and
//! subscription changes give no report. Bounce webhooks from before
//! `RecordType` existed are recognised by their `Type` and `BouncedAt`.
//!
//! Postmark's `MessageID` is Postmark's own id (kept as
//! `provider_message_id`). The original Message-ID is only there when the
//! payload carries the message's headers (`Headers`, a list of `Name` and
//! `Value`) or when the sender put it in the metadata (`Metadata` key
//! `message-id`, `message_id` or `messageid`, any case).
//!
//! The bounce `Type`s, from Postmark's list of bounce types, sorted by
//! what they say about the address:
//!
//! - hard: `HardBounce` (unknown user, no such mailbox), `BadEmailAddress`
//!   (the address is invalid), `ManuallyDeactivated` (Postmark will not
//!   send to it until someone reactivates it);
//! - soft (the message was not delivered, the address may well be fine):
//!   `Transient`, `SoftBounce`, `DnsError`, `Blocked` (an ISP block),
//!   `DMARCPolicy`, `SpamNotification` (refused as spam), `VirusNotification`,
//!   `ChallengeVerification`, `Unconfirmed`, `Unknown`, and any type
//!   Postmark adds later (counted, never suppressing at once);
//! - complaint: `SpamComplaint`;
//! - no report: `AutoResponder`, `AddressChange`, `Subscribe`,
//!   `Unsubscribe`, `OpenRelayTest` (mail about the recipient, not a
//!   failure) and `SMTPApiError`, `InboundError`, `TemplateRenderingFailed`
//!   (Postmark's or the sender's problem, never the address's).

use super::json::{parse_body, Node};
use super::{
    clip_diagnostic, find_enhanced_status, normalise_address, normalise_message_id, BounceError,
    MailReport, ReportKind,
};

/// The report in one Postmark webhook post (none for record types and
/// bounce types that are no news about the address).
pub fn parse_postmark(body: &[u8]) -> Result<Vec<MailReport>, BounceError> {
    let value = parse_body(body)?;
    let root = Node::root(&value);
    root.expect_object()?;
    let record_type = match root.opt_str("RecordType")? {
        Some(record_type) => record_type,
        None if root.get("Type").is_some() && root.get("BouncedAt").is_some() => "Bounce",
        None => return Err(BounceError::missing("RecordType")),
    };
    let report = match record_type {
        "Bounce" => {
            let Some(kind) = bounce_kind(root.req_str("Type")?) else {
                return Ok(Vec::new());
            };
            failure(&root, kind, "Email", "BouncedAt")?
        }
        "SpamComplaint" => failure(&root, ReportKind::Complaint, "Email", "BouncedAt")?,
        "Delivery" => failure(&root, ReportKind::Delivered, "Recipient", "DeliveredAt")?,
        // Open, Click, SubscriptionChange, Inbound.
        _ => return Ok(Vec::new()),
    };
    Ok(vec![report])
}

/// What a bounce `Type` says about the address (see the module's list).
fn bounce_kind(bounce_type: &str) -> Option<ReportKind> {
    match bounce_type {
        "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated" => Some(ReportKind::HardBounce),
        "SpamComplaint" => Some(ReportKind::Complaint),
        "AutoResponder"
        | "AddressChange"
        | "Subscribe"
        | "Unsubscribe"
        | "OpenRelayTest"
        | "SMTPApiError"
        | "InboundError"
        | "TemplateRenderingFailed" => None,
        _ => Some(ReportKind::SoftBounce),
    }
}

fn failure(
    root: &Node<'_>,
    kind: ReportKind,
    recipient_key: &str,
    at_key: &str,
) -> Result<MailReport, BounceError> {
    let email = root.req(recipient_key)?;
    let recipient = normalise_address(email.as_str()?)
        .ok_or_else(|| BounceError::invalid(&email.path, "is not an email address"))?;
    // Details is the server's answer ("smtp;550 5.1.1 ..."); Description
    // is Postmark's generic text for the type.
    let diagnostic = root
        .opt_str("Details")?
        .and_then(clip_diagnostic)
        .or(root.opt_str("Description")?.and_then(clip_diagnostic));
    Ok(MailReport {
        kind,
        recipient: Some(recipient),
        message_id: original_message_id(root)?,
        status: diagnostic.as_deref().and_then(find_enhanced_status),
        diagnostic,
        at: root.opt_rfc3339(at_key)?,
        provider_message_id: root.opt_str("MessageID")?.map(str::to_owned),
    })
}

/// The original Message-ID from `Headers` or `Metadata`, if either has it.
fn original_message_id(root: &Node<'_>) -> Result<Option<String>, BounceError> {
    if let Some(headers) = root.get("Headers") {
        for header in headers.items()? {
            if header.req_str("Name")?.eq_ignore_ascii_case("Message-ID") {
                return Ok(header.opt_str("Value")?.and_then(normalise_message_id));
            }
        }
    }
    if let Some(metadata) = root.get("Metadata") {
        if let Some(entries) = metadata.value.as_object() {
            for (key, value) in entries {
                let normalised: String = key
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if normalised == "messageid" {
                    return Ok(value.as_str().and_then(normalise_message_id));
                }
            }
        }
    }
    Ok(None)
}
