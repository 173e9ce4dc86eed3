//! The event log: rows as the writer appends them, and reads with filters
//! and seek pagination. Rows are only ever appended (and erased per person).

use cohort_domain::collect::NormalizedMessage;
use cohort_domain::ids::{OrgId, SourceId};

use crate::db::{sqlite_error, AppendPool, AppenderState, SqliteAppender};
use crate::row::{map_rows, RowExt};
use crate::sql::{Bind, Statement};
use crate::{Db, StoreError};

/// One row to append: a normalised message of one organisation's source.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub org_id: OrgId,
    pub source_id: SourceId,
    pub message_id: String,
    pub message_type: &'static str,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
    pub timestamp_us: i64,
    pub received_at_us: i64,
    pub payload: String,
    pub notes: Option<String>,
}

impl NewEvent {
    pub fn from_message(org_id: &OrgId, source_id: &SourceId, m: &NormalizedMessage) -> Self {
        Self {
            org_id: org_id.clone(),
            source_id: source_id.clone(),
            message_id: m.message_id.clone(),
            message_type: m.message_type.as_str(),
            event: m.event.clone(),
            user_id: m.user_id.clone(),
            anonymous_id: m.anonymous_id.clone(),
            email: m.email.clone(),
            timestamp_us: m.timestamp.timestamp_micros(),
            received_at_us: m.received_at.timestamp_micros(),
            payload: payload_text(&m.message),
            notes: notes_text(&m.notes),
        }
    }

    /// As [`NewEvent::from_message`], taking the message's strings instead
    /// of copying them.
    pub fn from_owned(org_id: &OrgId, source_id: &SourceId, m: NormalizedMessage) -> Self {
        Self {
            org_id: org_id.clone(),
            source_id: source_id.clone(),
            payload: payload_text(&m.message),
            notes: notes_text(&m.notes),
            message_id: m.message_id,
            message_type: m.message_type.as_str(),
            event: m.event,
            user_id: m.user_id,
            anonymous_id: m.anonymous_id,
            email: m.email,
            timestamp_us: m.timestamp.timestamp_micros(),
            received_at_us: m.received_at.timestamp_micros(),
        }
    }
}

impl NewEvent {
    /// A WooCommerce resource (validated by the domain) as a log row.
    pub fn from_resource(
        org_id: &OrgId,
        source_id: &SourceId,
        resource: &cohort_domain::commerce::woocommerce::ResourceMessage,
        received_at_us: i64,
    ) -> Self {
        let mut message = resource.message.clone();
        message.insert(
            "receivedAt".into(),
            serde_json::Value::String(cohort_domain::time::format_rfc3339(
                cohort_domain::time::from_micros(received_at_us),
            )),
        );
        Self {
            org_id: org_id.clone(),
            source_id: source_id.clone(),
            message_id: resource.message_id.clone(),
            message_type: "resource",
            event: Some(format!("woocommerce.{}", resource.kind.as_str())),
            user_id: None,
            anonymous_id: None,
            email: resource.email.clone(),
            timestamp_us: resource.timestamp_us,
            received_at_us,
            payload: payload_text(&message),
            notes: None,
        }
    }
}

/// The message as stored: compact JSON, keys in order. Serialised from the
/// map in place; wrapping it in a `Value` first meant a deep copy.
fn payload_text(message: &serde_json::Map<String, serde_json::Value>) -> String {
    // A map with string keys always serialises.
    serde_json::to_string(message).unwrap_or_default()
}

fn notes_text(notes: &[String]) -> Option<String> {
    (!notes.is_empty()).then(|| serde_json::to_string(notes).unwrap_or_default())
}

/// A stored event as the log returns it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub source_id: String,
    pub message_id: String,
    pub message_type: String,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
    pub timestamp_us: i64,
    pub received_at_us: i64,
    pub payload: String,
    pub notes: Option<String>,
}

