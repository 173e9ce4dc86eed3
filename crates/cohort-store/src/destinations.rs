//! Destinations and their delivery log. The destinations read the event
//! log through one shared cursor (`log_cursor`, up to the safe horizon on
//! PostgreSQL, as the projector does), turning matching events into
//! `pending` deliveries; the dispatcher (`cohort-engine`) claims due deliveries and records
//! each attempt. The primary key of `deliveries` — (org, destination,
//! messageId) — makes at most one delivery per destination and message.
//! Secrets are encrypted at rest with ChaCha20-Poly1305 under a key the
//! caller passes in, bound to their row by the associated data.

use cohort_domain::destinations::DestinationKind;
use cohort_domain::ids::{new_id, OrgId};
/// The key secrets are sealed with (`cohort_domain::secrets`), re-exported
/// for the functions here and in `woocommerce_rest` that take it.
pub use cohort_domain::secrets::SecretsKey;
use serde::{Deserialize, Serialize};

use crate::row::{map_rows, RowExt};
use crate::sql::{multi_insert, Bind, Statement};
use crate::{now_micros, Db, StoreError};

/// Events read per destination per enqueue step.
pub const ENQUEUE_BATCH: i64 = 500;
/// The one log cursor (see `log_cursor`) every destination's enqueue reads from.
pub const DESTINATIONS_CURSOR: &str = "destinations";

/// Which events a destination receives; an empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
}

impl Filters {
    pub fn matches(&self, message_type: &str, event: Option<&str>) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == message_type))
            && (self.events.is_empty() || event.is_some_and(|e| self.events.iter().any(|n| n == e)))
    }
}

/// A destination's secrets, decrypted. Never logged (`Debug` hides them).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationSecrets {
    /// Webhooks: the current `whsec_…` signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// Webhooks: the secret being retired, still signed with until
    /// `previous_expires_at_us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_signing_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_expires_at_us: Option<i64>,
    /// Everflow: the verification token and API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl std::fmt::Debug for DestinationSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DestinationSecrets(…)")
    }
}

