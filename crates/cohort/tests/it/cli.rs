//! The command line against a real database: configuration, organisations,
//! sources, users, tokens, `events tail` — and that no secret reaches the
//! server's logs, even at debug level.

use crate::common;

use std::process::Output;

use common::{databases, Server};
use serde_json::Value;

fn cohort(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"));
    command
        .args(args)
        .current_dir(dir.path())
        .env("COHORT_DATABASE__URL", database_url);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run cohort");
    assert!(
        output.status.success(),
        "cohort {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn default_config_prints_every_setting_with_comments() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .arg("default-config")
        .output()
        .unwrap();
    let text = stdout(&output);
    let parsed: toml::Value = toml::from_str(&text).expect("the printed file is valid TOML");
    for section in ["server", "database", "collect", "log"] {
        assert!(parsed.get(section).is_some(), "[{section}] missing");
    }
    assert_eq!(parsed["server"]["listen"].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(
        parsed["database"]["url"].as_str(),
        Some("sqlite://data/cohort.db")
    );
    assert!(
        text.lines().filter(|l| l.starts_with('#')).count() > 20,
        "the file explains its settings"
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(["--config", "/nonexistent/cohort.toml", "org", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[tokio::test]
async fn operators_manage_orgs_sources_users_and_tokens_and_no_secret_is_logged() {
    for t in databases().await {
        let url = t.url.as_str();
        let org = stdout(&cohort(
            url,
            &["org", "create", "--name", "Acme Store"],
            &[],
        ));
        assert!(org.starts_with("org_"), "{org}");
        let source = stdout(&cohort(
            url,
            &[
                "source",
                "create",
                "--org",
                "Acme Store",
                "--name",
                "Website",
            ],
            &[],
        ));
        let write_key = source
            .split_whitespace()
            .find(|w| w.starts_with("wk_"))
            .expect("write key printed")
            .to_owned();
        let password = "a long enough password";
        let user = stdout(&cohort(
            url,
            &[
                "user",
                "create",
                "--email",
                "Owner@Acme.test",
                "--role",
                "owner",
            ],
            &[("COHORT_PASSWORD", password)],
        ));
        assert!(user.contains("owner@acme.test"), "{user}");
        let stored_hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert!(
            stored_hash.starts_with("$argon2id$"),
            "passwords are stored with argon2"
        );
        let token = stdout(&cohort(url, &["token", "create", "--name", "ci"], &[]))
            .trim()
            .to_owned();
        assert!(token.starts_with("cht_"));
        let digest: String = sqlx::query_scalar("SELECT secret_digest FROM api_tokens")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert!(
            !token.contains(&digest) && digest.len() == 64,
            "tokens are stored as a SHA-256 digest"
        );
        let listed = stdout(&cohort(url, &["token", "list"], &[]));
        assert!(
            listed.contains("active") && !listed.contains(&token[token.len() - 10..]),
            "{listed}"
        );

        let server = Server::start(url, &[("COHORT_LOG__LEVEL", "debug")]).await;
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/v1/track", server.url))
            .basic_auth(&write_key, Some(""))
            .body(r#"{"userId":"u1","event":"Signed Up","messageId":"cli-1"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = client
            .get(format!("{}/v1/projects/{write_key}/settings", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = client
            .get(format!("{}/api/v1/events", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["data"][0]["message_id"], "cli-1");

        let tail = stdout(&cohort(url, &["events", "tail", "-n", "5"], &[]));
        let line: Value = serde_json::from_str(tail.lines().last().expect("a line")).unwrap();
        assert_eq!(line["message_id"], "cli-1");
        assert_eq!(line["event"], "Signed Up");

        let id = listed.split_whitespace().next().unwrap().to_owned();
        cohort(url, &["token", "revoke", &id], &[]);
        let r = client
            .get(format!("{}/api/v1/events", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        let logs = server.output();
        assert!(
            logs.contains("DEBUG") || logs.contains("debug"),
            "debug logging was on"
        );
        for secret in [write_key.as_str(), token.as_str(), password] {
            assert!(
                !logs.contains(secret),
                "a secret reached the logs on {}",
                t.backend().as_str()
            );
        }
    }
}

/// `cohort jobs list` shows the queue and its dead letters; `cohort jobs
/// retry` queues a dead job again and refuses one that is not dead.
#[tokio::test]
async fn jobs_are_listed_and_a_dead_one_is_retried_from_the_command_line() {
    for t in databases().await {
        let url = t.url.as_str();
        let empty = cohort(url, &["jobs", "list"], &[]);
        assert_eq!(stdout(&empty), "");
        assert!(String::from_utf8_lossy(&empty.stderr).contains("jobs: none"));

        let job = cohort_store::jobs::NewJob {
            queue: "default".into(),
            kind: "test.kind".into(),
            payload: "{}".into(),
            dedupe_key: None,
            priority: 0,
            max_attempts: 1,
            run_at_us: cohort_store::now_micros(),
        };
        t.db.enqueue_job(&job).await.unwrap();
        let kinds = vec!["test.kind".to_owned()];
        let claimed =
            t.db.claim_jobs(
                "default",
                &kinds,
                "me",
                cohort_store::now_micros(),
                60_000_000,
                1,
            )
            .await
            .unwrap();
        let id = claimed[0].id;
        assert!(t
            .db
            .fail_job(id, "me", "the store said 500", None)
            .await
            .unwrap());

        let dead = stdout(&cohort(url, &["jobs", "list", "--status", "dead"], &[]));
        assert!(
            dead.starts_with(&format!("{id}\tdead\ttest.kind\tdefault\t1/1\t")),
            "{dead}"
        );
        assert!(dead.trim_end().ends_with("the store said 500"), "{dead}");

        let retried = stdout(&cohort(url, &["jobs", "retry", &id.to_string()], &[]));
        assert!(
            retried.starts_with(&format!("{id}\tqueued\ttest.kind\tdefault\t0/1\t")),
            "{retried}"
        );

        // Not dead any more: a second retry says so, and fails.
        let again = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
            .args(["jobs", "retry", &id.to_string()])
            .env("COHORT_DATABASE__URL", url)
            .current_dir(tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("is queued, not dead"),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        let bad = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
            .args(["jobs", "list", "--status", "finished"])
            .env("COHORT_DATABASE__URL", url)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&bad.stderr)
            .contains("--status must be queued, running or dead"));
    }
}
