use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A kind of background work. Its value is the job's payload (stored as
/// JSON), so a job carries ids, never secrets or whole records that could
/// change before it runs.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The stored name of this kind; never change it once jobs exist.
    const KIND: &'static str;
    /// Runners take jobs of one queue; separate queues keep a flood of one
    /// kind (a campaign) from delaying another (transactional mail).
    const QUEUE: &'static str = "default";
    /// Higher runs first among the due jobs of a queue.
    const PRIORITY: i64 = 0;
    /// Attempts before the job is dead-lettered.
    const MAX_ATTEMPTS: u32 = 8;

    /// What the job runs with (a database handle, clients, keys).
    type Context: Clone + Send + Sync + 'static;

    /// While a job of this kind with this key is queued, enqueueing another
    /// adds nothing ("sync this store" asked twice is one sync).
    fn dedupe_key(&self) -> Option<String> {
        None
    }

    fn run(self, context: Self::Context) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Why a job's attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub message: String,
    /// Retrying cannot help (the payload names nothing that exists): the job
    /// is dead-lettered at once.
    pub permanent: bool,
}

impl JobError {
    /// A failure worth another attempt after the backoff.
    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: true,
        }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
