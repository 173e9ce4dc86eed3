//! The SQL of the one durable job queue (`cohort-jobs` owns the mechanism:
//! typed jobs, the registry, the runner). A job is a `jobs` row from enqueue
//! until it succeeds (deleted) or runs out of attempts (`dead`, kept for an
//! operator). Claims take a lease in one short statement, never a
//! transaction held while the job runs: on SQLite that would hold the one
//! writer for the job's whole duration.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::row::RowExt;

use crate::{now_micros, Backend, Db, StoreError};

/// Where a job is in its life. Succeeded jobs are deleted, so there is no
/// `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for `run_at_us`.
    Queued,
    /// Claimed by a worker until its lease ends.
    Running,
    /// Out of attempts: waits for an operator (`cohort jobs retry`).
    Dead,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Dead => "dead",
        }
    }

    pub fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "dead" => Ok(Self::Dead),
            other => Err(StoreError::Invalid(format!(
                "jobs.status holds {other:?}, not queued, running or dead"
            ))),
        }
    }
}

impl std::str::FromStr for JobStatus {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<Self, StoreError> {
        Self::parse(value)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: String,
    pub kind: String,
    /// The job's own data, as JSON text.
    pub payload: String,
    /// While a job of this kind with this key is queued, enqueueing another
    /// adds nothing.
    pub dedupe_key: Option<String>,
    /// Higher runs first among due jobs of a queue.
    pub priority: i64,
    pub max_attempts: i64,
    pub run_at_us: i64,
}

/// A stored job, as claims and listings return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub dedupe_key: Option<String>,
    pub status: JobStatus,
    pub priority: i64,
    /// Claims so far, this one included for a running job.
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at_us: i64,
    pub lease_owner: Option<String>,
    pub lease_until_us: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

const JOB_COLUMNS: &str = "id, queue, kind, payload, dedupe_key, status, priority, attempts, \
     max_attempts, run_at_us, lease_owner, lease_until_us, last_error, created_at_us, updated_at_us";

fn job_row(row: &AnyRow) -> Result<JobRow, StoreError> {
    Ok(JobRow {
        id: row.col("id")?,
        queue: row.col("queue")?,
        kind: row.col("kind")?,
        payload: row.col("payload")?,
        dedupe_key: row.col("dedupe_key")?,
        status: row.col_parsed("status")?,
        priority: row.col("priority")?,
        attempts: row.col("attempts")?,
        max_attempts: row.col("max_attempts")?,
        run_at_us: row.col("run_at_us")?,
        lease_owner: row.col("lease_owner")?,
        lease_until_us: row.col("lease_until_us")?,
        last_error: row.col("last_error")?,
        created_at_us: row.col("created_at_us")?,
        updated_at_us: row.col("updated_at_us")?,
    })
}

/// The insert shared by both ways of enqueueing. `ON CONFLICT DO NOTHING`
/// answers a queued twin (the dedupe index) with no row.
fn insert_job(job: &NewJob, now: i64) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(
        "INSERT INTO jobs (queue, kind, payload, dedupe_key, status, priority, attempts, max_attempts, \
         run_at_us, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, 'queued', $5, 0, $6, $7, $8, $8) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&job.queue)
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(job.dedupe_key.as_deref())
    .bind(job.priority)
    .bind(job.max_attempts.max(1))
    .bind(job.run_at_us)
    .bind(now)
}

/// Whether an error is a unique-index violation (the dedupe index).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl Db {
    /// Enqueues inside the caller's transaction: the job exists exactly when
    /// the caller's change commits. `false`: a queued twin (same kind and
    /// dedupe key) already waits.
    pub async fn enqueue_job_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        job: &NewJob,
    ) -> Result<bool, StoreError> {
        let done = insert_job(job, now_micros()).execute(&mut **tx).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Enqueues on its own (autocommit). `false`: a queued twin waits.
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<bool, StoreError> {
        let done = insert_job(job, now_micros()).execute(self.pool()).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims up to `limit` due jobs of `queue` and of one of `kinds` (the
    /// ones the claimer can run) for `owner` until
    /// `now + lease_us`: queued ones whose time has come, and running ones
    /// whose lease has ended (their worker died). One statement: on
    /// PostgreSQL the candidate rows are locked with `SKIP LOCKED`, so
    /// concurrent claimers on several nodes take different jobs without
    /// waiting; on SQLite the single writer serialises claims.
    pub async fn claim_jobs(
        &self,
        queue: &str,
        kinds: &[String],
        owner: &str,
        now: i64,
        lease_us: i64,
        limit: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 6)).collect();
        let sql = format!(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until_us = $2, \
             attempts = attempts + 1, updated_at_us = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE queue = $4 AND kind IN ({}) AND \
             ((status = 'queued' AND run_at_us <= $3) OR (status = 'running' AND lease_until_us <= $3)) \
             ORDER BY priority DESC, run_at_us, id LIMIT $5{lock}) \
             RETURNING {JOB_COLUMNS}",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(owner)
            .bind(now.saturating_add(lease_us))
            .bind(now)
            .bind(queue)
            .bind(limit.max(1));
        for kind in kinds {
            query = query.bind(kind);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut jobs = rows.iter().map(job_row).collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives no order; run them in claim order.
        jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.run_at_us, j.id));
        Ok(jobs)
    }

    /// Extends a held lease; `false` when the job is no longer this owner's.
    pub async fn extend_job_lease(
        &self,
        id: i64,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until_us = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
        )
        .bind(until)
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A succeeded job is deleted. `false`: the lease was lost (another
    /// worker claimed it after it ended), and that worker finishes it.
    pub async fn complete_job(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A failed attempt: queued again for `retry_at` with the error, or
    /// `dead` when `retry_at` is `None` (out of attempts). A queued twin
    /// (same dedupe key) already covers a retry, so this one is then
    /// deleted. `false`: the lease was lost.
    pub async fn fail_job(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let now = now_micros();
        let status = match retry_at {
            Some(_) => JobStatus::Queued,
            None => JobStatus::Dead,
        };
        let result = sqlx::query(
            "UPDATE jobs SET status = $1, run_at_us = COALESCE($2, run_at_us), lease_owner = NULL, \
             lease_until_us = NULL, last_error = $3, updated_at_us = $4 \
             WHERE id = $5 AND lease_owner = $6 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(retry_at)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await;
        match result {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => self.complete_job(id, owner).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Jobs of one status, oldest first (`cohort jobs list`).
    pub async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        let rows = match status {
            Some(status) => {
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE status = $1 ORDER BY id LIMIT $2"
                ))
                .bind(status.as_str())
                .bind(limit.max(1))
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id LIMIT $1"
                ))
                .bind(limit.max(1))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(job_row).collect()
    }

    pub async fn get_job(&self, id: i64) -> Result<JobRow, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
        job_row(&row)
    }

    /// An operator's retry of a dead job: queued now with a fresh count of
    /// attempts. `NotFound` for an unknown id; `Invalid` for a job that is
    /// not dead (it will run, or is running, anyway).
    pub async fn retry_dead_job(&self, id: i64) -> Result<JobRow, StoreError> {
        let now = now_micros();
        let result = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at_us = $1, updated_at_us = $1 \
             WHERE id = $2 AND status = 'dead'",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await;
        let done = match result {
            Ok(done) => done,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Invalid(format!(
                    "job {id}: a job of the same kind and key is already queued"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        if done.rows_affected() == 0 {
            let job = self.get_job(id).await?;
            return Err(StoreError::Invalid(format!(
                "job {id} is {}, not dead",
                job.status.as_str()
            )));
        }
        self.get_job(id).await
    }

    /// Counts of jobs by status, for health and `cohort jobs list`.
    pub async fn count_jobs(&self) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.col_parsed::<JobStatus, _>("status")?,
                    row.col::<i64, _>("n")?,
                ))
            })
            .collect()
    }
}
