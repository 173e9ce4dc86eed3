//! Test helpers: a fresh database per test on each backend (dropped when
//! the test ends), a seeded organisation with a source and an API token,
//! recorded skips ([`skip`]) and a local HTTP [`Receiver`].
//!
//! PostgreSQL is reached through `COHORT_TEST_POSTGRES_URL` (scripts/test.sh
//! starts a throwaway server and sets it). Without it the PostgreSQL half of
//! a test is skipped and recorded, unless `COHORT_TEST_REQUIRE_POSTGRES=1`
//! (set by the test command and CI), which turns the absence into a failure.

mod chat_completions;
mod database_guard;
mod receiver;
mod scripted_smtp;
mod skip;
mod smtp_sink;

pub use chat_completions::ChatServer;
pub use receiver::{Answer, Received, Receiver, RECEIVER_ANSWER};
pub use scripted_smtp::ScriptedSmtp;
pub use skip::{skip, SKIP_LOG_VAR, WOOCOMMERCE_NOT_SET};
pub use smtp_sink::SmtpSink;

use cohort_domain::ids::{random_token, OrgId};
use cohort_store::orgs::Source;
use cohort_store::{Backend, Db, DbOptions};
use database_guard::DatabaseGuard;

/// A database that exists for one test: removed when dropped.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    /// Keeps the SQLite folder alive for the test's duration, then removes it.
    _dir: Option<tempfile::TempDir>,
    /// Drops the PostgreSQL database; declared after `db`, whose pool goes first.
    _drop: Option<DatabaseGuard>,
}

impl TestDb {
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }
}

/// An organisation with one source and one API token.
pub struct Seeded {
    pub org: OrgId,
    pub source: Source,
    pub token: String,
}

pub async fn sqlite() -> TestDb {
    sqlite_with(&DbOptions::default()).await
}

pub async fn sqlite_with(options: &DbOptions) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/cohort.db", dir.path().display());
    let db = Db::connect(&url, options).await.expect("open sqlite");
    db.migrate().await.expect("migrate sqlite");
    TestDb {
        db,
        url,
        _dir: Some(dir),
        _drop: None,
    }
}

/// The PostgreSQL server's URL, or `None` with a recorded skip when it is
/// not configured and not required.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("COHORT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("COHORT_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("COHORT_TEST_REQUIRE_POSTGRES=1 but COHORT_TEST_POSTGRES_URL is not set");
            }
            skip(
                "on PostgreSQL",
                "COHORT_TEST_POSTGRES_URL is not set (run scripts/test.sh to test both databases)",
            );
            None
        }
    }
}

/// A new, empty, migrated PostgreSQL database, or `None` (see module docs).
pub async fn postgres() -> Option<TestDb> {
    postgres_with(&DbOptions::default()).await
}

pub async fn postgres_with(options: &DbOptions) -> Option<TestDb> {
    let admin_url = postgres_admin_url()?;
    let name = format!("cohort_test_{}", random_token(12));
    let admin = Db::connect(
        &admin_url,
        &DbOptions {
            max_connections: 2,
            ..DbOptions::default()
        },
    )
    .await
    .expect("connect to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .expect("create test database");
    admin.close().await;
    // From here on the database is dropped again, also if the test panics.
    let guard = DatabaseGuard::new(&admin_url, &name);
    let url = replace_database(&admin_url, &name);
    let db = Db::connect(&url, options)
        .await
        .expect("connect to test database");
    db.migrate().await.expect("migrate postgres");
    Some(TestDb {
        db,
        url,
        _dir: None,
        _drop: Some(guard),
    })
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Every backend available to this test run: SQLite always, PostgreSQL when
/// configured.
pub async fn all_backends() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    dbs.extend(postgres().await);
    dbs
}

/// Creates an organisation with a source and an API token.
pub async fn seed(db: &Db, name: &str) -> Seeded {
    let org = db
        .create_organisation(name)
        .await
        .expect("create organisation");
    let source = db
        .create_source(&org.id, "Test source")
        .await
        .expect("create source");
    let (_, token) = db
        .create_api_token(&org.id, "test")
        .await
        .expect("create token");
    Seeded {
        org: org.id,
        source,
        token: token.reveal().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced_keeping_the_query() {
        assert_eq!(
            super::replace_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://u@h:1", "x"),
            "postgres://u@h:1/x"
        );
    }
}
