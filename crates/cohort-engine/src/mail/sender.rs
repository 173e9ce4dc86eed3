//! One round of the outbox worker:
//!
//! 1. put back messages whose worker died mid-send (their lease ended);
//! 2. claim a batch of due messages by lease;
//! 3. route each to its provider (the one it names, the organisation's
//!    default, or the node's transport) and take tokens from that
//!    provider's shared bucket: messages beyond the grant go back unsent,
//!    due when the next token is;
//! 4. check the suppression list at send time;
//! 5. send through each provider's pool, as many at once as it allows, and
//!    record the answers as they come, a group per commit, so a crash
//!    loses at most the answers of one group (those messages are sent
//!    again with the same Message-ID);
//! 6. tell the event log what became of them.
//!
//! What an answer does: `250` → sent; throttling (421, 454, a rate
//! wording) → queued again after the provider's pause, no attempt spent,
//! the provider slowed; another 4xx, a timeout, a lost connection →
//! retried after a backoff, dead after the last attempt; a 5xx → bounced,
//! the address suppressed as a hard bounce. An authentication refusal
//! (530, 534, 535, 538) is the provider's configuration, not the
//! recipient: it is retried, never a bounce.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cohort_domain::ids::OrgId;
use cohort_domain::mail::{
    address_domain, recovered, take_tokens, throttled, verp_return_path, AttemptOutcome,
    OutboxState, RateLimits, THROTTLE_PAUSE_US,
};
use cohort_domain::suppression::SuppressionReason;
use cohort_jobs::worker::{RoundError, Rounds};
use cohort_mail::{
    DkimKey, Envelope, FolderDelivery, MessageBody, OutboxFolder, SmtpOutcome, SmtpSender,
    Unsubscribe,
};
use cohort_store::mail::{AttemptResult, MailProvider, OutboxMessage};
use cohort_store::now_micros;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::providers::smtp_settings;
use super::{Mail, MailError, NodeTransport};

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub reclaimed: u64,
    pub claimed: u64,
    pub sent: u64,
    pub retried: u64,
    pub throttled: u64,
    pub bounced: u64,
    pub dead: u64,
    pub suppressed: u64,
    /// Handed back before an attempt: the provider had no tokens.
    pub held_back: u64,
}

impl RoundReport {
    fn count(&mut self, result: &AttemptResult) {
        match (result.outcome, result.state) {
            (AttemptOutcome::Throttled, _) => self.throttled += 1,
            (_, OutboxState::Sent) => self.sent += 1,
            (_, OutboxState::Bounced) => self.bounced += 1,
            (_, OutboxState::Dead) => self.dead += 1,
            (_, OutboxState::Suppressed) => self.suppressed += 1,
            _ => self.retried += 1,
        }
    }
}

/// Where a message goes.
#[derive(Clone)]
enum Route {
    Folder(Arc<OutboxFolder>),
    Smtp {
        /// The bucket's key and what attempts record: the provider's id,
        /// or `smtp-config` for the node's own server.
        key: String,
        sender: SmtpSender,
        limits: RateLimits,
        connections: u32,
    },
}

impl Route {
    fn name(&self) -> &str {
        match self {
            Route::Folder(_) => "outbox-folder",
            Route::Smtp { key, .. } => key,
        }
    }
}

/// What became of one delivery.
enum Delivery {
    /// The provider's (or the folder's) answer.
    Answered(SmtpOutcome),
    /// Suppressed at send time: no provider was asked.
    Suppressed(SuppressionReason),
    /// The message cannot be built (a header Cohort cannot write): no
    /// retry can help, and it is not the recipient's bounce.
    Unbuildable(String),
}

/// A delivery with when it started.
struct Answer {
    started_at_us: i64,
    delivery: Delivery,
}

/// SMTP reply codes that refuse Cohort's credentials, not the recipient.
fn is_authentication_refusal(answer: &str) -> bool {
    let lower = answer.to_ascii_lowercase();
    ["530", "534", "535", "538"]
        .iter()
        .any(|code| answer.contains(code))
        && (lower.contains("auth") || lower.contains("credential"))
}