/// The columns `query_events` and the profile timeline select.
pub(crate) const STORED_EVENT_COLUMNS: &str =
    "seq, source_id, message_id, type, event, user_id, anonymous_id, email, timestamp_us, received_at_us, payload, notes";

/// A row of those columns (qualified or not) as a `StoredEvent`.
pub(crate) fn stored_event(r: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        seq: r.col("seq")?,
        source_id: r.col("source_id")?,
        message_id: r.col("message_id")?,
        message_type: r.col("type")?,
        event: r.col("event")?,
        user_id: r.col("user_id")?,
        anonymous_id: r.col("anonymous_id")?,
        email: r.col("email")?,
        timestamp_us: r.col("timestamp_us")?,
        received_at_us: r.col("received_at_us")?,
        payload: r.col("payload")?,
        notes: r.col("notes")?,
    })
}

/// Filters of a read; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub message_type: Option<String>,
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub message_id: Option<String>,
    /// Events whose `timestamp` is at or after this (µs).
    pub since_us: Option<i64>,
    /// Events whose `timestamp` is before this (µs).
    pub until_us: Option<i64>,
    /// Seek position: only events after (or, newest first, before) this seq.
    pub after_seq: Option<i64>,
    pub newest_first: bool,
    pub limit: u32,
}

impl Db {
    /// Events of `org` matching `query`, in `seq` order.
    pub async fn query_events(
        &self,
        org: &OrgId,
        query: &EventQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut st = Statement::new(format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE org_id = "
        ));
        let m = st.bind(Bind::Text(org.as_str().to_owned()));
        st.push(&m);
        let mut filter = |column: &str, op: &str, value: Bind| {
            let m = st.bind(value);
            st.push(&format!(" AND {column} {op} {m}"));
        };
        if let Some(v) = &query.message_type {
            filter("type", "=", Bind::Text(v.clone()));
        }
        if let Some(v) = &query.event {
            filter("event", "=", Bind::Text(v.clone()));
        }
        if let Some(v) = &query.user_id {
            filter("user_id", "=", Bind::Text(v.clone()));
        }
        if let Some(v) = &query.anonymous_id {
            filter("anonymous_id", "=", Bind::Text(v.clone()));
        }
        if let Some(v) = &query.message_id {
            filter("message_id", "=", Bind::Text(v.clone()));
        }
        if let Some(v) = query.since_us {
            filter("timestamp_us", ">=", Bind::Int(v));
        }
        if let Some(v) = query.until_us {
            filter("timestamp_us", "<", Bind::Int(v));
        }
        if let Some(v) = query.after_seq {
            filter(
                "seq",
                if query.newest_first { "<" } else { ">" },
                Bind::Int(v),
            );
        }
        st.push(if query.newest_first {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq ASC"
        });
        st.push(&format!(" LIMIT {}", query.limit.clamp(1, 1000)));
        let rows = st.query_planned_for_values().fetch_all(self.pool()).await?;
        map_rows(&rows, stored_event)
    }

    /// How many events of `org` are stored (all sources).
    pub async fn count_events(&self, org: &OrgId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM events WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_one(self.pool())
            .await?;
        row.col("n")
    }

    /// Appends events in one transaction; a `messageId` the organisation
    /// already has is skipped. Returns how many rows were new.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<u64, StoreError> {
        let counts = append_in_one_transaction(self.append_pool(), vec![events.to_vec()]).await?;
        Ok(counts.iter().sum())
    }
}

const INSERT_SQL: &str =
    "INSERT INTO events (org_id, source_id, message_id, type, event, user_id, \
     anonymous_id, email, timestamp_us, received_at_us, payload, notes) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
     ON CONFLICT (org_id, message_id) DO NOTHING";

