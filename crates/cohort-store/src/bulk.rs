//! Rows written straight into tables, for benchmarks: `cohort bench
//! segments` builds a store of millions of events in the form the
//! projector leaves it, which the real ingestion and projection would take
//! hours to produce on a small machine. Nothing in the product calls this;
//! the benchmark's own test holds its rows equal to what the projector
//! writes from the same events.
//!
//! SQLite: one connection of its own, prepared statements, one transaction
//! per call. PostgreSQL: `COPY … FROM STDIN`.

use std::sync::{Arc, Mutex};

use sqlx::postgres::PgPool;

use crate::db::{sqlite_error, AppendPool};
use crate::{Db, StoreError};

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_owned())
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

/// Writes rows into the tables of one database.
#[derive(Clone)]
pub struct BulkLoader {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(PgPool),
}

/// Table and column names are the caller's constants; only plain
/// identifiers are accepted, so nothing else reaches the SQL text.
fn check_identifier(name: &str) -> Result<(), StoreError> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "not a plain identifier: {name:?}"
        )))
    }
}

impl Db {
    /// A loader writing into this database's tables.
    pub fn bulk_loader(&self) -> Result<BulkLoader, StoreError> {
        let target = match self.append_pool() {
            AppendPool::Postgres(pool) => Target::Postgres(pool.clone()),
            AppendPool::Sqlite(_) => {
                let path = self
                    .sqlite_path()
                    .ok_or_else(|| StoreError::Invalid("no SQLite file".into()))?;
                let conn = rusqlite::Connection::open(path).map_err(sqlite_error)?;
                // A benchmark's store: a crash loses the load, not data.
                conn.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; \
                     PRAGMA cache_size = -1048576; PRAGMA temp_store = MEMORY; PRAGMA busy_timeout = 30000;",
                )
                .map_err(sqlite_error)?;
                Target::Sqlite(Arc::new(Mutex::new(conn)))
            }
        };
        Ok(BulkLoader { target })
    }
}

impl BulkLoader {
    /// Appends `rows` (each with one cell per column) to `table`, in one
    /// transaction.
    pub async fn insert(
        &self,
        table: &str,
        columns: &[&str],
        rows: Vec<Vec<Cell>>,
    ) -> Result<(), StoreError> {
        check_identifier(table)?;
        for c in columns {
            check_identifier(c)?;
        }
        if let Some(bad) = rows.iter().find(|r| r.len() != columns.len()) {
            return Err(StoreError::Invalid(format!(
                "a row of {} cells for {} columns of {table}",
                bad.len(),
                columns.len()
            )));
        }
        match &self.target {
            Target::Sqlite(conn) => {
                let conn = conn.clone();
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    columns.join(", "),
                    vec!["?"; columns.len()].join(", ")
                );
                tokio::task::spawn_blocking(move || {
                    let mut conn = conn
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(sqlite_error)?;
                    {
                        let mut st = tx.prepare_cached(&sql).map_err(sqlite_error)?;
                        for row in &rows {
                            for (i, cell) in row.iter().enumerate() {
                                let r = match cell {
                                    Cell::Null => {
                                        st.raw_bind_parameter(i + 1, rusqlite::types::Null)
                                    }
                                    Cell::Int(v) => st.raw_bind_parameter(i + 1, v),
                                    Cell::Text(v) => st.raw_bind_parameter(i + 1, v.as_str()),
                                };
                                r.map_err(sqlite_error)?;
                            }
                            st.raw_execute().map_err(sqlite_error)?;
                        }
                    }
                    tx.commit().map_err(sqlite_error)
                })
                .await
                .map_err(|e| StoreError::Invalid(format!("bulk insert: {e}")))?
            }
            Target::Postgres(pool) => {
                let mut data = String::with_capacity(rows.len() * 64);
                for row in &rows {
                    for (i, cell) in row.iter().enumerate() {
                        if i > 0 {
                            data.push('\t');
                        }
                        match cell {
                            Cell::Null => data.push_str("\\N"),
                            Cell::Int(v) => data.push_str(&v.to_string()),
                            Cell::Text(v) => copy_escape(&mut data, v),
                        }
                    }
                    data.push('\n');
                }
                let mut conn = pool.acquire().await?;
                let mut copy = conn
                    .copy_in_raw(&format!("COPY {table} ({}) FROM STDIN", columns.join(", ")))
                    .await?;
                copy.send(data.into_bytes()).await?;
                copy.finish().await?;
                Ok(())
            }
        }
    }

    /// After a load: the log marked as projected (the rows written are the
    /// projection; the projector must not fold them again). PostgreSQL: the
    /// log's sequence past the rows written with their own `seq`, and
    /// statistics for the planner (autovacuum would gather them soon; a
    /// benchmark cannot wait for it). SQLite: the WAL copied back; no
    /// `ANALYZE`, as Cohort never runs one there.
    pub async fn finish(&self) -> Result<(), StoreError> {
        match &self.target {
            Target::Sqlite(conn) => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = conn
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    conn.execute_batch(
                        "UPDATE projection_cursor SET last_seq = MAX(last_seq, COALESCE((SELECT MAX(seq) FROM events), 0)) \
                         WHERE name = 'profiles'; PRAGMA wal_checkpoint(TRUNCATE);",
                    )
                        .map_err(sqlite_error)
                })
                .await
                .map_err(|e| StoreError::Invalid(format!("bulk finish: {e}")))?
            }
            Target::Postgres(pool) => {
                sqlx::query(
                    "SELECT setval(pg_get_serial_sequence('events', 'seq'), COALESCE((SELECT MAX(seq) FROM events), 0) + 1, false)",
                )
                .execute(pool)
                .await?;
                sqlx::query(
                    "UPDATE projection_cursor SET last_seq = GREATEST(last_seq, COALESCE((SELECT MAX(seq) FROM events), 0)) \
                     WHERE name = 'profiles'",
                )
                .execute(pool)
                .await?;
                sqlx::query("ANALYZE").execute(pool).await?;
                Ok(())
            }
        }
    }
}

/// A value in `COPY`'s text format.
fn copy_escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}
