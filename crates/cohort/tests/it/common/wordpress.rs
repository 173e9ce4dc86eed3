//! A real WordPress for the plugin's end-to-end tests: Debian's `wordpress`
//! on PHP's built-in server with a MariaDB of the test's own
//! (`tests/wordpress/site.sh`), optionally with a real WooCommerce, and the
//! Chromium driver `tests/clients/wordpress_plugin.mjs`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// How long `php -S` and its workers get to exit on SIGTERM before SIGKILL.
const PHP_STOP_GRACE: Duration = Duration::from_secs(3);

/// Whether a WordPress end-to-end test can run: `false` after a recorded
/// skip when a part is missing (a panic under
/// COHORT_TEST_REQUIRE_WORDPRESS=1, which scripts/test.sh sets).
pub fn available(what: &str) -> bool {
    let Some(missing) = missing_parts() else {
        return true;
    };
    if std::env::var("COHORT_TEST_REQUIRE_WORDPRESS").as_deref() == Ok("1") {
        panic!("COHORT_TEST_REQUIRE_WORDPRESS=1 but missing: {missing}");
    }
    cohort_testkit::skip(what, &format!("missing {missing} (run scripts/test.sh)"));
    false
}

/// The unpacked WooCommerce plugin named by COHORT_WOOCOMMERCE_DIR, or
/// `None` after a recorded skip: WooCommerce is in no package registry
/// this project's CI reaches (docs/PLUGIN.md says how to get one).
pub fn woocommerce_dir(what: &str) -> Option<PathBuf> {
    match std::env::var("COHORT_WOOCOMMERCE_DIR") {
        Ok(dir) if Path::new(&dir).join("woocommerce.php").exists() => Some(PathBuf::from(dir)),
        Ok(dir) => panic!("COHORT_WOOCOMMERCE_DIR={dir} has no woocommerce.php"),
        Err(_) => {
            let reason = cohort_testkit::WOOCOMMERCE_NOT_SET;
            cohort_testkit::skip(
                what,
                &format!("{reason} (an unpacked WooCommerce 7.8.x; see docs/PLUGIN.md)"),
            );
            None
        }
    }
}

/// What this test needs, or why it cannot run.
pub fn missing_parts() -> Option<String> {
    let clients = clients_dir();
    let checks: [(&str, bool); 7] = [
        (
            "Debian's wordpress (/usr/share/wordpress)",
            Path::new("/usr/share/wordpress/wp-includes/version.php").exists(),
        ),
        ("php", which("php")),
        ("php-mysql (mysqli)", php_has("mysqli")),
        ("mariadb-server (mariadbd)", which("mariadbd")),
        ("node", which("node")),
        (
            "playwright-core in tests/clients",
            clients.join("node_modules/playwright-core").exists(),
        ),
        ("chromium", Path::new(&chromium()).exists()),
    ];
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| *what)
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

