//! The destinations worker: turns new events of the log into deliveries
//! (each destination from its own cursor, `cohort-store`) and sends due
//! deliveries — signed webhooks and Everflow postbacks — a bounded number
//! at a time, recording every outcome. What to send and whether to retry is
//! decided by `cohort_domain::destinations`; this module does the IO,
//! through the one outbound policy (`crate::outbound`).

pub mod log_filter;
pub mod manage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cohort_domain::destinations::everflow::{
    build_postback, profile_transaction_id, transaction_id, EverflowSettings,
};
use cohort_domain::destinations::{
    classify, mask_url, parse_retry_after, webhook, AttemptOutcome, DestinationKind,
    EVERFLOW_SCHEDULE,
};
use cohort_store::destinations::{
    AttemptRecord, DeliveryStatus, Destination, DueDelivery, SecretsKey,
};
use cohort_store::{Db, StoreError};

use crate::outbound::{Outbound, OutboundError, OutboundPolicy};

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// Idle wait between rounds.
    pub poll: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries of one destination in flight at once: a destination that
    /// hangs holds at most this many, never the whole worker.
    pub per_destination: usize,
    /// Per request.
    pub timeout: Duration,
    /// Allows private, loopback and link-local receivers (tests, LANs).
    pub allow_private_addresses: bool,
    /// Delays before retry 1, 2, …; exhausted → `failed`.
    pub schedule: Vec<Duration>,
    /// A claimed delivery is not picked again for this long: how long a
    /// delivery in flight when a process dies waits before it is sent
    /// again. Must exceed `timeout`.
    pub lease: Duration,
    /// Bytes of the response body kept in the log.
    pub excerpt_bytes: usize,
    /// Everflow events without a transaction id take the profile's last
    /// one (the projection must run: a delivery waits until the projection
    /// has read its event).
    pub profile_fallback: bool,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            concurrency: 16,
            per_destination: 4,
            timeout: Duration::from_secs(10),
            allow_private_addresses: false,
            schedule: EVERFLOW_SCHEDULE.to_vec(),
            lease: Duration::from_secs(60),
            excerpt_bytes: 512,
            profile_fallback: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] OutboundError),
    #[error("invalid destinations options: {0}")]
    Options(String),
}

/// The worker; also what the admin API sends test conversions with.
#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    key: SecretsKey,
    options: Arc<DispatcherOptions>,
    outbound: Outbound,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub enqueued: u64,
    pub attempted: usize,
}

/// A request as sent, secrets masked: what the delivery log and a test
/// conversion show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestView {
    pub method: String,
    /// Secrets in the URL (`verification_token`, a password) are `***`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl RequestView {
    /// The delivery log's text: `METHOD URL` then one `name: value` a line.
    pub fn to_log(&self) -> String {
        let mut out = format!("{} {}", self.method, self.url);
        for (name, value) in &self.headers {
            out.push_str(&format!("\n{name}: {value}"));
        }
        out
    }
}

/// What a test conversion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestOutcome {
    /// `delivered`, `failed`, `retrying` (would be retried), or `skipped`.
    pub outcome: String,
    /// The exact request, secrets masked; `None` when skipped.
    pub request: Option<RequestView>,
    pub response_status: Option<u16>,
    pub response_excerpt: Option<String>,
    /// Why it was skipped, or the network error.
    pub reason: Option<String>,
}

/// An outcome waiting for the recorder.
struct Recorded {
    org: cohort_domain::ids::OrgId,
    destination_id: String,
    message_id: String,
    record: AttemptRecord,
}

/// Writes outcomes as they come, up to 256 per transaction, until every
/// sender is gone. A batch that cannot be written is retried; a delivery
/// whose outcome is lost is sent again after its lease.
async fn record_outcomes(db: Db, mut rx: tokio::sync::mpsc::UnboundedReceiver<Recorded>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let rows: Vec<(&cohort_domain::ids::OrgId, &str, &str, &AttemptRecord)> = batch
            .iter()
            .map(|r| {
                (
                    &r.org,
                    r.destination_id.as_str(),
                    r.message_id.as_str(),
                    &r.record,
                )
            })
            .collect();
        for attempt in 1..=5 {
            match db.record_attempts(&rows).await {
                Ok(_) => break,
                Err(error) if attempt < 5 => {
                    tracing::warn!(%error, "destinations: recording outcomes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(error) => {
                    tracing::error!(%error, outcomes = rows.len(), "destinations: outcomes not recorded; those deliveries are sent again after their lease")
                }
            }
        }
    }
}

