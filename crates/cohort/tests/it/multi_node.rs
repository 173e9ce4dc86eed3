//! Several `cohort serve` nodes on one PostgreSQL (docs/SCALING.md): first an
//! `http`-only node beside a `workers`-only node, then two nodes that both
//! run workers. Events sent to either node are projected once, each
//! destination delivery is made once, a store's command is handed out once
//! and acknowledged once, and `kill -9` of one node mid-delivery loses
//! nothing: the other node sends what the dead one had leased once its
//! lease ends.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use cohort_store::destinations::SecretsKey;
use cohort_store::Db;
use cohort_testkit::{Answer, Receiver};
use common::{api_token, Server};
use serde_json::{json, Value};
use sqlx::Row;

/// Requests per `webhook-id` (the event's messageId).
fn per_message(receiver: &Receiver) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in receiver.requests() {
        let id = request.header("webhook-id").unwrap_or("-").to_owned();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

fn env(key: &SecretsKey) -> Vec<(&'static str, String)> {
    vec![
        ("COHORT_DESTINATIONS__KEY", key.to_base64()),
        (
            "COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES",
            "true".into(),
        ),
        ("COHORT_DESTINATIONS__POLL_INTERVAL_MS", "50".into()),
        ("COHORT_PROJECTION__POLL_INTERVAL_MS", "50".into()),
        // A request gives up after 3 s; a delivery leased by a killed node
        // is sent again 4 s after its claim.
        ("COHORT_DESTINATIONS__TIMEOUT_SECONDS", "3".into()),
        ("COHORT_DESTINATIONS__LEASE_SECONDS", "4".into()),
        (
            "COHORT_DESTINATIONS__RETRY_SCHEDULE_SECONDS",
            format!("[{}]", ["1"; 30].join(",")),
        ),
    ]
}

async fn node(url: &str, key: &SecretsKey, roles: &str) -> Server {
    let mut env = env(key);
    env.push(("COHORT_SERVER__ROLES", roles.to_owned()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if roles.contains("http") {
        Server::start(url, &pairs).await
    } else {
        Server::start_workers_only(url, &pairs).await
    }
}

async fn send(server: &Server, write_key: &str, ids: &[String]) {
    let batch: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"type": "track", "event": "Viewed", "userId": format!("user-{}", i % 10), "messageId": id})
        })
        .collect();
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/batch", server.url))
        .basic_auth(write_key, Some(""))
        .json(&json!({ "batch": batch }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// Polls `check` every 50 ms; panics with `what` after two minutes (a bound
/// so a broken build fails instead of hanging, not a timing claim).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..2400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// Every event of the log has its place in exactly one cluster, and the
/// projector's cursor has passed the last one.
async fn projected_once(db: &Db) -> bool {
    let events = scalar(db, "SELECT COUNT(*) FROM events").await;
    let placed = scalar(db, "SELECT COUNT(*) FROM cluster_events").await;
    let last = scalar(db, "SELECT COALESCE(MAX(seq), 0) FROM events").await;
    let cursor = scalar(
        db,
        "SELECT last_seq FROM projection_cursor WHERE name = 'profiles'",
    )
    .await;
    events > 0 && events == placed && cursor == last
}

async fn create_webhook(server: &Server, token: &str, url: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/destinations", server.url))
        .bearer_auth(token)
        .json(&json!({"type": "webhook", "name": "receiver", "settings": {"url": url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
}

/// Pairs a WooCommerce store: the pairing is asked of one node, approved in
/// the database by an owner, and collected through the other node.
async fn paired_store(db: &Db, ask: &Server, collect: &Server) -> String {
    let client = reqwest::Client::new();
    let pairing: Value = client
        .post(format!("{}/connect/v1/pairings", ask.url))
        .json(&json!({
            "store_url": "https://shop.example", "site_name": "Ann's Shop", "platform": "woocommerce",
            "plugin_version": "0.1.0", "wp_version": "6.6.2", "wc_version": "9.3.3",
            "php_version": "8.2.24", "currency": "EUR", "timezone": "Europe/Paris",
            "return_url": "https://shop.example/wp-admin/admin.php?page=cohort",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = db.list_organisations().await.unwrap().remove(0).id;
    let hash = cohort_domain::accounts::hash_password("a long enough password").unwrap();
    let owner = db
        .create_user(
            &org,
            "owner@example.com",
            &hash,
            cohort_store::users::Role::Owner,
        )
        .await
        .unwrap();
    db.approve_pairing(pairing["pairing_id"].as_str().unwrap(), &org, &owner.id)
        .await
        .unwrap();
    let claimed: Value = client
        .post(format!(
            "{}/connect/v1/pairings/{}/poll",
            collect.url,
            pairing["pairing_id"].as_str().unwrap()
        ))
        .bearer_auth(pairing["poll_secret"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    claimed["installation_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no installation token: {claimed}"))
        .to_owned()
}

async fn commands(server: &Server, token: &str) -> Vec<String> {
    let list: Value = reqwest::Client::new()
        .get(format!("{}/connect/v1/commands", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn two_nodes_on_one_postgres_do_every_piece_of_work_once() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    let Some(t) = cohort_testkit::postgres().await else {
        return;
    };
    let key = SecretsKey::generate();
    let (receiver, receiver_url) = Receiver::start().await;

    // Phase 1: one node serves HTTP only, the other runs the workers only.
    let web = node(&t.url, &key, r#"["http"]"#).await;
    let mut workers = node(&t.url, &key, r#"["workers"]"#).await;
    let write_key = web.printed_write_key();
    let token = api_token(&t.db).await;
    create_webhook(&web, &token, &format!("{receiver_url}/hook")).await;
    let first: Vec<String> = (0..60).map(|i| format!("one-{i}")).collect();
    send(&web, &write_key, &first).await;
    until("phase 1 projected and delivered", || async {
        projected_once(&t.db).await && per_message(&receiver).len() == first.len()
    })
    .await;
    let once: BTreeMap<String, usize> = first.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(per_message(&receiver), once, "each delivery made once");
    assert_eq!(scalar(&t.db, "SELECT COUNT(*) FROM profiles").await, 10);

    // A store's command: handed out by either node, the same one, until
    // the store acknowledges it through one of them.
    let store_token = paired_store(&t.db, &web, &web).await;
    let pending = commands(&web, &store_token).await;
    assert_eq!(pending.len(), 1, "the initial sync is queued once");

    // Phase 2: the web node is replaced by one with both roles, the workers
    // node too; events go to both.
    web.sigterm();
    drop(web);
    workers.sigterm();
    workers.wait().await;
    let a = node(&t.url, &key, r#"["http", "workers"]"#).await;
    let mut b = node(&t.url, &key, r#"["http", "workers"]"#).await;
    let (from_a, from_b) = (
        commands(&a, &store_token).await,
        commands(&b, &store_token).await,
    );
    assert_eq!((&from_a, &from_b), (&pending, &pending));
    let ack = reqwest::Client::new()
        .post(format!("{}/connect/v1/commands/{}/ack", b.url, pending[0]))
        .bearer_auth(&store_token)
        .json(&json!({"status": "done", "started_at": "2026-12-03T10:00:00Z",
                      "finished_at": "2026-12-03T10:01:00Z", "counts": {"products": 0, "customers": 0, "guests": 0, "orders": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200, "{}", ack.text().await.unwrap());
    assert!(
        commands(&a, &store_token).await.is_empty(),
        "acknowledged on b, gone on a"
    );

    let second_a: Vec<String> = (0..40).map(|i| format!("a-{i}")).collect();
    let second_b: Vec<String> = (0..40).map(|i| format!("b-{i}")).collect();
    tokio::join!(
        send(&a, &write_key, &second_a),
        send(&b, &write_key, &second_b)
    );
    let total = first.len() + second_a.len() + second_b.len();
    until("phase 2 projected and delivered", || async {
        projected_once(&t.db).await && per_message(&receiver).len() == total
    })
    .await;
    assert!(
        per_message(&receiver).values().all(|n| *n == 1),
        "each delivery made once"
    );
    assert_eq!(scalar(&t.db, "SELECT COUNT(*) FROM profiles").await, 10);

    // kill -9 of one node while deliveries are in flight: requests are
    // held unanswered, the kill comes once some are, then every held
    // request (those whose sender still waits) is answered 200.
    receiver.otherwise(Answer::Hold);
    let third: Vec<String> = (0..30).map(|i| format!("kill-{i}")).collect();
    send(&a, &write_key, &third).await;
    // One node sends at most 4 deliveries of a destination at once
    // (per_destination_concurrency): 5 held means both nodes have some.
    until("deliveries in flight on both nodes", || async {
        receiver.held().len() >= 5
    })
    .await;
    b.kill9();
    b.wait().await;
    receiver.otherwise(Answer::Status(200));
    receiver.release_held(200);
    until(
        "the surviving node finishes the killed node's leased work",
        || async {
            projected_once(&t.db).await
                && per_message(&receiver).len() == total + third.len()
                && scalar(
                    &t.db,
                    "SELECT COUNT(*) FROM deliveries WHERE status <> 'delivered'",
                )
                .await
                    == 0
        },
    )
    .await;
    let requests = per_message(&receiver);
    let repeated: Vec<(&String, &usize)> = requests.iter().filter(|(_, n)| **n > 1).collect();
    // Only a request in flight at the kill may be sent again (same
    // webhook-id), once; no event is missing.
    assert!(repeated.iter().all(|(_, n)| **n == 2), "{repeated:?}");
    assert!(
        !repeated.is_empty() && repeated.len() <= 4,
        "the killed node's deliveries in flight (1 to 4) were sent again: {repeated:?}"
    );
    assert_eq!(requests.len(), total + third.len());
    eprintln!(
        "kill -9 of one of two nodes: {} deliveries in flight were sent again by the other",
        repeated.len()
    );
    drop(a);
}
