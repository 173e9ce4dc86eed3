//! The destinations worker: turns new events of the log into deliveries
//! (each destination from its own cursor, `cohort-store`) and sends due
//! deliveries — signed webhooks and Everflow postbacks — a bounded number
//! at a time, recording every outcome. What to send and whether to retry is
//! decided by `cohort_domain::destinations`; this crate does the IO.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cohort_domain::destinations::everflow::{build_postback, EverflowSettings};
use cohort_domain::destinations::{classify, parse_retry_after, webhook, AttemptOutcome, EVERFLOW_SCHEDULE};
use cohort_store::destinations::{AttemptRecord, Destination, DeliveryStatus, DueDelivery, SecretsKey};
use cohort_store::{Db, StoreError};

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// Idle wait between rounds.
    pub poll: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Per request.
    pub timeout: Duration,
    /// Allows private, loopback and link-local receivers (tests, LANs).
    pub allow_private_addresses: bool,
    /// Delays before retry 1, 2, …; exhausted → `failed`.
    pub schedule: Vec<Duration>,
    /// A claimed delivery is not picked again for this long.
    pub lease: Duration,
    /// Bytes of the response body kept in the log.
    pub excerpt_bytes: usize,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            concurrency: 16,
            timeout: Duration::from_secs(10),
            allow_private_addresses: false,
            schedule: EVERFLOW_SCHEDULE.to_vec(),
            lease: Duration::from_secs(60),
            excerpt_bytes: 512,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The worker.
#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    key: SecretsKey,
    options: Arc<DispatcherOptions>,
    client: reqwest::Client,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub enqueued: u64,
    pub attempted: usize,
}