impl Mail {
    /// One round of the worker for lease owner `owner`.
    pub async fn send_round(&self, owner: &str) -> Result<RoundReport, MailError> {
        let mut report = RoundReport::default();
        let now = now_micros();
        report.reclaimed = self.db.reclaim_interrupted_mail(now).await?;
        let lease_us = i64::try_from(self.settings.lease.as_micros()).unwrap_or(i64::MAX);
        let claimed = self
            .db
            .claim_mail(owner, now, lease_us, i64::from(self.settings.batch.max(1)))
            .await?;
        report.claimed = claimed.len() as u64;
        if claimed.is_empty() {
            self.log_outcomes().await?;
            return Ok(report);
        }

        let mut routes: HashMap<String, (Route, Vec<OutboxMessage>)> = HashMap::new();
        let mut defaults: HashMap<OrgId, Option<MailProvider>> = HashMap::new();
        let (tx, mut rx) = mpsc::channel::<AttemptResult>(1024);
        for message in claimed {
            let route = match self.route(&message, &mut defaults).await {
                Ok(route) => route,
                Err(reason) => {
                    // No way to send it now (a provider whose settings no
                    // longer build): an attempt spent, retried later.
                    let result = self.result_of(
                        owner,
                        &message,
                        "unrouted",
                        now,
                        Delivery::Answered(SmtpOutcome::Temporary { answer: reason }),
                    );
                    let _ = tx.send(result).await;
                    continue;
                }
            };
            routes
                .entry(route.name().to_owned())
                .or_insert_with(|| (route, Vec::new()))
                .1
                .push(message);
        }

        let mut senders = Vec::new();
        for (_, (route, messages)) in routes {
            let (sendable, held) = self.take_tokens(&route, messages).await?;
            if let Some((ids, at)) = held {
                report.held_back += ids.len() as u64;
                self.db.release_mail(owner, &ids, at).await?;
            }
            senders.push(tokio::spawn(self.clone().send_all(
                owner.to_owned(),
                route,
                sendable,
                tx.clone(),
            )));
        }
        drop(tx);

        // Group commit: whatever answers arrived while the last group was
        // being written go in the next one.
        let mut group = Vec::new();
        while rx.recv_many(&mut group, 256).await > 0 {
            for result in &group {
                report.count(result);
            }
            self.db.record_mail_results(&group).await?;
            group.clear();
        }
        for sender in senders {
            if let Err(e) = sender.await {
                tracing::error!(error = %e, "a provider's sending task failed");
            }
        }
        self.log_outcomes().await?;
        Ok(report)
    }

    /// The route of a message: the provider it names when that still
    /// exists, else its organisation's default, else the node's transport.
    async fn route(
        &self,
        message: &OutboxMessage,
        defaults: &mut HashMap<OrgId, Option<MailProvider>>,
    ) -> Result<Route, String> {
        let named = match &message.provider_id {
            Some(id) => self
                .db
                .mail_provider(&message.org_id, &self.key, id)
                .await
                .map_err(|e| e.to_string())?,
            None => None,
        };
        let provider = match named {
            Some(p) => Some(p),
            None => {
                if !defaults.contains_key(&message.org_id) {
                    let found = self
                        .db
                        .default_mail_provider(&message.org_id, &self.key)
                        .await
                        .map_err(|e| e.to_string())?;
                    defaults.insert(message.org_id.clone(), found);
                }
                defaults.get(&message.org_id).cloned().flatten()
            }
        };
        if let Some(provider) = provider {
            let sender = self.provider_sender(&provider)?;
            return Ok(Route::Smtp {
                key: provider.id.clone(),
                sender,
                limits: provider.limits,
                connections: provider.max_connections,
            });
        }
        match (&self.settings.transport, &self.node_sender) {
            (NodeTransport::Smtp(settings), Some(sender)) => Ok(Route::Smtp {
                key: "smtp-config".into(),
                sender: sender.clone(),
                limits: RateLimits::default(),
                connections: settings.max_connections,
            }),
            (NodeTransport::Folder(dir), _) => {
                Ok(Route::Folder(Arc::new(open_folder(dir).map_err(|e| {
                    format!("outbox folder {}: {e}", dir.display())
                })?)))
            }
            (NodeTransport::Smtp(_), None) => Err("the node's SMTP transport did not start".into()),
        }
    }