impl DestinationSecrets {
    /// The signing secrets valid at `now`: the current one, then the
    /// previous one while its grace period lasts.
    pub fn active_signing_secrets(&self, now_us: i64) -> Vec<&str> {
        let mut out: Vec<&str> = self.signing_secret.as_deref().into_iter().collect();
        if let (Some(previous), Some(until)) =
            (&self.previous_signing_secret, self.previous_expires_at_us)
        {
            if until > now_us {
                out.push(previous);
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub org_id: OrgId,
    pub id: String,
    pub kind: DestinationKind,
    pub name: String,
    pub enabled: bool,
    pub filters: Filters,
    /// Non-secret settings (JSON).
    pub settings: serde_json::Value,
    pub secrets: DestinationSecrets,
    /// The last event of the log when it was created: it gets the ones
    /// after (column `cursor_seq`, from when each destination had a cursor).
    pub cursor_seq: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

#[derive(Debug, Clone)]
pub struct NewDestination {
    pub kind: DestinationKind,
    pub name: String,
    pub enabled: bool,
    pub filters: Filters,
    pub settings: serde_json::Value,
    pub secrets: DestinationSecrets,
}

/// A delivery's state (defined in the domain, which reasons about it).
pub use cohort_domain::destinations::DeliveryStatus;

/// One row of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub org_id: OrgId,
    pub destination_id: String,
    pub message_id: String,
    pub seq: i64,
    pub event: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at_us: Option<i64>,
    /// The last request, secrets masked.
    pub request: Option<String>,
    pub response_status: Option<i64>,
    pub response_excerpt: Option<String>,
    pub reason: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// A delivery claimed for sending, with the event it carries.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub org_id: OrgId,
    pub destination_id: String,
    pub message_id: String,
    pub event: Option<String>,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When it was due (what a claim compares against).
    pub due_at_us: i64,
    /// The event's place in the log, its time and identities.
    pub seq: i64,
    pub timestamp_us: i64,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
    /// The stored event JSON.
    pub payload: String,
}

/// What one attempt (or a decision not to send) came to.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// `Retrying` needs `next_attempt_at_us`.
    pub status: DeliveryStatus,
    /// A request was sent (counts as an attempt).
    pub sent: bool,
    pub next_attempt_at_us: Option<i64>,
    pub request: Option<String>,
    pub response_status: Option<i64>,
    pub response_excerpt: Option<String>,
    pub reason: Option<String>,
}

/// Filters of the delivery log; newest first, seek by `before_seq`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub event: Option<String>,
    pub message_id: Option<String>,
    /// Case-insensitive text in the message id, event, request, response
    /// excerpt or reason.
    pub search: Option<String>,
    /// Last changed at or after / before (µs).
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

impl DeliveryFilter {
    /// Appends the filter's conditions (not the seek, order or limit).
    fn push_conditions(&self, st: &mut Statement) {
        if let Some(status) = self.status {
            let m = st.bind(Bind::Text(status.as_str().to_owned()));
            st.push(&format!(" AND status = {m}"));
        }
        if let Some(event) = &self.event {
            let m = st.bind(Bind::Text(event.clone()));
            st.push(&format!(" AND event = {m}"));
        }
        if let Some(id) = &self.message_id {
            let m = st.bind(Bind::Text(id.clone()));
            st.push(&format!(" AND message_id = {m}"));
        }
        if let Some(text) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            // The searched columns are joined by newlines and lowered once
            // (one LOWER a row instead of five: half the time of a failed
            // search on PostgreSQL). A search never holds a newline, so it
            // cannot match across two columns.
            let one_line: String = text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let escaped = one_line
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let m = st.bind(Bind::Text(format!("%{escaped}%")));
            let joined = [
                "message_id",
                "event",
                "request",
                "response_excerpt",
                "reason",
            ]
            .map(|column| format!("COALESCE({column}, '')"))
            .join(" || '\n' || ");
            st.push(&format!(" AND LOWER({joined}) LIKE {m} ESCAPE '\\'"));
        }
        if let Some(since) = self.since_us {
            let m = st.bind(Bind::Int(since));
            st.push(&format!(" AND updated_at_us >= {m}"));
        }
        if let Some(until) = self.until_us {
            let m = st.bind(Bind::Int(until));
            st.push(&format!(" AND updated_at_us < {m}"));
        }
    }
}

const DESTINATION_COLUMNS: &str =
    "org_id, id, kind, name, enabled, filters, settings, secrets, cursor_seq, created_at_us, updated_at_us";
const DELIVERY_COLUMNS: &str =
    "org_id, destination_id, message_id, seq, event, status, attempts, next_attempt_at_us, \
     request, response_status, response_excerpt, reason, created_at_us, updated_at_us";

fn context(org: &str, id: &str) -> String {
    format!("cohort-destination:{org}:{id}")
}

fn destination_row(row: &sqlx::any::AnyRow, key: &SecretsKey) -> Result<Destination, StoreError> {
    let org_id: String = row.col("org_id")?;
    let id: String = row.col("id")?;
    let secrets_text: String = row.col("secrets")?;
    let plain = key.decrypt(&secrets_text, &context(&org_id, &id))?;
    let secrets = serde_json::from_slice(&plain)
        .map_err(|e| StoreError::Invalid(format!("destination secrets: {e}")))?;
    Ok(Destination {
        org_id: OrgId::from_stored(org_id),
        kind: row.col_parsed("kind")?,
        name: row.col("name")?,
        enabled: row.col::<i64, _>("enabled")? != 0,
        filters: row.col_json("filters")?,
        settings: row.col_json("settings")?,
        secrets,
        cursor_seq: row.col("cursor_seq")?,
        created_at_us: row.col("created_at_us")?,
        updated_at_us: row.col("updated_at_us")?,
        id,
    })
}

fn delivery_row(row: &sqlx::any::AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        org_id: OrgId::from_stored(row.col::<String, _>("org_id")?),
        destination_id: row.col("destination_id")?,
        message_id: row.col("message_id")?,
        seq: row.col("seq")?,
        event: row.col("event")?,
        status: row.col_parsed("status")?,
        attempts: row.col("attempts")?,
        next_attempt_at_us: row.col("next_attempt_at_us")?,
        request: row.col("request")?,
        response_status: row.col("response_status")?,
        response_excerpt: row.col("response_excerpt")?,
        reason: row.col("reason")?,
        created_at_us: row.col("created_at_us")?,
        updated_at_us: row.col("updated_at_us")?,
    })
}

fn json_text<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

