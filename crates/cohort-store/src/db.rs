use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Executor};

use crate::StoreError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::UnsupportedUrl(format!("{scheme}:…")))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// SQLite's `synchronous` setting. `full` fsyncs every commit, so an
/// acknowledged event survives power loss, not only a crashed process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Normal,
    Full,
}

impl FromStr for SqliteSynchronous {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "full" => Ok(Self::Full),
            other => Err(format!("expected normal or full, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub sqlite_synchronous: SqliteSynchronous,
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            sqlite_synchronous: SqliteSynchronous::Full,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// A pool on one of the two backends. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    append: AppendPool,
}

/// Where events are appended: the backend's own driver rather than `Any`.
/// A group commit inserts thousands of rows; through `Any` each argument is
/// converted, PostgreSQL arrays cannot be bound, and SQLite looks `$n`
/// placeholders up by name, quadratically in their number (a fifth of the
/// server's CPU time in the profile). Connections open on first use.
#[derive(Clone)]
pub(crate) enum AppendPool {
    Sqlite(Arc<SqliteAppender>),
    Postgres(PgPool),
}

/// The one connection that appends events to a SQLite file, used from a
/// blocking thread: a whole group commit is one call into SQLite with a
/// prepared statement, instead of a message to sqlx's connection thread and
/// a wake-up of the writer task for every statement. SQLite has one writer
/// at a time in any case; the mutex is that queue.
pub(crate) struct SqliteAppender {
    path: PathBuf,
    synchronous: SqliteSynchronous,
    busy_timeout: Duration,
    pub(crate) connection: Mutex<AppenderState>,
}

pub(crate) enum AppenderState {
    Unopened,
    Open(OpenAppender),
    Closed,
}

pub(crate) struct OpenAppender {
    pub(crate) conn: rusqlite::Connection,
    /// Wakes the checkpointer after a commit; its thread ends when this is
    /// dropped.
    checkpoint: std::sync::mpsc::SyncSender<()>,
}

impl OpenAppender {
    /// Asks for a checkpoint of what was just committed. Requests arriving
    /// while one is pending are merged into it.
    pub(crate) fn request_checkpoint(&self) {
        let _ = self.checkpoint.try_send(());
    }
}

/// SQLite page cache of the appending connection, in KiB. A group commit
/// dirties about one page per event (the leaves of the user index are hit
/// at random), 3 MiB or more; the default cache (2 MiB) is smaller, and
/// SQLite then writes dirty pages out before the commit.
const SQLITE_APPEND_CACHE_KIB: i64 = 64 * 1024;

/// SQLite page cache of each pooled connection, in KiB. A projection
/// batch rewrites thousands of rows; with the default 2 MiB, SQLite spilled
/// dirty pages mid-transaction. Allocated only as pages are used.
const SQLITE_POOL_CACHE_KIB: i64 = 32 * 1024;

/// WAL pages after which the appending connection checkpoints by itself,
/// in the commit path. Normally the checkpointer thread has copied nearly
/// all of them back already; this bounds the WAL if it falls behind.
const SQLITE_APPEND_AUTOCHECKPOINT_PAGES: u32 = 16_384;

impl SqliteAppender {
    fn connect(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy_timeout)?;
        let synchronous = match self.synchronous {
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
        ))?;
        Ok(conn)
    }

    /// Opens the appending connection and starts its checkpointer.
    pub(crate) fn open(&self) -> Result<OpenAppender, StoreError> {
        let conn = self.connect().map_err(sqlite_error)?;
        // temp_store: a statement that may fail part way keeps a statement
        // journal, a temporary file by default.
        conn.execute_batch(&format!(
            "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{SQLITE_APPEND_CACHE_KIB}; \
             PRAGMA wal_autocheckpoint = {SQLITE_APPEND_AUTOCHECKPOINT_PAGES};"
        ))
        .map_err(sqlite_error)?;
        let checkpointer = self.connect().map_err(sqlite_error)?;
        let (checkpoint, requests) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("cohort-checkpoint".into())
            .spawn(move || run_checkpointer(checkpointer, requests))?;
        Ok(OpenAppender { conn, checkpoint })
    }
}

