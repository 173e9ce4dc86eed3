//! Bounces and complaints that come back as mail, on SQLite and
//! PostgreSQL: the inbound SMTP listener on a real socket, fed postfix's
//! own bounce messages (crates/cohort-mail/tests/fixtures/bounces, made by
//! a real postfix) addressed to the VERP return path of a message the
//! outbox sent. Each test asserts what the merchant would check: the
//! message's state and reports, the suppression list and the Email spec
//! events in the log.

use std::time::Duration;

use cohort_domain::ids::OrgId;
use cohort_domain::mail::{OutboxState, ReportKind};
use cohort_domain::secrets::SecretsKey;
use cohort_domain::suppression::{MailPurpose, SuppressionReason};
use cohort_engine::mail::{Mail, MailSettings, Outgoing};
use cohort_mail::{MessageBody, Unsubscribe};
use cohort_store::events::EventQuery;
use cohort_store::Db;
use cohort_testkit::{all_backends, seed, TestDb};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BOUNCE_DOMAIN: &str = "bounces.bluemugs.example";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../cohort-mail/tests/fixtures/bounces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn outgoing(key: &str, to: &str) -> Outgoing {
    Outgoing {
        send_key: key.into(),
        to: to.into(),
        from: None,
        purpose: MailPurpose::Marketing,
        body: MessageBody {
            subject: "Your cart is waiting".into(),
            html: "<p>Hi there, your cart is waiting.</p>".into(),
            text: "Hi there, your cart is waiting.\n".into(),
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

/// A mail service writing to a folder, with a bounce domain and its
/// inbound listener on a free port.
struct Setup {
    mail: Mail,
    org: OrgId,
    inbound: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn setup(t: &TestDb, soft_bounce_limit: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let s = seed(&t.db, "Blue Mugs").await;
    let settings = MailSettings {
        bounce_domain: Some(BOUNCE_DOMAIN.into()),
        soft_bounce_limit,
        ..MailSettings::folder(dir.path(), "Blue Mugs <news@bluemugs.example>")
    };
    let mail = Mail::new(t.db.clone(), SecretsKey::generate(), settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let inbound = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = mail.clone();
    tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        serving
            .serve_inbound(listener, 1 << 20, stop)
            .await
            .unwrap();
    });
    Setup {
        mail,
        org: s.org,
        inbound,
        _dir: dir,
        _stop: stop_tx,
    }
}

/// Enqueues and sends one message to `to`; its (outbox id, Message-ID).
async fn sent(setup: &Setup, key: &str, to: &str) -> (String, String) {
    let queued = setup
        .mail
        .enqueue(&setup.org, &outgoing(key, to))
        .await
        .unwrap();
    setup.mail.send_round("node-a").await.unwrap();
    let (message, _) = setup.mail.message(&setup.org, &queued.id).await.unwrap();
    assert_eq!(message.state, OutboxState::Sent);
    (queued.id, queued.message_id)
}

/// One SMTP conversation as an MTA returning a bounce has it: the replies
/// to RCPT and to the end of DATA (None when RCPT was refused).
async fn send_bounce(
    addr: std::net::SocketAddr,
    rcpt: &str,
    raw: &str,
) -> (String, Option<String>) {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    async fn answer(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            lines.read_line(&mut line).await.unwrap();
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }
    assert!(answer(&mut lines).await.starts_with("220 "));
    for command in ["EHLO mta.cohort-test.example\r\n", "MAIL FROM:<>\r\n"] {
        write.write_all(command.as_bytes()).await.unwrap();
        assert!(answer(&mut lines).await.starts_with("250"), "{command}");
    }
    write
        .write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
        .await
        .unwrap();
    let rcpt_answer = answer(&mut lines).await;
    if !rcpt_answer.starts_with("250") {
        write.write_all(b"QUIT\r\n").await.unwrap();
        return (rcpt_answer, None);
    }
    write.write_all(b"DATA\r\n").await.unwrap();
    assert!(answer(&mut lines).await.starts_with("354"));
    for line in raw.lines() {
        // Dot-stuffing, as every SMTP client does.
        let stuffed = if line.starts_with('.') {
            format!(".{line}\r\n")
        } else {
            format!("{line}\r\n")
        };
        write.write_all(stuffed.as_bytes()).await.unwrap();
    }
    write.write_all(b".\r\n").await.unwrap();
    let data_answer = answer(&mut lines).await;
    write.write_all(b"QUIT\r\n").await.unwrap();
    (rcpt_answer, Some(data_answer))
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

fn verp(id: &str) -> String {
    format!("bounces+{id}@{BOUNCE_DOMAIN}")
}

#[tokio::test]
async fn postfix_s_hard_bounce_to_the_return_path_bounces_the_message_and_suppresses_the_address() {
    for t in all_backends().await {
        let setup = setup(&t, 3).await;
        let (id, message_id) = sent(&setup, "campaign:cmp_1", "ann@hard.test").await;
        let dsn =
            fixture("postfix-hard-bounce.eml").replace("msg_hard_1@bluemugs.example", &message_id);

        let (rcpt, data) = send_bounce(setup.inbound, &verp(&id), &dsn).await;
        assert!(rcpt.starts_with("250"), "{rcpt}");
        let data = data.unwrap();
        assert!(data.starts_with("250 2.0.0 hard bounce recorded"), "{data}");

        let (message, _) = setup.mail.message(&setup.org, &id).await.unwrap();
        assert_eq!(message.state, OutboxState::Bounced, "{:?}", t.backend());
        let reports = setup.mail.reports_of(&setup.org, &id).await.unwrap();
        assert_eq!(reports.len(), 1);
        // The DSN names two recipients; the message had one.
        assert_eq!(reports[0].recipient, "ann@hard.test");
        assert_eq!(reports[0].kind, ReportKind::HardBounce);
        assert_eq!(reports[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(reports[0].source, "inbound");
        assert_eq!(reports[0].suppressed, Some(SuppressionReason::HardBounce));
        let blocking =
            t.db.blocking_suppression(&setup.org, "ann@hard.test", MailPurpose::Transactional)
                .await
                .unwrap()
                .expect("a hard bounce stops even transactional mail");
        assert_eq!(blocking.reason, SuppressionReason::HardBounce);
        assert!(blocking.detail.unwrap().contains("User unknown"));

        // The same DSN again (the MTA did not hear our 250): recorded once.
        let (_, again) = send_bounce(setup.inbound, &verp(&id), &dsn).await;
        assert!(again.unwrap().starts_with("250 2.0.0 already recorded"));
        assert_eq!(
            setup.mail.reports_of(&setup.org, &id).await.unwrap().len(),
            1
        );

        setup.mail.log_outcomes().await.unwrap();
        setup.mail.log_outcomes().await.unwrap();
        let bounced = events(&t.db, &setup.org, "Email Bounced").await;
        assert_eq!(bounced.len(), 1, "{bounced:?}");
        let properties = &bounced[0]["properties"];
        assert_eq!(properties["email_id"], id.as_str());
        assert_eq!(properties["campaign_id"], "cmp_1");
        assert_eq!(properties["bounce_type"], "hard");
        assert_eq!(properties["status"], "5.1.1");
        assert_eq!(bounced[0]["userId"], "user_ann");
    }
}

#[tokio::test]
async fn soft_bounces_suppress_only_after_the_limit_in_a_row() {
    for t in all_backends().await {
        let setup = setup(&t, 2).await;
        let template = fixture("postfix-delayed.eml");
        let mut ids = Vec::new();
        for round in 0..2 {
            let (id, message_id) =
                sent(&setup, &format!("flow:flw_1:{round}"), "bob@soft.test").await;
            let dsn = template.replace("msg_soft_1@bluemugs.example", &message_id);
            let (_, data) = send_bounce(setup.inbound, &verp(&id), &dsn).await;
            assert!(data.unwrap().starts_with("250 2.0.0 soft bounce recorded"));
            ids.push(id);
            let suppressed =
                t.db.blocking_suppression(&setup.org, "bob@soft.test", MailPurpose::Marketing)
                    .await
                    .unwrap();
            // One soft bounce is no reason to stop; the second in a row is.
            assert_eq!(
                suppressed.map(|s| s.reason),
                (round == 1).then_some(SuppressionReason::SoftBounces),
                "{:?} round {round}",
                t.backend()
            );
        }
        // A soft bounce leaves the message sent (the relay took it).
        let (message, _) = setup.mail.message(&setup.org, &ids[0]).await.unwrap();
        assert_eq!(message.state, OutboxState::Sent);
        let second = setup.mail.reports_of(&setup.org, &ids[1]).await.unwrap();
        assert_eq!(second[0].soft_in_a_row, Some(2));
        setup.mail.log_outcomes().await.unwrap();
        let bounced = events(&t.db, &setup.org, "Email Bounced").await;
        assert_eq!(bounced.len(), 2);
        assert!(bounced
            .iter()
            .all(|e| e["properties"]["bounce_type"] == "soft"));
    }
}

#[tokio::test]
async fn only_return_paths_of_real_messages_are_taken_and_auto_replies_change_nothing() {
    for t in all_backends().await {
        let setup = setup(&t, 1).await;
        let (id, _) = sent(&setup, "campaign:cmp_1", "cat@example.com").await;
        let dsn = fixture("postfix-hard-bounce.eml");

        // Not a return path, or another domain's: refused at RCPT.
        let (rcpt, data) = send_bounce(setup.inbound, "postmaster@bluemugs.example", &dsn).await;
        assert!(rcpt.starts_with("550 5.1.1"), "{rcpt}");
        assert!(data.is_none());
        let (rcpt, _) = send_bounce(
            setup.inbound,
            &format!("bounces+{id}@elsewhere.example"),
            &dsn,
        )
        .await;
        assert!(rcpt.starts_with("550"), "{rcpt}");
        // A return path naming no message: refused after DATA.
        let (_, data) = send_bounce(setup.inbound, &verp("msg_guessed000000000000"), &dsn).await;
        assert!(data.unwrap().starts_with("550"));

        // A vacation reply to the return path (RFC 3834) is no bounce.
        let vacation = "From: Cat <cat@example.com>\r\nTo: bounces@x\r\n\
            Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBack on Monday.\r\n";
        let (_, data) = send_bounce(setup.inbound, &verp(&id), vacation).await;
        assert!(data.unwrap().starts_with("250"));
        assert!(setup
            .mail
            .reports_of(&setup.org, &id)
            .await
            .unwrap()
            .is_empty());
        assert!(t
            .db
            .suppressions_of(&setup.org, "cat@example.com")
            .await
            .unwrap()
            .is_empty());

        // A bounce in free text still counts as a soft bounce.
        let free_text = "From: MAILER-DAEMON@old.example\r\nSubject: failure notice\r\n\r\n\
            Sorry, I wasn't able to deliver your message.\r\n";
        let (_, data) = send_bounce(setup.inbound, &verp(&id), free_text).await;
        assert!(data.unwrap().starts_with("250"));
        let reports = setup.mail.reports_of(&setup.org, &id).await.unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].kind, ReportKind::SoftBounce);
        assert_eq!(
            reports[0].diagnostic.as_deref(),
            Some("unstructured reply: failure notice")
        );
    }
}
