//! Mail as the application sees it: enqueueing rendered messages in the
//! durable outbox, the worker that sends them through the organisation's
//! providers (or the node's own transport), the providers and sending
//! domains the merchant manages, and what becomes of every message in the
//! event log.
//!
//! - [`Mail`]: the service every edge calls (API, UI, CLI, campaigns);
//! - `providers`: checking a provider's settings, testing a connection;
//! - `sender`: one round of the outbox worker ([`MailRounds`]);
//! - `reports`: bounce and complaint reports from the inbound listener
//!   and the providers' webhooks, and the webhook endpoints;
//! - `events`: the Segment Email spec events a message's outcome and each
//!   report append.

mod events;
mod providers;
mod reports;
mod sender;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cohort_domain::accounts::normalise_email;
use cohort_domain::ids::OrgId;
use cohort_domain::mail::{address_domain, domain_records, normalize_domain, DnsRecord};
use cohort_domain::secrets::SecretsKey;
use cohort_domain::suppression::MailPurpose;
use cohort_jobs::backoff::Backoff;
use cohort_mail::{DkimKey, SmtpSender, SmtpSettings};
use cohort_store::mail::{
    Enqueued, MailAttempt, MailProvider, NewMail, OutboxMessage, OutboxQuery, SendingDomain,
};
use cohort_store::{Db, StoreError};

pub use events::MAIL_SOURCE;
pub use providers::{ProviderInput, ProviderPatch};
pub use reports::{webhook_path, IntakeOutcome, IssuedWebhook, WebhookRefusal};
pub use sender::{MailRounds, RoundReport};

/// Why a mail operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Bad input; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MailError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        MailError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// The transport of a node, for organisations with no provider of their
/// own: the embedded default writes `.eml` files to a folder.
#[derive(Debug, Clone)]
pub enum NodeTransport {
    Folder(PathBuf),
    Smtp(SmtpSettings),
}

/// How the outbox sends (from `[mail]`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The sender when a message names none.
    pub from: String,
    pub transport: NodeTransport,
    /// With a domain, every message's return path is
    /// `bounces+{message id}@{domain}` (VERP), so a bounce names its message.
    pub bounce_domain: Option<String>,
    /// Attempts before a message becomes a dead letter.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Messages claimed per round.
    pub batch: u32,
    /// How long a claim holds: a worker that dies mid-send gives its
    /// messages back after this.
    pub lease: Duration,
    /// Per SMTP command, for the organisations' providers.
    pub smtp_timeout: Duration,
    /// Soft bounces in a row that suppress an address.
    pub soft_bounce_limit: u32,
}

impl MailSettings {
    /// The embedded default: `.eml` files in `dir`.
    pub fn folder(dir: impl Into<PathBuf>, from: &str) -> Self {
        Self {
            from: from.to_owned(),
            transport: NodeTransport::Folder(dir.into()),
            bounce_domain: None,
            max_attempts: 10,
            backoff: Backoff {
                base: Duration::from_secs(60),
                max: Duration::from_secs(4 * 60 * 60),
            },
            batch: 200,
            lease: Duration::from_secs(300),
            smtp_timeout: Duration::from_secs(30),
            soft_bounce_limit: cohort_domain::mail::DEFAULT_SOFT_BOUNCE_LIMIT,
        }
    }
}

/// A rendered message to enqueue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// What it is for (`campaign:cmp_1`): with the recipient, a second
    /// enqueue of the same is the same message.
    pub send_key: String,
    pub to: String,
    /// `None`: the node's `[mail] from`.
    pub from: Option<String>,
    pub purpose: MailPurpose,
    pub body: cohort_mail::MessageBody,
    /// Required on marketing mail (RFC 8058 one-click, and a mailto).
    pub unsubscribe: Option<cohort_mail::Unsubscribe>,
    pub profile_id: Option<String>,
    pub user_id: Option<String>,
    pub campaign_id: Option<String>,
    pub flow_id: Option<String>,
    pub provider_id: Option<String>,
}

/// A sending domain and the records to publish for it.
#[derive(Debug, Clone)]
pub struct DomainSetup {
    pub domain: SendingDomain,
    pub records: Vec<DnsRecord>,
}

/// SMTP senders kept per provider while its settings stay the same, so its
/// pool of connections lives across rounds.
#[derive(Default)]
pub(crate) struct SenderCache {
    by_provider: HashMap<String, (i64, SmtpSender)>,
}

