//! Mailgun's webhooks (the JSON ones, "webhooks v3"): `{"signature":
//! {"timestamp", "token", "signature"}, "event-data": {...}}`.
//!
//! `failed` is hard when its `severity` is `permanent` (including
//! `suppress-bounce`: Mailgun did not even try, the address bounced
//! before) and soft when `temporary`; `complained` is a complaint and
//! `delivered` delivered. Other events (accepted, opened, clicked,
//! unsubscribed, stored) give no report.
//!
//! The signature is an HMAC-SHA256 of `timestamp` followed by `token`
//! under the domain's webhook signing key, in hex. Mailgun also advises
//! refusing a token seen before and a timestamp far from now; that needs
//! state and a clock, so it is the caller's.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::json::{parse_body, Node};
use super::{
    clip_diagnostic, enhanced_status, find_enhanced_status, normalise_address,
    normalise_message_id, BounceError, MailReport, ReportKind,
};

/// The report in one Mailgun webhook post (none for events that are no
/// news about the address). The signature is not checked here: see
/// [`verify_mailgun_webhook`].
pub fn parse_mailgun(body: &[u8]) -> Result<Vec<MailReport>, BounceError> {
    let value = parse_body(body)?;
    let root = Node::root(&value);
    root.expect_object()?;
    let event = root.req("event-data")?;
    event.expect_object()?;
    let kind = match event.req_str("event")? {
        "failed" => {
            let severity = event.req("severity")?;
            match severity.as_str()? {
                "permanent" => ReportKind::HardBounce,
                "temporary" => ReportKind::SoftBounce,
                other => {
                    return Err(BounceError::invalid(
                        severity.path,
                        format!("is {other:?}, not permanent or temporary"),
                    ))
                }
            }
        }
        "complained" => ReportKind::Complaint,
        "delivered" => ReportKind::Delivered,
        _ => return Ok(Vec::new()),
    };
    let recipient_field = event.req("recipient")?;
    let recipient = normalise_address(recipient_field.as_str()?)
        .ok_or_else(|| BounceError::invalid(&recipient_field.path, "is not an email address"))?;
    let message_id = match event.get("message").and_then(|m| m.get("headers")) {
        Some(headers) => headers
            .opt_str("message-id")?
            .and_then(normalise_message_id),
        None => None,
    };
    let (status, diagnostic) = match event.get("delivery-status") {
        Some(delivery) => status_and_diagnostic(&delivery)?,
        None => (None, None),
    };
    Ok(vec![MailReport {
        kind,
        recipient: Some(recipient),
        message_id,
        status,
        diagnostic,
        at: event.opt_unix_time("timestamp")?,
        provider_message_id: None,
    }])
}

/// `delivery-status`: the server's answer is `message` (Mailgun's own
/// wording, for a drop, is `description`); the status is `enhanced-code`
/// (often empty), else `bounce-code` (delayed bounces), else the first
/// code in the answer.
fn status_and_diagnostic(
    delivery: &Node<'_>,
) -> Result<(Option<String>, Option<String>), BounceError> {
    let diagnostic = match delivery.opt_str("message")?.and_then(clip_diagnostic) {
        Some(message) => Some(message),
        None => delivery.opt_str("description")?.and_then(clip_diagnostic),
    };
    let status = match delivery.opt_str("enhanced-code")?.and_then(enhanced_status) {
        Some(status) => Some(status),
        None => delivery
            .opt_str("bounce-code")?
            .and_then(enhanced_status)
            .or_else(|| diagnostic.as_deref().and_then(find_enhanced_status)),
    };
    Ok((status, diagnostic))
}

/// Whether `signature_hex` is Mailgun's signature of `timestamp` and
/// `token` under `signing_key`: HMAC-SHA256 of the two concatenated,
/// compared in constant time. Malformed hex is simply not a match.
pub fn verify_mailgun_signature(
    signing_key: &[u8],
    timestamp: &str,
    token: &str,
    signature_hex: &str,
) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(signing_key) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    let expected = mac.finalize().into_bytes();
    let Some(given) = decode_hex(signature_hex.trim()) else {
        return false;
    };
    expected.as_slice().ct_eq(&given).into()
}

/// Checks the `signature` object of a webhook body against `signing_key`:
/// `Ok(())`, [`BounceError::BadSignature`], or an error naming the
/// missing field.
pub fn verify_mailgun_webhook(body: &[u8], signing_key: &[u8]) -> Result<(), BounceError> {
    let value = parse_body(body)?;
    let root = Node::root(&value);
    root.expect_object()?;
    let signature = root.req("signature")?;
    // Mailgun sends the timestamp as a string; accept a number too.
    let timestamp_node = signature.req("timestamp")?;
    let timestamp = match timestamp_node.value.as_u64() {
        Some(seconds) => seconds.to_string(),
        None => timestamp_node.as_str()?.to_owned(),
    };
    let token = signature.req_str("token")?;
    let hex = signature.req_str("signature")?;
    if verify_mailgun_signature(signing_key, &timestamp, token, hex) {
        Ok(())
    } else {
        Err(BounceError::BadSignature)
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let pairs = hex.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    pairs
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_either_case_and_refuses_junk() {
        assert_eq!(decode_hex("00fFa0"), Some(vec![0x00, 0xff, 0xa0]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(""), Some(vec![]));
    }
}