impl Db {
    /// Creates a destination; it receives the events appended from now on.
    pub async fn create_destination(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        new: &NewDestination,
    ) -> Result<Destination, StoreError> {
        let id = new_id("dst");
        let now = now_micros();
        // It gets the events appended from now on: past every event final
        // now, whatever the shared cursor has read yet.
        let start = self.log_end().await?;
        // The first destination: the shared cursor has not been read while
        // there was none, so it starts here rather than reading the whole
        // log before it (events up to `start` are not this destination's).
        sqlx::query(
            "UPDATE projection_cursor SET last_seq = $1 WHERE name = $2 AND last_seq < $1 \
             AND NOT EXISTS (SELECT 1 FROM destinations)",
        )
        .bind(start)
        .bind(DESTINATIONS_CURSOR)
        .execute(self.pool())
        .await?;
        let secrets = key.encrypt(
            json_text(&new.secrets)?.as_bytes(),
            &context(org.as_str(), &id),
        )?;
        sqlx::query(&format!(
            "INSERT INTO destinations ({DESTINATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)"
        ))
        .bind(org.as_str())
        .bind(&id)
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(i64::from(new.enabled))
        .bind(json_text(&new.filters)?)
        .bind(json_text(&new.settings)?)
        .bind(secrets)
        .bind(start)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.get_destination(org, key, &id).await
    }

