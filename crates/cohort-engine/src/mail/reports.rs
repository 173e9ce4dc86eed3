//! What comes back about sent mail: bounce and complaint reports, from the
//! inbound SMTP listener or a provider's webhook, mapped to the message
//! they are about and recorded once each (`cohort_store::mail::reports`
//! suppresses, counts soft bounces and marks the message in the same
//! transaction). The event log is told afterwards by
//! [`Mail::log_outcomes`].
//!
//! How a report finds its message:
//! - at the inbound listener, by the VERP address it was sent to
//!   (`bounces+{id}@…`), and nothing else: the listener is open to anyone,
//!   and the random id is what a forger cannot know. The report can only
//!   speak of that message's recipient;
//! - at a webhook (authenticated by the secret in its URL), by Cohort's
//!   Message-ID, else by the id the provider's relay gave the message in
//!   its `250`; a report of the organisation's own that names no message
//!   still suppresses the recipient it names.

use cohort_domain::ids::OrgId;
use cohort_domain::mail::{outbox_id_of_message_id, verp_message_id, ReportKind};
use cohort_domain::secrets::{digest, verify};
use cohort_mail::bounces::{
    self, parse_inbound, unstructured_reply, BounceError, MailReport, SesWebhook,
};
use cohort_mail::inbound_smtp::{InboundMessage, InboundVerdict};
use cohort_store::mail::{
    MailReportRow, MailWebhook, NewMailReport, OutboxMessage, ReportRecorded, WebhookKind,
};
use cohort_store::now_micros;

use super::{Mail, MailError};

/// What one inbound message or webhook request came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeOutcome {
    /// Reports recorded for the first time.
    pub recorded: u64,
    /// Reports received before (a webhook's retry, a DSN sent twice).
    pub duplicates: u64,
    /// Reports that could be tied to no message and named no recipient.
    pub unmatched: u64,
    /// An SNS subscription waits for the merchant to confirm it.
    pub subscription_pending: bool,
}