pub fn which(program: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn php_has(extension: &str) -> bool {
    std::process::Command::new("php")
        .args([
            "-r",
            &format!("exit(extension_loaded('{extension}') ? 0 : 1);"),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

pub fn clients_dir() -> PathBuf {
    std::env::var("COHORT_TEST_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(ROOT).join("tests/clients"))
}

pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

pub fn site_script() -> PathBuf {
    Path::new(ROOT).join("tests/wordpress/site.sh")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real WordPress: MariaDB on a socket, `php -S`, the plugin copied in.
pub struct WordPress {
    pub dir: tempfile::TempDir,
    pub url: String,
    /// `php -S`, leader of a process group of its own that holds its workers.
    php: Child,
}

impl WordPress {
    pub async fn start() -> WordPress {
        Self::start_with(None).await
    }

    /// A WordPress with the WooCommerce plugin unpacked at `woocommerce`
    /// activated and installed (`site.sh woocommerce`).
    pub async fn start_with_woocommerce(woocommerce: &Path) -> WordPress {
        Self::start_with(Some(woocommerce)).await
    }

    async fn start_with(woocommerce: Option<&Path>) -> WordPress {
        let dir = tempfile::Builder::new()
            .prefix("cohort-wp-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        site(&["db-start", path(dir.path())]).await;
        site(&["create", path(dir.path()), &url, "wordpress"]).await;
        if let Some(wc) = woocommerce {
            site(&["woocommerce", path(dir.path()), path(wc)]).await;
        }
        let php = Command::new("bash")
            .arg(site_script())
            .args(["serve", path(dir.path()), &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("php-server.log")).unwrap())
            // Its PHP_CLI_SERVER_WORKERS forks share this group: stopping the group
            // stops them all, where killing the leader left them holding the port.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{url}/wp-login.php"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return WordPress { dir, url, php };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("WordPress did not answer at {url}");
    }

    /// Runs PHP with WordPress loaded (a CLI request) and returns its stdout.
    pub async fn php(&self, code: &str) -> String {
        site(&["php", path(self.dir.path()), code]).await
    }

    pub async fn option(&self, name: &str) -> Value {
        let out = self
            .php(&format!("echo wp_json_encode(get_option('{name}', null));"))
            .await;
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("option {name}: {e}: {out}"))
    }

    /// Runs one WP-Cron event now through WordPress's own `wp-cron.php`.
    pub async fn run_cron_event(&self, hook: &str) {
        self.php(&format!(
            "wp_clear_scheduled_hook('{hook}'); wp_schedule_single_event(time() - 1, '{hook}'); echo 'ok';"
        ))
        .await;
        let status = reqwest::Client::new()
            // Without `doing_wp_cron`: wp-cron.php then takes its own lock and runs what is due.
            .get(format!("{}/wp-cron.php", self.url))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "wp-cron.php answered {status}");
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for WordPress {
    /// Also on a failed assertion: no MariaDB or PHP server outlives the test.
    fn drop(&mut self) {
        stop_process_group(&mut self.php);
        // MariaDB is one process: site.sh stops it by its pid file (TERM, then KILL).
        let _ = std::process::Command::new("bash")
            .arg(site_script())
            .args(["db-stop", path(self.dir.path())])
            .status();
    }
}

/// Stops every process of the group `leader` leads: SIGTERM, then SIGKILL
/// to whatever is still alive after [`PHP_STOP_GRACE`].
fn stop_process_group(leader: &mut Child) {
    let Some(group) = leader.id() else {
        return; // already reaped: its group was stopped before
    };
    signal_group(group, "TERM");
    let deadline = Instant::now() + PHP_STOP_GRACE;
    while Instant::now() < deadline {
        // Reaps the leader, so that only live processes count below.
        let _ = leader.try_wait();
        if !group_has_live_process(group) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(group, "KILL");
    let _ = leader.try_wait();
}

fn signal_group(group: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{group}"))
        .stderr(Stdio::null())
        .status();
}

/// Whether a process of `group` is still running (zombies, which hold no
/// port, do not count: the leader's workers are reaped by init, not by us).
fn group_has_live_process(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    let group = group.to_string();
    entries.flatten().any(|entry| {
        std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
            // `pid (command) state ppid pgrp …`; the command may hold spaces.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().take(3).collect();
            matches!(fields[..], [state, _ppid, pgrp] if state != "Z" && pgrp == group)
        })
    })
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub async fn site(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(site_script())
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "site.sh {}: {}\n{}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One step of the Chromium driver `tests/clients/wordpress_plugin.mjs`.
pub async fn drive(step: &str, wp: &WordPress, cohort_url: &str, extra: Value) -> Value {
    let mut args = json!({
        "wp": wp.url,
        "cohort": cohort_url,
        "state": wp.dir.path().join("admin-session.json"),
        "shots": Path::new(env!("CARGO_TARGET_TMPDIR")).join("wordpress-screenshots"),
    });
    if let (Some(target), Some(more)) = (args.as_object_mut(), extra.as_object()) {
        target.extend(more.clone());
    }
    let out = Command::new("node")
        .arg(clients_dir().join("wordpress_plugin.mjs"))
        .arg(step)
        .arg(args.to_string())
        .env("CHROMIUM", chromium())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "driver {step}: {e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        report.get("error").is_none(),
        "driver step {step} failed: {report:#}"
    );
    report
}

/// Waits (bounded) until `check` holds; the bound is a safety net, not a
/// speed requirement.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}
