//! Cohort's one mechanism for background work, on the same database as
//! everything else, so several nodes share it without a broker:
//!
//! - [`Job`], [`Runner`], [`JobQueue`]: typed jobs enqueued inside the
//!   caller's transaction, claimed by lease (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL, a short single-statement claim on SQLite, never a
//!   transaction held while a job runs), retried with backoff and jitter,
//!   dead-lettered after their last attempt, a panic recorded as a failure;
//! - [`follower`]: a named cursor over the event log by `seq`, read up to the
//!   PostgreSQL visibility horizon and moved in the consumer's own
//!   transaction;
//! - [`worker`]: the one loop shape (round, idle wait, panic capture, stop on
//!   a [`CancellationToken`]) that every background loop of `cohort serve`
//!   runs in.
//!
//! It knows no job: `cohort-engine` defines them.

pub mod backoff;
pub mod follower;
mod job;
mod queue;
mod runner;
pub mod worker;

pub use job::{Job, JobError};
pub use queue::JobQueue;
pub use runner::{RunReport, Runner, RunnerOptions};
pub use tokio_util::sync::CancellationToken;

/// What the job machinery itself can fail with (a job's own failure is a
/// [`JobError`], recorded on its row).
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Store(#[from] cohort_store::StoreError),
    #[error("job payload of {kind}: {source}")]
    Payload {
        kind: &'static str,
        source: serde_json::Error,
    },
}