/// The event of a test conversion and where it came from.
#[derive(Debug, Clone)]
pub struct TestEvent {
    /// `given`, `log` or `sample`
    pub source: &'static str,
    pub message: serde_json::Value,
    /// For an event from the log: its time and identities.
    pub people: Option<EventPeople>,
}

/// A sample the destination would send: its first filtered event name,
/// with a test Everflow transaction id and a small order.
pub fn sample_event(destination: &Destination) -> serde_json::Value {
    let event = destination
        .filters
        .events
        .first()
        .cloned()
        .unwrap_or_else(|| "Order Completed".into());
    serde_json::json!({
        "type": "track",
        "event": event,
        "messageId": cohort_domain::ids::new_id("test"),
        "userId": "cohort-test-user",
        "timestamp": cohort_domain::time::format_rfc3339(chrono::Utc::now()),
        "context": {"referrer": {"type": "everflow", "id": "cohort-test-transaction"}, "ip": "203.0.113.10"},
        "properties": {"order_id": "cohort-test-order", "total": "1.00", "currency": "USD",
                        "products": [{"sku": "TEST-SKU", "name": "Test product", "quantity": 1}]},
    })
}

/// A request ready to send, or why there is none.
enum Built {
    Send {
        request: Box<reqwest::RequestBuilder>,
        view: RequestView,
    },
    Skip(String),
    Invalid(String),
}

/// The identities and time of an event, for the profile fallback.
#[derive(Debug, Clone, Default)]
pub struct EventPeople {
    pub timestamp_us: i64,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
}

/// The answer to one request.
struct Sent {
    status: Option<u16>,
    retry_after: Option<Duration>,
    excerpt: Option<String>,
    error: Option<String>,
}

impl Dispatcher {
    pub fn new(db: Db, key: SecretsKey, options: DispatcherOptions) -> Result<Self, DispatchError> {
        if options.lease <= options.timeout {
            return Err(DispatchError::Options(format!(
                "the lease ({:?}) must be longer than the request timeout ({:?}), or a slow delivery would be sent twice",
                options.lease, options.timeout
            )));
        }
        let policy = OutboundPolicy {
            allow_private_addresses: options.allow_private_addresses,
        };
        let outbound = Outbound::new(policy, options.timeout, None)?;
        Ok(Self {
            db,
            key,
            options: Arc::new(options),
            outbound,
        })
    }

    /// The key destination secrets are encrypted with.
    pub fn key(&self) -> &SecretsKey {
        &self.key
    }

    pub fn options(&self) -> &DispatcherOptions {
        &self.options
    }

    /// Starts the worker; it runs until the handle is aborted.
    pub fn spawn(
        db: Db,
        key: SecretsKey,
        options: DispatcherOptions,
    ) -> Result<tokio::task::JoinHandle<()>, DispatchError> {
        let dispatcher = Self::new(db, key, options)?;
        Ok(tokio::spawn(dispatcher.run()))
    }

    /// The worker loop: enqueue new events, claim due deliveries while
    /// there is room — at most `concurrency` in flight, `per_destination`
    /// of one destination — and send each in its own task, so a slow
    /// receiver holds only its own deliveries.
    pub async fn run(self) {
        let (_keep, stop) = tokio::sync::watch::channel(false);
        self.run_until(stop).await;
    }

