//! Deliveries against a local receiver that records requests and answers
//! scripted statuses, on SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use cohort_domain::destinations::webhook;
use cohort_domain::ids::OrgId;
use cohort_engine::destinations::{Dispatcher, DispatcherOptions};
use cohort_store::destinations::{
    DeliveryFilter, DeliveryStatus, DestinationSecrets, Filters, NewDestination, SecretsKey,
};
use cohort_store::events::NewEvent;
use cohort_store::{Db, StoreError};
use cohort_testkit::{all_backends, seed, Received, Receiver, Seeded, RECEIVER_ANSWER};
use serde_json::{json, Value};

fn options(allow_private: bool) -> DispatcherOptions {
    DispatcherOptions {
        allow_private_addresses: allow_private,
        schedule: vec![Duration::ZERO; 3],
        lease: Duration::from_secs(60),
        ..DispatcherOptions::default()
    }
}

async fn append(db: &Db, s: &Seeded, message_id: &str, event: &str, message: Value) {
    let mut message = message;
    message["messageId"] = json!(message_id);
    let now = cohort_store::now_micros();
    let row = NewEvent {
        org_id: s.org.clone(),
        source_id: s.source.id.clone(),
        message_id: message_id.to_owned(),
        message_type: "track",
        event: Some(event.to_owned()),
        user_id: Some("user_1".into()),
        anonymous_id: None,
        email: None,
        timestamp_us: now,
        received_at_us: now,
        payload: message.to_string(),
        notes: None,
    };
    db.append_events(&[row]).await.unwrap();
}

async fn webhook_destination(
    db: &Db,
    org: &OrgId,
    key: &SecretsKey,
    url: &str,
    secret: &str,
) -> String {
    db.create_destination(
        org,
        key,
        &NewDestination {
            kind: cohort_domain::destinations::DestinationKind::Webhook,
            name: "hook".into(),
            enabled: true,
            filters: Filters::default(),
            settings: json!({ "url": url }),
            secrets: DestinationSecrets {
                signing_secret: Some(secret.to_owned()),
                ..Default::default()
            },
        },
    )
    .await
    .unwrap()
    .id
}

/// Verifies a Standard Webhooks signature with Python's hmac, hashlib and
/// base64: an implementation independent of Cohort's.
fn python_verifies(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    use std::io::Write;
    let script = r#"
import base64, hashlib, hmac, sys
secret, msg_id, ts, header = sys.argv[1:5]
body = sys.stdin.buffer.read()
key = base64.b64decode(secret[len("whsec_"):])
expected = base64.b64encode(hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256).digest()).decode()
ok = any(hmac.compare_digest(part.split(",", 1)[1], expected) for part in header.split(" ") if part.startswith("v1,"))
sys.exit(0 if ok else 1)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret, id, timestamp, header])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait().unwrap().success()
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn webhooks_are_signed_and_delivered_once_per_message() {
    for t in all_backends().await {
        let s = seed(&t.db, "Shop").await;
        let key = SecretsKey::generate();
        let (receiver, url) = Receiver::start().await;
        let secret = webhook::new_secret();
        let dst = webhook_destination(&t.db, &s.org, &key, &format!("{url}/hook"), &secret).await;
        append(
            &t.db,
            &s,
            "msg_1",
            "Order Completed",
            json!({"type": "track", "event": "Order Completed", "properties": {"total": "27.50"}}),
        )
        .await;
        // The same messageId again: stored once, delivered once.
        append(
            &t.db,
            &s,
            "msg_1",
            "Order Completed",
            json!({"type": "track", "event": "Order Completed"}),
        )
        .await;
        let dispatcher = Dispatcher::new(t.db.clone(), key.clone(), options(true)).unwrap();
        dispatcher.run_until_idle().await.unwrap();
        dispatcher.run_until_idle().await.unwrap();

        let got = receiver.requests();
        assert_eq!(got.len(), 1, "{:?}", t.backend());
        let r = &got[0];
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.uri.path(), "/hook");
        assert_eq!(header(r, "webhook-id"), "msg_1");
        assert_eq!(header(r, "content-type"), "application/json");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["properties"]["total"], "27.50");
        assert!(python_verifies(
            &secret,
            "msg_1",
            header(r, "webhook-timestamp"),
            &r.body,
            header(r, "webhook-signature")
        ));
        assert!(!python_verifies(
            &webhook::new_secret(),
            "msg_1",
            header(r, "webhook-timestamp"),
            &r.body,
            header(r, "webhook-signature")
        ));

        let d = t.db.get_delivery(&s.org, &dst, "msg_1").await.unwrap();
        assert_eq!(
            (d.status, d.attempts, d.response_status),
            (DeliveryStatus::Delivered, 1, Some(200))
        );
        assert_eq!(d.response_excerpt.as_deref(), Some(RECEIVER_ANSWER));
        // A delivered one cannot be replayed into a second post.
        assert!(!t.db.replay_delivery(&s.org, &dst, "msg_1").await.unwrap());
        dispatcher.run_until_idle().await.unwrap();
        assert_eq!(receiver.requests().len(), 1);
    }
}