/// The mail service. Cheap to clone.
#[derive(Clone)]
pub struct Mail {
    db: Db,
    key: SecretsKey,
    settings: Arc<MailSettings>,
    senders: Arc<Mutex<SenderCache>>,
    /// The node transport's SMTP sender, built once.
    node_sender: Option<SmtpSender>,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").finish_non_exhaustive()
    }
}

/// Longest subject accepted.
const SUBJECT_MAX_CHARS: usize = 998;

impl Mail {
    pub fn new(db: Db, key: SecretsKey, settings: MailSettings) -> Result<Self, MailError> {
        let node_sender = match &settings.transport {
            NodeTransport::Smtp(smtp) => Some(
                SmtpSender::new(smtp)
                    .map_err(|e| MailError::invalid("mail.smtp", e.to_string()))?,
            ),
            NodeTransport::Folder(_) => None,
        };
        Ok(Self {
            db,
            key,
            settings: Arc::new(settings),
            senders: Arc::default(),
            node_sender,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn settings(&self) -> &MailSettings {
        &self.settings
    }

    /// Commits `outgoing` to the outbox; nothing is sent before it is a
    /// row. The same send key and recipient again is the first message.
    pub async fn enqueue(&self, org: &OrgId, outgoing: &Outgoing) -> Result<Enqueued, MailError> {
        let new = self.checked(org, outgoing).await?;
        Ok(self.db.enqueue_mail(org, &new).await?)
    }

    /// Many at once, in one transaction (a campaign's batch); how many
    /// were new.
    pub async fn enqueue_batch(&self, org: &OrgId, batch: &[Outgoing]) -> Result<u64, MailError> {
        let mut rows = Vec::with_capacity(batch.len());
        for outgoing in batch {
            rows.push(self.checked(org, outgoing).await?);
        }
        Ok(self.db.enqueue_mail_batch(org, &rows).await?)
    }

    /// The outbox row for `outgoing`, its fields checked.
    async fn checked(&self, org: &OrgId, outgoing: &Outgoing) -> Result<NewMail, MailError> {
        let to =
            normalise_email(&outgoing.to).map_err(|e| MailError::invalid("to", e.to_string()))?;
        if to.parse::<lettre::Address>().is_err() {
            return Err(MailError::invalid(
                "to",
                format!("{to:?} is not an address"),
            ));
        }
        let from = outgoing
            .from
            .clone()
            .unwrap_or_else(|| self.settings.from.clone());
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(MailError::invalid(
                "from",
                format!("{from:?} is not an address (name <local@domain> or local@domain)"),
            ));
        }
        let Some(from_domain) = address_domain(&from) else {
            return Err(MailError::invalid("from", "the sender has no domain"));
        };
        let send_key = outgoing.send_key.trim();
        if send_key.is_empty() || send_key.len() > 200 {
            return Err(MailError::invalid("send_key", "1 to 200 characters"));
        }
        let subject = &outgoing.body.subject;
        if subject.trim().is_empty()
            || subject.contains(['\r', '\n'])
            || subject.chars().count() > SUBJECT_MAX_CHARS
        {
            return Err(MailError::invalid(
                "subject",
                format!("one line of 1 to {SUBJECT_MAX_CHARS} characters"),
            ));
        }
        if outgoing.purpose == MailPurpose::Marketing && outgoing.unsubscribe.is_none() {
            return Err(MailError::invalid(
                "unsubscribe",
                "marketing mail carries List-Unsubscribe (RFC 8058): give its URL and mailto",
            ));
        }
        if let Some(provider) = &outgoing.provider_id {
            if self
                .db
                .mail_provider(org, &self.key, provider)
                .await?
                .is_none()
            {
                return Err(MailError::invalid("provider_id", "no such provider"));
            }
        }
        Ok(NewMail {
            send_key: send_key.to_owned(),
            recipient: to,
            purpose: outgoing.purpose,
            from_address: from,
            subject: subject.clone(),
            html: outgoing.body.html.clone(),
            text: outgoing.body.text.clone(),
            unsubscribe_https: outgoing.unsubscribe.as_ref().map(|u| u.https.clone()),
            unsubscribe_mailto: outgoing.unsubscribe.as_ref().map(|u| u.mailto.clone()),
            profile_id: outgoing.profile_id.clone(),
            user_id: outgoing.user_id.clone(),
            campaign_id: outgoing.campaign_id.clone(),
            flow_id: outgoing.flow_id.clone(),
            provider_id: outgoing.provider_id.clone(),
            max_attempts: self.settings.max_attempts,
            message_id_domain: from_domain,
        })
    }

    /// The outbox of `org`, newest first.
    pub async fn messages(
        &self,
        org: &OrgId,
        query: &OutboxQuery<'_>,
    ) -> Result<Vec<OutboxMessage>, MailError> {
        Ok(self.db.mail_messages_page(org, query).await?)
    }

    /// One message with its attempts.
    pub async fn message(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<(OutboxMessage, Vec<MailAttempt>), MailError> {
        let message = self
            .db
            .mail_message(org, id)
            .await?
            .ok_or(MailError::NotFound("message"))?;
        let attempts = self.db.mail_attempts(org, id).await?;
        Ok((message, attempts))
    }

    /// Queues a dead letter again, its attempts renewed.
    pub async fn retry(&self, org: &OrgId, id: &str) -> Result<OutboxMessage, MailError> {
        match self.db.retry_dead_mail(org, id).await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(MailError::NotFound("message")),
            Err(StoreError::Invalid(message)) => Err(MailError::invalid("state", message)),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a sending domain with a fresh DKIM key (RSA 2048); a domain
    /// the organisation has keeps its key. `true` when it was new.
    pub async fn add_domain(
        &self,
        org: &OrgId,
        input: &str,
    ) -> Result<(DomainSetup, bool), MailError> {
        let domain =
            normalize_domain(input).map_err(|e| MailError::invalid("domain", e.to_string()))?;
        if let Some(existing) = self.db.sending_domain(org, &self.key, &domain).await? {
            return Ok((self.setup(existing), false));
        }
        let selector = format!("cohort{}", chrono::Utc::now().format("%Y%m"));
        let name = domain.clone();
        let generated = tokio::task::spawn_blocking(move || DkimKey::generate(&name, &selector))
            .await
            .map_err(|e| MailError::invalid("domain", format!("key generation failed: {e}")))?
            .map_err(|e| MailError::invalid("domain", e.to_string()))?;
        let record = generated
            .record_value()
            .map_err(|e| MailError::invalid("domain", e.to_string()))?;
        let stored = SendingDomain {
            domain: domain.clone(),
            dkim_selector: generated.selector.clone(),
            dkim_private_pem: generated.private_pem().to_owned(),
            dkim_record: record,
            created_at_us: cohort_store::now_micros(),
        };
        let created = self.db.add_sending_domain(org, &self.key, &stored).await?;
        // Two adds at once: the first key stands.
        let kept = self
            .db
            .sending_domain(org, &self.key, &domain)
            .await?
            .ok_or(MailError::NotFound("domain"))?;
        Ok((self.setup(kept), created))
    }

    pub async fn domains(&self, org: &OrgId) -> Result<Vec<DomainSetup>, MailError> {
        Ok(self
            .db
            .sending_domains(org, &self.key)
            .await?
            .into_iter()
            .map(|d| self.setup(d))
            .collect())
    }

    fn setup(&self, domain: SendingDomain) -> DomainSetup {
        let name = format!("{}._domainkey.{}", domain.dkim_selector, domain.domain);
        let records = domain_records(
            &domain.domain,
            &name,
            &domain.dkim_record,
            self.settings.bounce_domain.as_deref(),
        );
        DomainSetup { domain, records }
    }

    /// The providers of `org`, the default first.
    pub async fn providers(&self, org: &OrgId) -> Result<Vec<MailProvider>, MailError> {
        Ok(self.db.mail_providers(org, &self.key).await?)
    }

    pub async fn provider(&self, org: &OrgId, id: &str) -> Result<MailProvider, MailError> {
        self.db
            .mail_provider(org, &self.key, id)
            .await?
            .ok_or(MailError::NotFound("provider"))
    }

    pub async fn delete_provider(&self, org: &OrgId, id: &str) -> Result<(), MailError> {
        if !self.db.delete_mail_provider(org, id).await? {
            return Err(MailError::NotFound("provider"));
        }
        if let Ok(mut cache) = self.senders.lock() {
            cache.by_provider.remove(id);
        }
        Ok(())
    }
}
