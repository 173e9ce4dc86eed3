//! The event log: rows as the writer appends them, and reads with filters
//! and seek pagination. Rows are only ever appended (and erased per person).

use cohort_domain::collect::NormalizedMessage;
use cohort_domain::ids::{OrgId, SourceId};
use sqlx::Row;

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
            payload: serde_json::Value::Object(m.message.clone()).to_string(),
            notes: (!m.notes.is_empty())
                .then(|| serde_json::to_string(&m.notes).unwrap_or_default()),
        }
    }
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

/// A SQL text with `$n` placeholders built alongside its values, since the
/// `Any` driver does not number placeholders itself.
enum Bind {
    Text(String),
    Int(i64),
}

impl Db {
    /// Events of `org` matching `query`, in `seq` order.
    pub async fn query_events(&self, org: &OrgId, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let mut sql = String::from(
            "SELECT seq, source_id, message_id, type, event, user_id, anonymous_id, email, \
             timestamp_us, received_at_us, payload, notes FROM events WHERE org_id = $1",
        );
        let mut binds = vec![Bind::Text(org.as_str().to_owned())];
        let mut filter = |column: &str, op: &str, value: Bind| {
            binds.push(value);
            sql.push_str(&format!(" AND {column} {op} ${}", binds.len()));
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
            filter("seq", if query.newest_first { "<" } else { ">" }, Bind::Int(v));
        }
        sql.push_str(if query.newest_first { " ORDER BY seq DESC" } else { " ORDER BY seq ASC" });
        sql.push_str(&format!(" LIMIT {}", query.limit.clamp(1, 1000)));

        let mut q = sqlx::query(&sql);
        for bind in binds {
            q = match bind {
                Bind::Text(v) => q.bind(v),
                Bind::Int(v) => q.bind(v),
            };
        }
        let rows = q.fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredEvent {
                seq: r.get("seq"),
                source_id: r.get("source_id"),
                message_id: r.get("message_id"),
                message_type: r.get("type"),
                event: r.get("event"),
                user_id: r.get("user_id"),
                anonymous_id: r.get("anonymous_id"),
                email: r.get("email"),
                timestamp_us: r.get("timestamp_us"),
                received_at_us: r.get("received_at_us"),
                payload: r.get("payload"),
                notes: r.get("notes"),
            })
            .collect())
    }

    /// How many events of `org` are stored (all sources).
    pub async fn count_events(&self, org: &OrgId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM events WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(row.get("n"))
    }

    /// Appends events in one transaction; a `messageId` the organisation
    /// already has is skipped. Returns how many rows were new.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let inserted = insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(inserted)
    }
}

const COLUMNS: usize = 12;
/// Rows per INSERT statement: few enough to stay under every backend's
/// parameter limit, many enough to amortise statement overhead.
const ROWS_PER_STATEMENT: usize = 64;

pub(crate) async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[NewEvent],
) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::with_capacity(200 + chunk.len() * 80);
        sql.push_str(
            "INSERT INTO events (org_id, source_id, message_id, type, event, user_id, anonymous_id, \
             email, timestamp_us, received_at_us, payload, notes) VALUES ",
        );
        for row in 0..chunk.len() {
            if row > 0 {
                sql.push(',');
            }
            sql.push('(');
            for col in 0..COLUMNS {
                if col > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", row * COLUMNS + col + 1));
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (org_id, message_id) DO NOTHING");
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.org_id.as_str())
                .bind(e.source_id.as_str())
                .bind(&e.message_id)
                .bind(e.message_type)
                .bind(&e.event)
                .bind(&e.user_id)
                .bind(&e.anonymous_id)
                .bind(&e.email)
                .bind(e.timestamp_us)
                .bind(e.received_at_us)
                .bind(&e.payload)
                .bind(&e.notes);
        }
        inserted += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(inserted)
}