#[tokio::test]
async fn during_rotation_both_secrets_sign() {
    for t in all_backends().await {
        let s = seed(&t.db, "Shop").await;
        let key = SecretsKey::generate();
        let (receiver, url) = Receiver::start().await;
        let (old, new) = (webhook::new_secret(), webhook::new_secret());
        let dst = webhook_destination(&t.db, &s.org, &key, &url, &old).await;
        let mut d = t.db.get_destination(&s.org, &key, &dst).await.unwrap();
        d.secrets.previous_signing_secret = Some(old.clone());
        d.secrets.previous_expires_at_us = Some(cohort_store::now_micros() + 24 * 3600 * 1_000_000);
        d.secrets.signing_secret = Some(new.clone());
        t.db.update_destination(&key, &d).await.unwrap();
        append(
            &t.db,
            &s,
            "msg_r",
            "Signed Up",
            json!({"type": "track", "event": "Signed Up"}),
        )
        .await;
        Dispatcher::new(t.db.clone(), key, options(true))
            .unwrap()
            .run_until_idle()
            .await
            .unwrap();
        let r = &receiver.requests()[0];
        for secret in [&old, &new] {
            assert!(python_verifies(
                secret,
                "msg_r",
                header(r, "webhook-timestamp"),
                &r.body,
                header(r, "webhook-signature")
            ));
        }
    }
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_fail_until_replayed() {
    for t in all_backends().await {
        let s = seed(&t.db, "Shop").await;
        let key = SecretsKey::generate();
        let (receiver, url) = Receiver::start().await;
        let dst = webhook_destination(&t.db, &s.org, &key, &url, &webhook::new_secret()).await;
        let dispatcher = Dispatcher::new(t.db.clone(), key.clone(), options(true)).unwrap();

        receiver.answer(&[503]);
        append(
            &t.db,
            &s,
            "msg_503",
            "A",
            json!({"type": "track", "event": "A"}),
        )
        .await;
        dispatcher.run_until_idle().await.unwrap();
        let d = t.db.get_delivery(&s.org, &dst, "msg_503").await.unwrap();
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Delivered, 2));
        assert_eq!(receiver.requests().len(), 2);

        receiver.answer(&[400]);
        append(
            &t.db,
            &s,
            "msg_400",
            "B",
            json!({"type": "track", "event": "B"}),
        )
        .await;
        dispatcher.run_until_idle().await.unwrap();
        let d = t.db.get_delivery(&s.org, &dst, "msg_400").await.unwrap();
        assert_eq!(
            (d.status, d.attempts, d.reason.as_deref()),
            (DeliveryStatus::Failed, 1, Some("HTTP 400"))
        );
        assert_eq!(receiver.requests().len(), 3);
        let failed =
            t.db.list_deliveries(
                &s.org,
                &dst,
                &DeliveryFilter {
                    status: Some(DeliveryStatus::Failed),
                    limit: 50,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            failed
                .iter()
                .map(|d| d.message_id.as_str())
                .collect::<Vec<_>>(),
            ["msg_400"]
        );

        assert!(t.db.replay_delivery(&s.org, &dst, "msg_400").await.unwrap());
        dispatcher.run_until_idle().await.unwrap();
        let d = t.db.get_delivery(&s.org, &dst, "msg_400").await.unwrap();
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(receiver.requests().len(), 4);

        // Exhausted schedule → failed.
        receiver.answer(&[500, 500, 500, 500]);
        append(
            &t.db,
            &s,
            "msg_500",
            "C",
            json!({"type": "track", "event": "C"}),
        )
        .await;
        dispatcher.run_until_idle().await.unwrap();
        let d = t.db.get_delivery(&s.org, &dst, "msg_500").await.unwrap();
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.attempts, 4);
        assert!(d.reason.unwrap_or_default().contains("gave up"));
    }
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    for t in all_backends().await {
        let s = seed(&t.db, "Shop").await;
        let key = SecretsKey::generate();
        let (receiver, url) = Receiver::start().await;
        let port = url.rsplit(':').next().unwrap().to_owned();
        let by_ip = webhook_destination(&t.db, &s.org, &key, &url, &webhook::new_secret()).await;
        let by_name = webhook_destination(
            &t.db,
            &s.org,
            &key,
            &format!("http://localhost:{port}/"),
            &webhook::new_secret(),
        )
        .await;
        append(
            &t.db,
            &s,
            "msg_p",
            "A",
            json!({"type": "track", "event": "A"}),
        )
        .await;
        let strict = Dispatcher::new(t.db.clone(), key.clone(), options(false)).unwrap();
        strict.round().await.unwrap();
        assert!(receiver.requests().is_empty());
        for dst in [&by_ip, &by_name] {
            let d = t.db.get_delivery(&s.org, dst, "msg_p").await.unwrap();
            assert_eq!(d.status, DeliveryStatus::Retrying, "{dst}");
            assert!(
                d.reason.unwrap_or_default().contains("private address"),
                "{dst}"
            );
        }
        assert!(cohort_engine::outbound::is_private(
            "169.254.169.254".parse().unwrap()
        ));
        assert!(cohort_engine::outbound::is_private(
            "::ffff:10.0.0.1".parse().unwrap()
        ));
        assert!(!cohort_engine::outbound::is_private(
            "93.184.216.34".parse().unwrap()
        ));
    }
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(
        "/work/shared/fixtures/segment-everflow/browser-analytics-next-1.84.3.track-order-completed.body.json",
    )
    .expect("the captured fixture");
    let mut v: Value = serde_json::from_str(&text).unwrap();
    if let Some(o) = v.as_object_mut() {
        o.remove("writeKey");
        o.remove("_metadata");
    }
    v
}

