//! The no-plugin worker: for each connected REST installation it reads the
//! store's currency, registers the webhooks (once: existing ones with the
//! same topic and delivery URL are kept), pulls the history when a
//! `sync_store` command is pending, and pulls what changed since the
//! high-water marks every `reconcile_interval` so a missed webhook is
//! caught.
//!
//! The history pull is a sync run (the plugin's runs' table and progress):
//! page N of a resource is batch `seq = N - 1`, counted once, so a pull
//! interrupted by an error or a crash resumes at the first page not yet
//! counted (for a resource that was finished, that page is past the end:
//! one empty answer, nothing counted). Every page goes through the one
//! resource intake.
//!
//! Several nodes share the work through leases on the connection row
//! (`Db::claim_rest_work`); a lease is extended after every page.

use std::time::Duration;

use cohort_domain::connect::CommandStatus;
use cohort_domain::ids::{random_token, SourceId};
use cohort_domain::secrets::SecretsKey;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::connect::Ack;
use cohort_store::now_micros;
use cohort_store::woocommerce_rest::{RestConnection, RestWork, REST_RESOURCES};
use cohort_store::writer::EventWriter;
use cohort_store::Db;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::client::{ClientError, WooClient};
use super::WEBHOOK_TOPICS;
use crate::intake::{store_resources, IntakeError};
use crate::outbound::{Outbound, OutboundError, OutboundPolicy};

#[derive(Debug, Clone)]
pub struct RestWorkerOptions {
    /// Idle wait between rounds.
    pub poll_interval: Duration,
    /// How often each store's changes are pulled.
    pub reconcile_interval: Duration,
    /// How long a claimed connection stays claimed without news.
    pub lease: Duration,
    /// Per request to the store.
    pub timeout: Duration,
    /// After an error, the connection waits this long before a new try.
    pub retry_after: Duration,
    /// What the stores may be (private addresses refused unless allowed).
    pub outbound: OutboundPolicy,
}

impl Default for RestWorkerOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
            retry_after: Duration::from_secs(60),
            outbound: OutboundPolicy::PUBLIC_ONLY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("storage: {0}")]
    Store(#[from] cohort_store::StoreError),
    #[error("the event log is busy or unavailable")]
    Intake,
    #[error("the lease was lost to another worker")]
    LeaseLost,
}

