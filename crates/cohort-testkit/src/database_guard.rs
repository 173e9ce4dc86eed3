//! Drops a PostgreSQL test database when the test that created it ends, so
//! a run leaves no `cohort_test_*` database behind.

use std::time::Duration;

use sqlx::Connection;

/// How long dropping one database may take before the test gives up on it
/// (with a line on stderr) instead of hanging.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// Owns one test database on the server at `admin_url`; dropping the guard
/// drops the database, also when the test panics.
pub(crate) struct DatabaseGuard {
    admin_url: String,
    name: String,
}

impl DatabaseGuard {
    /// `name` must be a plain identifier (the testkit makes it).
    pub(crate) fn new(admin_url: &str, name: &str) -> Self {
        DatabaseGuard {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        // `Drop` is sync and usually runs on the test's runtime, which must not
        // be blocked on (a current-thread runtime would deadlock): the statement
        // runs on a thread of its own with a small runtime, joined before the
        // test goes on, so the process cannot exit before the drop is done.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || drop_database(&admin_url, &name)).join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
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