/// Copies committed WAL pages back into the database file on its own
/// thread, so that the appending connection spends its time appending: a
/// checkpoint in the commit path took a quarter of its time. A PASSIVE
/// checkpoint never blocks the appender or readers; it copies what it can.
fn run_checkpointer(conn: rusqlite::Connection, requests: std::sync::mpsc::Receiver<()>) {
    while requests.recv().is_ok() {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(%error, "background checkpoint failed; the appender checkpoints by itself");
        }
    }
}

/// A SQLite error of the appending connection, as the `sqlx` error every
/// other storage call returns, so callers handle one kind.
#[derive(Debug)]
struct SqliteAppendError {
    message: String,
    extended_code: Option<i32>,
}

impl std::fmt::Display for SqliteAppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqliteAppendError {}

impl sqlx::error::DatabaseError for SqliteAppendError {
    fn message(&self) -> &str {
        &self.message
    }
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.extended_code.map(|code| code.to_string().into())
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.extended_code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

pub(crate) fn sqlite_error(error: rusqlite::Error) -> StoreError {
    let extended_code = match &error {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.extended_code),
        _ => None,
    };
    let error = SqliteAppendError {
        message: error.to_string(),
        extended_code,
    };
    StoreError::Database(sqlx::Error::Database(Box::new(error)))
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the backend is shown.
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    /// Connects, creating the SQLite file (and its folder) when missing.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let busy_ms = options.busy_timeout.as_millis();
        let synchronous = match options.sqlite_synchronous {
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
        };
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            format!(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms}; \
                                 PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{SQLITE_POOL_CACHE_KIB};"
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let append = match backend {
            Backend::Sqlite => AppendPool::Sqlite(Arc::new(SqliteAppender {
                // The file exactly as sqlx resolves it (percent-decoded).
                path: SqliteConnectOptions::from_str(&url)?
                    .get_filename()
                    .to_path_buf(),
                synchronous: options.sqlite_synchronous,
                busy_timeout: options.busy_timeout,
                connection: Mutex::new(AppenderState::Unopened),
            })),
            Backend::Postgres => AppendPool::Postgres(
                PgPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_lazy_with(PgConnectOptions::from_str(&url)?),
            ),
        };
        Ok(Self {
            pool,
            backend,
            append,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// `BEGIN` (`IMMEDIATE`), waiting up to the busy timeout: a deferred
    /// transaction that reads first and writes later fails at once with
    /// `SQLITE_BUSY` whenever another connection committed in between (the
    /// event appender and the projector commit all the time).
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn append_pool(&self) -> &AppendPool {
        &self.append
    }

    /// The SQLite file, on SQLite.
    pub(crate) fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.append {
            AppendPool::Sqlite(a) => Some(&a.path),
            AppendPool::Postgres(_) => None,
        }
    }

    /// Applies the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.append {
            AppendPool::Sqlite(appender) => {
                if let Ok(mut state) = appender.connection.lock() {
                    *state = AppenderState::Closed;
                }
            }
            AppendPool::Postgres(pool) => pool.close().await,
        }
        self.pool.close().await;
    }
}

/// `sqlite://data/cohort.db` → the same URL with `mode=rwc`, after creating
/// `data/`, so the first start needs nothing prepared.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Invalid(
            "an in-memory SQLite database loses acknowledged events; give a file path".into(),
        ));
    }
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let mut url = format!("sqlite://{path}");
    if query.is_empty() {
        url.push_str("?mode=rwc");
    } else {
        url.push('?');
        url.push_str(query);
        if !query.contains("mode=") {
            url.push_str("&mode=rwc");
        }
    }
    Ok(url)
}
