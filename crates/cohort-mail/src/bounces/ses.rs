//! Amazon SES notifications, as SNS posts them to an HTTP(S) endpoint.
//!
//! The body is SNS's envelope (`"Type": "Notification"`, the SES
//! notification as a JSON string in `Message`), or the SES notification
//! itself when the subscription has raw message delivery on. Both SES
//! formats are read: the bounce/complaint/delivery notifications
//! (`notificationType`) and event publishing (`eventType`, which adds
//! `DeliveryDelay`).
//!
//! An SNS subscription starts with a `SubscriptionConfirmation` that must
//! be confirmed by fetching its `SubscribeURL`. That is not a report and
//! not an error either, so [`parse_ses`] answers [`SesWebhook`] rather than
//! a bare list: the caller confirms (after checking that the URL is an
//! `https://sns.<region>.amazonaws.com/` one, and ideally SNS's
//! signature) and records nothing.

use super::json::{parse_body, Node};
use super::{
    clip_diagnostic, enhanced_status, find_enhanced_status, normalise_address,
    normalise_message_id, BounceError, MailReport, ReportKind,
};

/// What an SNS post to the SES webhook asks of Cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SesWebhook {
    /// Outcomes to record; empty for notifications that carry none (a
    /// send, an open, an `UnsubscribeConfirmation`).
    Reports(Vec<MailReport>),
    /// SNS asks to confirm the subscription: fetch `subscribe_url`.
    SubscriptionConfirmation {
        topic_arn: Option<String>,
        subscribe_url: String,
    },
}

/// Reads one SNS post (or a raw SES notification).
pub fn parse_ses(body: &[u8]) -> Result<SesWebhook, BounceError> {
    let value = parse_body(body)?;
    let root = Node::root(&value);
    root.expect_object()?;
    if root.get("notificationType").is_some() || root.get("eventType").is_some() {
        return ses_notification(&root).map(SesWebhook::Reports);
    }
    match root.req_str("Type")? {
        "Notification" => {
            let message = root.req("Message")?;
            let text = message.as_str()?;
            let inner: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                BounceError::invalid("Message", format!("is not an SES notification: {e}"))
            })?;
            let mut inner_root = Node::root(&inner);
            inner_root.path = "Message".to_owned();
            inner_root.expect_object()?;
            ses_notification(&inner_root).map(SesWebhook::Reports)
        }
        "SubscriptionConfirmation" => Ok(SesWebhook::SubscriptionConfirmation {
            topic_arn: root.opt_str("TopicArn")?.map(str::to_owned),
            subscribe_url: root.req_str("SubscribeURL")?.to_owned(),
        }),
        "UnsubscribeConfirmation" => Ok(SesWebhook::Reports(Vec::new())),
        other => Err(BounceError::invalid(
            "Type",
            format!("is {other:?}, not Notification, SubscriptionConfirmation or UnsubscribeConfirmation"),
        )),
    }
}

/// What the SES notification (`message`) reports.
fn ses_notification(message: &Node<'_>) -> Result<Vec<MailReport>, BounceError> {
    let kind = match message.opt_str("notificationType")? {
        Some(kind) => kind,
        None => message.req_str("eventType")?,
    };
    let mail = message.get("mail");
    let message_id = match &mail {
        Some(mail) => original_message_id(mail)?,
        None => None,
    };
    let provider_message_id = match &mail {
        Some(mail) => mail.opt_str("messageId")?.map(str::to_owned),
        None => None,
    };
    let base = Base {
        message_id,
        provider_message_id,
    };
    match kind {
        "Bounce" => bounce(&message.req("bounce")?, &base),
        "Complaint" => complaint(&message.req("complaint")?, &base),
        "Delivery" => delivery(&message.req("delivery")?, &base),
        "DeliveryDelay" => delivery_delay(&message.req("deliveryDelay")?, &base),
        // Send, Reject, Open, Click, Rendering Failure, Subscription,
        // Received: nothing about whether the address takes mail.
        _ => Ok(Vec::new()),
    }
}

/// What every report of one notification shares.
struct Base {
    message_id: Option<String>,
    provider_message_id: Option<String>,
}

impl Base {
    fn report(&self, kind: ReportKind, recipient: String) -> MailReport {
        MailReport {
            kind,
            recipient: Some(recipient),
            message_id: self.message_id.clone(),
            status: None,
            diagnostic: None,
            at: None,
            provider_message_id: self.provider_message_id.clone(),
        }
    }
}

