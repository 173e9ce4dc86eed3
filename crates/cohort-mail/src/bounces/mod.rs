//! Bounce and complaint reports, whatever brought them, as one typed
//! outcome: [`MailReport`]. The outbox and the suppression list act on
//! that alone, so a hard bounce means the same thing whether it came back
//! as a DSN to Cohort's inbound listener or as a provider's webhook.
//!
//! - [`parse_inbound`]: a whole message received by the inbound SMTP
//!   listener, either a delivery status notification (RFC 3464) or an abuse
//!   feedback report (ARF, RFC 5965). Anything else is
//!   [`BounceError::NotAReport`], and the caller falls back to the VERP
//!   address the message was sent to.
//! - [`parse_ses`] (Amazon SES through SNS), [`parse_sendgrid`],
//!   [`parse_postmark`] and [`parse_mailgun`]: a webhook's raw request body.
//!   [`verify_mailgun_signature`] checks Mailgun's signature; SNS
//!   signatures (an RSA certificate fetched from AWS), SendGrid's signed
//!   webhooks (ECDSA) and Postmark's basic auth are the HTTP layer's
//!   business and not done here.
//!
//! Every parser returns the reports it found, possibly none (an open, a
//! click, a "not spam" feedback report: nothing to act on), or an error
//! naming what was wrong with the input. None of them panics on any
//! input.
//!
//! How the outcome is chosen:
//!
//! | source | hard bounce | soft bounce | complaint | delivered |
//! | --- | --- | --- | --- | --- |
//! | DSN | `Action: failed` with a 5.x.x status (or none) | `failed` with 4.x.x, `delayed` | | `delivered`, `relayed`, `expanded` |
//! | ARF | | | any `Feedback-Type` but `not-spam` and `auth-failure` | |
//! | SES | `bounceType` `Permanent` | `Transient`, `Undetermined`, `DeliveryDelay` | `Complaint` (but `not-spam`) | `Delivery` |
//! | SendGrid | `bounce` of type `bounce`, `dropped` for "Bounced Address" | `bounce` of type `blocked`, `deferred` | `spamreport`, `dropped` for "Spam Reporting Address" | `delivered` |
//! | Postmark | `HardBounce`, `BadEmailAddress`, `ManuallyDeactivated` | the other undeliverable types (see [`postmark`]) | `SpamComplaint` | `Delivery` |
//! | Mailgun | `failed`, severity `permanent` | `failed`, severity `temporary` | `complained` | `delivered` |

mod fields;
mod inbound;
mod json;
pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod ses;

use chrono::{DateTime, Utc};

pub use inbound::{parse_inbound, unstructured_reply, UnstructuredReply};
pub use mailgun::{parse_mailgun, verify_mailgun_signature, verify_mailgun_webhook};
pub use postmark::parse_postmark;
pub use sendgrid::parse_sendgrid;
pub use ses::{parse_ses, SesWebhook};

pub use cohort_domain::mail::ReportKind;

/// One recipient's outcome, as a report gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailReport {
    pub kind: ReportKind,
    /// The recipient the report is about, lower-cased. `None` when the
    /// report does not name one that is an email address (a DSN's
    /// `Final-Recipient: unknown; nair_s`, an ARF report with the recipient
    /// redacted): the caller then goes by `message_id` or the VERP address.
    pub recipient: Option<String>,
    /// The original message's Message-ID header, without angle brackets,
    /// when the report carries it (DSN's returned headers, ARF's original
    /// message, a provider's payload field).
    pub message_id: Option<String>,
    /// Enhanced status code (RFC 3463) like "5.1.1", when known: the
    /// report's own field, or else the first such code in the diagnostic.
    pub status: Option<String>,
    /// The remote server's answer or the provider's reason, as given
    /// (trimmed, folded lines joined with one space, at most
    /// [`MAX_DIAGNOSTIC_CHARS`] characters).
    pub diagnostic: Option<String>,
    /// When the provider says it happened (UTC), if it does. For a DSN, the
    /// recipient's `Last-Attempt-Date`, else the report's `Date`; for ARF,
    /// the report's `Date`.
    pub at: Option<DateTime<Utc>>,
    /// The provider's own id of the message, when it gives one and it is
    /// not the Message-ID: SES's `mail.messageId`, SendGrid's
    /// `sg_message_id`, Postmark's `MessageID`. Postmark's webhooks carry
    /// no Message-ID unless it was put in the message's metadata, so this
    /// is what maps them back to the outbox.
    pub provider_message_id: Option<String>,
}

/// The longest diagnostic kept; a provider's reason can be a whole SMTP
/// transcript.
pub const MAX_DIAGNOSTIC_CHARS: usize = 1000;

/// Why a report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BounceError {
    /// The message is neither a DSN nor an ARF report (an out-of-office
    /// reply, a human's answer, a bounce in free text): leave it to the
    /// VERP mapping.
    #[error("the message is neither a delivery status notification nor a feedback report")]
    NotAReport,
    /// Not a message at all: no header could be read.
    #[error("the input is not an email message")]
    NotAMessage,
    /// A `multipart/report` without the part its `report-type` promises.
    #[error("the report has no {part} part")]
    MissingPart { part: &'static str },
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// A field the report needs is absent (or null). The name is the path
    /// in the payload, e.g. `bounce.bouncedRecipients[0].emailAddress`.
    #[error("missing field `{field}`")]
    MissingField { field: String },
    /// A field is there but cannot be used.
    #[error("field `{field}` {problem}")]
    InvalidField { field: String, problem: String },
    /// The Mailgun webhook's signature does not match the signing key.
    #[error("the webhook signature does not match")]
    BadSignature,
}

