//! Reads and small writes of the admin UI that no other module owns: event
//! counts by hour and by source, a source's recent events (the live
//! debugger), write key rotation, *Sync store*, destination failures.

use cohort_domain::ids::OrgId;
use sqlx::Row;

use crate::events::{stored_event, StoredEvent, STORED_EVENT_COLUMNS};
use crate::orgs::{new_write_key, source_from_row, Source};
use crate::{now_micros, Db, StoreError};

const HOUR_MICROS: i64 = 3600 * 1_000_000;

/// A destination with how its deliveries went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DestinationHealth {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub failed: i64,
    pub retrying: i64,
    pub delivered: i64,
    pub last_failure_at: Option<i64>,
}

impl Db {
    /// Events of `org` received at or after `since_us`, counted per hour:
    /// (start of the hour in µs, count), hours without events left out.
    pub async fn events_per_hour(&self, org: &OrgId, since_us: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let since = since_us - since_us.rem_euclid(HOUR_MICROS);
        let rows = sqlx::query(
            "SELECT received_at_us / 3600000000 AS h, COUNT(*) AS n FROM events \
             WHERE org_id = $1 AND received_at_us >= $2 GROUP BY received_at_us / 3600000000 ORDER BY h",
        )
        .bind(org.as_str())
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| (r.get::<i64, _>(0) * HOUR_MICROS, r.get::<i64, _>(1))).collect())
    }

    /// Events of `org` received at or after `since_us`, per source id.
    pub async fn events_per_source(&self, org: &OrgId, since_us: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT source_id, COUNT(*) FROM events WHERE org_id = $1 AND received_at_us >= $2 GROUP BY source_id",
        )
        .bind(org.as_str())
        .bind(since_us)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))).collect())
    }

    /// One source of `org`.
    pub async fn find_source(&self, org: &OrgId, id: &str) -> Result<Option<Source>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, name, write_key, disabled_at, created_at FROM sources WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(source_from_row))
    }

    /// Gives a source of `org` a new write key; the old one stops working.
    pub async fn rotate_write_key(&self, org: &OrgId, id: &str) -> Result<Source, StoreError> {
        let done = sqlx::query("UPDATE sources SET write_key = $1 WHERE org_id = $2 AND id = $3")
            .bind(new_write_key())
            .bind(org.as_str())
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("source {id:?}")));
        }
        self.find_source(org, id).await?.ok_or_else(|| StoreError::NotFound(format!("source {id:?}")))
    }

    /// Events of one source of `org` after `after_seq`, oldest first.
    pub async fn source_events_after(&self, org: &OrgId, source: &str, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE org_id = $1 AND seq > $2 AND source_id = $3 \
             ORDER BY seq LIMIT {}",
            limit.clamp(1, 1000)
        ))
        .bind(org.as_str())
        .bind(after_seq)
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(stored_event).collect())
    }

    /// The newest events of one source of `org`, newest first.
    pub async fn latest_source_events(&self, org: &OrgId, source: &str, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE org_id = $1 AND source_id = $2 ORDER BY seq DESC LIMIT {}",
            limit.clamp(1, 1000)
        ))
        .bind(org.as_str())
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(stored_event).collect())
    }

    /// The last `seq` of `org`'s log (0 when empty).
    pub async fn last_seq(&self, org: &OrgId) -> Result<i64, StoreError> {
        let max: Option<i64> =
            sqlx::query("SELECT MAX(seq) FROM events WHERE org_id = $1").bind(org.as_str()).fetch_one(self.pool()).await?.get(0);
        Ok(max.unwrap_or(0))
    }

    /// Queues a `sync_store` command for a connected installation of `org`;
    /// its id, or `None` when `org` has no such connected installation.
    pub async fn request_store_sync(&self, org: &OrgId, installation: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let connected = sqlx::query("SELECT 1 FROM connect_installations WHERE org_id = $1 AND id = $2 AND status = 'connected'")
            .bind(org.as_str())
            .bind(installation)
            .fetch_optional(&mut *tx)
            .await?;
        if connected.is_none() {
            return Ok(None);
        }
        let id = crate::connect::queue_command(&mut tx, org, installation, "sync_store", now_micros()).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The destinations of `org` with their delivery counts, by name.
    pub async fn destination_health(&self, org: &OrgId) -> Result<Vec<DestinationHealth>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.name, d.kind, d.enabled, \
             (SELECT COUNT(*) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'failed'), \
             (SELECT COUNT(*) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'retrying'), \
             (SELECT COUNT(*) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'delivered'), \
             (SELECT MAX(x.updated_at_us) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'failed') \
             FROM destinations d WHERE d.org_id = $1 ORDER BY d.name, d.id",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| DestinationHealth {
                id: r.get(0),
                name: r.get(1),
                kind: r.get(2),
                enabled: r.get::<i64, _>(3) != 0,
                failed: r.get(4),
                retrying: r.get(5),
                delivered: r.get(6),
                last_failure_at: r.get(7),
            })
            .collect())
    }
}
