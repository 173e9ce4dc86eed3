//! Reads and small writes of the admin UI that no other module owns: event
//! counts by hour and by source, a source's recent events (the live
//! debugger), write key rotation, *Sync store*, destination failures.

use cohort_domain::destinations::DestinationKind;
use cohort_domain::ids::OrgId;

use crate::events::{stored_event, StoredEvent, STORED_EVENT_COLUMNS};
use crate::orgs::{new_write_key, source_from_row, Source};
use crate::row::{map_rows, RowExt};
use crate::{Db, StoreError};

const HOUR_MICROS: i64 = 3600 * 1_000_000;
/// Events folded into the hourly counts by one refresh, at most.
const FOLD_LIMIT: i64 = 200_000;

/// A destination with how its deliveries went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DestinationHealth {
    pub id: String,
    pub name: String,
    pub kind: DestinationKind,
    pub enabled: bool,
    pub failed: i64,
    pub retrying: i64,
    pub delivered: i64,
    pub last_failure_at: Option<i64>,
    /// Deliveries that failed for good in the last 24 hours.
    pub failed_24h: i64,
    /// When the last delivery succeeded.
    pub last_delivered_at: Option<i64>,
}

impl Db {
    /// The highest `seq` at or below which every event is committed: the
    /// last one on SQLite (one writer); on PostgreSQL, where a lower seq can
    /// commit after a higher one, what the log's visibility horizon allows.
    pub async fn settled_seq(&self) -> Result<i64, StoreError> {
        let max: Option<i64> = sqlx::query("SELECT MAX(seq) FROM events")
            .fetch_one(self.pool())
            .await?
            .col(0)?;
        let max = max.unwrap_or(0);
        Ok(match self.log_horizon().await? {
            Some(horizon) => max.min(horizon),
            None => max,
        })
    }