/// A webhook endpoint just made, with the secret URL path shown this once.
#[derive(Debug, Clone)]
pub struct IssuedWebhook {
    pub webhook: MailWebhook,
    /// `/mail/webhooks/{id}/{secret}`: what the provider posts to.
    pub path: String,
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefusal {
    /// No such endpoint, or the secret does not match: the same answer, so
    /// a guess learns nothing.
    #[error("no such webhook")]
    Unknown,
    /// Mailgun's signature does not match the endpoint's signing key.
    #[error("the webhook signature does not match")]
    BadSignature,
    /// The body is no report of the endpoint's provider; `field` names
    /// what is wrong (`body`, or a path in the payload).
    #[error("{field}: {message}")]
    Unreadable { field: String, message: String },
    #[error(transparent)]
    Mail(#[from] MailError),
}

fn unreadable(error: BounceError) -> WebhookRefusal {
    let field = match &error {
        BounceError::MissingField { field } | BounceError::InvalidField { field, .. } => {
            field.clone()
        }
        _ => "body".to_owned(),
    };
    WebhookRefusal::Unreadable {
        field,
        message: error.to_string(),
    }
}

/// The path of the public route a provider posts to.
pub fn webhook_path(id: &str, secret: &str) -> String {
    format!("/mail/webhooks/{id}/{secret}")
}

impl Mail {
    /// Takes one message from the inbound listener: every report in it
    /// about the message its VERP recipient names.
    pub async fn take_inbound(&self, message: &InboundMessage) -> InboundVerdict {
        match self.inbound(message).await {
            Ok(verdict) => verdict,
            Err(error) => {
                tracing::error!(%error, peer = %message.peer, "an inbound report was not recorded");
                InboundVerdict::Failed("the report could not be recorded, try again later".into())
            }
        }
    }

    async fn inbound(&self, inbound: &InboundMessage) -> Result<InboundVerdict, MailError> {
        let Some(outbox_id) = inbound.recipients.iter().find_map(|r| verp_message_id(r)) else {
            return Ok(InboundVerdict::Rejected(
                "not sent to a Cohort return path".into(),
            ));
        };
        let Some(message) = self
            .db
            .reported_mail(None, Some(outbox_id), None, None)
            .await?
        else {
            return Ok(InboundVerdict::Rejected(format!(
                "bounces+{outbox_id}: no such message"
            )));
        };
        let reports = match parse_inbound(&inbound.raw) {
            Ok(reports) => reports,
            Err(error) => {
                let reply = unstructured_reply(&inbound.raw);
                if reply.auto_reply {
                    return Ok(InboundVerdict::Accepted(
                        "automatic reply, not a bounce: ignored".into(),
                    ));
                }
                // A bounce in free text (or a report that does not read)
                // to a return path is still a failure to deliver; one
                // counts as a soft bounce, several in a row suppress.
                let why = match (&error, reply.subject) {
                    (BounceError::NotAReport, Some(subject)) => {
                        format!("unstructured reply: {subject}")
                    }
                    (BounceError::NotAReport, None) => "unstructured reply".to_owned(),
                    (error, _) => format!("unreadable report: {error}"),
                };
                vec![MailReport {
                    kind: ReportKind::SoftBounce,
                    recipient: None,
                    message_id: None,
                    status: None,
                    diagnostic: Some(why),
                    at: None,
                    provider_message_id: None,
                }]
            }
        };
        if reports.is_empty() {
            return Ok(InboundVerdict::Accepted(
                "nothing to act on (not-spam feedback)".into(),
            ));
        }
        // One recipient per outbox message: a report about another one
        // (an alias expanded, a list) is about this recipient all the same,
        // but a report naming several speaks once.
        let report = reports
            .iter()
            .find(|r| r.recipient.as_deref() == Some(message.recipient.as_str()))
            .unwrap_or(&reports[0])
            .clone();
        let mut outcome = IntakeOutcome::default();
        self.record(
            &message.org_id,
            Some(&message),
            &report,
            "inbound",
            &mut outcome,
        )
        .await?;
        Ok(InboundVerdict::Accepted(if outcome.duplicates > 0 {
            "already recorded".into()
        } else {
            format!("{} recorded", report.kind.as_str().replace('_', " "))
        }))
    }

    /// Records what a report says, tied to `message` when known.
    async fn record(
        &self,
        org: &OrgId,
        message: Option<&OutboxMessage>,
        report: &MailReport,
        source: &str,
        outcome: &mut IntakeOutcome,
    ) -> Result<Option<MailReportRow>, MailError> {
        let recipient = match (message, &report.recipient) {
            (Some(m), _) => m.recipient.clone(),
            (None, Some(r)) => r.clone(),
            (None, None) => {
                outcome.unmatched += 1;
                return Ok(None);
            }
        };
        let reported_at_us = report
            .at
            .and_then(|at| at.timestamp_nanos_opt())
            .map_or_else(now_micros, |ns| ns / 1000);
        let mail_id = message.map(|m| m.id.clone());
        let key_material = format!(
            "{source}\n{}\n{recipient}\n{}\n{}\n{}\n{}",
            mail_id.as_deref().unwrap_or(""),
            report.kind.as_str(),
            report.status.as_deref().unwrap_or(""),
            report.at.map(|at| at.to_rfc3339()).unwrap_or_default(),
            // Without a time of its own, the same wording is the same report.
            if report.at.is_none() {
                report.diagnostic.as_deref().unwrap_or("")
            } else {
                ""
            },
        );
        let new = NewMailReport {
            org_id: org.clone(),
            report_key: digest(&key_material),
            mail_id,
            recipient,
            kind: report.kind,
            status: report.status.clone(),
            diagnostic: report.diagnostic.clone(),
            source: source.to_owned(),
            reported_at_us,
        };
        match self
            .db
            .record_mail_report(&new, self.settings.soft_bounce_limit)
            .await?
        {
            ReportRecorded::New(row) => {
                outcome.recorded += 1;
                Ok(Some(*row))
            }
            ReportRecorded::Duplicate => {
                outcome.duplicates += 1;
                Ok(None)
            }
        }
    }

    /// Takes one request to a webhook endpoint: `id` and `secret` from its
    /// path, the raw body as the provider sent it.
    pub async fn take_webhook(
        &self,
        id: &str,
        secret: &str,
        body: &[u8],
    ) -> Result<IntakeOutcome, WebhookRefusal> {
        let webhook = self
            .db
            .mail_webhook_anywhere(&self.key, id)
            .await
            .map_err(MailError::from)?
            .filter(|w| verify(secret, &w.token_hash))
            .ok_or(WebhookRefusal::Unknown)?;
        let mut outcome = IntakeOutcome::default();
        let mut subscribe_url = None;
        let reports = match webhook.kind {
            WebhookKind::Ses => match bounces::parse_ses(body).map_err(unreadable)? {
                SesWebhook::Reports(reports) => reports,
                SesWebhook::SubscriptionConfirmation {
                    subscribe_url: url, ..
                } => {
                    outcome.subscription_pending = true;
                    subscribe_url = Some(url);
                    Vec::new()
                }
            },
            WebhookKind::SendGrid => bounces::parse_sendgrid(body).map_err(unreadable)?,
            WebhookKind::Postmark => bounces::parse_postmark(body).map_err(unreadable)?,
            WebhookKind::Mailgun => {
                let key = webhook.signing_key.as_deref().unwrap_or_default();
                match bounces::verify_mailgun_webhook(body, key.as_bytes()) {
                    Ok(()) => {}
                    Err(BounceError::BadSignature) => return Err(WebhookRefusal::BadSignature),
                    Err(error) => return Err(unreadable(error)),
                }
                bounces::parse_mailgun(body).map_err(unreadable)?
            }
        };
        let source = webhook.kind.as_str();
        for report in &reports {
            let message = self.webhook_message(&webhook.org_id, report).await?;
            // A report about another address than the message's is not
            // about that message.
            let message =
                message.filter(|m| report.recipient.as_deref().is_none_or(|r| r == m.recipient));
            self.record(
                &webhook.org_id,
                message.as_ref(),
                report,
                source,
                &mut outcome,
            )
            .await?;
        }
        self.db
            .mail_webhook_received(&webhook.id, outcome.recorded, subscribe_url.as_deref())
            .await
            .map_err(MailError::from)?;
        Ok(outcome)
    }

    async fn webhook_message(
        &self,
        org: &OrgId,
        report: &MailReport,
    ) -> Result<Option<OutboxMessage>, MailError> {
        let message_id = report.message_id.as_deref();
        let outbox_id = message_id.and_then(outbox_id_of_message_id);
        let provider_id = report.provider_message_id.as_deref();
        if let Some(found) = self
            .db
            .reported_mail(Some(org), outbox_id, message_id, provider_id)
            .await?
        {
            return Ok(Some(found));
        }
        // SendGrid's event id is the relay's queue id with a suffix
        // (`14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0`).
        let Some(queue_id) = provider_id
            .and_then(|id| id.split_once(".filter"))
            .map(|(q, _)| q)
        else {
            return Ok(None);
        };
        Ok(self
            .db
            .reported_mail(Some(org), None, None, Some(queue_id))
            .await?)
    }

    /// Makes a webhook endpoint for `kind`; Mailgun's needs its signing key.
    pub async fn create_webhook(
        &self,
        org: &OrgId,
        kind: WebhookKind,
        name: &str,
        signing_key: Option<&str>,
    ) -> Result<IssuedWebhook, MailError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(MailError::invalid("name", "1 to 100 characters"));
        }
        let signing_key = signing_key.map(str::trim).filter(|k| !k.is_empty());
        match (kind, signing_key) {
            (WebhookKind::Mailgun, None) => {
                return Err(MailError::invalid(
                    "signing_key",
                    "Mailgun's HTTP webhook signing key is required: every request is checked with it",
                ))
            }
            (WebhookKind::Mailgun, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(MailError::invalid(
                    "signing_key",
                    "only a Mailgun webhook takes a signing key (the others are authenticated by the secret URL)",
                ))
            }
        }
        let secret = cohort_domain::ids::random_token(40);
        let webhook = self
            .db
            .create_mail_webhook(org, &self.key, kind, name, &digest(&secret), signing_key)
            .await?
            .ok_or_else(|| {
                MailError::invalid("name", format!("a webhook named {name:?} exists"))
            })?;
        let path = webhook_path(&webhook.id, &secret);
        Ok(IssuedWebhook { webhook, path })
    }