fn resource_topic(resource: &str) -> &'static str {
    match resource {
        "products" => "product.updated",
        "customers" => "customer.updated",
        _ => "order.updated",
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[derive(Clone)]
pub struct RestWorker {
    db: Db,
    /// Every page goes through the one resource intake into the log.
    writer: EventWriter,
    /// Opens the stores' REST keys.
    key: SecretsKey,
    http: Outbound,
    options: RestWorkerOptions,
    owner: String,
}

impl RestWorker {
    pub fn new(
        db: Db,
        writer: EventWriter,
        key: SecretsKey,
        options: RestWorkerOptions,
    ) -> Result<Self, OutboundError> {
        let http = Outbound::new(options.outbound, options.timeout, None)?;
        Ok(Self {
            db,
            writer,
            key,
            http,
            options,
            owner: format!("wrk_{}", random_token(16)),
        })
    }

    /// Rounds until `stop` turns true.
    pub async fn run_until(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let busy = match self.round().await {
                Ok(busy) => busy,
                Err(error) => {
                    tracing::warn!(%error, "WooCommerce REST worker round failed");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(self.options.poll_interval) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Claims one connection with work and does it. `true`: there was work.
    pub async fn round(&self) -> Result<bool, cohort_store::StoreError> {
        let now = now_micros();
        let Some(work) = self
            .db
            .claim_rest_work(&self.owner, now, micros(self.options.lease))
            .await?
        else {
            return Ok(false);
        };
        let outcome = self.work(&work).await;
        let id = &work.installation_id;
        match outcome {
            Ok(()) => {
                self.db
                    .release_rest_lease(id, &self.owner, now_micros(), None)
                    .await?
            }
            Err(error) => {
                tracing::warn!(installation = %id, %error, "WooCommerce REST pull failed; retrying later");
                let retry = now_micros().saturating_add(micros(self.options.retry_after));
                self.db
                    .release_rest_lease(id, &self.owner, retry, Some(&error.to_string()))
                    .await?;
            }
        }
        Ok(true)
    }

    /// Rounds until no connection has work left (tests and benches).
    pub async fn run_until_idle(&self) -> Result<(), cohort_store::StoreError> {
        while self.round().await? {}
        Ok(())
    }

    async fn keep_lease(&self, id: &str) -> Result<(), WorkError> {
        let until = now_micros().saturating_add(micros(self.options.lease));
        if self.db.extend_rest_lease(id, &self.owner, until).await? {
            Ok(())
        } else {
            Err(WorkError::LeaseLost)
        }
    }

    async fn work(&self, work: &RestWork) -> Result<(), WorkError> {
        let db = &self.db;
        let Some(mut conn) = db.rest_connection(&self.key, &work.installation_id).await? else {
            return Ok(());
        };
        let client = WooClient::new(
            self.http.clone(),
            &conn.store_url,
            &conn.consumer_key,
            &conn.consumer_secret,
        );
        if conn.currency.is_none() {
            let currency = client.currency().await?;
            db.set_rest_currency(&conn.installation_id, &currency)
                .await?;
            conn.currency = Some(currency);
        }
        if conn.webhooks_registered_at.is_none() {
            self.register_webhooks(&client, &conn).await?;
        }
        let reconcile_at = now_micros().saturating_add(micros(self.options.reconcile_interval));
        if let Some(command) = &work.sync_command {
            self.pull_history(&client, &conn, command).await?;
            db.finish_rest_pull(&conn.installation_id, reconcile_at)
                .await?;
        } else if conn.next_reconcile_at.is_none_or(|t| t <= now_micros()) {
            self.reconcile(&client, &conn).await?;
            db.finish_rest_pull(&conn.installation_id, reconcile_at)
                .await?;
        }
        Ok(())
    }

    async fn register_webhooks(
        &self,
        client: &WooClient,
        conn: &RestConnection,
    ) -> Result<(), WorkError> {
        let delivery_url = format!(
            "{}/hooks/woocommerce/{}",
            conn.cohort_url, conn.installation_id
        );
        let existing = client.webhooks().await?;
        let mut ids = Map::new();
        for topic in WEBHOOK_TOPICS {
            let found = existing
                .iter()
                .find(|(t, url, _)| t == topic && *url == delivery_url)
                .map(|(_, _, id)| *id);
            let id = match found {
                Some(id) => id,
                None => {
                    client
                        .create_webhook(topic, &delivery_url, &conn.webhook_secret)
                        .await?
                }
            };
            ids.insert(topic.to_owned(), json!(id));
            self.keep_lease(&conn.installation_id).await?;
        }
        self.db
            .set_rest_webhooks(&conn.installation_id, &Value::Object(ids).to_string())
            .await?;
        Ok(())
    }

    /// Stores one page through the intake; returns (accepted, rejected).
    async fn store_page(
        &self,
        conn: &RestConnection,
        resource: &str,
        items: &[Value],
    ) -> Result<(i64, i64), WorkError> {
        let source = SourceId::from_stored(&conn.source_id);
        let stored = store_resources(
            &self.writer,
            &conn.org_id,
            &source,
            resource_topic(resource),
            items,
            conn.currency.as_deref(),
        )
        .await
        .map_err(|e| match e {
            IntakeError::Invalid { .. } | IntakeError::Overloaded | IntakeError::Unavailable => {
                WorkError::Intake
            }
        })?;
        for (index, field, message) in &stored.rejected {
            tracing::warn!(installation = %conn.installation_id, resource, index, field, message, "item rejected by the WooCommerce parser");
        }
        if let Some(newest) = stored.newest_modified_us {
            self.db
                .raise_rest_high_water(&conn.installation_id, resource, newest)
                .await?;
        }
        Ok((stored.accepted, stored.rejected.len() as i64))
    }

    async fn pull_history(
        &self,
        client: &WooClient,
        conn: &RestConnection,
        command: &str,
    ) -> Result<(), WorkError> {
        let db = &self.db;
        let resources: Vec<String> = REST_RESOURCES.iter().map(|r| (*r).to_owned()).collect();
        let (run, resumed) = db
            .start_sync_run(
                &conn.org_id,
                &conn.installation_id,
                Some(command),
                &resources,
            )
            .await?;
        if resumed {
            tracing::info!(installation = %conn.installation_id, run = %run.id, "resuming a WooCommerce history pull");
        }
        for resource in REST_RESOURCES {
            let next_seq = run.progress.get(resource).map(|p| p.next_seq).unwrap_or(0);
            let mut page = u32::try_from(next_seq).unwrap_or(0).saturating_add(1);
            loop {
                let fetched = client.page(resource, page, None).await?;
                if fetched.items.is_empty() && page > fetched.total_pages {
                    // Resumed after this resource's last page: it was done.
                    break;
                }
                let (accepted, rejected) = self.store_page(conn, resource, &fetched.items).await?;
                db.record_sync_batch(
                    &run.id,
                    resource,
                    i64::from(page) - 1,
                    fetched.items.len() as i64,
                    accepted,
                    rejected,
                )
                .await?;
                self.keep_lease(&conn.installation_id).await?;
                if page >= fetched.total_pages {
                    break;
                }
                page += 1;
            }
        }
        let finished = db
            .get_sync_run(&conn.org_id, &conn.installation_id, &run.id)
            .await?
            .ok_or_else(|| cohort_store::StoreError::NotFound("sync run".into()))?;
        let mut counts = Map::new();
        for (resource, progress) in &finished.progress {
            counts.insert(resource.clone(), json!(progress.accepted));
        }
        let counts = Value::Object(counts).to_string();
        db.complete_sync_run(&conn.org_id, &conn.installation_id, &run.id, &counts)
            .await?;
        let ack = Ack {
            status: CommandStatus::Done,
            started_at: Some(finished.started_at),
            finished_at: Some(now_micros()),
            counts: Some(counts),
            error: None,
        };
        db.ack_command(&conn.org_id, &conn.installation_id, command, &ack)
            .await?;
        Ok(())
    }

    /// Pulls what changed after each high-water mark (less a second:
    /// WooCommerce's `modified_after` is exclusive and has second
    /// precision; repeats are duplicates in the log). WooCommerce's
    /// customers list has no `modified_after`: customers are read in full.
    async fn reconcile(&self, client: &WooClient, conn: &RestConnection) -> Result<(), WorkError> {
        for (i, resource) in REST_RESOURCES.iter().enumerate() {
            let after = match (*resource, conn.high_water[i]) {
                ("customers", _) | (_, None) => None,
                (_, Some(mark)) => Some(format_rfc3339(from_micros(mark - 1_000_000))),
            };
            let mut page = 1;
            loop {
                let fetched = client.page(resource, page, after.as_deref()).await?;
                self.store_page(conn, resource, &fetched.items).await?;
                self.keep_lease(&conn.installation_id).await?;
                if page >= fetched.total_pages {
                    break;
                }
                page += 1;
            }
        }
        Ok(())
    }
}