/// Is this address one an outbound request must not reach by default?
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Resolves names and refuses them when any address is private.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| is_private(a.ip())) {
                return Err(format!("{host} resolves to a private address; refused").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// One request as sent (for the log) and its answer.
struct Sent {
    request: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    excerpt: Option<String>,
    error: Option<String>,
}

impl Dispatcher {
    pub fn new(db: Db, key: SecretsKey, options: DispatcherOptions) -> Result<Self, DispatchError> {
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Cohort/", env!("CARGO_PKG_VERSION")));
        if !options.allow_private_addresses {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self { db, key, options: Arc::new(options), client: builder.build()? })
    }

    /// Starts the worker; it runs until the handle is aborted.
    pub fn spawn(db: Db, key: SecretsKey, options: DispatcherOptions) -> Result<tokio::task::JoinHandle<()>, DispatchError> {
        let dispatcher = Self::new(db, key, options)?;
        Ok(tokio::spawn(async move {
            loop {
                let d = dispatcher.clone();
                match tokio::spawn(async move { d.round().await }).await {
                    Ok(Ok(report)) if report.attempted > 0 || report.enqueued > 0 => continue,
                    Ok(Ok(_)) => tokio::time::sleep(dispatcher.options.poll).await,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "destinations round failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "destinations round panicked; retrying");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        }))
    }

    /// Enqueues from the log, then sends the deliveries due now.
    pub async fn round(&self) -> Result<RoundReport, DispatchError> {
        let enqueued = self.db.enqueue_from_log().await?;
        let lease = i64::try_from(self.options.lease.as_micros()).unwrap_or(i64::MAX);
        let limit = i64::try_from(self.options.concurrency.max(1) * 4).unwrap_or(64);
        let due = self.db.due_deliveries(cohort_store::now_micros(), limit, lease).await?;
        let attempted = due.len();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.options.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in due {
            let this = self.clone();
            let semaphore = semaphore.clone();
            tasks.spawn(async move {
                let _permit = semaphore.acquire().await;
                if let Err(error) = this.deliver(&delivery).await {
                    tracing::warn!(%error, destination = %delivery.destination_id, message_id = %delivery.message_id, "delivery not recorded; retried after its lease");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(RoundReport { enqueued, attempted })
    }

    /// Rounds until nothing is left to enqueue or due now (tests, CLI).
    pub async fn run_until_idle(&self) -> Result<(), DispatchError> {
        while self.round().await? != RoundReport::default() {}
        Ok(())
    }

    async fn deliver(&self, due: &DueDelivery) -> Result<(), DispatchError> {
        let destination = self.db.get_destination(&due.org_id, &self.key, &due.destination_id).await?;
        let message: serde_json::Value = serde_json::from_str(&due.payload).unwrap_or(serde_json::Value::Null);
        let sent = match destination.kind.as_str() {
            "webhook" => self.send_webhook(&destination, due).await,
            "everflow" => {
                let settings = match serde_json::from_value::<EverflowSettings>(destination.settings.clone()) {
                    Ok(mut s) => {
                        if destination.secrets.verification_token.is_some() {
                            s.verification_token = destination.secrets.verification_token.clone();
                        }
                        s
                    }
                    Err(e) => return self.finish(due, DeliveryStatus::Failed, None, format!("invalid settings: {e}")).await,
                };
                // The profile fallback of the transaction id is not wired yet.
                match build_postback(&settings, &message, None) {
                    Ok(postback) => self.send(self.client.get(&postback.url), &postback.url, postback.masked_url).await,
                    Err(skip) => return self.finish(due, DeliveryStatus::Skipped, None, format!("skipped: {skip}")).await,
                }
            }
            other => return self.finish(due, DeliveryStatus::Failed, None, format!("unknown destination kind {other}")).await,
        };
        let attempt = u32::try_from(due.attempts + 1).unwrap_or(u32::MAX);
        let outcome = classify(sent.status, sent.retry_after, &self.options.schedule, attempt, rand::random::<f64>());
        let (status, next, reason) = match outcome {
            AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None, None),
            AttemptOutcome::Retry(delay) => {
                let at = cohort_store::now_micros().saturating_add(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX));
                (DeliveryStatus::Retrying, Some(at), sent.error.clone().or_else(|| sent.status.map(|s| format!("HTTP {s}"))))
            }
            AttemptOutcome::Failed(why) => (DeliveryStatus::Failed, None, Some(match &sent.error {
                Some(e) => format!("{why}: {e}"),
                None => why,
            })),
        };
        tracing::info!(destination = %due.destination_id, message_id = %due.message_id, request = %sent.request, status = ?sent.status, outcome = status.as_str(), "delivery attempt");
        self.db
            .record_attempt(&due.org_id, &due.destination_id, &due.message_id, &AttemptRecord {
                status,
                sent: true,
                next_attempt_at_us: next,
                request: Some(sent.request),
                response_status: sent.status.map(i64::from),
                response_excerpt: sent.excerpt,
                reason,
            })
            .await?;
        Ok(())
    }

    async fn finish(&self, due: &DueDelivery, status: DeliveryStatus, request: Option<String>, reason: String) -> Result<(), DispatchError> {
        tracing::info!(destination = %due.destination_id, message_id = %due.message_id, outcome = %reason, "delivery not sent");
        self.db
            .record_attempt(&due.org_id, &due.destination_id, &due.message_id, &AttemptRecord {
                status,
                sent: false,
                next_attempt_at_us: None,
                request,
                response_status: None,
                response_excerpt: None,
                reason: Some(reason),
            })
            .await?;
        Ok(())
    }

    async fn send_webhook(&self, destination: &Destination, due: &DueDelivery) -> Sent {
        let url = destination.settings.get("url").and_then(|u| u.as_str()).unwrap_or_default().to_owned();
        let timestamp = chrono::Utc::now().timestamp();
        let secrets = destination.secrets.active_signing_secrets(cohort_store::now_micros());
        let signature = webhook::signature_header(&secrets, &due.message_id, timestamp, due.payload.as_bytes());
        let request = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &due.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(due.payload.clone());
        self.send(request, &url, format!("POST {url}")).await
    }

    /// Sends after checking a literal IP host (names are checked by the
    /// resolver), reading at most the excerpt of the answer.
    async fn send(&self, request: reqwest::RequestBuilder, url: &str, shown: String) -> Sent {
        let refused = |error: String| Sent { request: shown.clone(), status: None, retry_after: None, excerpt: None, error: Some(error) };
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => return refused("not an http(s) URL".into()),
        };
        if !self.options.allow_private_addresses {
            let literal = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(is_private) {
                return refused("private address refused (allow_private_addresses is off)".into());
            }
        }
        match request.send().await {
            Err(error) => {
                // Without the URL: an Everflow URL carries the verification token.
                let error = error.without_url();
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                refused(text)
            }
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                let mut body = Vec::new();
                while body.len() < self.options.excerpt_bytes {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                body.truncate(self.options.excerpt_bytes);
                let excerpt = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
                Sent { request: shown, status: Some(status), retry_after, excerpt, error: None }
            }
        }
    }
}