impl BounceError {
    pub(crate) fn missing(field: impl Into<String>) -> Self {
        BounceError::MissingField {
            field: field.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        BounceError::InvalidField {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// `raw` as an address Cohort compares with: the part in angle brackets if
/// there is one, lower-cased; `None` unless it looks like `local@domain`.
pub(crate) fn normalise_address(raw: &str) -> Option<String> {
    let mut address = raw.trim();
    if let (Some(open), Some(close)) = (address.rfind('<'), address.rfind('>')) {
        if open < close {
            address = address[open + 1..close].trim();
        }
    }
    let address = address.trim_matches('"');
    let (local, domain) = address.rsplit_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then(|| address.to_lowercase())
}

/// A Message-ID as the outbox stores it: trimmed, without angle brackets.
pub(crate) fn normalise_message_id(raw: &str) -> Option<String> {
    let id = raw.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id).trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// A diagnostic as kept: folded lines joined with one space, trimmed, cut
/// at [`MAX_DIAGNOSTIC_CHARS`]; `None` when nothing is left.
pub(crate) fn clip_diagnostic(raw: &str) -> Option<String> {
    let mut joined = String::with_capacity(raw.len().min(MAX_DIAGNOSTIC_CHARS * 4));
    for (index, line) in raw.lines().enumerate() {
        let line = if index == 0 { line } else { line.trim_start() };
        if index > 0 && !joined.is_empty() && !line.is_empty() {
            joined.push(' ');
        }
        joined.push_str(line.trim_end_matches('\r'));
    }
    let trimmed = joined.trim();
    if trimmed.is_empty() {
        return None;
    }
    Some(trimmed.chars().take(MAX_DIAGNOSTIC_CHARS).collect())
}

/// `token` if it is an enhanced status code (RFC 3463): class 2, 4 or 5,
/// then subject and detail of one to three digits.
pub(crate) fn enhanced_status(token: &str) -> Option<String> {
    let token = token.trim().trim_end_matches('.');
    let mut parts = token.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    let digits =
        |part: &str| (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
    let valid = parts.next().is_none()
        && matches!(class, "2" | "4" | "5")
        && digits(subject)
        && digits(detail);
    valid.then(|| token.to_owned())
}

/// The first enhanced status code in free text ("smtp; 550 5.1.1 user
/// unknown", "550-5.1.1 The email account ..."). Tokens are runs of digits
/// and dots, so an IP address or a version number is not mistaken for one.
pub(crate) fn find_enhanced_status(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(enhanced_status)
}

/// The class (2, 4 or 5) of an enhanced status code.
pub(crate) fn status_class(status: &str) -> Option<u8> {
    match status.as_bytes().first() {
        Some(b'2') => Some(2),
        Some(b'4') => Some(4),
        Some(b'5') => Some(5),
        _ => None,
    }
}

/// The class of the basic SMTP reply code (RFC 5321) a diagnostic starts
/// with, after its type: "smtp; 550 ..." is 5.
pub(crate) fn smtp_reply_class(diagnostic: &str) -> Option<u8> {
    let answer = diagnostic
        .split_once(';')
        .map_or(diagnostic, |(_, rest)| rest)
        .trim_start();
    let code = answer.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let next = answer.as_bytes().get(3);
    if next.is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    status_class(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_and_unbracketed() {
        assert_eq!(
            normalise_address(" <Ann@Example.COM> ").as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(
            normalise_address("\"Jane Doe\" <jane@example.com>").as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(normalise_address("nair_s"), None);
        assert_eq!(normalise_address("/var/mail/ann"), None);
        assert_eq!(normalise_address("a b@example.com"), None);
    }

    #[test]
    fn enhanced_codes_are_found_and_lookalikes_are_not() {
        assert_eq!(
            find_enhanced_status("smtp; 550 5.1.1 user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            find_enhanced_status("550-5.1.1 The email account").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            find_enhanced_status("from 192.0.2.222 (.NET CLR 2.0.50727)"),
            None
        );
        assert_eq!(find_enhanced_status("400 try again later"), None);
        assert_eq!(enhanced_status("5.0.0.").as_deref(), Some("5.0.0"));
    }

    #[test]
    fn smtp_reply_classes() {
        assert_eq!(smtp_reply_class("smtp;  550 'x' is not a user"), Some(5));
        assert_eq!(smtp_reply_class("426 connection timed out"), Some(4));
        assert_eq!(smtp_reply_class("X-Postfix; mail loops"), None);
        assert_eq!(smtp_reply_class("smtp; 5500 odd"), None);
    }

    #[test]
    fn diagnostics_are_unfolded_and_clipped() {
        assert_eq!(
            clip_diagnostic("smtp; 550 5.1.1 <a@b>: Recipient address rejected:\n    User unknown")
                .as_deref(),
            Some("smtp; 550 5.1.1 <a@b>: Recipient address rejected: User unknown")
        );
        assert_eq!(clip_diagnostic("  \n "), None);
        let long = "é".repeat(MAX_DIAGNOSTIC_CHARS + 10);
        assert_eq!(
            clip_diagnostic(&long).map(|d| d.chars().count()),
            Some(MAX_DIAGNOSTIC_CHARS)
        );
    }
}