async fn everflow_destination(
    db: &Db,
    org: &OrgId,
    key: &SecretsKey,
    url: &str,
    mapping: Value,
) -> String {
    db.create_destination(org, key, &NewDestination {
        kind: cohort_domain::destinations::DestinationKind::Everflow,
        name: "Everflow".into(),
        enabled: true,
        filters: Filters { events: vec!["Order Completed".into()], types: vec![] },
        settings: json!({ "tracking_domain": url, "network_id": "7", "event_mapping": mapping }),
        secrets: DestinationSecrets { verification_token: Some("vt_secret".into()), ..Default::default() },
    })
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn everflow_postbacks_carry_the_fixture_and_skip_without_a_transaction_id() {
    for t in all_backends().await {
        let s = seed(&t.db, "Shop").await;
        let key = SecretsKey::generate();
        let (receiver, url) = Receiver::start().await;
        let base =
            everflow_destination(&t.db, &s.org, &key, &url, json!({"Order Completed": 0})).await;
        let mapped =
            everflow_destination(&t.db, &s.org, &key, &url, json!({"Order Completed": 24})).await;
        let order = fixture();
        let id = order["messageId"].as_str().unwrap().to_owned();
        append(&t.db, &s, &id, "Order Completed", order.clone()).await;
        let mut no_tid = order.clone();
        no_tid["context"]
            .as_object_mut()
            .unwrap()
            .remove("referrer");
        append(&t.db, &s, "msg_no_tid", "Order Completed", no_tid).await;
        append(
            &t.db,
            &s,
            "msg_other",
            "Product Viewed",
            json!({"type": "track", "event": "Product Viewed"}),
        )
        .await;
        Dispatcher::new(t.db.clone(), key.clone(), options(true))
            .unwrap()
            .run_until_idle()
            .await
            .unwrap();

        let got = receiver.requests();
        assert_eq!(got.len(), 2);
        let mut by_event: BTreeMap<Option<String>, BTreeMap<String, String>> = BTreeMap::new();
        for r in &got {
            assert_eq!(r.method, Method::GET);
            assert_eq!(r.uri.path(), "/");
            let q: BTreeMap<String, String> =
                url::form_urlencoded::parse(r.uri.query().unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
            by_event.insert(q.get("adv_event_id").cloned(), q);
        }
        let q = &by_event[&None];
        assert_eq!(q["nid"], "7");
        assert_eq!(q["transaction_id"], "a1b2c3d4e5f6");
        assert_eq!(q["amount"], "27.5");
        assert_eq!(q["order_id"], "ord_1001");
        assert_eq!(q["coupon_code"], "SPRING10");
        assert_eq!(q["verification_token"], "vt_secret");
        assert!(q["http_user_agent"].contains("jsdom"));
        let items: Value = serde_json::from_str(&q["order"]).unwrap();
        assert_eq!(items["items"][0]["sku"], "SKU-1");
        assert_eq!(items["items"][0]["quantity"], 1);
        assert_eq!(
            by_event[&Some("24".into())]["transaction_id"],
            "a1b2c3d4e5f6"
        );

        let sent = t.db.get_delivery(&s.org, &base, &id).await.unwrap();
        assert_eq!(sent.status, DeliveryStatus::Delivered);
        let logged = sent.request.unwrap_or_default();
        assert!(!logged.contains("vt_secret"), "{logged}");
        let skipped =
            t.db.get_delivery(&s.org, &mapped, "msg_no_tid")
                .await
                .unwrap();
        assert_eq!(skipped.status, DeliveryStatus::Skipped);
        assert_eq!(
            skipped.reason.as_deref(),
            Some("skipped: no transaction id")
        );
        assert!(matches!(
            t.db.get_delivery(&s.org, &base, "msg_other").await,
            Err(StoreError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn another_organisation_cannot_see_a_destination() {
    for t in all_backends().await {
        let a = seed(&t.db, "A").await;
        let b = seed(&t.db, "B").await;
        let key = SecretsKey::generate();
        let (_receiver, url) = Receiver::start().await;
        let dst = webhook_destination(&t.db, &a.org, &key, &url, &webhook::new_secret()).await;
        append(
            &t.db,
            &a,
            "msg_a",
            "A",
            json!({"type": "track", "event": "A"}),
        )
        .await;
        append(
            &t.db,
            &b,
            "msg_b",
            "B",
            json!({"type": "track", "event": "B"}),
        )
        .await;
        Dispatcher::new(t.db.clone(), key.clone(), options(true))
            .unwrap()
            .run_until_idle()
            .await
            .unwrap();

        assert!(matches!(
            t.db.get_destination(&b.org, &key, &dst).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(t
            .db
            .list_destinations(&b.org, &key)
            .await
            .unwrap()
            .is_empty());
        assert!(t
            .db
            .list_deliveries(
                &b.org,
                &dst,
                &DeliveryFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            t.db.replay_delivery(&b.org, &dst, "msg_a").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            t.db.delete_destination(&b.org, &dst).await,
            Err(StoreError::NotFound(_))
        ));
        // Org B's events never reach org A's destination.
        let log =
            t.db.list_deliveries(
                &a.org,
                &dst,
                &DeliveryFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            log.iter()
                .map(|d| d.message_id.as_str())
                .collect::<Vec<_>>(),
            ["msg_a"]
        );
        // A wrong key cannot read the secrets.
        assert!(t
            .db
            .get_destination(&a.org, &SecretsKey::generate(), &dst)
            .await
            .is_err());
        t.db.delete_destination(&a.org, &dst).await.unwrap();
        assert!(t
            .db
            .list_destinations(&a.org, &key)
            .await
            .unwrap()
            .is_empty());
    }
}
