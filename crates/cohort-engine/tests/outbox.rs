//! The durable outbox on SQLite and PostgreSQL against real SMTP servers:
//! postfix's smtp-sink for acceptance and the scripted aiosmtpd server for
//! throttling, temporary and permanent answers, and the outbox folder.
//! Each test asserts what the merchant would check: the message's state,
//! its attempts with the server's answers, the suppression list and the
//! Email spec events in the log.

use std::time::Duration;

use cohort_domain::ids::OrgId;
use cohort_domain::mail::{AttemptOutcome, OutboxState};
use cohort_domain::secrets::SecretsKey;
use cohort_domain::suppression::{MailPurpose, SuppressionReason};
use cohort_engine::mail::{Mail, MailSettings, Outgoing, ProviderInput};
use cohort_jobs::backoff::Backoff;
use cohort_mail::{MessageBody, Unsubscribe};
use cohort_store::events::EventQuery;
use cohort_store::Db;
use cohort_testkit::{all_backends, seed, ScriptedSmtp, SmtpSink, TestDb};

const FROM: &str = "Blue Mugs <news@bluemugs.example>";

fn settings(dir: &std::path::Path) -> MailSettings {
    MailSettings {
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        },
        max_attempts: 3,
        bounce_domain: Some("bounces.bluemugs.example".into()),
        ..MailSettings::folder(dir, FROM)
    }
}

fn outgoing(key: &str, to: &str) -> Outgoing {
    Outgoing {
        send_key: key.into(),
        to: to.into(),
        from: None,
        purpose: MailPurpose::Marketing,
        body: MessageBody {
            subject: "Your cart misses you".into(),
            html: "<p>Hi Ann, your <a href=\"https://shop.example/cart\">cart</a> waits.</p>"
                .into(),
            text: "Hi Ann, your cart waits.\n".into(),
        },
        unsubscribe: Some(Unsubscribe {
            https: "https://cohort.example/u/abc".into(),
            mailto: "mailto:unsubscribe@bluemugs.example?subject=abc".into(),
        }),
        profile_id: None,
        user_id: Some("user_ann".into()),
        campaign_id: Some("cmp_1".into()),
        flow_id: None,
        provider_id: None,
    }
}

