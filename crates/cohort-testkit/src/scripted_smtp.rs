//! The scripted SMTP server (`tests/smtp/scripted_server.py`, aiosmtpd) for
//! a test: a real server that answers 421, 450, 451, 454, 550 and 554 on
//! cue by recipient (see the script). `None` (with a recorded skip, or a
//! panic under `COHORT_TEST_REQUIRE_CLIENTS=1`) when aiosmtpd is missing.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running scripted server, stopped when dropped.
pub struct ScriptedSmtp {
    child: Child,
    port: u16,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl Drop for ScriptedSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ScriptedSmtp {
    /// Starts one for `what` (the skip's description).
    pub fn start(what: &str) -> Option<ScriptedSmtp> {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp/scripted_server.py");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok);
        if first.as_deref() != Some(&format!("ready {port}")) {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            let _ = child.kill();
            let _ = child.wait();
            if err.contains("No module named 'aiosmtpd'") {
                let why = "python3 cannot import aiosmtpd (pip install -r tests/clients/requirements.txt)";
                if std::env::var("COHORT_TEST_REQUIRE_CLIENTS").as_deref() == Ok("1") {
                    panic!("COHORT_TEST_REQUIRE_CLIENTS=1 but {why}");
                }
                crate::skip(what, why);
                return None;
            }
            panic!("the scripted SMTP server did not start: {first:?} {err}");
        }
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let sink = accepted.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("accepted ") {
                    sink.lock().expect("accepted list").push(id.to_owned());
                }
            }
        });
        Some(ScriptedSmtp {
            child,
            port,
            accepted,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Message-IDs (with brackets) accepted so far, in order.
    pub fn accepted(&self) -> Vec<String> {
        self.accepted.lock().expect("accepted list").clone()
    }

    /// Waits until `n` messages were accepted (10 s at most).
    pub fn wait_for_accepted(&self, n: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let now = self.accepted();
            if now.len() >= n || started.elapsed() > Duration::from_secs(10) {
                return now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