    /// The pooled sender of a provider, kept while its settings stay.
    fn provider_sender(&self, provider: &MailProvider) -> Result<SmtpSender, String> {
        let mut cache = self
            .senders
            .lock()
            .map_err(|_| "the sender cache is poisoned".to_owned())?;
        if let Some((version, sender)) = cache.by_provider.get(&provider.id) {
            if *version == provider.updated_at_us {
                return Ok(sender.clone());
            }
        }
        let sender = SmtpSender::new(&smtp_settings(provider, self.settings.smtp_timeout))
            .map_err(|e| e.to_string())?;
        cache.by_provider.insert(
            provider.id.clone(),
            (provider.updated_at_us, sender.clone()),
        );
        Ok(sender)
    }

    /// Splits a route's messages into those its bucket lets go now and
    /// those held back (with when the next token is due).
    async fn take_tokens(
        &self,
        route: &Route,
        mut messages: Vec<OutboxMessage>,
    ) -> Result<(Vec<OutboxMessage>, Option<(Vec<String>, i64)>), MailError> {
        let Route::Smtp { key, limits, .. } = route else {
            return Ok((messages, None));
        };
        let wanted = u32::try_from(messages.len()).unwrap_or(u32::MAX);
        let limits = *limits;
        let now = now_micros();
        let grant = self
            .db
            .with_provider_bucket(key, |state, in_row| {
                let grant = take_tokens(limits, state, wanted, now);
                (grant.state, in_row, grant)
            })
            .await?;
        if grant.granted >= wanted {
            return Ok((messages, None));
        }
        let held: Vec<String> = messages
            .split_off(grant.granted as usize)
            .into_iter()
            .map(|m| m.id)
            .collect();
        Ok((messages, Some((held, grant.next_at_us.max(now)))))
    }

    /// Sends a route's messages, as many at once as the provider allows,
    /// each answer to `results` as it comes.
    async fn send_all(
        self,
        owner: String,
        route: Route,
        messages: Vec<OutboxMessage>,
        results: mpsc::Sender<AttemptResult>,
    ) {
        let connections = match &route {
            Route::Folder(_) => 4,
            Route::Smtp { connections, .. } => (*connections).max(1) as usize,
        };
        let dkim = self.dkim_keys(&messages).await;
        let mut accepted: u32 = 0;
        let mut was_throttled = false;
        let mut answers = futures::stream::iter(messages)
            .map(|message| {
                let route = route.clone();
                let key = dkim
                    .get(&(message.org_id.clone(), domain_of(&message)))
                    .cloned()
                    .flatten();
                let this = self.clone();
                async move {
                    let answer = this.deliver(&route, &message, key.as_ref()).await;
                    (message, answer)
                }
            })
            .buffer_unordered(connections);
        while let Some((message, answer)) = answers.next().await {
            match &answer.delivery {
                Delivery::Answered(SmtpOutcome::Accepted { .. }) => accepted += 1,
                Delivery::Answered(SmtpOutcome::Throttled { .. }) => was_throttled = true,
                _ => {}
            }
            let result = self.result_of(
                &owner,
                &message,
                route.name(),
                answer.started_at_us,
                answer.delivery,
            );
            if results.send(result).await.is_err() {
                return;
            }
        }
        if let Route::Smtp { key, .. } = &route {
            let now = now_micros();
            let outcome = self
                .db
                .with_provider_bucket(key, |state, in_row| {
                    if was_throttled {
                        (throttled(state, now), 0, ())
                    } else {
                        let in_row = in_row + i64::from(accepted);
                        let steps = u32::try_from(in_row).unwrap_or(u32::MAX);
                        let next = recovered(state, steps);
                        let left = if next.slowdown != state.slowdown {
                            in_row % 100
                        } else {
                            in_row
                        };
                        (next, left, ())
                    }
                })
                .await;
            if let Err(e) = outcome {
                tracing::warn!(error = %e, provider = %key, "could not update the provider's bucket");
            }
        }
    }

