//! Drops a PostgreSQL test database when the test that created it ends, so
//! a run leaves no `cohort_test_*` database behind.

use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use sqlx::Connection;

/// How long dropping one database may take before the test gives up on it
/// (with a line on stderr) instead of hanging.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// The databases of this process not dropped yet (admin URL, name). A test
/// database held in a `static` (a fixture shared by a binary's tests) is
/// never dropped: what is left here is dropped when the process exits.
static NOT_DROPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static DROP_AT_EXIT: Once = Once::new();

/// Owns one test database on the server at `admin_url`; dropping the guard
/// drops the database, also when the test panics.
pub(crate) struct DatabaseGuard {
    admin_url: String,
    name: String,
}

impl DatabaseGuard {
    /// `name` must be a plain identifier (the testkit makes it).
    pub(crate) fn new(admin_url: &str, name: &str) -> Self {
        DROP_AT_EXIT.call_once(|| {
            // SAFETY: `atexit` only stores the pointer of a function that takes
            // and returns nothing; the function never unwinds (see below).
            unsafe {
                libc::atexit(drop_the_rest_at_exit);
            }
        });
        not_dropped().push((admin_url.to_owned(), name.to_owned()));
        DatabaseGuard {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        not_dropped().retain(|(_, name)| *name != self.name);
        drop_on_a_thread_of_its_own(&self.admin_url, &self.name);
    }
}

fn not_dropped() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    NOT_DROPPED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registered with `atexit`: runs when the test binary exits, after its tests.
extern "C" fn drop_the_rest_at_exit() {
    let left = std::mem::take(&mut *not_dropped());
    for (admin_url, name) in left {
        drop_on_a_thread_of_its_own(&admin_url, &name);
    }
}

/// `Drop` is sync and usually runs on the test's runtime, which must not be
/// blocked on (a current-thread runtime would deadlock): the statement runs on
/// a thread of its own with a small runtime, joined before the caller goes on,
/// so the process cannot exit before the drop is done. Never panics: a failure
/// is a line on stderr.
fn drop_on_a_thread_of_its_own(admin_url: &str, name: &str) {
    let (url, database) = (admin_url.to_owned(), name.to_owned());
    let dropped = std::thread::Builder::new()
        .name("drop-test-database".into())
        .spawn(move || drop_database(&url, &database))
        .map_err(|e| format!("no thread: {e}"))
        .and_then(|thread| {
            thread
                .join()
                .map_err(|_| "the dropping thread panicked".to_owned())
        })
        .and_then(|result| result);
    if let Err(error) = dropped {
        eprintln!("could not drop test database {name}: {error}");
    }
}

fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let statement = async {
            let mut admin = sqlx::PgConnection::connect(admin_url).await?;
            // FORCE: pools of the test (or a killed server's) may still be connected.
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
            admin.close().await
        };
        match tokio::time::timeout(DROP_TIMEOUT, statement).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {DROP_TIMEOUT:?}")),
        }
    })
}