    pub async fn webhooks(&self, org: &OrgId) -> Result<Vec<MailWebhook>, MailError> {
        Ok(self.db.mail_webhooks(org, &self.key).await?)
    }

    pub async fn delete_webhook(&self, org: &OrgId, id: &str) -> Result<(), MailError> {
        if !self.db.delete_mail_webhook(org, id).await? {
            return Err(MailError::NotFound("webhook"));
        }
        Ok(())
    }

    /// The reports received about one message of `org`.
    pub async fn reports_of(
        &self,
        org: &OrgId,
        mail_id: &str,
    ) -> Result<Vec<MailReportRow>, MailError> {
        Ok(self.db.mail_reports_of(org, mail_id).await?)
    }

    /// Whether the inbound listener takes mail for `address`: a VERP return
    /// path, at the bounce domain when one is set.
    pub fn takes_inbound(&self, address: &str) -> bool {
        if verp_message_id(address).is_none() {
            return false;
        }
        match (&self.settings.bounce_domain, address.rsplit_once('@')) {
            (Some(domain), Some((_, at))) => at.trim_end_matches('>').eq_ignore_ascii_case(domain),
            (None, Some(_)) => true,
            _ => false,
        }
    }
}

impl Mail {
    /// Runs the inbound SMTP listener on `listener` until `stop` resolves:
    /// each message is recorded by [`Mail::take_inbound`] before the
    /// sender hears `250`.
    pub async fn serve_inbound(
        &self,
        listener: tokio::net::TcpListener,
        max_message_bytes: usize,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        use cohort_mail::inbound_smtp::{serve, InboundDelivery, InboundSettings};
        let this = self.clone();
        let settings = InboundSettings {
            hostname: self
                .settings
                .bounce_domain
                .clone()
                .unwrap_or_else(|| "cohort.localhost".into()),
            max_message_bytes,
            max_recipients: 100,
            max_connections: 64,
            idle_timeout: std::time::Duration::from_secs(300),
            accepts: std::sync::Arc::new(move |address: &str| this.takes_inbound(address)),
        };
        let (deliveries, mut received) = tokio::sync::mpsc::channel::<InboundDelivery>(64);
        let this = self.clone();
        let consume = async move {
            while let Some((message, verdict)) = received.recv().await {
                let mail = this.clone();
                tokio::spawn(async move {
                    let answer = mail.take_inbound(&message).await;
                    let _ = verdict.send(answer);
                });
            }
        };
        tokio::select! {
            served = serve(listener, settings, deliveries) => served,
            () = consume => Ok(()),
            () = stop => Ok(()),
        }
    }
}
