//! Providers' bounce and complaint webhooks through the HTTP API, on
//! SQLite and PostgreSQL, fed the providers' documented payloads
//! (crates/cohort-mail/tests/fixtures/bounces): an endpoint made with its
//! secret URL shown once, a SendGrid bounce that finds its message by
//! Message-ID, bounces it and suppresses the address, recorded once
//! however often it is posted; a Postmark spam complaint about an address
//! alone; Mailgun's signature checked; an SNS subscription left for the
//! merchant to confirm; wrong secrets, bad bodies and another organisation
//! refused.

mod common;

use axum::http::StatusCode;
use cohort_domain::suppression::MailPurpose;
use cohort_engine::mail::Outgoing;
use common::{apps, TestApp};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

fn bounce_fixture(name: &str) -> String {
    let path = format!(
        "{}/../cohort-mail/tests/fixtures/bounces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn webhook(app: &TestApp, kind: &str, signing_key: Option<&str>) -> (String, String) {
    let (status, made) = app
        .api_json(
            &app.a,
            "POST",
            "/api/v1/mail/webhooks",
            Some(
                json!({"kind": kind, "name": format!("{kind} events"), "signing_key": signing_key}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let url = made["url"].as_str().unwrap();
    let path = url[url.find("/mail/webhooks/").unwrap()..].to_owned();
    (made["webhook"]["id"].as_str().unwrap().to_owned(), path)
}

async fn post(app: &TestApp, path: &str, body: String) -> (StatusCode, Value) {
    let answer = app.post(path, body).await;
    (answer.status, answer.json())
}

async fn sent(app: &TestApp, to: &str) -> (String, String) {
    let queued = app
        .mail
        .enqueue(
            &app.a.org,
            &Outgoing {
                send_key: "campaign:cmp_7".into(),
                to: to.into(),
                from: None,
                purpose: MailPurpose::Marketing,
                body: cohort_mail::MessageBody {
                    subject: "New mugs".into(),
                    html: "<p>New mugs are in.</p>".into(),
                    text: "New mugs are in.\n".into(),
                },
                unsubscribe: Some(cohort_mail::Unsubscribe {
                    https: "https://cohort.example/u/x".into(),
                    mailto: "mailto:u@bluemugs.example".into(),
                }),
                profile_id: None,
                user_id: None,
                campaign_id: Some("cmp_7".into()),
                flow_id: None,
                provider_id: None,
            },
        )
        .await
        .unwrap();
    app.mail.send_round("node-a").await.unwrap();
    (queued.id, queued.message_id)
}

async fn suppression_reasons(app: &TestApp, email: &str) -> Vec<String> {
    let (_, list) = app
        .api_json(
            &app.a,
            "GET",
            &format!("/api/v1/suppressions?q={email}"),
            None,
        )
        .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_sendgrid_bounce_finds_its_message_bounces_it_and_suppresses_once() {
    for app in apps().await {
        let b = app.backend();
        let (_, path) = webhook(&app, "sendgrid", None).await;
        let (id, message_id) = sent(&app, "example@test.com").await;
        let body = bounce_fixture("sendgrid-bounce.json")
            .replace("14c5d75ce93.dfd.64b469@ismtpd-555", &message_id);

        let (status, receipt) = post(&app, &path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{b}: {receipt}");
        assert_eq!(receipt["recorded"], 1);
        let (_, again) = post(&app, &path, body).await;
        assert_eq!(
            (again["recorded"].clone(), again["duplicates"].clone()),
            (json!(0), json!(1))
        );

        let (status, detail) = app
            .api_json(&app.a, "GET", &format!("/api/v1/mail/messages/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(detail["message"]["state"], "bounced", "{b}: {detail}");
        let reports = detail["reports"].as_array().unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0]["kind"], "hard_bounce");
        assert_eq!(reports[0]["source"], "sendgrid");
        assert_eq!(reports[0]["diagnostic"], "500 unknown recipient");
        assert_eq!(reports[0]["suppressed"], "hard_bounce");
        assert_eq!(
            suppression_reasons(&app, "example@test.com").await,
            ["hard_bounce"]
        );

        app.mail.log_outcomes().await.unwrap();
        let bounced: Vec<Value> = app
            .events(&app.a)
            .await
            .into_iter()
            .filter(|e| e["event"] == "Email Bounced")
            .collect();
        assert_eq!(bounced.len(), 1, "{b}");
        assert_eq!(bounced[0]["message"]["properties"]["campaign_id"], "cmp_7");
        assert_eq!(
            bounced[0]["message"]["properties"]["report_source"],
            "sendgrid"
        );

        // Another organisation sees neither the message nor its reports.
        let (status, _) = app
            .api_json(&app.b, "GET", &format!("/api/v1/mail/messages/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(suppression_reasons_of(&app, &app.b, "example@test.com")
            .await
            .is_empty());
    }
}

async fn suppression_reasons_of(
    app: &TestApp,
    who: &cohort_testkit::Seeded,
    email: &str,
) -> Vec<Value> {
    let (_, list) = app
        .api_json(who, "GET", &format!("/api/v1/suppressions?q={email}"), None)
        .await;
    list["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_postmark_complaint_suppresses_the_address_and_is_told_to_the_log() {
    for app in apps().await {
        let (_, path) = webhook(&app, "postmark", None).await;
        let (status, receipt) =
            post(&app, &path, bounce_fixture("postmark-spam-complaint.json")).await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["recorded"], 1);
        assert_eq!(
            suppression_reasons(&app, "john@example.com").await,
            ["complaint"]
        );
        app.mail.log_outcomes().await.unwrap();
        let spam: Vec<Value> = app
            .events(&app.a)
            .await
            .into_iter()
            .filter(|e| e["event"] == "Email Marked as Spam")
            .collect();
        assert_eq!(spam.len(), 1, "{}", app.backend());
        assert_eq!(spam[0]["email"], "john@example.com");
    }
}

#[tokio::test]
async fn mailgun_requests_are_checked_against_the_signing_key() {
    for app in apps().await {
        let (status, refused) = app
            .api_json(
                &app.a,
                "POST",
                "/api/v1/mail/webhooks",
                Some(json!({"kind": "mailgun", "name": "Mailgun"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(refused["error"]["field"], "signing_key");

        let key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
        let (_, path) = webhook(&app, "mailgun", Some(key)).await;
        let fixture = bounce_fixture("mailgun-failed-permanent.json");
        // The documentation's signature was made with Mailgun's key, not ours.
        let (status, answer) = post(&app, &path, fixture.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert!(suppression_reasons(&app, "slava@mailgun.com")
            .await
            .is_empty());

        let mut body: Value = serde_json::from_str(&fixture).unwrap();
        let signature = &body["signature"];
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(signature["timestamp"].as_str().unwrap().as_bytes());
        mac.update(signature["token"].as_str().unwrap().as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        body["signature"]["signature"] = json!(hex);
        let (status, receipt) = post(&app, &path, body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["recorded"], 1);
        assert_eq!(
            suppression_reasons(&app, "slava@mailgun.com").await,
            ["hard_bounce"]
        );

        // The key is sealed and never shown.
        let (_, list) = app
            .api_json(&app.a, "GET", "/api/v1/mail/webhooks", None)
            .await;
        assert!(!list.to_string().contains(key));
        assert_eq!(list["data"][0]["signing_key_set"], true);
        assert_eq!(list["data"][0]["reports_received"], 1);
    }
}

#[tokio::test]
async fn an_sns_subscription_waits_for_the_merchant_and_bad_requests_change_nothing() {
    for app in apps().await {
        let (id, path) = webhook(&app, "ses", None).await;
        let (status, receipt) = post(
            &app,
            &path,
            bounce_fixture("sns-subscription-confirmation.json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["subscription_pending"], true);
        let (_, list) = app
            .api_json(&app.a, "GET", "/api/v1/mail/webhooks", None)
            .await;
        assert!(list["data"][0]["subscribe_url"]
            .as_str()
            .unwrap()
            .starts_with("https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription"));

        // A wrong secret, an unknown endpoint: the same 404.
        let wrong = format!("/mail/webhooks/{id}/not-the-secret");
        let (status, _) = post(&app, &wrong, bounce_fixture("ses-simulator-bounce.json")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = post(&app, "/mail/webhooks/mwh_nope/x", "{}".into()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Not JSON, or not SES's: 400 naming what is wrong.
        let (status, error) = post(&app, &path, "not json".into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"]["field"], "body");
        let (status, error) = post(&app, &path, json!({"Type": "Notification"}).to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(error["error"]["field"].is_string());

        let (status, error) = app
            .api_json(
                &app.a,
                "POST",
                "/api/v1/mail/webhooks",
                Some(json!({"kind": "sparkpost", "name": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"]["field"], "kind");

        // Another organisation sees and removes nothing.
        let (_, theirs) = app
            .api_json(&app.b, "GET", "/api/v1/mail/webhooks", None)
            .await;
        assert_eq!(theirs["data"], json!([]));
        let (status, _) = app
            .api_json(
                &app.b,
                "DELETE",
                &format!("/api/v1/mail/webhooks/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, _) = app
            .api_json(
                &app.a,
                "DELETE",
                &format!("/api/v1/mail/webhooks/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = post(
            &app,
            &path,
            bounce_fixture("sns-subscription-confirmation.json"),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a removed endpoint takes nothing"
        );
    }
}
