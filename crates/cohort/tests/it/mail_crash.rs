//! The real binary sending through a real SMTP server (the scripted
//! aiosmtpd server, answering each message after 50 ms like a provider
//! that takes its time), killed with
//! `kill -9` mid-send, on SQLite and PostgreSQL: after a restart every
//! message is sent, none is lost, and a message goes out twice only if its
//! SMTP transaction was in flight at the kill, with the same Message-ID.
//! The test prints how many went out twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cohort_domain::secrets::SecretsKey;
use cohort_domain::suppression::MailPurpose;
use cohort_engine::mail::{Mail, MailSettings, Outgoing};

use crate::common::{self, Server};

const MESSAGES: usize = 1000;

async fn count(db: &cohort_store::Db, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// How often each Message-ID (without brackets) reached the server.
fn received(accepted: &[String]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for id in accepted {
        let id = id.trim_start_matches('<').trim_end_matches('>');
        *seen.entry(id.to_owned()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn kill_9_mid_send_loses_no_message_and_repeats_only_those_in_flight() {
    let _turn = common::one_heavy_test_at_a_time().await;
    let Some(sink) = cohort_testkit::ScriptedSmtp::start("kill -9 mid-send against aiosmtpd")
    else {
        return;
    };
    let port = sink.port().to_string();
    let env = [
        ("COHORT_MAIL__TRANSPORT", "smtp"),
        ("COHORT_MAIL__SMTP__HOST", "127.0.0.1"),
        ("COHORT_MAIL__SMTP__PORT", port.as_str()),
        ("COHORT_MAIL__SMTP__TLS", "none"),
        ("COHORT_MAIL__SMTP__MAX_CONNECTIONS", "8"),
        ("COHORT_MAIL__BATCH", "100"),
        ("COHORT_MAIL__LEASE_SECONDS", "10"),
        ("COHORT_MAIL__FROM", "Blue Mugs <news@bluemugs.example>"),
    ];
    let mut previously_accepted = 0;
    for t in common::databases().await {
        let backend = t.backend().as_str();
        // The first start makes the organisation; then the queue fills.
        let mut server = Server::start(&t.url, &env).await;
        server.kill9();
        server.wait().await;
        let org = t.db.list_organisations().await.unwrap().remove(0).id;
        let dir = tempfile::tempdir().unwrap();
        let mail = Mail::new(
            t.db.clone(),
            SecretsKey::generate(),
            MailSettings::folder(dir.path(), "Blue Mugs <news@bluemugs.example>"),
        )
        .unwrap();
        let batch: Vec<Outgoing> = (0..MESSAGES)
            .map(|i| Outgoing {
                send_key: "campaign:crash".into(),
                to: format!("unhurried{i}@example.com"),
                from: None,
                purpose: MailPurpose::Transactional,
                body: cohort_mail::MessageBody {
                    subject: format!("Order {i}"),
                    html: format!("<p>Order {i} is on its way.</p>"),
                    text: format!("Order {i} is on its way.\n"),
                },
                unsubscribe: None,
                profile_id: None,
                user_id: None,
                campaign_id: Some("cmp_crash".into()),
                flow_id: None,
                provider_id: None,
            })
            .collect();
        for chunk in batch.chunks(500) {
            mail.enqueue_batch(&org, chunk).await.unwrap();
        }

        // Send, and kill it mid-way.
        let mut server = Server::start(&t.url, &env).await;
        let started = Instant::now();
        loop {
            let sent = sink.accepted().len() - previously_accepted;
            if sent >= MESSAGES / 4 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{backend}: only {sent} sent in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill9();
        server.wait().await;
        let in_flight = count(
            &t.db,
            "SELECT COUNT(*) FROM mail_messages WHERE state = 'sending'",
        )
        .await;
        let sent_at_kill = count(
            &t.db,
            "SELECT COUNT(*) FROM mail_messages WHERE state = 'sent'",
        )
        .await;
        assert!(
            (sent_at_kill as usize) < MESSAGES,
            "{backend}: everything was sent before the kill"
        );

        // After a restart (and the lease), everything goes out.
        let server = Server::start(&t.url, &env).await;
        let started = Instant::now();
        loop {
            let open = count(
                &t.db,
                "SELECT COUNT(*) FROM mail_messages WHERE state IN ('queued', 'sending')",
            )
            .await;
            if open == 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{backend}: {open} messages still waiting 120 s after the restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(server);
        let settled = count(
            &t.db,
            "SELECT COUNT(*) FROM mail_messages WHERE state = 'sent'",
        )
        .await;
        assert_eq!(
            settled as usize, MESSAGES,
            "{backend}: every message is sent"
        );

        // Give the server a moment to print its last transactions.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let accepted = sink.accepted();
        let seen = received(&accepted[previously_accepted..]);
        previously_accepted = accepted.len();
        let stored: Vec<String> = sqlx::query_scalar("SELECT message_id FROM mail_messages")
            .fetch_all(t.db.pool())
            .await
            .unwrap();
        let missing = stored.iter().filter(|id| !seen.contains_key(*id)).count();
        assert_eq!(missing, 0, "{backend}: messages lost after kill -9");
        let twice = seen.values().filter(|n| **n > 1).count();
        assert!(
            seen.values().all(|n| *n <= 2),
            "{backend}: a message went out more than twice"
        );
        assert!(
            twice as i64 <= in_flight,
            "{backend}: {twice} went out twice but only {in_flight} were in flight at the kill"
        );
        println!(
            "kill -9 mid-send on {backend}: {MESSAGES} messages, {sent_at_kill} recorded sent \
             at the kill, {in_flight} in flight, {twice} went out twice (same Message-ID), 0 lost"
        );
    }
}
