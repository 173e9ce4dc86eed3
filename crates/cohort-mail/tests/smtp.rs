//! SMTP delivery against real servers: Debian postfix's `smtp-sink`
//! accepts (the message arrives with its Message-ID), and a scripted
//! aiosmtpd server (tests/smtp/scripted_server.py) answers 421, 450, 451,
//! 454, 550 and 554 on cue, each read as what it means for the outbox:
//! throttled, temporary or permanent. Both are installed by the test
//! command; without them the tests fail under COHORT_TEST_REQUIRE_CLIENTS=1
//! and are recorded as skipped otherwise.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use cohort_mail::{build, Envelope, MessageBody, SmtpOutcome, SmtpSender, SmtpSettings, TlsMode};

/// Kills the server when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn missing(what: &str, why: &str) {
    if std::env::var("COHORT_TEST_REQUIRE_CLIENTS").as_deref() == Ok("1") {
        panic!("COHORT_TEST_REQUIRE_CLIENTS=1 but {why}");
    }
    cohort_testkit::skip(what, why);
}

fn sender(port: u16) -> SmtpSender {
    SmtpSender::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: None,
        password: None,
        max_connections: 2,
        timeout: Duration::from_secs(10),
        hello_name: Some("cohort.test".into()),
    })
    .unwrap()
}

fn message(to: &str, id: &str) -> cohort_mail::WireMessage {
    build(
        &Envelope {
            from: "Blue Mugs <news@bluemugs.example>".into(),
            to: to.into(),
            return_path: Some(format!("b+{id}@bounces.bluemugs.example")),
            message_id: format!("{id}@bluemugs.example"),
            unsubscribe: None,
            date: SystemTime::now(),
        },
        &MessageBody {
            subject: "Your cart".into(),
            html: "<p>Hi</p>".into(),
            text: "Hi\n".into(),
        },
        None,
    )
    .unwrap()
}

#[tokio::test]
async fn smtp_sink_accepts_and_the_message_arrives_with_its_message_id() {
    let Some(sink) = cohort_testkit::SmtpSink::start("SMTP delivery to smtp-sink") else {
        return;
    };
    let smtp = sender(sink.port());
    smtp.test_connection().await.unwrap();
    for i in 0..3 {
        let outcome = smtp
            .send(&message("ann@example.com", &format!("msg_sink_{i}")))
            .await;
        assert!(
            matches!(&outcome, SmtpOutcome::Accepted { answer } if answer.starts_with("250")),
            "{outcome:?}"
        );
    }
    let ids: Vec<String> = (0..3)
        .map(|i| format!("<msg_sink_{i}@bluemugs.example>"))
        .collect();
    let dumped = sink.wait_for(&ids);
    assert!(
        dumped.contains("b+msg_sink_0@bounces.bluemugs.example"),
        "the VERP MAIL FROM"
    );
}

fn kind(outcome: &SmtpOutcome) -> &'static str {
    match outcome {
        SmtpOutcome::Accepted { .. } => "accepted",
        SmtpOutcome::Throttled { .. } => "throttled",
        SmtpOutcome::Temporary { .. } => "temporary",
        SmtpOutcome::Permanent { .. } => "permanent",
    }
}

#[tokio::test]
async fn every_failure_answer_means_what_it_says_for_the_outbox() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp/scripted_server.py");
    let port = free_port();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok);
    if first.as_deref() != Some(&format!("ready {port}")) {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        let _ = child.kill();
        let _ = child.wait();
        if err.contains("No module named 'aiosmtpd'") {
            return missing(
                "SMTP failure answers from aiosmtpd",
                "python3 cannot import aiosmtpd (pip install -r tests/clients/requirements.txt)",
            );
        }
        panic!("the scripted server did not start: {first:?} {err}");
    }
    let _server = Server(child);
    let smtp = sender(port);
    let cases = [
        ("ok@example.com", "accepted", "250"),
        ("throttle@example.com", "throttled", "Throttling"),
        ("slow@example.com", "throttled", "421"),
        ("busy@example.com", "throttled", "Too many requests"),
        ("later@example.com", "temporary", "Local error"),
        ("gone@example.com", "permanent", "User unknown"),
        ("reject@example.com", "permanent", "rejected"),
    ];
    for (i, (to, expected, words)) in cases.iter().enumerate() {
        let outcome = smtp.send(&message(to, &format!("msg_s{i}"))).await;
        assert_eq!(kind(&outcome), *expected, "{to}: {outcome:?}");
        assert!(outcome.answer().contains(words), "{to}: {outcome:?}");
    }
    assert_eq!(
        lines.next().and_then(Result::ok).as_deref(),
        Some("accepted <msg_s0@bluemugs.example>")
    );

    // Nobody listening: temporary, retried later.
    let closed = free_port();
    let outcome = sender(closed)
        .send(&message("ok@example.com", "msg_closed"))
        .await;
    assert!(
        matches!(outcome, SmtpOutcome::Temporary { .. }),
        "{outcome:?}"
    );
}