/// Appends the events of several requests in one transaction, and returns
/// the number of new rows of each request. Nothing is visible, and no
/// count is returned, unless the commit succeeded.
pub(crate) async fn append_in_one_transaction(
    pool: &AppendPool,
    requests: Vec<Vec<NewEvent>>,
) -> Result<Vec<u64>, StoreError> {
    match pool {
        AppendPool::Sqlite(appender) => {
            let appender = appender.clone();
            tokio::task::spawn_blocking(move || append_sqlite(&appender, &requests))
                .await
                .map_err(|_| sqlx::Error::WorkerCrashed)?
        }
        AppendPool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            // Held until commit: the projector waits for every insert that
            // took a seq before it reads past that seq.
            sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
                .bind(crate::projection::PG_APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
            let mut counts = Vec::with_capacity(requests.len());
            for events in &requests {
                counts.push(insert_postgres(&mut tx, events).await?);
            }
            tx.commit().await?;
            Ok(counts)
        }
    }
}

/// Runs on a blocking thread: the whole group is one call into SQLite.
fn append_sqlite(
    appender: &SqliteAppender,
    requests: &[Vec<NewEvent>],
) -> Result<Vec<u64>, StoreError> {
    // A panic while the lock was held unwound through the transaction,
    // which rolled it back: the connection is still usable.
    let mut state = appender
        .connection
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if matches!(*state, AppenderState::Unopened) {
        *state = AppenderState::Open(appender.open()?);
    }
    let AppenderState::Open(appender) = &mut *state else {
        return Err(sqlx::Error::PoolClosed.into());
    };
    let counts = insert_sqlite(&mut appender.conn, requests).map_err(sqlite_error)?;
    appender.request_checkpoint();
    Ok(counts)
}

fn insert_sqlite(
    conn: &mut rusqlite::Connection,
    requests: &[Vec<NewEvent>],
) -> rusqlite::Result<Vec<u64>> {
    // Dropped without a commit (any error below), the transaction rolls back.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut counts = Vec::with_capacity(requests.len());
    {
        let mut insert = tx.prepare_cached(INSERT_SQL)?;
        for events in requests {
            let mut inserted = 0;
            for e in events {
                inserted += insert.execute(rusqlite::params![
                    e.org_id.as_str(),
                    e.source_id.as_str(),
                    e.message_id,
                    e.message_type,
                    e.event,
                    e.user_id,
                    e.anonymous_id,
                    e.email,
                    e.timestamp_us,
                    e.received_at_us,
                    e.payload,
                    e.notes,
                ])? as u64;
            }
            counts.push(inserted);
        }
    }
    tx.commit()?;
    Ok(counts)
}

/// One statement per request whatever its size: each column travels as one
/// array, so the statement text and its plan never change.
async fn insert_postgres(
    tx: &mut sqlx::PgConnection,
    events: &[NewEvent],
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    fn column<'a, T>(events: &'a [NewEvent], f: impl Fn(&'a NewEvent) -> T) -> Vec<T> {
        events.iter().map(f).collect()
    }
    let result = sqlx::query(
        "INSERT INTO events (org_id, source_id, message_id, type, event, user_id, anonymous_id, \
         email, timestamp_us, received_at_us, payload, notes) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[]) \
         ON CONFLICT (org_id, message_id) DO NOTHING",
    )
    .bind(column(events, |e| e.org_id.as_str()))
    .bind(column(events, |e| e.source_id.as_str()))
    .bind(column(events, |e| e.message_id.as_str()))
    .bind(column(events, |e| e.message_type))
    .bind(column(events, |e| e.event.as_deref()))
    .bind(column(events, |e| e.user_id.as_deref()))
    .bind(column(events, |e| e.anonymous_id.as_deref()))
    .bind(column(events, |e| e.email.as_deref()))
    .bind(column(events, |e| e.timestamp_us))
    .bind(column(events, |e| e.received_at_us))
    .bind(column(events, |e| e.payload.as_str()))
    .bind(column(events, |e| e.notes.as_deref()))
    .execute(&mut *tx)
    .await?;
    Ok(result.rows_affected())
}