    pub async fn get_destination(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        id: &str,
    ) -> Result<Destination, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE org_id = $1 AND id = $2"
        ))
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("destination {id}")))?;
        destination_row(&row, key)
    }

    pub async fn list_destinations(
        &self,
        org: &OrgId,
        key: &SecretsKey,
    ) -> Result<Vec<Destination>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE org_id = $1 ORDER BY created_at_us, id"))
            .bind(org.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| destination_row(r, key)).collect()
    }

    /// Writes a destination's name, enabled flag, filters, settings and
    /// secrets (read it, change it, write it back); not its cursor.
    pub async fn update_destination(
        &self,
        key: &SecretsKey,
        d: &Destination,
    ) -> Result<Destination, StoreError> {
        let secrets = key.encrypt(
            json_text(&d.secrets)?.as_bytes(),
            &context(d.org_id.as_str(), &d.id),
        )?;
        let done = sqlx::query(
            "UPDATE destinations SET name = $1, enabled = $2, filters = $3, settings = $4, secrets = $5, updated_at_us = $6 \
             WHERE org_id = $7 AND id = $8",
        )
        .bind(&d.name)
        .bind(i64::from(d.enabled))
        .bind(json_text(&d.filters)?)
        .bind(json_text(&d.settings)?)
        .bind(secrets)
        .bind(now_micros())
        .bind(d.org_id.as_str())
        .bind(&d.id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("destination {}", d.id)));
        }
        self.get_destination(&d.org_id, key, &d.id).await
    }

    /// Deletes a destination and its delivery log.
    pub async fn delete_destination(&self, org: &OrgId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM destinations WHERE org_id = $1 AND id = $2")
            .bind(org.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("destination {id}")));
        }
        sqlx::query("DELETE FROM deliveries WHERE org_id = $1 AND destination_id = $2")
            .bind(org.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Turns new events of the log into `pending` deliveries of every
    /// destination whose filters match, moving the destinations' log cursor
    /// in the same transaction. Returns the deliveries created.
    pub async fn enqueue_from_log(&self) -> Result<u64, StoreError> {
        let mut created = 0;
        loop {
            let (n, more) = self.enqueue_step().await?;
            created += n;
            if !more {
                return Ok(created);
            }
        }
    }

    /// One batch of the log through every destination: the one log cursor
    /// `destinations` (see `log_cursor`) shared by all of them, so a
    /// thousand destinations read the log once. A destination gets the
    /// events after the one it was created at (`start_seq`); a paused
    /// destination's deliveries wait as `pending` until it resumes (only
    /// enabled destinations are sent). Returns the deliveries created and
    /// whether more of the log is waiting (the worker interleaves steps with
    /// sending, so a large backlog does not hold deliveries back).
    pub async fn enqueue_step(&self) -> Result<(u64, bool), StoreError> {
        // Without a destination there is nothing to read the log for (and a
        // read here would take SQLite's write lock from the event writer);
        // the first destination created moves the cursor to where it starts.
        let any = sqlx::query("SELECT 1 FROM destinations LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        if any.is_none() {
            return Ok((0, false));
        }
        let Some(mut batch) = self
            .next_log_batch(DESTINATIONS_CURSOR, ENQUEUE_BATCH)
            .await?
        else {
            return Ok((0, false));
        };
        let orgs: std::collections::BTreeSet<&str> = batch
            .events()
            .iter()
            .filter(|e| !e.erased)
            .map(|e| e.org_id.as_str())
            .collect();
        let mut targets: std::collections::HashMap<String, Vec<(String, i64, Filters)>> =
            std::collections::HashMap::new();
        if !orgs.is_empty() {
            let mut st = Statement::new(
                "SELECT org_id, id, cursor_seq, filters FROM destinations WHERE org_id IN (",
            );
            let marks: Vec<String> = orgs
                .iter()
                .map(|org| st.bind(Bind::Text((*org).to_owned())))
                .collect();
            st.push(&marks.join(", "));
            st.push(") ORDER BY org_id, id");
            for row in st.query().fetch_all(&mut **batch.tx()).await? {
                targets.entry(row.col("org_id")?).or_default().push((
                    row.col("id")?,
                    row.col("cursor_seq")?,
                    row.col_json("filters")?,
                ));
            }
        }
        let now = now_micros();
        let mut values = Vec::new();
        for followed in batch.events() {
            if followed.erased {
                continue;
            }
            let event = &followed.event;
            let Some(destinations) = targets.get(followed.org_id.as_str()) else {
                continue;
            };
            for (id, start_seq, filters) in destinations {
                if event.seq <= *start_seq
                    || !filters.matches(&event.message_type, event.event.as_deref())
                {
                    continue;
                }
                values.push(vec![
                    Bind::Text(followed.org_id.as_str().to_owned()),
                    Bind::Text(id.clone()),
                    Bind::Text(event.message_id.clone()),
                    Bind::Int(event.seq),
                    Bind::OptText(event.event.clone()),
                    Bind::Text(DeliveryStatus::Pending.as_str().into()),
                    Bind::Int(0),
                    Bind::Int(now),
                    Bind::OptText(None),
                    Bind::OptInt(None),
                    Bind::OptText(None),
                    Bind::OptText(None),
                    Bind::Int(now),
                    Bind::Int(now),
                ]);
            }
        }
        let mut created = 0;
        let statements = multi_insert(
            self.backend(),
            &format!("INSERT INTO deliveries ({DELIVERY_COLUMNS})"),
            &values,
            "ON CONFLICT (org_id, destination_id, message_id) DO NOTHING",
        );
        for st in &statements {
            created += st.query().execute(&mut **batch.tx()).await?.rows_affected();
        }
        let more = batch.is_full();
        batch.commit().await?;
        Ok((created, more))
    }

    /// Claims up to `limit` deliveries due at `now` of enabled destinations:
    /// each claimed one is not due again until `now + lease_us`, so another
    /// node (or the next tick) does not send it meanwhile; a process killed
    /// mid-delivery leaves it to be retried after the lease.
    pub async fn due_deliveries(
        &self,
        now: i64,
        limit: i64,
        lease_us: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let candidates = self.due_candidates(now, limit, &[]).await?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for c in candidates {
            if self.claim_delivery(&c, now, lease_us).await? {
                claimed.push(c);
            }
        }
        Ok(claimed)
    }

    /// Up to `limit` deliveries due at `now` of enabled destinations, oldest
    /// due first, leaving out the destinations in `exclude` (ids); not
    /// claimed yet (see [`Db::claim_delivery`]).
    pub async fn due_candidates(
        &self,
        now: i64,
        limit: i64,
        exclude: &[String],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut st = Statement::new(
            "SELECT d.org_id, d.destination_id, d.message_id, d.event, d.attempts, d.next_attempt_at_us, \
             e.seq, e.timestamp_us, e.user_id, e.anonymous_id, e.email, e.payload \
             FROM deliveries d \
             JOIN destinations t ON t.org_id = d.org_id AND t.id = d.destination_id \
             JOIN events e ON e.org_id = d.org_id AND e.seq = d.seq \
             WHERE d.status IN ('pending', 'retrying') AND t.enabled = 1 AND d.next_attempt_at_us <= ",
        );
        let m = st.bind(Bind::Int(now));
        st.push(&m);
        if !exclude.is_empty() {
            let marks: Vec<String> = exclude
                .iter()
                .map(|id| st.bind(Bind::Text(id.clone())))
                .collect();
            st.push(&format!(
                " AND d.destination_id NOT IN ({})",
                marks.join(", ")
            ));
        }
        st.push(&format!(
            " ORDER BY d.next_attempt_at_us LIMIT {}",
            limit.max(1)
        ));
        let rows = st.query().fetch_all(self.pool()).await?;
        map_rows(&rows, |row| {
            Ok(DueDelivery {
                org_id: OrgId::from_stored(row.col::<String, _>("org_id")?),
                destination_id: row.col("destination_id")?,
                message_id: row.col("message_id")?,
                event: row.col("event")?,
                attempts: row.col("attempts")?,
                due_at_us: row.col("next_attempt_at_us")?,
                seq: row.col("seq")?,
                timestamp_us: row.col("timestamp_us")?,
                user_id: row.col("user_id")?,
                anonymous_id: row.col("anonymous_id")?,
                email: row.col("email")?,
                payload: row.col("payload")?,
            })
        })
    }

    /// Claims one candidate: it is not due again until `now + lease_us`.
    /// `false` when another worker claimed it (or it changed) first.
    pub async fn claim_delivery(
        &self,
        due: &DueDelivery,
        now: i64,
        lease_us: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET next_attempt_at_us = $1 WHERE org_id = $2 AND destination_id = $3 AND message_id = $4 \
             AND next_attempt_at_us = $5 AND status IN ('pending', 'retrying')",
        )
        .bind(now.saturating_add(lease_us))
        .bind(due.org_id.as_str())
        .bind(&due.destination_id)
        .bind(&due.message_id)
        .bind(due.due_at_us)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims several candidates in one write transaction (see
    /// [`Db::claim_delivery`]); returns those claimed.
    pub async fn claim_deliveries(
        &self,
        candidates: Vec<DueDelivery>,
        now: i64,
        lease_us: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let mut tx = self.begin_write().await?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for due in candidates {
            let done = sqlx::query(
                "UPDATE deliveries SET next_attempt_at_us = $1 WHERE org_id = $2 AND destination_id = $3 AND message_id = $4 \
                 AND next_attempt_at_us = $5 AND status IN ('pending', 'retrying')",
            )
            .bind(now.saturating_add(lease_us))
            .bind(due.org_id.as_str())
            .bind(&due.destination_id)
            .bind(&due.message_id)
            .bind(due.due_at_us)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                claimed.push(due);
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// The profile's last Everflow transaction id (`ef_transaction_id`) and
    /// when it was set (µs), for the profile of the first of these
    /// identities that has one.
    pub async fn profile_ef_transaction_id(
        &self,
        org: &OrgId,
        identities: &[cohort_domain::profile::Identity],
    ) -> Result<Option<(serde_json::Value, Option<i64>)>, StoreError> {
        for identity in identities {
            let Some(profile_id) = self.profile_id_of(org, identity).await? else {
                continue;
            };
            let Some(record) = self.profile(org, &profile_id).await? else {
                continue;
            };
            let Some(value) = record.profile.traits.get("ef_transaction_id").cloned() else {
                return Ok(None);
            };
            let at = record
                .profile
                .trait_sources
                .get("ef_transaction_id")
                .and_then(|s| cohort_domain::time::parse_rfc3339(&s.updated_at))
                .map(|t| t.timestamp_micros());
            return Ok(Some((value, at)));
        }
        Ok(None)
    }

    /// Records several outcomes in one write transaction (see
    /// [`Db::record_attempt`]); returns how many deliveries changed.
    pub async fn record_attempts(
        &self,
        records: &[(&OrgId, &str, &str, &AttemptRecord)],
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_micros();
        let mut changed = 0;
        for (org, destination_id, message_id, a) in records {
            let next = match a.status {
                DeliveryStatus::Retrying | DeliveryStatus::Pending => {
                    a.next_attempt_at_us.or(Some(now))
                }
                _ => None,
            };
            changed += sqlx::query(
                "UPDATE deliveries SET status = $1, attempts = attempts + $2, next_attempt_at_us = $3, request = $4, \
                 response_status = $5, response_excerpt = $6, reason = $7, updated_at_us = $8 \
                 WHERE org_id = $9 AND destination_id = $10 AND message_id = $11 AND status IN ('pending', 'retrying')",
            )
            .bind(a.status.as_str())
            .bind(i64::from(a.sent))
            .bind(next)
            .bind(a.request.as_deref())
            .bind(a.response_status)
            .bind(a.response_excerpt.as_deref())
            .bind(a.reason.as_deref())
            .bind(now)
            .bind(org.as_str())
            .bind(*destination_id)
            .bind(*message_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Records an attempt's outcome. A delivery that is already delivered,
    /// failed or skipped is left as it is (returns `false`).
    pub async fn record_attempt(
        &self,
        org: &OrgId,
        destination_id: &str,
        message_id: &str,
        a: &AttemptRecord,
    ) -> Result<bool, StoreError> {
        let changed = self
            .record_attempts(&[(org, destination_id, message_id, a)])
            .await?;
        Ok(changed == 1)
    }

    /// One destination's delivery log, newest first.
    pub async fn list_deliveries(
        &self,
        org: &OrgId,
        destination_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut st = Statement::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE org_id = $1 AND destination_id = $2"
        ));
        st.bind(Bind::Text(org.as_str().to_owned()));
        st.bind(Bind::Text(destination_id.to_owned()));
        filter.push_conditions(&mut st);
        if let Some(before) = filter.before_seq {
            let m = st.bind(Bind::Int(before));
            st.push(&format!(" AND seq < {m}"));
        }
        st.push(&format!(
            " ORDER BY seq DESC LIMIT {}",
            filter.limit.clamp(1, 1000)
        ));
        let rows = st.query_planned_for_values().fetch_all(self.pool()).await?;
        map_rows(&rows, delivery_row)
    }

    /// Puts every failed delivery of a destination matching `filter` (its
    /// status is forced to `failed`) back in the queue; returns how many.
    pub async fn replay_failed(
        &self,
        org: &OrgId,
        destination_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<u64, StoreError> {
        let now = now_micros();
        let mut st = Statement::new("UPDATE deliveries SET status = 'pending', attempts = 0, reason = NULL, next_attempt_at_us = ");
        let m = st.bind(Bind::Int(now));
        st.push(&format!("{m}, updated_at_us = {m} WHERE org_id = "));
        let m = st.bind(Bind::Text(org.as_str().to_owned()));
        st.push(&format!("{m} AND destination_id = "));
        let m = st.bind(Bind::Text(destination_id.to_owned()));
        st.push(&m);
        let only_failed = DeliveryFilter {
            status: Some(DeliveryStatus::Failed),
            before_seq: None,
            ..filter.clone()
        };
        only_failed.push_conditions(&mut st);
        let done = st.query().execute(self.pool()).await?;
        Ok(done.rows_affected())
    }

    /// Deliveries of an organisation in one state (all destinations).
    pub async fn count_deliveries(
        &self,
        org: &OrgId,
        status: DeliveryStatus,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM deliveries WHERE org_id = $1 AND status = $2")
            .bind(org.as_str())
            .bind(status.as_str())
            .fetch_one(self.pool())
            .await?;
        row.col(0)
    }

    pub async fn get_delivery(
        &self,
        org: &OrgId,
        destination_id: &str,
        message_id: &str,
    ) -> Result<Delivery, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE org_id = $1 AND destination_id = $2 AND message_id = $3"
        ))
        .bind(org.as_str())
        .bind(destination_id)
        .bind(message_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("delivery {message_id}")))?;
        delivery_row(&row)
    }

    /// Puts a failed delivery back in the queue (`failed` → `pending`, due
    /// now, attempts reset). `Ok(false)` when it exists but is not failed:
    /// a delivered one is never sent again.
    pub async fn replay_delivery(
        &self,
        org: &OrgId,
        destination_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        let now = now_micros();
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at_us = $1, reason = NULL, updated_at_us = $1 \
             WHERE org_id = $2 AND destination_id = $3 AND message_id = $4 AND status = 'failed'",
        )
        .bind(now)
        .bind(org.as_str())
        .bind(destination_id)
        .bind(message_id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        self.get_delivery(org, destination_id, message_id)
            .await
            .map(|_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_names_and_types() {
        let all = Filters::default();
        assert!(all.matches("page", None));
        let orders = Filters {
            events: vec!["Order Completed".into()],
            types: vec![],
        };
        assert!(orders.matches("track", Some("Order Completed")));
        assert!(!orders.matches("track", Some("Viewed")));
        assert!(!orders.matches("page", None));
        let identifies = Filters {
            events: vec![],
            types: vec!["identify".into()],
        };
        assert!(identifies.matches("identify", None));
        assert!(!identifies.matches("track", Some("x")));
    }

    #[test]
    fn the_previous_secret_signs_only_during_its_grace() {
        let s = DestinationSecrets {
            signing_secret: Some("whsec_new".into()),
            previous_signing_secret: Some("whsec_old".into()),
            previous_expires_at_us: Some(100),
            ..Default::default()
        };
        assert_eq!(s.active_signing_secrets(50), vec!["whsec_new", "whsec_old"]);
        assert_eq!(s.active_signing_secrets(100), vec!["whsec_new"]);
        assert!(!format!("{s:?}").contains("whsec"));
    }
}
