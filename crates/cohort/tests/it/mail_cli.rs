//! `cohort mail test` through the real binary: with the embedded default
//! the message is an `.eml` in the outbox folder; with `[mail] transport =
//! "smtp"` it reaches a real SMTP server (postfix's smtp-sink) with the
//! Message-ID it printed; a bad address or a server that is not there
//! fails with the reason.

use std::path::Path;
use std::process::{Command, Output};

fn cohort(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cohort"));
    command.args(args).current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run cohort")
}

/// The Message-ID `cohort mail test` printed: `… (Message-ID <id>)`.
fn printed_message_id(printed: &str) -> String {
    printed
        .split("Message-ID <")
        .nth(1)
        .unwrap_or_default()
        .trim_end()
        .trim_end_matches(')')
        .trim_end_matches('>')
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_test_message_lands_in_the_outbox_folder_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = cohort(
        dir.path(),
        &[],
        &["mail", "test", "--to", "Ann <ann@example.com>"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        printed.starts_with("written to data/outbox/test-"),
        "{printed}"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path().join("data/outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        eml.starts_with("Return-Path: <cohort@localhost>\r\nDelivered-To: ann@example.com\r\n"),
        "{eml}"
    );
    assert!(
        eml.contains("Subject: Cohort test message for Ann <ann@example.com>"),
        "{eml}"
    );
    assert!(eml.contains("multipart/alternative"));
    let id = printed_message_id(&printed);
    assert!(eml.contains(&format!("Message-ID: <{id}>")), "{id}: {eml}");

    let bad = cohort(dir.path(), &[], &["mail", "test", "--to", "not an address"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("to:"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn a_test_message_reaches_a_real_smtp_server_and_a_missing_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port().to_string();
    // `cohort mail test` through SMTP on 127.0.0.1:`port`.
    let send_through = |port: &str| {
        let env = [
            ("COHORT_MAIL__TRANSPORT", "smtp"),
            ("COHORT_MAIL__SMTP__HOST", "127.0.0.1"),
            ("COHORT_MAIL__SMTP__PORT", port),
            ("COHORT_MAIL__SMTP__TLS", "none"),
            ("COHORT_MAIL__SMTP__TIMEOUT_SECONDS", "5"),
        ];
        cohort(
            dir.path(),
            &env,
            &["mail", "test", "--to", "ann@example.com"],
        )
    };
    let out = send_through(&closed);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("temporary"), "{err}");

    let Some(sink) = cohort_testkit::SmtpSink::start("cohort mail test through smtp-sink") else {
        return;
    };
    let port = sink.port().to_string();
    let out = send_through(&port);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.starts_with(&format!("accepted by SMTP 127.0.0.1:{port}: 250")),
        "{printed}"
    );
    let id = printed_message_id(&printed);
    sink.wait_for(&[format!("<{id}>")]);
}

/// `cohort suppression` on a real database file: add (normalised, once per
/// reason), list, remove with a reason; refusals name the option.
#[test]
fn the_suppression_list_is_kept_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/cohort.db", dir.path().display());
    let env = [("COHORT_DATABASE__URL", url.as_str())];
    let ok = |args: &[&str]| {
        let out = cohort(dir.path(), &env, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["org", "create", "--name", "Blue Mugs"]);
    assert_eq!(
        ok(&[
            "suppression",
            "add",
            "Ann@Example.com",
            "--detail",
            "asked by phone"
        ]),
        "suppressed\tann@example.com\tmanual\n"
    );
    assert_eq!(
        ok(&["suppression", "add", "ann@example.com"]),
        "already suppressed\tann@example.com\tmanual\n"
    );
    ok(&[
        "suppression",
        "add",
        "bob@example.com",
        "--reason",
        "hard_bounce",
    ]);
    let listed = ok(&["suppression", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with("ann@example.com\tmanual\t") && lines[0].ends_with("\tasked by phone"),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("bob@example.com\thard_bounce\t"),
        "{listed}"
    );
    assert_eq!(
        ok(&["suppression", "list", "--reason", "hard_bounce"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(&[
            "suppression",
            "remove",
            "ann@example.com",
            "--reason",
            "mailed again"
        ]),
        "lifted\tann@example.com\t1 reason(s)\n"
    );
    for (args, words) in [
        (vec!["suppression", "add", "nobody"], "email"),
        (
            vec!["suppression", "add", "c@example.com", "--reason", "bounced"],
            "--reason",
        ),
        (
            vec![
                "suppression",
                "remove",
                "ann@example.com",
                "--reason",
                "again",
            ],
            "not suppressed",
        ),
    ] {
        let out = cohort(dir.path(), &env, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{args:?}: {err}");
    }
    assert_eq!(ok(&["suppression", "list"]).lines().count(), 1);
}

/// `cohort mail outbox|message|retry` on a real database file: messages the
/// outbox holds, one with its attempt, a dead letter queued again, and the
/// refusals that name what is wrong.
#[test]
fn the_outbox_is_read_and_a_dead_letter_retried_from_the_command_line() {
    use cohort_domain::secrets::SecretsKey;
    use cohort_domain::suppression::MailPurpose;
    use cohort_engine::mail::{Mail, MailSettings, Outgoing};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/cohort.db", dir.path().display());
    let env = [("COHORT_DATABASE__URL", url.as_str())];
    let run = |args: &[&str]| cohort(dir.path(), &env, args);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["org", "create", "--name", "Blue Mugs"]);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sent, dead) = runtime.block_on(async {
        let db = cohort_store::Db::connect(&url, &Default::default())
            .await
            .unwrap();
        let org = db.list_organisations().await.unwrap().remove(0).id;
        let mail = Mail::new(
            db.clone(),
            SecretsKey::generate(),
            MailSettings::folder(
                dir.path().join("outbox"),
                "Blue Mugs <news@bluemugs.example>",
            ),
        )
        .unwrap();
        let message = |to: &str| Outgoing {
            send_key: "test:cli".into(),
            to: to.into(),
            from: None,
            purpose: MailPurpose::Transactional,
            body: cohort_mail::MessageBody {
                subject: "Your order".into(),
                html: "<p>Thanks</p>".into(),
                text: "Thanks\n".into(),
            },
            unsubscribe: None,
            profile_id: None,
            user_id: None,
            campaign_id: None,
            flow_id: None,
            provider_id: None,
        };
        let sent = mail
            .enqueue(&org, &message("ann@example.com"))
            .await
            .unwrap();
        mail.send_round("cli-test").await.unwrap();
        let dead = mail
            .enqueue(&org, &message("bob@example.com"))
            .await
            .unwrap();
        // As the worker leaves a message whose attempts ran out.
        sqlx::query(
            "UPDATE mail_messages SET state = 'dead', attempts = max_attempts, \
             last_error = '451 4.3.0 try later' WHERE id = $1",
        )
        .bind(&dead.id)
        .execute(db.pool())
        .await
        .unwrap();
        db.close().await;
        (sent.id, dead.id)
    });

    let listed = ok(&["mail", "outbox"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(&format!("{dead}\tdead\tbob@example.com\t10/10\t"))
            && lines[0].ends_with("\tYour order\t451 4.3.0 try later"),
        "{listed}"
    );
    assert!(lines[1].starts_with(&format!("{sent}\tsent\tann@example.com\t1/10\t")));
    assert_eq!(
        ok(&["mail", "outbox", "--state", "sent"]).lines().count(),
        1
    );

    let shown = ok(&["mail", "message", &sent]);
    assert!(shown.contains("state\tsent\n"), "{shown}");
    assert!(
        shown.contains("\toutbox-folder\taccepted\twritten to "),
        "{shown}"
    );

    assert_eq!(
        ok(&["mail", "retry", &dead]),
        format!("queued\t{dead}\tbob@example.com\n")
    );
    assert!(ok(&["mail", "outbox", "--state", "queued"]).starts_with(&dead));

    let refused = run(&["mail", "retry", &sent]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("dead"));
    let refused = run(&["mail", "outbox", "--state", "lost"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--state: one of"));
    let refused = run(&["mail", "message", "msg_nope"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no message msg_nope"));
}
