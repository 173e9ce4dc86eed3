//! The real `cohort` binary as a child process, on a real database.
#![allow(dead_code)]

pub mod wordpress;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub url: String,
    pub database_url: String,
    /// Everything the server printed on stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
    _workdir: tempfile::TempDir,
}

impl Server {
    /// Starts `cohort serve` on `database_url` on a free port and waits until
    /// it listens.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Server {
        Self::start_until(database_url, env, " is listening on ").await
    }

    /// Starts a node with `[server] roles = ["workers"]` (no HTTP: `url` is
    /// empty) and waits until it says its workers run.
    pub async fn start_workers_only(database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut env = env.to_vec();
        env.push(("COHORT_SERVER__ROLES", "[\"workers\"]"));
        let mut server = Self::start_until(database_url, &env, " is running workers only ").await;
        server.url = String::new();
        server
    }

    async fn start_until(database_url: &str, env: &[(&str, &str)], ready: &'static str) -> Server {
        let workdir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cohort"));
        command
            .arg("serve")
            .current_dir(workdir.path())
            .env("COHORT_DATABASE__URL", database_url)
            .env("COHORT_SERVER__LISTEN", "127.0.0.1:0")
            .env("COHORT_LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start cohort serve");
        let output = Arc::new(Mutex::new(String::new()));
        let (url_tx, url_rx) = tokio::sync::oneshot::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out = output.clone();
        tokio::spawn(async move {
            let mut url_tx = Some(url_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                out.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split(ready).nth(1) {
                    let url = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(tx) = url_tx.take() {
                        let _ = tx.send(url);
                    }
                }
            }
        });
        let err = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                err.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let url = match tokio::time::timeout(Duration::from_secs(60), url_rx).await {
            Ok(Ok(url)) => url,
            _ => panic!("the server did not start:\n{}", output.lock().unwrap()),
        };
        Server {
            child,
            url,
            database_url: database_url.to_owned(),
            output,
            _workdir: workdir,
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The write key printed on first start.
    pub fn printed_write_key(&self) -> String {
        let output = self.output();
        output
            .lines()
            .find_map(|l| l.split("Write key of source").nth(1))
            .and_then(|rest| rest.split_whitespace().find(|w| w.starts_with("wk_")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no write key printed:\n{output}"))
    }

    pub fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
    }

    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("server exits")
            .unwrap()
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// An API token for the (only) organisation of `db`.
pub async fn api_token(db: &cohort_store::Db) -> String {
    let org = db.list_organisations().await.unwrap().remove(0);
    let (_, secret) = db.create_api_token(&org.id, "test").await.unwrap();
    secret.reveal().to_owned()
}

/// Every event the API returns, oldest first.
/// An admin API call: (status, JSON body).
pub async fn admin_call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

pub async fn all_events(url: &str, token: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = client
            .get(format!("{url}/api/v1/events"))
            .bearer_auth(token)
            .query(&[("limit", "1000")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: Value = request
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The real databases of this run: a fresh SQLite URL always, PostgreSQL
/// when configured. The `TestDb`s keep them alive.
pub async fn databases() -> Vec<cohort_testkit::TestDb> {
    cohort_testkit::all_backends().await
}

/// The Node clients directory and the Chromium binary for a browser test, or
/// `None` with a recorded skip (a panic under COHORT_TEST_REQUIRE_CLIENTS=1).
pub fn browser(what: &str) -> Option<(std::path::PathBuf, String)> {
    let dir = std::env::var("COHORT_TEST_CLIENTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients"))
        });
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if !dir.join("node_modules/playwright-core").exists() {
        Some(format!(
            "playwright-core is not installed in {}",
            dir.display()
        ))
    } else if !std::path::Path::new(&chromium).exists() {
        Some(format!("{chromium} is missing"))
    } else {
        None
    };
    match missing {
        None => Some((dir, chromium)),
        Some(why) if std::env::var("COHORT_TEST_REQUIRE_CLIENTS").as_deref() == Ok("1") => {
            panic!("COHORT_TEST_REQUIRE_CLIENTS=1 but {why}")
        }
        Some(why) => {
            cohort_testkit::skip(what, &format!("{why} (run scripts/test.sh)"));
            None
        }
    }
}

/// The end-to-end tests that drive a browser, a WordPress or a heavy load
/// against a real server take turns: in one test binary they would
/// otherwise all run at once on a 2-core machine, and a server starved of
/// CPU for seconds answers SQLite's busy timeout instead of the page the
/// test waits for. (When each file was its own binary they ran one file at
/// a time.)
pub async fn one_heavy_test_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}
