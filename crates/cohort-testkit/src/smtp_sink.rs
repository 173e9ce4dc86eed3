//! Debian postfix's `smtp-sink` as a real SMTP server for a test: it
//! accepts every message on a free loopback port and appends each
//! transaction to a dump file the test reads. `None` (with a recorded
//! skip, or a panic under `COHORT_TEST_REQUIRE_CLIENTS=1`) when postfix
//! is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// A running smtp-sink, stopped when dropped.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dump: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts one for `what` (the skip's description).
    pub fn start(what: &str) -> Option<SmtpSink> {
        if !Path::new(SMTP_SINK).exists() {
            let why = format!("{SMTP_SINK} is missing (Debian package postfix)");
            if std::env::var("COHORT_TEST_REQUIRE_CLIENTS").as_deref() == Ok("1") {
                panic!("COHORT_TEST_REQUIRE_CLIENTS=1 but {why}");
            }
            crate::skip(what, &why);
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        // smtp-sink drops to `nobody` before it writes the dump.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("dump dir mode");
        let dump = dir.path().join("dump");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(SMTP_SINK)
            .args(["-u", "nobody", "-D"])
            .arg(&dump)
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "smtp-sink does not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(SmtpSink {
            child,
            port,
            dump,
            _dir: dir,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything received so far.
    pub fn dump(&self) -> String {
        std::fs::read_to_string(&self.dump).unwrap_or_default()
    }

    /// Waits until the dump holds every one of `needles` (a transaction is
    /// written when it ends); panics after 10 s naming what is missing.
    pub fn wait_for(&self, needles: &[String]) -> String {
        let started = Instant::now();
        loop {
            let dump = self.dump();
            if needles.iter().all(|n| dump.contains(n.as_str())) {
                return dump;
            }
            let missing: Vec<_> = needles
                .iter()
                .filter(|n| !dump.contains(n.as_str()))
                .collect();
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "not received by smtp-sink: {missing:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