    /// Folds the events the hourly counts have not seen yet, at most
    /// `FOLD_LIMIT` of them, into `event_counts_hourly`. Nothing is written
    /// when they are up to date; two nodes folding at once take turns on
    /// the cursor row.
    pub async fn refresh_event_counts(&self) -> Result<(), StoreError> {
        let settled = self.settled_seq().await?;
        let seen: i64 = sqlx::query("SELECT last_seq FROM event_counts_cursor WHERE id = 1")
            .fetch_one(self.pool())
            .await?
            .col(0)?;
        if seen >= settled {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE event_counts_cursor SET last_seq = last_seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let seen: i64 = sqlx::query("SELECT last_seq FROM event_counts_cursor WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .col(0)?;
        if seen >= settled {
            return Ok(());
        }
        let upto = settled.min(seen + FOLD_LIMIT);
        sqlx::query(
            "INSERT INTO event_counts_hourly (org_id, source_id, hour_us, n) \
             SELECT org_id, source_id, (received_at_us / 3600000000) * 3600000000, COUNT(*) FROM events \
             WHERE seq > $1 AND seq <= $2 GROUP BY org_id, source_id, received_at_us / 3600000000 \
             ON CONFLICT (org_id, source_id, hour_us) DO UPDATE SET n = event_counts_hourly.n + excluded.n",
        )
        .bind(seen)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE event_counts_cursor SET last_seq = $1 WHERE id = 1")
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events of `org` that arrived in the hour starting at or after
    /// `since_us`, per hour: (start of the hour in µs, count), hours without
    /// events left out. Reads the hourly counts (see `refresh_event_counts`).
    pub async fn events_per_hour(
        &self,
        org: &OrgId,
        since_us: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let since = since_us - since_us.rem_euclid(HOUR_MICROS);
        let rows = sqlx::query(
            "SELECT hour_us, CAST(SUM(n) AS BIGINT) FROM event_counts_hourly WHERE org_id = $1 AND hour_us >= $2 GROUP BY hour_us ORDER BY hour_us",
        )
        .bind(org.as_str())
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| Ok((r.col(0)?, r.col(1)?)))
    }

    /// Events of `org` per source id, in the hours starting at or after
    /// `since_us` (whole hours, from the hourly counts).
    pub async fn events_per_source(
        &self,
        org: &OrgId,
        since_us: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let since = since_us - since_us.rem_euclid(HOUR_MICROS);
        let rows = sqlx::query(
            "SELECT source_id, CAST(SUM(n) AS BIGINT) FROM event_counts_hourly WHERE org_id = $1 AND hour_us >= $2 GROUP BY source_id",
        )
        .bind(org.as_str())
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| Ok((r.col(0)?, r.col(1)?)))
    }

    /// How many profiles `org` has, counting at most `cap` of them: a
    /// bounded index scan where `count_profiles` reads them all (40 ms for
    /// 100,000 on PostgreSQL). `cap` means "at least that many".
    pub async fn count_profiles_upto(&self, org: &OrgId, cap: u32) -> Result<i64, StoreError> {
        sqlx::query(&format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM profiles WHERE org_id = $1 LIMIT {cap}) AS p"
        ))
        .bind(org.as_str())
        .fetch_one(self.pool())
        .await?
        .col(0)
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
        row.as_ref().map(source_from_row).transpose()
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
        self.find_source(org, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("source {id:?}")))
    }

    /// Events of one source of `org` after `after_seq` and at most
    /// `upto_seq` (a `settled_seq`, so none is skipped), oldest first.
    pub async fn source_events_after(
        &self,
        org: &OrgId,
        source: &str,
        after_seq: i64,
        upto_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE org_id = $1 AND seq > $2 AND seq <= $3 AND source_id = $4 \
             ORDER BY seq LIMIT {}",
            limit.clamp(1, 1000)
        ))
        .bind(org.as_str())
        .bind(after_seq)
        .bind(upto_seq)
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, stored_event)
    }

    /// The newest events of one source of `org`, newest first.
    pub async fn latest_source_events(
        &self,
        org: &OrgId,
        source: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE org_id = $1 AND source_id = $2 ORDER BY seq DESC LIMIT {}",
            limit.clamp(1, 1000)
        ))
        .bind(org.as_str())
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, stored_event)
    }

    /// The last `seq` of `org`'s log (0 when empty).
    pub async fn last_seq(&self, org: &OrgId) -> Result<i64, StoreError> {
        let max: Option<i64> = sqlx::query("SELECT MAX(seq) FROM events WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_one(self.pool())
            .await?
            .col(0)?;
        Ok(max.unwrap_or(0))
    }

    /// The destinations of `org` with their delivery counts, by name
    /// (failures of the last 24 hours counted from `now_us`).
    pub async fn destination_health(
        &self,
        org: &OrgId,
        now_us: i64,
    ) -> Result<Vec<DestinationHealth>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.name, d.kind, d.enabled, \
             (SELECT COUNT(*) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'failed'), \
             (SELECT COUNT(*) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'retrying'), \
             (SELECT COUNT(*) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'delivered'), \
             (SELECT MAX(x.updated_at_us) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'failed'), \
             (SELECT COUNT(*) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'failed' AND x.updated_at_us >= $2), \
             (SELECT MAX(x.updated_at_us) FROM deliveries x WHERE x.org_id = d.org_id AND x.destination_id = d.id AND x.status = 'delivered') \
             FROM destinations d WHERE d.org_id = $1 ORDER BY d.name, d.id",
        )
        .bind(org.as_str())
        .bind(now_us - 24 * 3600 * 1_000_000)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| {
            Ok(DestinationHealth {
                id: r.col(0)?,
                name: r.col(1)?,
                kind: r.col_parsed(2)?,
                enabled: r.col::<i64, _>(3)? != 0,
                failed: r.col(4)?,
                retrying: r.col(5)?,
                delivered: r.col(6)?,
                last_failure_at: r.col(7)?,
                failed_24h: r.col(8)?,
                last_delivered_at: r.col(9)?,
            })
        })
    }
}
