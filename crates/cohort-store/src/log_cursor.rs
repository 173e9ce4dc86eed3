//! Named cursors over the event log, for the one log follower
//! (`cohort-jobs::follower`) that the projector, the destinations and every
//! later consumer share. A cursor is a row of `projection_cursor` (the
//! projector's `profiles` row was the first; the table keeps its name): the
//! last `seq` a consumer has finished, moved in the same transaction as the
//! consumer's own writes, so a crash repeats nothing and skips nothing.
//!
//! PostgreSQL hands out `seq`s before commit, so a lower one can become
//! visible after a higher one; [`Db::log_horizon`] is the one place that
//! knows how far it is safe to read.

use cohort_domain::ids::OrgId;
use sqlx::{Any, Transaction};

use crate::events::{stored_event, StoredEvent, STORED_EVENT_COLUMNS};
use crate::row::RowExt;
use crate::sql::{Bind, Statement};
use crate::{now_micros, Backend, Db, StoreError};

/// The advisory lock PostgreSQL appenders hold (shared) while they insert,
/// so a reader can wait for every insert that took a lower `seq` to finish
/// before it reads past it.
pub(crate) const PG_APPEND_LOCK: i64 = 0x636f_686f_7274;

/// An event of the log as a follower sees it: every organisation's, in
/// `seq` order; erased ones are marked, not hidden, so a cursor passes them.
#[derive(Debug, Clone)]
pub struct FollowedEvent {
    pub org_id: OrgId,
    pub erased: bool,
    pub event: StoredEvent,
}

impl Db {
    /// The highest `seq` below which every insert has finished; `None` on
    /// SQLite, whose one writer makes every committed seq final. On
    /// PostgreSQL: the sequence's value, read before taking the append lock
    /// exclusively for an instant, which waits out every appender that took
    /// a lower seq (appenders hold it shared from before they take a seq
    /// until they commit).
    pub async fn log_horizon(&self) -> Result<Option<i64>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut conn = self.pool().acquire().await?;
        // Before the first insert, last_value is 1 with is_called false.
        let row = sqlx::query(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq_seq",
        )
        .fetch_one(&mut *conn)
        .await?;
        let highest: i64 = row.col(0)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_APPEND_LOCK)
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_APPEND_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(Some(highest))
    }

    /// Where a consumer that starts now begins: past every event already
    /// final (the horizon on PostgreSQL, the last `seq` on SQLite).
    pub async fn log_end(&self) -> Result<i64, StoreError> {
        if let Some(horizon) = self.log_horizon().await? {
            return Ok(horizon);
        }
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(self.pool())
            .await?;
        row.col(0)
    }

    /// Creates the cursor `name` at `start` if it does not exist yet;
    /// returns where it stands.
    pub async fn open_log_cursor(&self, name: &str, start: i64) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO projection_cursor (name, last_seq, updated_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(start)
        .bind(now_micros())
        .execute(self.pool())
        .await?;
        self.log_cursor(name).await
    }

    /// Where the cursor `name` stands (`NotFound` if never opened).
    pub async fn log_cursor(&self, name: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT last_seq FROM projection_cursor WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("log cursor {name}")))?;
        row.col(0)
    }

    /// Locks the cursor `name` inside `tx` (a write to its row, so two
    /// followers of one name on two nodes take turns) and returns where it
    /// stands then.
    pub async fn lock_log_cursor(
        &self,
        tx: &mut Transaction<'_, Any>,
        name: &str,
    ) -> Result<i64, StoreError> {
        let done = sqlx::query("UPDATE projection_cursor SET updated_at_us = $1 WHERE name = $2")
            .bind(now_micros())
            .bind(name)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("log cursor {name}")));
        }
        let row = sqlx::query("SELECT last_seq FROM projection_cursor WHERE name = $1")
            .bind(name)
            .fetch_one(&mut **tx)
            .await?;
        row.col(0)
    }

    /// Moves the cursor `name` to `seq` inside `tx` (never backwards).
    pub async fn advance_log_cursor(
        &self,
        tx: &mut Transaction<'_, Any>,
        name: &str,
        seq: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE projection_cursor SET last_seq = $1, updated_at_us = $2 WHERE name = $3 AND last_seq < $1",
        )
        .bind(seq)
        .bind(now_micros())
        .bind(name)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Whether any event lies past `after` (no lock, no write: an idle
    /// follower must not write, or SQLite's other writers meet SQLITE_BUSY).
    pub async fn log_has_events_after(&self, after: i64) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT seq FROM events WHERE seq > $1 ORDER BY seq LIMIT 1")
                .bind(after)
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// Up to `limit` events past `after` and not past `horizon`, in `seq`
    /// order, read inside `tx` (the transaction that will move the cursor).
    pub async fn read_log_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        after: i64,
        horizon: Option<i64>,
        limit: i64,
    ) -> Result<Vec<FollowedEvent>, StoreError> {
        let mut st = Statement::new(format!(
            "SELECT org_id, erased_at_us, {STORED_EVENT_COLUMNS} FROM events WHERE seq > "
        ));
        let m = st.bind(Bind::Int(after));
        st.push(&m);
        if let Some(h) = horizon {
            let m = st.bind(Bind::Int(h));
            st.push(&format!(" AND seq <= {m}"));
        }
        st.push(&format!(" ORDER BY seq LIMIT {}", limit.max(1)));
        let rows = st.query().fetch_all(&mut **tx).await?;
        rows.iter()
            .map(|row| {
                Ok(FollowedEvent {
                    org_id: OrgId::from_stored(row.col::<String, _>("org_id")?),
                    erased: row.col::<Option<i64>, _>("erased_at_us")?.is_some(),
                    event: stored_event(row)?,
                })
            })
            .collect()
    }

    /// The next batch of at most `limit` events past the cursor `name`, or
    /// `None` when nothing new is readable (no write taken then). The batch
    /// holds a write transaction with the cursor's row locked: the consumer
    /// writes its effects in it, then [`LogBatch::commit`] moves the cursor.
    pub async fn next_log_batch(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Option<LogBatch>, StoreError> {
        let cursor = self.log_cursor(name).await?;
        if !self.log_has_events_after(cursor).await? {
            return Ok(None);
        }
        let horizon = self.log_horizon().await?;
        let mut tx = self.begin_write().await?;
        let cursor = self.lock_log_cursor(&mut tx, name).await?;
        let events = self.read_log_in(&mut tx, cursor, horizon, limit).await?;
        let Some(last_seq) = events.last().map(|e| e.event.seq) else {
            // Only events past the horizon: nothing to do yet.
            tx.rollback().await?;
            return Ok(None);
        };
        Ok(Some(LogBatch {
            db: self.clone(),
            name: name.to_owned(),
            tx,
            events,
            last_seq,
            limit,
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
    limit: i64,
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
        self.events.len() as i64 >= self.limit
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
