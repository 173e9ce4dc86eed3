//! The log follower: a named cursor over the event log by `seq`, shared by
//! every consumer of the log. A batch is read in a write transaction that
//! holds the cursor's row (two nodes following one name take turns), up to
//! the PostgreSQL visibility horizon (a lower `seq` committed late is never
//! passed), and the consumer writes its effects in that same transaction
//! before [`LogBatch::commit`] moves the cursor: a crash repeats nothing and
//! skips nothing. An idle follower reads without writing.

pub use cohort_store::log_cursor::{FollowedEvent, LogBatch};
use cohort_store::{Db, StoreError};

/// Where a cursor opened for the first time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Every event ever stored.
    Beginning,
    /// Only events appended from now on.
    End,
}

#[derive(Clone)]
pub struct LogFollower {
    db: Db,
    name: String,
    batch: i64,
}

impl LogFollower {
    /// Opens (or creates) the cursor `name`; batches of at most `batch`
    /// events.
    pub async fn open(db: Db, name: &str, start: StartAt, batch: i64) -> Result<Self, StoreError> {
        let at = match start {
            StartAt::Beginning => 0,
            StartAt::End => db.log_end().await?,
        };
        db.open_log_cursor(name, at).await?;
        Ok(Self {
            db,
            name: name.to_owned(),
            batch: batch.max(1),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last `seq` this follower has finished.
    pub async fn position(&self) -> Result<i64, StoreError> {
        self.db.log_cursor(&self.name).await
    }

    /// The next batch, or `None` when nothing new is readable (no write
    /// taken then).
    pub async fn next_batch(&self) -> Result<Option<LogBatch>, StoreError> {
        self.db.next_log_batch(&self.name, self.batch).await
    }
}
