//! Sync runs (connect.md §2): a store sends its catalogue, customers and
//! orders in numbered batches of at most 100. The items themselves go to the
//! event log (where their messageIds make repeats duplicates); this module
//! keeps the run and counts each (run, resource, seq) batch once, so a batch
//! sent again after a lost answer or a crash is never counted twice, and a
//! run started again for the same command resumes where it stopped.

use std::collections::BTreeMap;

use cohort_domain::connect::SyncRunStatus;
use cohort_domain::ids::{new_id, OrgId};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::row::RowExt;
use crate::{now_micros, Db, StoreError};

/// The resources a run may carry, in the order a plugin sends them.
pub const SYNC_RESOURCES: [&str; 4] = ["products", "customers", "guests", "orders"];

#[derive(Debug, Clone, Serialize)]
pub struct ResourceProgress {
    pub batches: i64,
    pub received: i64,
    pub accepted: i64,
    pub rejected: i64,
    /// The seq the next batch should carry (the highest seen + 1).
    pub next_seq: i64,
}

#[derive(Debug, Clone)]
pub struct SyncRun {
    pub id: String,
    pub installation_id: String,
    pub command_id: Option<String>,
    pub resources: Vec<String>,
    pub status: SyncRunStatus,
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub reported_counts: Option<String>,
    pub progress: BTreeMap<String, ResourceProgress>,
}

/// What recording a batch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchRecord {
    /// Counted now.
    Counted,
    /// This (resource, seq) was already counted: nothing changed.
    AlreadyCounted { accepted: i64, rejected: i64 },
}

fn run_from_row(r: &AnyRow) -> Result<SyncRun, StoreError> {
    Ok(SyncRun {
        id: r.col("id")?,
        installation_id: r.col("installation_id")?,
        command_id: r.col("command_id")?,
        resources: r.col_json("resources")?,
        status: r.col_parsed("status")?,
        started_at: r.col("started_at")?,
        updated_at: r.col("updated_at")?,
        finished_at: r.col("finished_at")?,
        reported_counts: r.col("reported_counts")?,
        progress: BTreeMap::new(),
    })
}

const RUN_COLUMNS: &str =
    "id, installation_id, command_id, resources, status, started_at, updated_at, finished_at, reported_counts";

impl Db {
    /// Starts a run, or, when a run for the same command is still running,
    /// returns that one (`true`: resumed) with its progress.
    pub async fn start_sync_run(
        &self,
        org: &OrgId,
        installation_id: &str,
        command_id: Option<&str>,
        resources: &[String],
    ) -> Result<(SyncRun, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(command) = command_id {
            let existing = sqlx::query(&format!(
                "SELECT {RUN_COLUMNS} FROM connect_sync_runs WHERE org_id = $1 AND installation_id = $2 \
                 AND command_id = $3 AND status = 'running' ORDER BY started_at DESC LIMIT 1"
            ))
            .bind(org.as_str())
            .bind(installation_id)
            .bind(command)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                tx.commit().await?;
                let mut run = run_from_row(&row)?;
                run.progress = self.sync_progress(&run.id, &run.resources).await?;
                return Ok((run, true));
            }
        }
        let id = new_id("run");
        let now = now_micros();
        let resources_json =
            serde_json::to_string(resources).map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO connect_sync_runs (id, org_id, installation_id, command_id, resources, status, started_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'running', $6, $6)",
        )
        .bind(&id)
        .bind(org.as_str())
        .bind(installation_id)
        .bind(command_id)
        .bind(&resources_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let run = self
            .get_sync_run(org, installation_id, &id)
            .await?
            .ok_or_else(|| StoreError::NotFound("sync run".into()))?;
        Ok((run, false))
    }

    /// One run of an installation, with its progress.
    pub async fn get_sync_run(
        &self,
        org: &OrgId,
        installation_id: &str,
        run_id: &str,
    ) -> Result<Option<SyncRun>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM connect_sync_runs WHERE org_id = $1 AND installation_id = $2 AND id = $3"
        ))
        .bind(org.as_str())
        .bind(installation_id)
        .bind(run_id)
        .fetch_optional(self.pool())
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut run = run_from_row(&row)?;
                run.progress = self.sync_progress(&run.id, &run.resources).await?;
                Ok(Some(run))
            }
        }
    }

    /// An installation's runs, newest first, with their progress.
    pub async fn list_sync_runs(
        &self,
        org: &OrgId,
        installation_id: &str,
        limit: i64,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM connect_sync_runs WHERE org_id = $1 AND installation_id = $2 \
             ORDER BY started_at DESC, id DESC LIMIT $3"
        ))
        .bind(org.as_str())
        .bind(installation_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut run = run_from_row(row)?;
            run.progress = self.sync_progress(&run.id, &run.resources).await?;
            runs.push(run);
        }
        Ok(runs)
    }

    async fn sync_progress(
        &self,
        run_id: &str,
        resources: &[String],
    ) -> Result<BTreeMap<String, ResourceProgress>, StoreError> {
        let mut progress: BTreeMap<String, ResourceProgress> = resources
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    ResourceProgress {
                        batches: 0,
                        received: 0,
                        accepted: 0,
                        rejected: 0,
                        next_seq: 0,
                    },
                )
            })
            .collect();
        let rows = sqlx::query(
            "SELECT resource, COUNT(*) AS batches, CAST(SUM(received) AS BIGINT) AS received, CAST(SUM(accepted) AS BIGINT) AS accepted, \
             CAST(SUM(rejected) AS BIGINT) AS rejected, MAX(seq) AS max_seq FROM connect_sync_batches WHERE run_id = $1 GROUP BY resource",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            let resource: String = row.col("resource")?;
            progress.insert(
                resource,
                ResourceProgress {
                    batches: row.col("batches")?,
                    received: row.col("received")?,
                    accepted: row.col("accepted")?,
                    rejected: row.col("rejected")?,
                    next_seq: row.col::<i64, _>("max_seq")? + 1,
                },
            );
        }
        Ok(progress)
    }

    /// Counts a batch once. Call it after its accepted items are in the log.
    pub async fn record_sync_batch(
        &self,
        run_id: &str,
        resource: &str,
        seq: i64,
        received: i64,
        accepted: i64,
        rejected: i64,
    ) -> Result<BatchRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT accepted, rejected FROM connect_sync_batches WHERE run_id = $1 AND resource = $2 AND seq = $3")
            .bind(run_id)
            .bind(resource)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            tx.commit().await?;
            return Ok(BatchRecord::AlreadyCounted {
                accepted: row.col("accepted")?,
                rejected: row.col("rejected")?,
            });
        }
        let now = now_micros();
        sqlx::query(
            "INSERT INTO connect_sync_batches (run_id, resource, seq, received, accepted, rejected, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(run_id)
        .bind(resource)
        .bind(seq)
        .bind(received)
        .bind(accepted)
        .bind(rejected)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE connect_sync_runs SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(BatchRecord::Counted)
    }

    /// Marks a run completed with the counts the plugin reports. Completing
    /// it again changes nothing.
    pub async fn complete_sync_run(
        &self,
        org: &OrgId,
        installation_id: &str,
        run_id: &str,
        reported_counts: &str,
    ) -> Result<bool, StoreError> {
        let now = now_micros();
        let done = sqlx::query(
            "UPDATE connect_sync_runs SET status = 'completed', finished_at = $1, updated_at = $1, reported_counts = $2 \
             WHERE org_id = $3 AND installation_id = $4 AND id = $5 AND status = 'running'",
        )
        .bind(now)
        .bind(reported_counts)
        .bind(org.as_str())
        .bind(installation_id)
        .bind(run_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
