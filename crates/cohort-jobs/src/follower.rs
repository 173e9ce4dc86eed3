//! The log follower: a named cursor over the event log by `seq`, shared by
//! every consumer of the log. A batch is read in a write transaction that
//! holds the cursor's row (two nodes following one name take turns), up to
//! the PostgreSQL visibility horizon (a lower `seq` committed late is never
//! passed), and the consumer writes its effects in that same transaction
//! before [`LogBatch::commit`] moves the cursor: a crash repeats nothing and
//! skips nothing. An idle follower reads without writing.

use cohort_store::log_cursor::FollowedEvent;
use cohort_store::{Db, StoreError};
use sqlx::{Any, Transaction};

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
        let cursor = self.db.log_cursor(&self.name).await?;
        if !self.db.log_has_events_after(cursor).await? {
            return Ok(None);
        }
        let horizon = self.db.log_horizon().await?;
        let mut tx = self.db.begin_write().await?;
        let cursor = self.db.lock_log_cursor(&mut tx, &self.name).await?;
        let events = self
            .db
            .read_log_in(&mut tx, cursor, horizon, self.batch)
            .await?;
        let Some(last_seq) = events.last().map(|e| e.event.seq) else {
            // Only events past the horizon: nothing to do yet.
            tx.rollback().await?;
            return Ok(None);
        };
        Ok(Some(LogBatch {
            db: self.db.clone(),
            name: self.name.clone(),
            tx,
            events,
            last_seq,
            batch: self.batch,
        }))
    }
}

/// A batch read and not yet committed. Dropping it without
/// [`LogBatch::commit`] rolls back: the events are read again.
pub struct LogBatch {
    db: Db,
    name: String,
    tx: Transaction<'static, Any>,
    events: Vec<FollowedEvent>,
    last_seq: i64,
    batch: i64,
}

impl LogBatch {
    /// The events, in `seq` order (erased ones included, marked).
    pub fn events(&self) -> &[FollowedEvent] {
        &self.events
    }

    /// The transaction the cursor moves in: write the consumer's effects here.
    pub fn tx(&mut self) -> &mut Transaction<'static, Any> {
        &mut self.tx
    }

    /// Whether the batch was full (more may be waiting).
    pub fn is_full(&self) -> bool {
        self.events.len() as i64 >= self.batch
    }

    /// Moves the cursor past the batch and commits the consumer's writes
    /// with it.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.db
            .advance_log_cursor(&mut self.tx, &self.name, self.last_seq)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