    /// [`Dispatcher::run`] until `stop` turns true: then nothing new is
    /// claimed and the requests in flight are finished and recorded (each
    /// within the request timeout) before it returns.
    pub async fn run_until(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let total = self.options.concurrency.max(1);
        let per = self.options.per_destination.clamp(1, total);
        let lease = i64::try_from(self.options.lease.as_micros()).unwrap_or(i64::MAX);
        let mut in_flight: HashMap<String, usize> = HashMap::new();
        let mut tasks: tokio::task::JoinSet<String> = tokio::task::JoinSet::new();
        // Outcomes are written by one recorder, many per transaction: on
        // SQLite a commit per delivery made concurrent deliveries queue for
        // the write lock.
        let (record_tx, record_rx) = tokio::sync::mpsc::unbounded_channel::<Recorded>();
        let recorder = tokio::spawn(record_outcomes(self.db.clone(), record_rx));
        let finished = |in_flight: &mut HashMap<String, usize>,
                        done: Result<String, tokio::task::JoinError>| {
            if let Ok(id) = done {
                if let Some(n) = in_flight.get_mut(&id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        in_flight.remove(&id);
                    }
                }
            }
        };
        loop {
            while let Some(done) = tasks.try_join_next() {
                finished(&mut in_flight, done);
            }
            if *stop.borrow() {
                while tasks.join_next().await.is_some() {}
                drop(record_tx);
                let _ = recorder.await;
                return;
            }
            let mut claimed = 0;
            // The due queue cannot fill the free slots: time to enqueue more.
            let mut short = false;
            if tasks.len() < total {
                let saturated: Vec<String> = in_flight
                    .iter()
                    .filter(|(_, n)| **n >= per)
                    .map(|(id, _)| id.clone())
                    .collect();
                let now = cohort_store::now_micros();
                let room = i64::try_from((total - tasks.len()) * 2).unwrap_or(64);
                match self.db.due_candidates(now, room, &saturated).await {
                    Ok(candidates) => {
                        short = (candidates.len() as i64) < room;
                        // Choose within the caps, then claim them in one transaction.
                        let mut chosen = Vec::new();
                        let mut planned: HashMap<String, usize> = HashMap::new();
                        for due in candidates {
                            if tasks.len() + chosen.len() >= total {
                                break;
                            }
                            let n = in_flight.get(&due.destination_id).copied().unwrap_or(0)
                                + planned.get(&due.destination_id).copied().unwrap_or(0);
                            if n >= per {
                                continue;
                            }
                            *planned.entry(due.destination_id.clone()).or_default() += 1;
                            chosen.push(due);
                        }
                        let claimed_now = match self.db.claim_deliveries(chosen, now, lease).await {
                            Ok(c) => c,
                            Err(error) => {
                                tracing::warn!(%error, "destinations: claim failed");
                                Vec::new()
                            }
                        };
                        for due in claimed_now {
                            *in_flight.entry(due.destination_id.clone()).or_default() += 1;
                            claimed += 1;
                            let this = self.clone();
                            let record_tx = record_tx.clone();
                            tasks.spawn(async move {
                                let id = due.destination_id.clone();
                                // Its own task: a panic is contained and the slot freed.
                                let outcome = tokio::spawn(async move {
                                    match this.attempt(&due).await {
                                        Ok(record) => {
                                            let _ = record_tx.send(Recorded { org: due.org_id, destination_id: due.destination_id, message_id: due.message_id, record });
                                        }
                                        Err(error) => {
                                            tracing::warn!(%error, destination = %due.destination_id, message_id = %due.message_id, "delivery failed before sending; retried after its lease");
                                        }
                                    }
                                })
                                .await;
                                if outcome.is_err() {
                                    tracing::error!(destination = %id, "a delivery panicked; retried after its lease");
                                }
                                id
                            });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "destinations: reading due deliveries failed; retrying")
                    }
                }
            }
            // Enqueue one bounded step (a batch per destination) only when
            // the queue runs short, so that a backlog never starves sending
            // of the database.
            let mut enqueued = false;
            if short {
                match self.db.enqueue_step().await {
                    Ok((n, more)) => enqueued = n > 0 || more,
                    Err(error) => tracing::warn!(%error, "destinations: enqueue failed; retrying"),
                }
            }
            if tasks.len() >= total {
                // Full: wait for a slot.
                tokio::select! {
                    Some(done) = tasks.join_next() => finished(&mut in_flight, done),
                    _ = stop.changed() => {}
                }
            } else if !enqueued && claimed == 0 {
                tokio::select! {
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => finished(&mut in_flight, done),
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(self.options.poll) => {}
                }
            }
        }
    }

    /// Enqueues from the log, then sends the deliveries due now and waits
    /// for them (tests and the CLI; the server uses [`Dispatcher::run`]).
    pub async fn round(&self) -> Result<RoundReport, DispatchError> {
        let enqueued = self.db.enqueue_from_log().await?;
        let lease = i64::try_from(self.options.lease.as_micros()).unwrap_or(i64::MAX);
        let limit = i64::try_from(self.options.concurrency.max(1) * 4).unwrap_or(64);
        let due = self
            .db
            .due_deliveries(cohort_store::now_micros(), limit, lease)
            .await?;
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
        Ok(RoundReport {
            enqueued,
            attempted,
        })
    }

    /// Rounds until nothing is left to enqueue or due now (tests, CLI).
    pub async fn run_until_idle(&self) -> Result<(), DispatchError> {
        while self.round().await? != RoundReport::default() {}
        Ok(())
    }

    /// The profile's last Everflow transaction id for an event without
    /// one, within the destination's attribution window.
    pub async fn profile_transaction_id(
        &self,
        org: &cohort_domain::ids::OrgId,
        settings: &EverflowSettings,
        people: &EventPeople,
    ) -> Result<Option<String>, StoreError> {
        use cohort_domain::profile::Identity;
        let mut identities = Vec::new();
        identities.extend(
            people
                .user_id
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Identity::user),
        );
        identities.extend(
            people
                .email
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Identity::email),
        );
        identities.extend(
            people
                .anonymous_id
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Identity::anonymous),
        );
        let found = self.db.profile_ef_transaction_id(org, &identities).await?;
        Ok(found.and_then(|(value, at)| {
            profile_transaction_id(
                Some(&value),
                at,
                people.timestamp_us,
                settings.attribution_window_days,
            )
        }))
    }

    /// The settings of an Everflow destination, its verification token
    /// taken from the secrets.
    fn everflow_settings(destination: &Destination) -> Result<EverflowSettings, String> {
        let mut settings = serde_json::from_value::<EverflowSettings>(destination.settings.clone())
            .map_err(|e| format!("invalid settings: {e}"))?;
        if destination.secrets.verification_token.is_some() {
            settings.verification_token = destination.secrets.verification_token.clone();
        }
        Ok(settings)
    }

    /// The request for one event (`payload` is the event JSON as stored).
    fn build(
        &self,
        destination: &Destination,
        message_id: &str,
        payload: &str,
        profile_tid: Option<&str>,
    ) -> Built {
        match destination.kind {
            DestinationKind::Webhook => {
                let url = destination
                    .settings
                    .get("url")
                    .and_then(|u| u.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let timestamp = chrono::Utc::now().timestamp();
                let secrets = destination
                    .secrets
                    .active_signing_secrets(cohort_store::now_micros());
                let signature =
                    webhook::signature_header(&secrets, message_id, timestamp, payload.as_bytes());
                let headers = vec![
                    ("content-type".to_owned(), "application/json".to_owned()),
                    ("webhook-id".to_owned(), message_id.to_owned()),
                    ("webhook-timestamp".to_owned(), timestamp.to_string()),
                    ("webhook-signature".to_owned(), signature),
                ];
                let mut request = self
                    .outbound
                    .request(reqwest::Method::POST, &url)
                    .body(payload.to_owned());
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                let view = RequestView {
                    method: "POST".into(),
                    url: mask_url(&url),
                    headers,
                    body: Some(payload.to_owned()),
                };
                Built::Send {
                    request: Box::new(request),
                    view,
                }
            }
            DestinationKind::Everflow => {
                let settings = match Self::everflow_settings(destination) {
                    Ok(s) => s,
                    Err(e) => return Built::Invalid(e),
                };
                let message: serde_json::Value =
                    serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
                match build_postback(&settings, &message, profile_tid) {
                    Ok(postback) => {
                        let view = RequestView {
                            method: "GET".into(),
                            url: mask_url(&postback.masked_url),
                            headers: Vec::new(),
                            body: None,
                        };
                        Built::Send {
                            request: Box::new(
                                self.outbound.request(reqwest::Method::GET, &postback.url),
                            ),
                            view,
                        }
                    }
                    Err(skip) => Built::Skip(format!("skipped: {skip}")),
                }
            }
        }
    }

    /// Whether an Everflow event needs the profile fallback: mapped, and
    /// without a transaction id of its own.
    fn wants_profile(destination: &Destination, payload: &str) -> Option<EverflowSettings> {
        if destination.kind != DestinationKind::Everflow {
            return None;
        }
        let settings = Self::everflow_settings(destination).ok()?;
        let message: serde_json::Value = serde_json::from_str(payload).ok()?;
        let event = message.get("event").and_then(|e| e.as_str())?;
        (settings.event_mapping.contains_key(event) && transaction_id(&message, None).is_none())
            .then_some(settings)
    }

    /// One attempt, recorded at once (rounds, tests).
    async fn deliver(&self, due: &DueDelivery) -> Result<(), DispatchError> {
        let record = self.attempt(due).await?;
        self.db
            .record_attempt(&due.org_id, &due.destination_id, &due.message_id, &record)
            .await?;
        Ok(())
    }

    /// One attempt: sends (or decides not to) and says what to record.
    async fn attempt(&self, due: &DueDelivery) -> Result<AttemptRecord, DispatchError> {
        let destination = self
            .db
            .get_destination(&due.org_id, &self.key, &due.destination_id)
            .await?;
        let mut profile_tid = None;
        if self.options.profile_fallback {
            if let Some(settings) = Self::wants_profile(&destination, &due.payload) {
                let (projected, _) = self.db.projection_position().await?;
                if projected < due.seq {
                    // The profile may not know this visitor's click yet.
                    return Ok(AttemptRecord {
                        status: DeliveryStatus::Pending,
                        sent: false,
                        next_attempt_at_us: Some(cohort_store::now_micros() + 500_000),
                        request: None,
                        response_status: None,
                        response_excerpt: None,
                        reason: Some(
                            "waiting for the profile projection (transaction id fallback)".into(),
                        ),
                    });
                }
                let people = EventPeople {
                    timestamp_us: due.timestamp_us,
                    user_id: due.user_id.clone(),
                    anonymous_id: due.anonymous_id.clone(),
                    email: due.email.clone(),
                };
                profile_tid = self
                    .profile_transaction_id(&due.org_id, &settings, &people)
                    .await?;
            }
        }
        let (request, view) = match self.build(
            &destination,
            &due.message_id,
            &due.payload,
            profile_tid.as_deref(),
        ) {
            Built::Send { request, view } => (request, view),
            Built::Skip(reason) => return Ok(Self::not_sent(due, DeliveryStatus::Skipped, reason)),
            Built::Invalid(reason) => {
                return Ok(Self::not_sent(due, DeliveryStatus::Failed, reason))
            }
        };
        let sent = self.send(*request).await;
        let attempt = u32::try_from(due.attempts + 1).unwrap_or(u32::MAX);
        let outcome = classify(
            sent.status,
            sent.retry_after,
            &self.options.schedule,
            attempt,
            rand::random::<f64>(),
        );
        let (status, next, reason) = match outcome {
            AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None, None),
            AttemptOutcome::Retry(delay) => {
                let at = cohort_store::now_micros()
                    .saturating_add(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX));
                (
                    DeliveryStatus::Retrying,
                    Some(at),
                    sent.error
                        .clone()
                        .or_else(|| sent.status.map(|s| format!("HTTP {s}"))),
                )
            }
            AttemptOutcome::Failed(why) => (
                DeliveryStatus::Failed,
                None,
                Some(match &sent.error {
                    Some(e) => format!("{why}: {e}"),
                    None => why,
                }),
            ),
        };
        tracing::info!(destination = %due.destination_id, message_id = %due.message_id, request = %view.url, status = ?sent.status, outcome = status.as_str(), "delivery attempt");
        Ok(AttemptRecord {
            status,
            sent: true,
            next_attempt_at_us: next,
            request: Some(view.to_log()),
            response_status: sent.status.map(i64::from),
            response_excerpt: sent.excerpt,
            reason,
        })
    }

    fn not_sent(due: &DueDelivery, status: DeliveryStatus, reason: String) -> AttemptRecord {
        tracing::info!(destination = %due.destination_id, message_id = %due.message_id, outcome = %reason, "delivery not sent");
        AttemptRecord {
            status,
            sent: false,
            next_attempt_at_us: None,
            request: None,
            response_status: None,
            response_excerpt: None,
            reason: Some(reason),
        }
    }

    /// The event a test conversion sends: the one given, the one with
    /// `message_id` in the log, the newest one in the log the destination's
    /// filters match, or a built-in sample. `Ok(None)`: no event has that
    /// `message_id`.
    pub async fn test_event(
        &self,
        org: &cohort_domain::ids::OrgId,
        destination: &Destination,
        given: Option<serde_json::Value>,
        message_id: Option<&str>,
    ) -> Result<Option<TestEvent>, StoreError> {
        use cohort_store::events::EventQuery;
        if let Some(message) = given {
            return Ok(Some(TestEvent {
                source: "given",
                message,
                people: None,
            }));
        }
        let stored = match message_id {
            Some(id) => {
                let query = EventQuery {
                    message_id: Some(id.to_owned()),
                    limit: 1,
                    ..Default::default()
                };
                match self.db.query_events(org, &query).await?.into_iter().next() {
                    Some(e) => Some(e),
                    None => return Ok(None),
                }
            }
            None => {
                let f = &destination.filters;
                let names: Vec<Option<String>> = if f.events.is_empty() {
                    vec![None]
                } else {
                    f.events.iter().cloned().map(Some).collect()
                };
                let types: Vec<Option<String>> = if f.types.is_empty() {
                    vec![None]
                } else {
                    f.types.iter().cloned().map(Some).collect()
                };
                let mut best: Option<cohort_store::events::StoredEvent> = None;
                for name in &names {
                    for kind in &types {
                        let query = EventQuery {
                            event: name.clone(),
                            message_type: kind.clone(),
                            newest_first: true,
                            limit: 1,
                            ..Default::default()
                        };
                        if let Some(e) = self.db.query_events(org, &query).await?.into_iter().next()
                        {
                            if best.as_ref().is_none_or(|b| e.seq > b.seq) {
                                best = Some(e);
                            }
                        }
                    }
                }
                best
            }
        };
        Ok(Some(match stored {
            Some(e) => TestEvent {
                source: "log",
                message: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
                people: Some(EventPeople {
                    timestamp_us: e.timestamp_us,
                    user_id: e.user_id,
                    anonymous_id: e.anonymous_id,
                    email: e.email,
                }),
            },
            None => TestEvent {
                source: "sample",
                message: sample_event(destination),
                people: None,
            },
        }))
    }

    /// Sends a test conversion of `event` (see [`Dispatcher::test_event`]);
    /// an Everflow event from the log may take its profile's transaction id.
    pub async fn test_conversion(
        &self,
        org: &cohort_domain::ids::OrgId,
        destination: &Destination,
        event: &TestEvent,
    ) -> Result<TestOutcome, StoreError> {
        let mut profile_tid = None;
        if let (Some(people), Some(settings)) = (
            &event.people,
            Self::wants_profile(destination, &event.message.to_string()),
        ) {
            profile_tid = self.profile_transaction_id(org, &settings, people).await?;
        }
        Ok(self
            .send_test(destination, &event.message, profile_tid.as_deref())
            .await)
    }

    /// Sends a test: the request a delivery of `message` would make, sent
    /// now, with the answer; nothing is written to the delivery log.
    /// `profile_tid` stands in for a missing Everflow transaction id.
    pub async fn send_test(
        &self,
        destination: &Destination,
        message: &serde_json::Value,
        profile_tid: Option<&str>,
    ) -> TestOutcome {
        let message_id = message
            .get("messageId")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| cohort_domain::ids::new_id("test"));
        let payload = message.to_string();
        let (request, view) = match self.build(destination, &message_id, &payload, profile_tid) {
            Built::Send { request, view } => (request, view),
            Built::Skip(reason) => {
                return TestOutcome {
                    outcome: "skipped".into(),
                    request: None,
                    response_status: None,
                    response_excerpt: None,
                    reason: Some(reason),
                }
            }
            Built::Invalid(reason) => {
                return TestOutcome {
                    outcome: "failed".into(),
                    request: None,
                    response_status: None,
                    response_excerpt: None,
                    reason: Some(reason),
                }
            }
        };
        let sent = self.send(*request).await;
        let outcome = match classify(
            sent.status,
            sent.retry_after,
            &self.options.schedule,
            1,
            0.5,
        ) {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry(_) => "retrying",
            AttemptOutcome::Failed(_) => "failed",
        };
        TestOutcome {
            outcome: outcome.into(),
            request: Some(view),
            response_status: sent.status,
            response_excerpt: sent.excerpt,
            reason: sent.error.or_else(|| {
                sent.status
                    .filter(|s| !(200..300).contains(s))
                    .map(|s| format!("HTTP {s}"))
            }),
        }
    }

    /// Sends under the outbound policy, reading at most the excerpt of the
    /// answer.
    async fn send(&self, request: reqwest::RequestBuilder) -> Sent {
        match self.outbound.send(request).await {
            // Transport errors carry no URL: an Everflow URL holds the
            // verification token.
            Err(error) => Sent {
                status: None,
                retry_after: None,
                excerpt: None,
                error: Some(error.to_string()),
            },
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
                let excerpt =
                    (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
                Sent {
                    status: Some(status),
                    retry_after,
                    excerpt,
                    error: None,
                }
            }
        }
    }
}