async fn events(db: &Db, org: &OrgId, event: &str) -> Vec<serde_json::Value> {
    db.query_events(
        org,
        &EventQuery {
            event: Some(event.into()),
            limit: 100,
            ..EventQuery::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|e| serde_json::from_str(&e.payload).unwrap())
    .collect()
}

async fn provider(mail: &Mail, org: &OrgId, port: u16, rate_per_second: Option<i64>) -> String {
    mail.create_provider(
        org,
        ProviderInput {
            name: format!("local {port}"),
            host: "127.0.0.1".into(),
            port: i64::from(port),
            tls: "none".into(),
            max_connections: Some(4),
            rate_per_second,
            ..ProviderInput::default()
        },
    )
    .await
    .unwrap()
    .id
}

async fn mail_for(t: &TestDb, dir: &std::path::Path) -> (Mail, OrgId) {
    let s = seed(&t.db, "Blue Mugs").await;
    let mail = Mail::new(t.db.clone(), SecretsKey::generate(), settings(dir)).unwrap();
    (mail, s.org)
}

#[tokio::test]
async fn a_message_is_a_row_first_a_second_enqueue_is_the_same_one_and_the_folder_gets_it_once() {
    for t in all_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (mail, org) = mail_for(&t, dir.path()).await;
        let first = mail
            .enqueue(&org, &outgoing("campaign:cmp_1", "Ann@Example.com"))
            .await
            .unwrap();
        let again = mail
            .enqueue(&org, &outgoing("campaign:cmp_1", "ann@example.com"))
            .await
            .unwrap();
        assert!(first.created && !again.created, "{:?}", t.backend());
        assert_eq!(
            (first.id.as_str(), first.message_id.as_str()),
            (again.id.as_str(), again.message_id.as_str())
        );
        assert!(first.message_id.ends_with("@bluemugs.example"));
        let (queued, _) = mail.message(&org, &first.id).await.unwrap();
        assert_eq!(queued.state, OutboxState::Queued);

        let report = mail.send_round("node-a").await.unwrap();
        assert_eq!((report.claimed, report.sent), (1, 1));
        let (sent, attempts) = mail.message(&org, &first.id).await.unwrap();
        assert_eq!(sent.state, OutboxState::Sent);
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, AttemptOutcome::Accepted);
        assert_eq!(attempts[0].provider, "outbox-folder");

        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let eml = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(
            eml.contains(&format!("Message-ID: <{}>", first.message_id)),
            "{eml}"
        );
        assert!(eml.contains(&format!(
            "Return-Path: <bounces+{}@bounces.bluemugs.example>",
            first.id
        )));
        assert!(eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));

        // The log hears of it once, however often it is told.
        mail.log_outcomes().await.unwrap();
        let delivered = events(&t.db, &org, "Email Delivered").await;
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0]["userId"], "user_ann");
        assert_eq!(delivered[0]["properties"]["email_id"], first.id.as_str());
        assert_eq!(delivered[0]["properties"]["campaign_id"], "cmp_1");
        assert_eq!(
            delivered[0]["context"]["traits"]["email"],
            "ann@example.com"
        );
        // Nothing waits: another round claims nothing.
        assert_eq!(mail.send_round("node-a").await.unwrap().claimed, 0);
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_queued() {
    let t = cohort_testkit::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let (mail, org) = mail_for(&t, dir.path()).await;
    let mut no_unsubscribe = outgoing("k", "ann@example.com");
    no_unsubscribe.unsubscribe = None;
    let mut two_lines = outgoing("k", "ann@example.com");
    two_lines.body.subject = "a\r\nBcc: x@y.example".into();
    for (bad, field) in [
        (outgoing("k", "not an address"), "to"),
        (no_unsubscribe, "unsubscribe"),
        (two_lines, "subject"),
        (outgoing(" ", "ann@example.com"), "send_key"),
    ] {
        match mail.enqueue(&org, &bad).await {
            Err(cohort_engine::mail::MailError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(mail
        .messages(
            &org,
            &cohort_store::mail::OutboxQuery {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn each_smtp_answer_does_what_it_means_to_the_message() {
    let Some(server) = ScriptedSmtp::start("outbox answers from aiosmtpd") else {
        return;
    };
    for t in all_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (mail, org) = mail_for(&t, dir.path()).await;
        provider(&mail, &org, server.port(), None).await;
        let mut ids = std::collections::HashMap::new();
        for to in ["ok", "gone", "reject", "later", "flaky"] {
            // The scripted server answers by local part; the domain keeps
            // the backends apart (it remembers flaky addresses).
            let local = format!("{to}@{}.example.com", t.backend().as_str());
            let e = mail
                .enqueue(&org, &outgoing("campaign:cmp_1", &local))
                .await
                .unwrap();
            ids.insert(to, (e.id, local));
        }
        let report = mail.send_round("node-a").await.unwrap();
        assert_eq!(report.claimed, 5);
        let state = |to: &str| {
            let mail = mail.clone();
            let org = org.clone();
            let id = ids[to].0.clone();
            async move { mail.message(&org, &id).await.unwrap() }
        };

        let (ok, attempts) = state("ok").await;
        assert_eq!(ok.state, OutboxState::Sent);
        assert!(
            attempts[0].answer.as_deref().unwrap().starts_with("250"),
            "{attempts:?}"
        );

        // 550 at RCPT and 554 at the end of DATA: hard bounces, suppressed.
        for to in ["gone", "reject"] {
            let (m, attempts) = state(to).await;
            assert_eq!(m.state, OutboxState::Bounced, "{to}");
            assert_eq!(attempts[0].outcome, AttemptOutcome::Permanent);
            let suppressed = t.db.suppressions_of(&org, &ids[to].1).await.unwrap();
            assert_eq!(suppressed.len(), 1, "{to}");
            assert_eq!(suppressed[0].reason, SuppressionReason::HardBounce);
            assert_eq!(suppressed[0].source, ids[to].0);
        }
        mail.log_outcomes().await.unwrap();
        let bounced = events(&t.db, &org, "Email Bounced").await;
        assert_eq!(bounced.len(), 2);
        assert!(bounced
            .iter()
            .all(|b| b["properties"]["bounce_type"] == "hard"));
        assert!(bounced.iter().any(|b| b["properties"]["reason"]
            .as_str()
            .unwrap()
            .contains("User unknown")));

        // 451: an attempt spent, retried after the backoff; the last
        // attempt makes a dead letter with its reason.
        let (later, _) = state("later").await;
        assert_eq!((later.state, later.attempts), (OutboxState::Queued, 1));
        let (flaky, _) = state("flaky").await;
        assert_eq!((flaky.state, flaky.attempts), (OutboxState::Queued, 1));
        tokio::time::sleep(Duration::from_millis(5)).await;
        mail.send_round("node-a").await.unwrap();
        let (flaky, attempts) = state("flaky").await;
        assert_eq!(flaky.state, OutboxState::Sent, "{attempts:?}");
        assert_eq!(
            attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
            [AttemptOutcome::Temporary, AttemptOutcome::Accepted]
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        mail.send_round("node-a").await.unwrap();
        let (dead, attempts) = state("later").await;
        assert_eq!(
            (dead.state, dead.attempts, attempts.len()),
            (OutboxState::Dead, 3, 3)
        );
        assert!(
            dead.last_error.as_deref().unwrap().contains("451"),
            "{dead:?}"
        );

        // A dead letter is retried on demand with its attempts renewed; a
        // sent message is not.
        let retried = mail.retry(&org, &ids["later"].0).await.unwrap();
        assert_eq!((retried.state, retried.attempts), (OutboxState::Queued, 0));
        assert!(matches!(
            mail.retry(&org, &ids["ok"].0).await,
            Err(cohort_engine::mail::MailError::Invalid { field: "state", .. })
        ));
    }
}

#[tokio::test]
async fn throttling_slows_the_provider_and_spends_no_attempt() {
    let Some(server) = ScriptedSmtp::start("throttling answers from aiosmtpd") else {
        return;
    };
    for t in all_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (mail, org) = mail_for(&t, dir.path()).await;
        provider(&mail, &org, server.port(), None).await;
        let throttled = mail
            .enqueue(&org, &outgoing("campaign:cmp_1", "throttle@example.com"))
            .await
            .unwrap();
        let report = mail.send_round("node-a").await.unwrap();
        assert_eq!(report.throttled, 1);
        let (m, attempts) = mail.message(&org, &throttled.id).await.unwrap();
        assert_eq!((m.state, m.attempts, m.tries), (OutboxState::Queued, 0, 1));
        assert_eq!(attempts[0].outcome, AttemptOutcome::Throttled);
        assert!(attempts[0]
            .answer
            .as_deref()
            .unwrap()
            .contains("Throttling"));
        assert!(
            m.next_attempt_at_us > cohort_store::now_micros() + 3_000_000,
            "paused"
        );

        // The provider is paused for everyone: a new message waits too,
        // untried.
        let next = mail
            .enqueue(&org, &outgoing("campaign:cmp_1", "ok@example.com"))
            .await
            .unwrap();
        let report = mail.send_round("node-b").await.unwrap();
        assert_eq!((report.claimed, report.held_back, report.sent), (1, 1, 0));
        let (waiting, attempts) = mail.message(&org, &next.id).await.unwrap();
        assert_eq!(
            (waiting.state, waiting.attempts, attempts.len()),
            (OutboxState::Queued, 0, 0)
        );
    }
}

#[tokio::test]
async fn a_rate_limit_holds_messages_back_until_tokens_are_due_and_smtp_sink_gets_each_once() {
    let Some(sink) = SmtpSink::start("outbox rate limits against smtp-sink") else {
        return;
    };
    for t in all_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (mail, org) = mail_for(&t, dir.path()).await;
        provider(&mail, &org, sink.port(), Some(5)).await;
        let mut ids = Vec::new();
        for i in 0..12 {
            let e = mail
                .enqueue(
                    &org,
                    &outgoing(
                        "campaign:cmp_rate",
                        &format!("r{i}.{}@example.com", t.backend().as_str()),
                    ),
                )
                .await
                .unwrap();
            ids.push(format!("<{}>", e.message_id));
        }
        let report = mail.send_round("node-a").await.unwrap();
        assert_eq!((report.sent, report.held_back), (5, 7));
        let mut sent = report.sent;
        let started = std::time::Instant::now();
        while sent < 12 {
            assert!(started.elapsed() < Duration::from_secs(10), "sent {sent}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            sent += mail.send_round("node-a").await.unwrap().sent;
        }
        // 5 at once, then one per 200 ms: the last ones wait about 1.4 s.
        assert!(
            started.elapsed() >= Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
        let dump = sink.wait_for(&ids);
        for id in &ids {
            assert_eq!(dump.matches(id.as_str()).count(), 1, "{id} once");
        }
    }
}

#[tokio::test]
async fn the_suppression_list_is_checked_when_the_message_goes_out() {
    for t in all_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (mail, org) = mail_for(&t, dir.path()).await;
        let marketing = mail
            .enqueue(&org, &outgoing("campaign:cmp_1", "ann@example.com"))
            .await
            .unwrap();
        let mut receipt = outgoing("order:1001", "ann@example.com");
        receipt.purpose = MailPurpose::Transactional;
        receipt.unsubscribe = None;
        let receipt = mail.enqueue(&org, &receipt).await.unwrap();
        // Unsubscribed after the audience was built.
        t.db.suppress(
            &org,
            "ann@example.com",
            SuppressionReason::Unsubscribed,
            None,
            "test",
        )
        .await
        .unwrap();
        let report = mail.send_round("node-a").await.unwrap();
        assert_eq!((report.suppressed, report.sent), (1, 1));
        let (m, attempts) = mail.message(&org, &marketing.id).await.unwrap();
        assert_eq!(m.state, OutboxState::Suppressed);
        assert_eq!(attempts[0].outcome, AttemptOutcome::Suppressed);
        assert!(attempts[0]
            .answer
            .as_deref()
            .unwrap()
            .contains("unsubscribed"));
        // Transactional mail passes an unsubscribe.
        assert_eq!(
            mail.message(&org, &receipt.id).await.unwrap().0.state,
            OutboxState::Sent
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[tokio::test]
async fn a_worker_that_dies_mid_send_gives_its_messages_back_with_the_same_message_id() {
    for t in all_backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (mail, org) = mail_for(&t, dir.path()).await;
        let e = mail
            .enqueue(&org, &outgoing("campaign:cmp_1", "ann@example.com"))
            .await
            .unwrap();
        // A worker claims it with a short lease and is never heard of again.
        let now = cohort_store::now_micros();
        let claimed =
            t.db.claim_mail("dead-node", now, 300_000, 10)
                .await
                .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            mail.send_round("node-b").await.unwrap().claimed,
            0,
            "leased"
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        let report = mail.send_round("node-b").await.unwrap();
        assert_eq!((report.reclaimed, report.sent), (1, 1));
        let (m, attempts) = mail.message(&org, &e.id).await.unwrap();
        assert_eq!(m.message_id, e.message_id);
        assert_eq!(
            attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
            [AttemptOutcome::Interrupted, AttemptOutcome::Accepted]
        );
    }
}
