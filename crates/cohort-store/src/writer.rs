//! The group-commit writer. Requests hand their events to a queue and wait;
//! a writer task takes everything queued, commits it in one transaction and
//! then answers every waiting request. One fsync thus covers many requests,
//! and a `200` is only ever sent for events that are committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinSet;

use crate::events::{append_in_one_transaction, NewEvent};
use crate::{Backend, Db, StoreError};

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Requests that may wait for a commit before new ones are refused.
    pub queue_capacity: usize,
    /// Most events committed in one transaction.
    pub max_group_events: usize,
    /// Concurrent committing tasks: 1 on SQLite (one writer at a time in any
    /// case); several on PostgreSQL, where commits proceed in parallel.
    pub tasks: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_group_events: 5000,
            tasks: 0,
        }
    }
}

/// Why events were not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The queue is full: the caller should come back shortly (429).
    #[error("the event writer is overloaded")]
    Overloaded,
    /// The database refused or is unreachable (503).
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The server is shutting down (503).
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Where a request learns how many of its events were new, or why none
/// were stored.
type Reply = oneshot::Sender<Result<u64, String>>;

struct WriteRequest {
    events: Vec<NewEvent>,
    done: Reply,
}

/// The handle requests use to append. Cloning it is cheap; when every clone
/// is dropped the writer tasks drain the queue and stop.
#[derive(Clone)]
pub struct EventWriter {
    queue: mpsc::Sender<WriteRequest>,
}

impl EventWriter {
    /// Starts the writer tasks. Await the returned set after dropping every
    /// `EventWriter` to be sure all queued events were committed.
    pub fn start(db: Db, options: WriterOptions) -> (EventWriter, JoinSet<()>) {
        let (queue, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let tasks = match (options.tasks, db.backend()) {
            (0, Backend::Sqlite) => 1,
            (0, Backend::Postgres) => 4,
            (n, _) => n,
        };
        let mut set = JoinSet::new();
        for _ in 0..tasks {
            set.spawn(run_writer(
                db.clone(),
                receiver.clone(),
                options.max_group_events.max(1),
            ));
        }
        (EventWriter { queue }, set)
    }

    /// Appends events durably: returns once they are committed (or were
    /// already in the log), with the number of new rows.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<u64, AppendError> {
        if events.is_empty() {
            return Ok(0);
        }
        let (done, answer) = oneshot::channel();
        self.queue
            .try_send(WriteRequest { events, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => AppendError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => AppendError::ShuttingDown,
            })?;
        match answer.await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(reason)) => Err(AppendError::Unavailable(reason)),
            Err(_) => Err(AppendError::ShuttingDown),
        }
    }
}

async fn run_writer(
    db: Db,
    receiver: Arc<Mutex<mpsc::Receiver<WriteRequest>>>,
    max_group_events: usize,
) {
    loop {
        let group = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                break;
            };
            let mut size = first.events.len();
            let mut group = vec![first];
            while size < max_group_events {
                match receiver.try_recv() {
                    Ok(next) => {
                        size += next.events.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        commit_group(&db, group).await;
    }
}

async fn commit_group(db: &Db, group: Vec<WriteRequest>) {
    let (requests, group): (Vec<Vec<NewEvent>>, Vec<Reply>) =
        group.into_iter().map(|r| (r.events, r.done)).unzip();
    let result: Result<Vec<u64>, StoreError> =
        append_in_one_transaction(db.append_pool(), requests).await;
    match result {
        Ok(counts) => {
            for (done, count) in group.into_iter().zip(counts) {
                let _ = done.send(Ok(count));
            }
        }
        Err(error) => {
            tracing::warn!(%error, requests = group.len(), "event commit failed; answering 503");
            // A failed group is not retried here: every waiting client gets a
            // 503 and retries, and dedupe by messageId keeps retries single.
            let reason = error.to_string();
            for done in group {
                let _ = done.send(Err(reason.clone()));
            }
            // Give a locked or restarting database a moment before the next try.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
