//! The mail routes through the HTTP API on SQLite and PostgreSQL:
//! providers (created, the default moved, changed, tested against a real
//! smtp-sink, deleted; the password never shown), sending domains with
//! their DKIM, SPF and DMARC records, and the outbox with each message's
//! attempts and the retry of a dead letter; the refusals with the field
//! they name, and every route as another organisation.

mod common;

use axum::http::StatusCode;
use cohort_domain::suppression::MailPurpose;
use cohort_engine::mail::Outgoing;
use common::{apps, TestApp};
use serde_json::{json, Value};

async fn call(
    app: &TestApp,
    who: &cohort_testkit::Seeded,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, answer) = app.api_json(who, method, path, body).await;
    assert!(
        !answer.to_string().contains("s3cr3t-pass"),
        "{method} {path} shows the password: {answer}"
    );
    (status, answer)
}

fn provider(name: &str, port: u16) -> Value {
    json!({
        "name": name, "kind": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
        "username": "apikey", "password": "s3cr3t-pass", "max_connections": 2,
        "rate_per_second": 10
    })
}

#[tokio::test]
async fn providers_are_created_changed_tested_and_deleted_with_the_password_never_shown() {
    let sink = cohort_testkit::SmtpSink::start("provider connection test against smtp-sink");
    for app in apps().await {
        let b = app.backend();
        let (status, first) = call(
            &app,
            &app.a,
            "POST",
            "/api/v1/mail/providers",
            Some(provider("Postmark", 2525)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {first}");
        assert_eq!(first["default"], true, "the first provider is the default");
        assert_eq!(first["password_set"], true);
        assert_eq!(first["rate_per_second"], 10);
        assert!(first.get("password").is_none());
        let first_id = first["id"].as_str().unwrap().to_owned();

        // The password is sealed at rest.
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT password_sealed FROM mail_providers WHERE id = $1")
                .bind(&first_id)
                .fetch_one(app.t.db.pool())
                .await
                .unwrap();
        assert!(!sealed.unwrap().contains("s3cr3t"));

        let mut second = provider("SES", 587);
        second["default"] = json!(true);
        second["tls"] = json!("starttls");
        let (status, second) =
            call(&app, &app.a, "POST", "/api/v1/mail/providers", Some(second)).await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        let second_id = second["id"].as_str().unwrap().to_owned();
        let (_, list) = call(&app, &app.a, "GET", "/api/v1/mail/providers", None).await;
        let defaults: Vec<(&str, bool)> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["default"].as_bool().unwrap()))
            .collect();
        assert_eq!(defaults, [("SES", true), ("Postmark", false)]);

        // A change keeps what it does not name; null clears the password.
        let (status, changed) = call(
            &app,
            &app.a,
            "PATCH",
            &format!("/api/v1/mail/providers/{first_id}"),
            Some(json!({"port": 2526, "password": null, "rate_per_hour": 5000})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(
            (changed["port"].as_u64(), changed["password_set"].as_bool()),
            (Some(2526), Some(false))
        );
        assert_eq!(
            (changed["host"].as_str(), changed["rate_per_hour"].as_u64()),
            (Some("127.0.0.1"), Some(5000))
        );

        // Refusals name their field and change nothing.
        for (body, field) in [
            (
                json!({"name": "x", "host": "127.0.0.1", "port": 0, "tls": "none"}),
                "port",
            ),
            (
                json!({"name": "x", "host": "127.0.0.1", "port": 25, "tls": "ssl"}),
                "tls",
            ),
            (
                json!({"name": "x", "kind": "ses", "host": "h.example", "port": 25, "tls": "none"}),
                "kind",
            ),
            (
                json!({"name": "x", "host": "bad host", "port": 25, "tls": "none"}),
                "host",
            ),
            (
                json!({"name": "x", "host": "h.example", "port": 25, "tls": "none", "max_connections": 0}),
                "max_connections",
            ),
            (
                json!({"name": "x", "host": "h.example", "port": 25, "tls": "none", "rate_per_second": -1}),
                "rate_per_second",
            ),
            (
                json!({"name": "SES", "host": "h.example", "port": 25, "tls": "none"}),
                "name",
            ),
            (
                json!({"name": "x", "host": "h.example", "port": 25, "tls": "none", "colour": "red"}),
                "body",
            ),
        ] {
            let (status, error) =
                call(&app, &app.a, "POST", "/api/v1/mail/providers", Some(body)).await;
            assert_eq!(
                (status, error["error"]["field"].as_str()),
                (StatusCode::BAD_REQUEST, Some(field)),
                "{error}"
            );
        }
        let (status, error) = call(
            &app,
            &app.a,
            "PATCH",
            &format!("/api/v1/mail/providers/{second_id}"),
            Some(json!({"default": false})),
        )
        .await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("default"))
        );
        let (_, list) = call(&app, &app.a, "GET", "/api/v1/mail/providers", None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 2);

        // The connection test talks to a real server.
        if let Some(sink) = &sink {
            let (_, local) = call(&app, &app.a, "POST", "/api/v1/mail/providers",
                Some(json!({"name": "sink", "host": "127.0.0.1", "port": sink.port(), "tls": "none"}))).await;
            let (status, ok) = call(
                &app,
                &app.a,
                "POST",
                &format!(
                    "/api/v1/mail/providers/{}/test",
                    local["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
            assert_eq!(
                (status, ok["ok"].as_bool()),
                (StatusCode::OK, Some(true)),
                "{ok}"
            );
        }
        let (status, failed) = call(
            &app,
            &app.a,
            "POST",
            &format!("/api/v1/mail/providers/{first_id}/test"),
            None,
        )
        .await;
        assert_eq!(
            (status, failed["ok"].as_bool()),
            (StatusCode::OK, Some(false)),
            "{failed}"
        );
        assert!(failed["error"].as_str().unwrap().len() > 3);

        // Deleting the default hands the mark to the oldest remaining one.
        let (status, _) = call(
            &app,
            &app.a,
            "DELETE",
            &format!("/api/v1/mail/providers/{second_id}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, one) = call(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/mail/providers/{first_id}"),
            None,
        )
        .await;
        assert_eq!(one["default"], true);
        let (status, _) = call(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/mail/providers/{second_id}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Another organisation sees and touches none of it.
        let (_, theirs) = call(&app, &app.b, "GET", "/api/v1/mail/providers", None).await;
        assert_eq!(theirs["data"], json!([]));
        for (method, path, body) in [
            ("GET", format!("/api/v1/mail/providers/{first_id}"), None),
            (
                "PATCH",
                format!("/api/v1/mail/providers/{first_id}"),
                Some(json!({"port": 1})),
            ),
            (
                "POST",
                format!("/api/v1/mail/providers/{first_id}/test"),
                None,
            ),
            ("DELETE", format!("/api/v1/mail/providers/{first_id}"), None),
        ] {
            let (status, _) = call(&app, &app.b, method, &path, body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
        let (_, still) = call(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/mail/providers/{first_id}"),
            None,
        )
        .await;
        assert_eq!(still["port"], 2526);
    }
}

#[tokio::test]
async fn a_sending_domain_gets_its_dkim_key_and_the_records_to_publish() {
    for app in apps().await {
        let (status, added) = call(
            &app,
            &app.a,
            "POST",
            "/api/v1/mail/domains",
            Some(json!({"domain": " BlueMugs.Example. "})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(added["domain"], "bluemugs.example");
        let selector = added["dkim_selector"].as_str().unwrap().to_owned();
        let records = added["records"].as_array().unwrap();
        let find = |purpose: &str| {
            records
                .iter()
                .find(|r| r["purpose"] == purpose)
                .unwrap()
                .clone()
        };
        let dkim = find("dkim");
        assert_eq!(dkim["type"], "TXT");
        assert_eq!(
            dkim["name"].as_str().unwrap(),
            format!("{selector}._domainkey.bluemugs.example")
        );
        assert!(
            dkim["value"]
                .as_str()
                .unwrap()
                .starts_with("v=DKIM1; k=rsa; p=MII"),
            "{dkim}"
        );
        assert!(find("spf")["value"].as_str().unwrap().starts_with("v=spf1"));
        assert_eq!(find("dmarc")["name"], "_dmarc.bluemugs.example");
        assert!(!added.to_string().contains("PRIVATE KEY"));

        // Again: the same key (a published record keeps verifying).
        let (status, again) = call(
            &app,
            &app.a,
            "POST",
            "/api/v1/mail/domains",
            Some(json!({"domain": "bluemugs.example"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["records"][0]["value"], dkim["value"]);
        let (status, error) = call(
            &app,
            &app.a,
            "POST",
            "/api/v1/mail/domains",
            Some(json!({"domain": "localhost"})),
        )
        .await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("domain"))
        );
        let (_, list) = call(&app, &app.a, "GET", "/api/v1/mail/domains", None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        let (_, theirs) = call(&app, &app.b, "GET", "/api/v1/mail/domains", None).await;
        assert_eq!(theirs["data"], json!([]));
    }
}

fn outgoing(to: &str) -> Outgoing {
    Outgoing {
        send_key: "campaign:cmp_api".into(),
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
        campaign_id: Some("cmp_api".into()),
        flow_id: None,
        provider_id: None,
    }
}

#[tokio::test]
async fn the_outbox_lists_messages_with_their_attempts_and_retries_only_dead_letters() {
    for app in apps().await {
        let org = &app.a.org;
        let sent = app
            .mail
            .enqueue(org, &outgoing("ann@example.com"))
            .await
            .unwrap();
        let waiting = app
            .mail
            .enqueue(org, &outgoing("bob@example.com"))
            .await
            .unwrap();
        // Ann's goes out; Bob's stays queued (claimed by nobody yet).
        sqlx::query("UPDATE mail_messages SET next_attempt_at_us = $1 WHERE id = $2")
            .bind(i64::MAX / 2)
            .bind(&waiting.id)
            .execute(app.t.db.pool())
            .await
            .unwrap();
        app.mail.send_round("test").await.unwrap();

        let (status, page) = call(
            &app,
            &app.a,
            "GET",
            "/api/v1/mail/messages?state=sent",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [sent.id.as_str()]);
        let (_, all) = call(
            &app,
            &app.a,
            "GET",
            "/api/v1/mail/messages?campaign_id=cmp_api&limit=1",
            None,
        )
        .await;
        assert_eq!(all["data"][0]["id"], waiting.id.as_str(), "newest first");
        let cursor = all["next_cursor"].as_str().unwrap();
        let (_, next) = call(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/mail/messages?campaign_id=cmp_api&limit=1&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(next["data"][0]["id"], sent.id.as_str());
        let (_, bob) = call(
            &app,
            &app.a,
            "GET",
            "/api/v1/mail/messages?recipient=BOB@example.com",
            None,
        )
        .await;
        assert_eq!(bob["data"][0]["state"], "queued");

        let (status, one) = call(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/mail/messages/{}", sent.id),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["message"]["message_id"], sent.message_id.as_str());
        assert_eq!(one["attempts"][0]["outcome"], "accepted");
        assert_eq!(one["attempts"][0]["provider"], "outbox-folder");
        assert!(one["html"].as_str().unwrap().contains("Thanks"));

        let (status, error) = call(
            &app,
            &app.a,
            "POST",
            &format!("/api/v1/mail/messages/{}/retry", sent.id),
            None,
        )
        .await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("state")),
            "{error}"
        );
        sqlx::query("UPDATE mail_messages SET state = 'dead', attempts = 10 WHERE id = $1")
            .bind(&waiting.id)
            .execute(app.t.db.pool())
            .await
            .unwrap();
        let (status, retried) = call(
            &app,
            &app.a,
            "POST",
            &format!("/api/v1/mail/messages/{}/retry", waiting.id),
            None,
        )
        .await;
        assert_eq!(
            (
                status,
                retried["state"].as_str(),
                retried["attempts"].as_i64()
            ),
            (StatusCode::OK, Some("queued"), Some(0))
        );

        for bad in ["state=lost", "cursor=zzz", "limit=0"] {
            let (status, error) = call(
                &app,
                &app.a,
                "GET",
                &format!("/api/v1/mail/messages?{bad}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
            assert_eq!(error["error"]["field"].as_str(), bad.split('=').next());
        }

        // Another organisation sees and retries none of it.
        let (_, theirs) = call(&app, &app.b, "GET", "/api/v1/mail/messages", None).await;
        assert_eq!(theirs["data"], json!([]));
        for (method, path) in [
            ("GET", format!("/api/v1/mail/messages/{}", sent.id)),
            (
                "POST",
                format!("/api/v1/mail/messages/{}/retry", waiting.id),
            ),
        ] {
            let (status, _) = call(&app, &app.b, method, &path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
}