/// The original Message-ID: `mail.commonHeaders.messageId`, else the
/// `Message-ID` among `mail.headers` (present only when the notification
/// is set to include headers).
fn original_message_id(mail: &Node<'_>) -> Result<Option<String>, BounceError> {
    if let Some(common) = mail.get("commonHeaders") {
        if let Some(id) = common.opt_str("messageId")? {
            return Ok(normalise_message_id(id));
        }
    }
    let Some(headers) = mail.get("headers") else {
        return Ok(None);
    };
    for header in headers.items()? {
        if header.req_str("name")?.eq_ignore_ascii_case("Message-ID") {
            return Ok(header.opt_str("value")?.and_then(normalise_message_id));
        }
    }
    Ok(None)
}

fn address(node: &Node<'_>, key: &str) -> Result<String, BounceError> {
    let field = node.req(key)?;
    normalise_address(field.as_str()?)
        .ok_or_else(|| BounceError::invalid(field.path, "is not an email address"))
}

/// A recipient's status and diagnostic (`status`, `diagnosticCode`).
fn status_and_diagnostic(
    recipient: &Node<'_>,
) -> Result<(Option<String>, Option<String>), BounceError> {
    let diagnostic = recipient
        .opt_str("diagnosticCode")?
        .and_then(clip_diagnostic);
    let status = recipient
        .opt_str("status")?
        .and_then(enhanced_status)
        .or_else(|| diagnostic.as_deref().and_then(find_enhanced_status));
    Ok((status, diagnostic))
}

fn bounce(bounce: &Node<'_>, base: &Base) -> Result<Vec<MailReport>, BounceError> {
    let bounce_type = bounce.req("bounceType")?;
    let kind = match bounce_type.as_str()? {
        "Permanent" => ReportKind::HardBounce,
        "Transient" | "Undetermined" => ReportKind::SoftBounce,
        other => {
            return Err(BounceError::invalid(
                bounce_type.path,
                format!("is {other:?}, not Permanent, Transient or Undetermined"),
            ))
        }
    };
    let at = bounce.opt_rfc3339("timestamp")?;
    bounce
        .req("bouncedRecipients")?
        .items()?
        .iter()
        .map(|recipient| {
            let (status, diagnostic) = status_and_diagnostic(recipient)?;
            Ok(MailReport {
                status,
                diagnostic,
                at,
                ..base.report(kind, address(recipient, "emailAddress")?)
            })
        })
        .collect()
}

fn complaint(complaint: &Node<'_>, base: &Base) -> Result<Vec<MailReport>, BounceError> {
    let feedback_type = complaint.opt_str("complaintFeedbackType")?;
    // The reporting provider says the message was not spam after all.
    if feedback_type.is_some_and(|t| t.eq_ignore_ascii_case("not-spam")) {
        return Ok(Vec::new());
    }
    let at = complaint.opt_rfc3339("timestamp")?;
    complaint
        .req("complainedRecipients")?
        .items()?
        .iter()
        .map(|recipient| {
            Ok(MailReport {
                diagnostic: feedback_type.and_then(clip_diagnostic),
                at,
                ..base.report(ReportKind::Complaint, address(recipient, "emailAddress")?)
            })
        })
        .collect()
}

fn delivery(delivery: &Node<'_>, base: &Base) -> Result<Vec<MailReport>, BounceError> {
    let at = delivery.opt_rfc3339("timestamp")?;
    let diagnostic = delivery.opt_str("smtpResponse")?.and_then(clip_diagnostic);
    let status = diagnostic.as_deref().and_then(find_enhanced_status);
    delivery
        .req("recipients")?
        .items()?
        .iter()
        .map(|recipient| {
            let text = recipient.as_str()?;
            let address = normalise_address(text)
                .ok_or_else(|| BounceError::invalid(&recipient.path, "is not an email address"))?;
            Ok(MailReport {
                status: status.clone(),
                diagnostic: diagnostic.clone(),
                at,
                ..base.report(ReportKind::Delivered, address)
            })
        })
        .collect()
}

fn delivery_delay(delay: &Node<'_>, base: &Base) -> Result<Vec<MailReport>, BounceError> {
    let at = delay.opt_rfc3339("timestamp")?;
    delay
        .req("delayedRecipients")?
        .items()?
        .iter()
        .map(|recipient| {
            let (status, diagnostic) = status_and_diagnostic(recipient)?;
            Ok(MailReport {
                status,
                diagnostic,
                at,
                ..base.report(ReportKind::SoftBounce, address(recipient, "emailAddress")?)
            })
        })
        .collect()
}
