use std::time::Duration;

use cohort_store::jobs::{JobRow, JobStatus, NewJob};
use cohort_store::{now_micros, Db};
use sqlx::{Any, Transaction};

use crate::{Job, JobsError};

/// Enqueueing and operating the queue: what the application and the
/// operator see of it.
#[derive(Clone)]
pub struct JobQueue {
    db: Db,
}

fn new_job<J: Job>(job: &J, delay: Duration) -> Result<NewJob, JobsError> {
    let payload = serde_json::to_string(job).map_err(|source| JobsError::Payload {
        kind: J::KIND,
        source,
    })?;
    let delay_us = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
    Ok(NewJob {
        queue: J::QUEUE.to_owned(),
        kind: J::KIND.to_owned(),
        payload,
        dedupe_key: job.dedupe_key(),
        priority: J::PRIORITY,
        max_attempts: i64::from(J::MAX_ATTEMPTS),
        run_at_us: now_micros().saturating_add(delay_us),
    })
}

impl JobQueue {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Enqueues `job` inside the caller's transaction: it exists exactly
    /// when the caller's change commits. `false`: a queued twin (same kind
    /// and dedupe key) already waits.
    pub async fn enqueue_in<J: Job>(
        &self,
        tx: &mut Transaction<'_, Any>,
        job: &J,
    ) -> Result<bool, JobsError> {
        Ok(self
            .db
            .enqueue_job_in(tx, &new_job(job, Duration::ZERO)?)
            .await?)
    }

    /// Enqueues `job` on its own.
    pub async fn enqueue<J: Job>(&self, job: &J) -> Result<bool, JobsError> {
        self.enqueue_after(job, Duration::ZERO).await
    }

    /// Enqueues `job` to run no sooner than `delay` from now.
    pub async fn enqueue_after<J: Job>(&self, job: &J, delay: Duration) -> Result<bool, JobsError> {
        Ok(self.db.enqueue_job(&new_job(job, delay)?).await?)
    }

    /// The dead letters, oldest first.
    pub async fn dead(&self, limit: i64) -> Result<Vec<JobRow>, JobsError> {
        Ok(self.db.list_jobs(Some(JobStatus::Dead), limit).await?)
    }

    /// Every job still in the table (queued, running, dead), oldest first.
    pub async fn list(
        &self,
        status: Option<JobStatus>,
        limit: i64,
    ) -> Result<Vec<JobRow>, JobsError> {
        Ok(self.db.list_jobs(status, limit).await?)
    }

    /// An operator's retry of a dead job.
    pub async fn retry(&self, id: i64) -> Result<JobRow, JobsError> {
        Ok(self.db.retry_dead_job(id).await?)
    }
}