    /// The DKIM keys of the sending domains the messages are from.
    async fn dkim_keys(
        &self,
        messages: &[OutboxMessage],
    ) -> HashMap<(OrgId, String), Option<DkimKey>> {
        let mut keys = HashMap::new();
        for message in messages {
            let slot = (message.org_id.clone(), domain_of(message));
            if keys.contains_key(&slot) {
                continue;
            }
            let key = match self
                .db
                .sending_domain(&message.org_id, &self.key, &slot.1)
                .await
            {
                Ok(Some(d)) => DkimKey::from_pem(&d.domain, &d.dkim_selector, d.dkim_private_pem)
                    .map_err(|e| tracing::warn!(error = %e, domain = %slot.1, "DKIM key unusable; sending unsigned"))
                    .ok(),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, domain = %slot.1, "could not read the sending domain; sending unsigned");
                    None
                }
            };
            keys.insert(slot, key);
        }
        keys
    }

    /// One message: suppression checked, built, handed to the route.
    async fn deliver(
        &self,
        route: &Route,
        message: &OutboxMessage,
        dkim: Option<&DkimKey>,
    ) -> Answer {
        let started_at_us = now_micros();
        let delivery = self.delivery(route, message, dkim).await;
        Answer {
            started_at_us,
            delivery,
        }
    }

    async fn delivery(
        &self,
        route: &Route,
        message: &OutboxMessage,
        dkim: Option<&DkimKey>,
    ) -> Delivery {
        match self
            .db
            .blocking_suppression(&message.org_id, &message.recipient, message.purpose)
            .await
        {
            Ok(Some(s)) => return Delivery::Suppressed(s.reason),
            Ok(None) => {}
            Err(e) => {
                return Delivery::Answered(SmtpOutcome::Temporary {
                    answer: format!("could not check the suppression list: {e}"),
                })
            }
        }
        let wire = match self.wire(message, dkim) {
            Ok(wire) => wire,
            Err(e) => return Delivery::Unbuildable(format!("the message cannot be built: {e}")),
        };
        Delivery::Answered(match route {
            Route::Smtp { sender, .. } => sender.send(&wire).await,
            Route::Folder(folder) => {
                let folder = folder.clone();
                let id = message.message_id.clone();
                match tokio::task::spawn_blocking(move || folder.deliver(&id, &wire)).await {
                    Ok(Ok(FolderDelivery::Written(path))) => SmtpOutcome::Accepted {
                        answer: format!("written to {}", path.display()),
                    },
                    Ok(Ok(FolderDelivery::AlreadyThere(path))) => SmtpOutcome::Accepted {
                        answer: format!("already in {}", path.display()),
                    },
                    Ok(Err(e)) => SmtpOutcome::Temporary {
                        answer: format!("cannot write to the outbox folder: {e}"),
                    },
                    Err(e) => SmtpOutcome::Temporary {
                        answer: format!("the outbox folder writer failed: {e}"),
                    },
                }
            }
        })
    }

    fn wire(
        &self,
        message: &OutboxMessage,
        dkim: Option<&DkimKey>,
    ) -> Result<cohort_mail::WireMessage, cohort_mail::MessageError> {
        let unsubscribe = match (&message.unsubscribe_https, &message.unsubscribe_mailto) {
            (Some(https), Some(mailto)) => Some(Unsubscribe {
                https: https.clone(),
                mailto: mailto.clone(),
            }),
            _ => None,
        };
        cohort_mail::build(
            &Envelope {
                from: message.from_address.clone(),
                to: message.recipient.clone(),
                return_path: self
                    .settings
                    .bounce_domain
                    .as_deref()
                    .map(|domain| verp_return_path(&message.id, domain)),
                message_id: message.message_id.clone(),
                unsubscribe,
                date: SystemTime::now(),
            },
            &MessageBody {
                subject: message.subject.clone(),
                html: message.html.clone(),
                text: message.text.clone(),
            },
            dkim,
        )
    }

    /// What an answer does to the message.
    fn result_of(
        &self,
        owner: &str,
        message: &OutboxMessage,
        provider: &str,
        started_at_us: i64,
        delivery: Delivery,
    ) -> AttemptResult {
        let now = now_micros();
        let spent = message.attempts + 1;
        let retry_or_dead = || {
            if spent >= message.max_attempts {
                (OutboxState::Dead, now, true, None)
            } else {
                let attempt = u32::try_from(spent).unwrap_or(u32::MAX);
                let delay_us = i64::try_from(self.settings.backoff.delay(attempt).as_micros())
                    .unwrap_or(i64::MAX);
                (
                    OutboxState::Queued,
                    now.saturating_add(delay_us),
                    true,
                    None,
                )
            }
        };
        let (attempt_outcome, answer, (state, next_at, spends, suppress)) = match delivery {
            Delivery::Answered(SmtpOutcome::Accepted { answer }) => (
                AttemptOutcome::Accepted,
                answer,
                (OutboxState::Sent, now, true, None),
            ),
            Delivery::Answered(SmtpOutcome::Throttled { answer }) => (
                AttemptOutcome::Throttled,
                answer,
                (OutboxState::Queued, now + THROTTLE_PAUSE_US, false, None),
            ),
            Delivery::Answered(SmtpOutcome::Temporary { answer }) => {
                (AttemptOutcome::Temporary, answer, retry_or_dead())
            }
            Delivery::Answered(SmtpOutcome::Permanent { answer })
                if is_authentication_refusal(&answer) =>
            {
                (
                    AttemptOutcome::Temporary,
                    format!("the provider refused Cohort's credentials: {answer}"),
                    retry_or_dead(),
                )
            }
            Delivery::Answered(SmtpOutcome::Permanent { answer }) => (
                AttemptOutcome::Permanent,
                answer,
                (
                    OutboxState::Bounced,
                    now,
                    true,
                    Some(SuppressionReason::HardBounce),
                ),
            ),
            Delivery::Suppressed(reason) => (
                AttemptOutcome::Suppressed,
                format!(
                    "the address is suppressed ({}) at send time",
                    reason.as_str()
                ),
                (OutboxState::Suppressed, now, false, None),
            ),
            Delivery::Unbuildable(why) => (
                AttemptOutcome::Permanent,
                why,
                (OutboxState::Dead, now, true, None),
            ),
        };
        AttemptResult {
            id: message.id.clone(),
            org_id: message.org_id.clone(),
            recipient: message.recipient.clone(),
            owner: owner.to_owned(),
            provider: provider.to_owned(),
            started_at_us,
            finished_at_us: now,
            outcome: attempt_outcome,
            answer: Some(answer),
            state,
            next_attempt_at_us: next_at,
            spends_attempt: spends,
            suppress,
        }
    }
}

fn domain_of(message: &OutboxMessage) -> String {
    address_domain(&message.from_address).unwrap_or_default()
}

fn open_folder(dir: &Path) -> std::io::Result<OutboxFolder> {
    OutboxFolder::open(dir)
}

/// The outbox worker as one of `cohort serve`'s loops.
#[derive(Clone)]
pub struct MailRounds {
    mail: Mail,
    owner: String,
}

impl MailRounds {
    pub fn new(mail: Mail) -> Self {
        Self {
            mail,
            owner: format!("mail-{}", cohort_domain::ids::random_token(12)),
        }
    }
}

impl Rounds for MailRounds {
    fn name(&self) -> &'static str {
        "mail-outbox"
    }

    async fn round(&self) -> Result<bool, RoundError> {
        let report = self.mail.send_round(&self.owner).await?;
        if report.claimed > 0 {
            tracing::debug!(?report, "outbox round");
        }
        Ok(report.claimed >= u64::from(self.mail.settings.batch.max(1)))
    }
}
