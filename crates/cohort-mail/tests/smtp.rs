//! SMTP delivery against real servers: Debian postfix's `smtp-sink`
//! accepts (the message arrives with its Message-ID), and a scripted
//! aiosmtpd server (tests/smtp/scripted_server.py) answers 421, 450, 451,
//! 454, 550 and 554 on cue, each read as what it means for the outbox:
//! throttled, temporary or permanent. Both are installed by the test
//! command; without them the tests fail under COHORT_TEST_REQUIRE_CLIENTS=1
//! and are recorded as skipped otherwise.

use std::time::{Duration, SystemTime};

use cohort_mail::{build, Envelope, MessageBody, SmtpOutcome, SmtpSender, SmtpSettings, TlsMode};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let Some(server) = cohort_testkit::ScriptedSmtp::start("SMTP failure answers from aiosmtpd")
    else {
        return;
    };
    let port = server.port();
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
    assert_eq!(server.wait_for_accepted(1), ["<msg_s0@bluemugs.example>"]);

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
