//! No-plugin mode (connect.md §6) against the real router and database, on
//! SQLite and PostgreSQL: the callback's one-time state, the webhook
//! receiver against the signed fixtures and tampered variants, and the
//! worker's history pull, webhook registration, crash resume and
//! reconciliation against a stand-in WooCommerce.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use cohort_engine::destinations::DispatcherOptions;
use cohort_engine::outbound::OutboundPolicy;
use cohort_engine::woocommerce_rest::worker::{RestWorker, RestWorkerOptions};
use cohort_store::destinations::SecretsKey;
use common::{Answer, TestApp};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::Notify;

const CONSUMER_KEY: &str = "ck_0123456789abcdef0123456789abcdef01234567";
const CONSUMER_SECRET: &str = "cs_0123456789abcdef0123456789abcdef01234567";

fn shared(path: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn wc_fixture(name: &str) -> Value {
    serde_json::from_str(&shared(&format!("wc-rest-v3-{name}.docs-example.json"))).unwrap()
}

fn deliveries() -> Value {
    serde_json::from_str(&shared("wc-webhook-deliveries.synthesized.json")).unwrap()
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn apps() -> Vec<(TestApp, SecretsKey)> {
    let mut apps = Vec::new();
    for t in cohort_testkit::all_backends().await {
        let key = SecretsKey::generate();
        let options = DispatcherOptions {
            allow_private_addresses: true,
            ..DispatcherOptions::default()
        };
        apps.push((
            TestApp::with_destinations(t, key.clone(), options).await,
            key,
        ));
    }
    apps
}

async fn post_raw(app: &TestApp, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut request = Request::post(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request.body(Body::from(body)).unwrap()).await
}

/// Starts a connection through the admin API; returns (installation id, state).
async fn start(app: &TestApp, store_url: &str) -> (String, String) {
    let answer = app
        .api(
            &app.a,
            "POST",
            "/api/v1/woocommerce/connections",
            Some(json!({"store_url": store_url})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let body = answer.json();
    let url = url::Url::parse(body["authorize_url"].as_str().unwrap()).unwrap();
    assert_eq!(url.path(), "/wc-auth/v1/authorize");
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["app_name"], "Cohort");
    assert_eq!(query["scope"], "read_write");
    assert!(
        query["callback_url"].ends_with("/connect/v1/woocommerce/callback"),
        "{query:?}"
    );
    assert_eq!(
        body["callback_url"].as_str(),
        Some(query["callback_url"].as_str())
    );
    (
        body["installation_id"].as_str().unwrap().to_owned(),
        query["user_id"].clone(),
    )
}

fn callback_body(state: &str) -> Value {
    json!({"key_id": 7, "user_id": state, "consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET, "key_permissions": "read_write"})
}

async fn callback(app: &TestApp, body: &Value) -> Answer {
    post_raw(
        app,
        "/connect/v1/woocommerce/callback",
        &[("content-type", "application/json;charset=UTF-8")],
        body.to_string().into_bytes(),
    )
    .await
}

/// A connected no-plugin store whose webhook secret is the fixtures' one.
async fn connected(app: &TestApp, key: &SecretsKey, store_url: &str) -> String {
    let (installation, state) = start(app, store_url).await;
    let answer = callback(app, &callback_body(&state)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["installation_id"], json!(installation));
    let secret = deliveries()["secret"].as_str().unwrap().to_owned();
    app.t
        .db
        .set_rest_webhook_secret(key, &installation, &secret)
        .await
        .unwrap();
    installation
}

/// WooCommerce resources in org A's log (derived events not counted).
async fn resources_logged(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE org_id = $1 AND type = 'resource'")
        .bind(app.a.org.as_str())
        .fetch_one(app.t.db.pool())
        .await
        .unwrap()
}

async fn installations(app: &TestApp) -> Vec<Value> {
    app.get_api(&app.a, "/api/v1/installations").await.json()["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_callback_state_is_single_use_expires_and_must_be_known() {
    for (app, _key) in apps().await {
        let backend = app.backend();
        let (installation, state) = start(&app, "http://127.0.0.1:9/").await;
        assert!(
            installations(&app).await.is_empty(),
            "{backend}: nothing until WooCommerce calls back"
        );

        // Unknown state, bad fields: 400 naming the field, nothing stored.
        let cases = [
            ("user_id", callback_body("wcs_not_a_state")),
            (
                "key_permissions",
                json!({"key_id": 7, "user_id": state, "consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET, "key_permissions": "read"}),
            ),
            (
                "consumer_key",
                json!({"key_id": 7, "user_id": state, "consumer_key": "nope", "consumer_secret": CONSUMER_SECRET, "key_permissions": "read_write"}),
            ),
            (
                "consumer_secret",
                json!({"key_id": 7, "user_id": state, "consumer_key": CONSUMER_KEY, "key_permissions": "read_write"}),
            ),
            (
                "key_id",
                json!({"key_id": 0, "user_id": state, "consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET, "key_permissions": "read_write"}),
            ),
        ];
        for (field, body) in cases {
            let answer = callback(&app, &body).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{backend} {field}: {}",
                answer.text()
            );
            assert_eq!(
                answer.json()["error"]["field"],
                json!(field),
                "{backend}: {}",
                answer.text()
            );
        }
        assert!(
            installations(&app).await.is_empty(),
            "{backend}: nothing stored"
        );

        // The right state: exactly 200, the installation exists (mode rest) with its sync queued.
        let answer = callback(&app, &callback_body(&state)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{backend}: {}",
            answer.text()
        );
        let list = installations(&app).await;
        assert_eq!(list.len(), 1, "{backend}");
        assert_eq!(list[0]["id"], json!(installation));
        assert_eq!(list[0]["mode"], json!("rest"));
        assert_eq!(list[0]["status"], json!("connected"));
        assert_eq!(list[0]["store_url"], json!("http://127.0.0.1:9"));
        assert_eq!(list[0]["last_command"]["kind"], json!("sync_store"));
        // The keys are stored encrypted, never as sent.
        let stored: (String, String) =
            sqlx::query_as("SELECT consumer_key, consumer_secret FROM woocommerce_rest_connections WHERE installation_id = $1")
                .bind(&installation)
                .fetch_one(app.t.db.pool())
                .await
                .unwrap();
        assert!(
            !stored.0.contains(CONSUMER_KEY) && !stored.1.contains(CONSUMER_SECRET),
            "{backend}: {stored:?}"
        );

        // Replayed: refused, nothing changes.
        let again = callback(&app, &callback_body(&state)).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{backend}");
        assert_eq!(again.json()["error"]["field"], json!("user_id"));
        assert_eq!(installations(&app).await.len(), 1, "{backend}");
        // Organisation B sees nothing.
        assert_eq!(
            app.get_api(&app.b, "/api/v1/installations").await.json()["data"],
            json!([]),
            "{backend}"
        );

        // Expired: refused.
        let (_, late) = start(&app, "http://127.0.0.1:10").await;
        sqlx::query("UPDATE woocommerce_rest_connections SET state_expires_at = 0 WHERE state_used_at IS NULL")
            .execute(app.t.db.pool())
            .await
            .unwrap();
        let answer = callback(&app, &callback_body(&late)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{backend}");
        assert!(
            answer.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired"),
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(installations(&app).await.len(), 1, "{backend}");

        // Starting needs a token and a store URL.
        let answer = app
            .api(
                &app.a,
                "POST",
                "/api/v1/woocommerce/connections",
                Some(json!({"store_url": "ftp://x"})),
            )
            .await;
        assert_eq!(
            answer.json()["error"]["field"],
            json!("store_url"),
            "{backend}"
        );
        let answer = post_raw(
            &app,
            "/api/v1/woocommerce/connections",
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{backend}");
    }
}

fn headers_of(delivery: &Value) -> Vec<(String, String)> {
    delivery["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

async fn deliver(
    app: &TestApp,
    installation: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Answer {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post_raw(
        app,
        &format!("/hooks/woocommerce/{installation}"),
        &headers,
        body.to_vec(),
    )
    .await
}

#[tokio::test]
async fn the_webhook_receiver_verifies_the_signed_fixtures_and_refuses_tampered_ones() {
    let fixtures = deliveries();
    let list = fixtures["deliveries"].as_array().unwrap();
    let updated = &list[0];
    let deleted = &list[1];
    let ping = &list[2];
    for (app, key) in apps().await {
        let backend = app.backend();
        let installation = connected(&app, &key, "https://example.com").await;
        let path_headers = headers_of(updated);
        let raw = updated["raw_body"].as_str().unwrap().as_bytes().to_vec();

        // The activation ping: exactly 200, nothing stored.
        let answer = deliver(
            &app,
            &installation,
            &headers_of(ping),
            ping["raw_body"].as_str().unwrap().as_bytes(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["status"], json!("ping"));
        assert_eq!(app.count(&app.a).await, 0, "{backend}");

        // Tampered: a body byte changed, the wrong secret, no signature, an unknown installation.
        let mut changed = raw.clone();
        let at = changed.iter().position(|b| *b == b'9').unwrap();
        changed[at] = b'8';
        let wrong_secret: Vec<(String, String)> = path_headers
            .iter()
            .map(|(k, v)| {
                if k == "X-WC-Webhook-Signature" {
                    (k.clone(), sign("not_the_secret", &raw))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        let unsigned: Vec<(String, String)> = path_headers
            .iter()
            .filter(|(k, _)| k != "X-WC-Webhook-Signature")
            .cloned()
            .collect();
        for (what, headers, body) in [
            ("changed body", &path_headers, &changed),
            ("wrong secret", &wrong_secret, &raw),
            ("no signature", &unsigned, &raw),
        ] {
            let answer = deliver(&app, &installation, headers, body).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{backend} {what}: {}",
                answer.text()
            );
            assert!(answer.json()["error"]["message"].is_string());
        }
        let answer = deliver(&app, "ins_unknown", &path_headers, &raw).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{backend}");
        assert_eq!(app.count(&app.a).await, 0, "{backend}: nothing stored");

        // The signed delivery: stored; delivered again (a new delivery id), a duplicate.
        let answer = deliver(&app, &installation, &path_headers, &raw).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["status"], json!("stored"));
        let mut replay = path_headers.clone();
        for (k, v) in replay.iter_mut() {
            if k == "X-WC-Webhook-Delivery-ID" {
                *v = "ffffffffffffffffffffffffffffffff".into();
            }
        }
        let again = deliver(&app, &installation, &replay, &raw).await;
        assert_eq!(again.status, StatusCode::OK, "{backend}");
        assert_eq!(again.json()["status"], json!("duplicate"));
        assert_eq!(again.json()["message_id"], answer.json()["message_id"]);
        // The order.deleted delivery carries only the id: verified, answered 200, nothing applied.
        let answer = deliver(
            &app,
            &installation,
            &headers_of(deleted),
            deleted["raw_body"].as_str().unwrap().as_bytes(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["status"], json!("ignored"));

        // Signed but invalid: 400 naming the field, nothing stored.
        let secret = fixtures["secret"].as_str().unwrap();
        let bad = br#"{"id":728,"status":"processing"}"#;
        let mut bad_headers = path_headers.clone();
        for (k, v) in bad_headers.iter_mut() {
            if k == "X-WC-Webhook-Signature" {
                *v = sign(secret, bad);
            }
        }
        let answer = deliver(&app, &installation, &bad_headers, bad).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{backend}: {}",
            answer.text()
        );
        assert!(
            answer.json()["error"]["field"]
                .as_str()
                .unwrap()
                .starts_with("resource."),
            "{backend}: {}",
            answer.text()
        );

        // One order, one Order Completed, under the store's source; org B sees nothing.
        app.projected().await;
        assert_eq!(resources_logged(&app).await, 1, "{backend}");
        let orders = app.get_api(&app.a, "/api/v1/orders").await.json();
        assert_eq!(
            orders["data"].as_array().unwrap().len(),
            1,
            "{backend}: {orders}"
        );
        assert_eq!(
            orders["data"][0]["total"],
            json!({"amount": "29.35", "currency": "USD"}),
            "{backend}"
        );
        let completed = app
            .get_api(&app.a, "/api/v1/events?event=Order%20Completed")
            .await
            .json();
        assert_eq!(
            completed["data"].as_array().unwrap().len(),
            1,
            "{backend}: {completed}"
        );
        assert_eq!(
            app.get_api(&app.b, "/api/v1/orders").await.json()["data"],
            json!([]),
            "{backend}"
        );

        // A disconnected (replaced) installation no longer receives.
        sqlx::query("UPDATE connect_installations SET status = 'disconnected' WHERE id = $1")
            .bind(&installation)
            .execute(app.t.db.pool())
            .await
            .unwrap();
        assert_eq!(
            deliver(&app, &installation, &path_headers, &raw)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{backend}"
        );
    }
}

// ----- a stand-in WooCommerce ------------------------------------------------

/// What the stand-in serves and saw.
#[derive(Default)]
struct Store {
    /// resource → items, ids ascending.
    items: BTreeMap<String, Vec<Value>>,
    /// (resource, page, query) of every list request.
    requests: Vec<(String, u32, BTreeMap<String, String>)>,
    webhooks: Vec<Value>,
    webhook_posts: usize,
    /// Hang (never answer) once on this (resource, page): a crash mid-pull.
    hang_on: Option<(String, u32)>,
}

#[derive(Clone)]
struct FakeWoo {
    store: Arc<Mutex<Store>>,
    hung: Arc<Notify>,
}

fn multiplied(resource: &str, n: usize) -> Vec<Value> {
    let base = wc_fixture(match resource {
        "products" => "product",
        "customers" => "customer",
        _ => "order",
    });
    (1..=n)
        .map(|i| {
            let mut item = base.clone();
            item["id"] = json!(i);
            match resource {
                "customers" => item["email"] = json!(format!("customer{i}@example.com")),
                "orders" => item["billing"]["email"] = json!(format!("buyer{i}@example.com")),
                _ => item["sku"] = json!(format!("SKU-{i}")),
            }
            item
        })
        .collect()
}

fn query_page(query: &BTreeMap<String, String>) -> u32 {
    query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1)
}

async fn list(
    State(woo): State<FakeWoo>,
    Path(resource): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    // Plain http: WooCommerce accepts only OAuth 1.0a; the client signs.
    if query.get("oauth_consumer_key").map(String::as_str) != Some(CONSUMER_KEY)
        || !query.contains_key("oauth_signature")
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "woocommerce_rest_cannot_view"})),
        )
            .into_response();
    }
    let page = query_page(&query);
    let hang = {
        let mut store = woo.store.lock().unwrap();
        store.requests.push((resource.clone(), page, query.clone()));
        let hang = store.hang_on.as_ref() == Some(&(resource.clone(), page));
        if hang {
            store.hang_on = None;
        }
        hang
    };
    if hang {
        woo.hung.notify_one();
        std::future::pending::<()>().await;
    }
    let store = woo.store.lock().unwrap();
    if resource == "webhooks" {
        return (
            [("x-wp-totalpages", "1")],
            Json(Value::Array(store.webhooks.clone())),
        )
            .into_response();
    }
    let after = query.get("modified_after").map(|t| {
        t.trim_end_matches('Z')
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    let items: Vec<Value> = store
        .items
        .get(&resource)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|item| {
            after
                .as_ref()
                .is_none_or(|a| item["date_modified_gmt"].as_str().unwrap_or_default() > a.as_str())
        })
        .collect();
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(10);
    let total_pages = items.len().div_ceil(per_page).max(1);
    let start = (page as usize - 1) * per_page;
    let slice: Vec<Value> = items.into_iter().skip(start).take(per_page).collect();
    (
        [("x-wp-totalpages", total_pages.to_string())],
        Json(Value::Array(slice)),
    )
        .into_response()
}

async fn create_webhook(State(woo): State<FakeWoo>, Json(body): Json<Value>) -> Response {
    let mut store = woo.store.lock().unwrap();
    store.webhook_posts += 1;
    let id = 100 + store.webhooks.len() as i64;
    let hook = json!({"id": id, "topic": body["topic"], "delivery_url": body["delivery_url"], "status": "active", "has_secret": body["secret"].is_string()});
    store.webhooks.push(hook.clone());
    (StatusCode::CREATED, Json(hook)).into_response()
}

async fn currency() -> Json<Value> {
    Json(json!({"id": "woocommerce_currency", "value": "USD"}))
}

/// Serves WooCommerce-shaped REST pages on 127.0.0.1.
///
/// This stands in for WooCommerce because CI cannot install it (it is in no
/// package registry the CI reaches): the REST fixtures multiplied, with
/// `X-WP-TotalPages`, the webhooks endpoints, and OAuth 1.0a parameters
/// required over http as WooCommerce 7.8 requires them. The test against a
/// real WooCommerce is `crates/cohort/tests/it/woocommerce_rest.rs`, which runs
/// when `COHORT_WOOCOMMERCE_DIR` is set.
async fn fake_woocommerce(products: usize, customers: usize, orders: usize) -> (String, FakeWoo) {
    let mut store = Store::default();
    store
        .items
        .insert("products".into(), multiplied("products", products));
    store
        .items
        .insert("customers".into(), multiplied("customers", customers));
    store
        .items
        .insert("orders".into(), multiplied("orders", orders));
    let woo = FakeWoo {
        store: Arc::new(Mutex::new(store)),
        hung: Arc::new(Notify::new()),
    };
    let router = Router::new()
        .route(
            "/wp-json/wc/v3/settings/general/woocommerce_currency",
            get(currency),
        )
        .route(
            "/wp-json/wc/v3/webhooks",
            get(|s, q| list(s, Path("webhooks".into()), q)).post(create_webhook),
        )
        .route("/wp-json/wc/v3/{resource}", get(list))
        .with_state(woo.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, woo)
}

fn worker(app: &TestApp, key: &SecretsKey, lease: Duration) -> RestWorker {
    let options = RestWorkerOptions {
        poll_interval: Duration::from_millis(10),
        reconcile_interval: Duration::from_secs(3600),
        lease,
        timeout: Duration::from_secs(30),
        retry_after: Duration::ZERO,
        outbound: OutboundPolicy::ALLOW_PRIVATE,
    };
    RestWorker::new(
        app.t.db.clone(),
        app.state.writer().clone(),
        key.clone(),
        options,
    )
    .expect("the REST worker's client")
}

fn pages_requested(woo: &FakeWoo, resource: &str) -> Vec<u32> {
    woo.store
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(r, _, _)| r == resource)
        .map(|(_, p, _)| *p)
        .collect()
}

#[tokio::test]
async fn the_history_pull_registers_webhooks_resumes_after_a_crash_and_reconciliation_catches_missed_changes(
) {
    for (app, key) in apps().await {
        let backend = app.backend();
        let (store_url, woo) = fake_woocommerce(150, 120, 250).await;
        let installation = connected(&app, &key, &store_url).await;

        // A worker dies while orders page 2 is in flight (its task is
        // aborted with the lease held).
        woo.store.lock().unwrap().hang_on = Some(("orders".into(), 2));
        let first = worker(&app, &key, Duration::from_millis(300));
        let task = tokio::spawn(async move { first.round().await });
        woo.hung.notified().await;
        task.abort();
        let _ = task.await;
        assert_eq!(pages_requested(&woo, "orders"), vec![1, 2], "{backend}");
        {
            let store = woo.store.lock().unwrap();
            assert_eq!(
                store.webhook_posts, 10,
                "{backend}: the ten topics registered before the pull"
            );
            assert!(store.webhooks.iter().all(|h| h["delivery_url"]
                == json!(format!(
                    "http://127.0.0.1:8080/hooks/woocommerce/{installation}"
                ))
                || h["delivery_url"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/hooks/woocommerce/{installation}"))));
            assert!(store
                .webhooks
                .iter()
                .all(|h| h["has_secret"] == json!(true)));
        }

        // Another worker takes over once the lease lapses, and resumes at orders page 2.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let second = worker(&app, &key, Duration::from_secs(60));
        second.run_until_idle().await.unwrap();
        // Products and customers were done: the page after their last is asked once, empty.
        assert_eq!(
            pages_requested(&woo, "products"),
            vec![1, 2, 3],
            "{backend}"
        );
        assert_eq!(
            pages_requested(&woo, "customers"),
            vec![1, 2, 3],
            "{backend}"
        );
        assert_eq!(
            pages_requested(&woo, "orders"),
            vec![1, 2, 2, 3],
            "{backend}: resumed, page 1 not read again"
        );
        assert_eq!(
            woo.store.lock().unwrap().webhook_posts,
            10,
            "{backend}: registered once"
        );

        // The run shows each resource counted once, and the command is acknowledged.
        let runs = app
            .get_api(
                &app.a,
                &format!("/api/v1/installations/{installation}/sync-runs"),
            )
            .await
            .json();
        let run = &runs["data"][0];
        assert_eq!(
            runs["data"].as_array().unwrap().len(),
            1,
            "{backend}: one run, resumed: {runs}"
        );
        assert_eq!(run["status"], json!("completed"), "{backend}");
        for (resource, n, batches) in [
            ("products", 150, 2),
            ("customers", 120, 2),
            ("orders", 250, 3),
        ] {
            assert_eq!(
                run["progress"][resource]["accepted"],
                json!(n),
                "{backend} {resource}: {run}"
            );
            assert_eq!(
                run["progress"][resource]["received"],
                json!(n),
                "{backend} {resource}"
            );
            assert_eq!(
                run["progress"][resource]["batches"],
                json!(batches),
                "{backend} {resource}"
            );
        }
        let listed = installations(&app).await;
        assert_eq!(listed[0]["currency"], json!("USD"), "{backend}");
        assert_eq!(
            listed[0]["last_command"]["status"],
            json!("done"),
            "{backend}: {}",
            listed[0]
        );
        assert_eq!(
            listed[0]["last_command"]["counts"],
            json!({"products": 150, "customers": 120, "orders": 250})
        );

        app.projected().await;
        let total = resources_logged(&app).await;
        assert_eq!(
            total,
            150 + 120 + 250,
            "{backend}: each resource once in the log"
        );
        let orders = app.get_api(&app.a, "/api/v1/orders?limit=500").await.json();
        assert_eq!(orders["data"].as_array().unwrap().len(), 250, "{backend}");
        let completed = app
            .get_api(&app.a, "/api/v1/events?event=Order%20Completed&limit=1000")
            .await
            .json();
        assert_eq!(
            completed["data"].as_array().unwrap().len(),
            250,
            "{backend}: one revenue event per order"
        );

        // A change whose webhook never arrived: the reconciliation pull finds it.
        {
            let mut store = woo.store.lock().unwrap();
            let order = &mut store.items.get_mut("orders").unwrap()[9];
            order["status"] = json!("completed");
            order["date_modified_gmt"] = json!("2017-03-25T10:00:00");
            order["date_completed_gmt"] = json!("2017-03-25T10:00:00");
            store.requests.clear();
        }
        app.t.db.reconcile_rest_now(&installation).await.unwrap();
        second.run_until_idle().await.unwrap();
        {
            let store = woo.store.lock().unwrap();
            let orders_query = &store
                .requests
                .iter()
                .find(|(r, _, _)| r == "orders")
                .expect("orders pulled")
                .2;
            assert_eq!(
                orders_query.get("modified_after").map(String::as_str),
                Some("2017-03-22T19:28:07Z"),
                "{backend}: {orders_query:?}"
            );
            assert_eq!(
                orders_query.get("dates_are_gmt").map(String::as_str),
                Some("true")
            );
            assert_eq!(store.webhook_posts, 10, "{backend}: not registered again");
        }
        app.projected().await;
        assert_eq!(
            resources_logged(&app).await,
            total + 1,
            "{backend}: only the changed order is new"
        );
        let fulfilled = app
            .get_api(&app.a, "/api/v1/events?event=Order%20Fulfilled")
            .await
            .json();
        assert_eq!(
            fulfilled["data"].as_array().unwrap().len(),
            1,
            "{backend}: {fulfilled}"
        );
        assert_eq!(
            app.get_api(&app.b, "/api/v1/orders").await.json()["data"],
            json!([]),
            "{backend}"
        );
    }
}

/// The stand-in refuses a request without OAuth parameters, so a client
/// that stopped signing would fail the pull test.
#[tokio::test]
async fn the_stand_in_refuses_unsigned_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (url, _woo) = fake_woocommerce(1, 1, 1).await;
    let host = url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let request = format!(
        "GET /wp-json/wc/v3/orders?page=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}

/// A plugin installation of org B (paired through the store API directly);
/// returns its installation token and the pending `sync_store` command.
async fn plugin_installation(app: &TestApp) -> (String, String) {
    use cohort_domain::accounts::hash_password;
    use cohort_store::connect::{DecisionOutcome, NewPairing, PollOutcome};
    use cohort_store::users::Role;
    let db = &app.t.db;
    let user = db
        .create_user(
            &app.b.org,
            "bo@example.com",
            &hash_password("correct horse battery").unwrap(),
            Role::Owner,
        )
        .await
        .unwrap();
    let store = NewPairing {
        store_url: "https://plugin-shop.example".into(),
        site_name: "Shop".into(),
        platform: cohort_domain::connect::Platform::Woocommerce,
        plugin_version: "0.1.0".into(),
        wp_version: "6.1".into(),
        wc_version: Some("7.8.2".into()),
        php_version: "8.2".into(),
        currency: Some("USD".into()),
        timezone: "UTC".into(),
        return_url: "https://plugin-shop.example/wp-admin/".into(),
    };
    let (pairing, poll_secret) = db.create_pairing(&store).await.unwrap();
    let DecisionOutcome::Approved {
        installation_id, ..
    } = db
        .approve_pairing(&pairing.id, &app.b.org, &user.id)
        .await
        .unwrap()
    else {
        panic!("not approved")
    };
    let PollOutcome::Approved(claimed) = db.poll_pairing(&pairing.id, &poll_secret).await.unwrap()
    else {
        panic!("not claimed")
    };
    let command = db
        .pending_commands(&app.b.org, &installation_id)
        .await
        .unwrap()
        .remove(0)
        .id;
    (claimed.installation_token.clone(), command)
}

async fn plugin_post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let auth = format!("Bearer {token}");
    let answer = post_raw(
        app,
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.to_string().into_bytes(),
    )
    .await;
    assert!(answer.status.is_success(), "{path}: {}", answer.text());
    answer.json()
}

/// What two organisations' stores ended in, comparable across sources: the
/// orders, the profiles' emails, and every event but the resource messages
/// themselves (whose ids name the source), as sorted lists.
async fn outcome(
    app: &TestApp,
    who: &cohort_testkit::Seeded,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let orders = app.get_api(who, "/api/v1/orders?limit=1000").await.json();
    let mut orders: Vec<String> = orders["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {} {} {}",
                o["order_id"], o["status"], o["total"]["amount"], o["total"]["currency"]
            )
        })
        .collect();
    orders.sort();
    let profiles = app.get_api(who, "/api/v1/profiles?limit=1000").await.json();
    let mut emails: Vec<String> = profiles["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {}",
                p["email"], p["user_id"], p["metrics"], p["tags"]
            )
        })
        .collect();
    emails.sort();
    let events = app.get_api(who, "/api/v1/events?limit=1000").await.json();
    let mut events: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] != json!("resource"))
        .map(|e| {
            let properties = &e["message"]["properties"];
            format!(
                "{} {} {} {} {} {}",
                e["type"],
                e["event"],
                e["email"],
                e["user_id"],
                properties["order_id"],
                properties["total"]
            )
        })
        .collect();
    events.sort();
    (orders, emails, events)
}

/// The same store's data through both modes (REST pull into org A, the
/// plugin's sync batches into org B) ends in the same orders, profiles and
/// derived events.
#[tokio::test]
async fn both_modes_end_in_the_same_orders_profiles_and_events() {
    for (app, key) in apps().await {
        let backend = app.backend();
        let (store_url, woo) = fake_woocommerce(3, 2, 5).await;
        {
            // A mix of statuses, and one registered buyer.
            let mut store = woo.store.lock().unwrap();
            let orders = store.items.get_mut("orders").unwrap();
            orders[1]["status"] = json!("completed");
            orders[2]["status"] = json!("cancelled");
            orders[3]["status"] = json!("pending");
            orders[4]["customer_id"] = json!(1);
            orders[4]["billing"]["email"] = json!("customer1@example.com");
        }
        connected(&app, &key, &store_url).await;
        worker(&app, &key, Duration::from_secs(60))
            .run_until_idle()
            .await
            .unwrap();

        let (token, command) = plugin_installation(&app).await;
        let run = plugin_post(
            &app,
            &token,
            "/connect/v1/sync/runs",
            json!({"command_id": command, "resources": ["products", "customers", "orders"]}),
        )
        .await;
        let run = run["run_id"].as_str().unwrap().to_owned();
        let items = woo.store.lock().unwrap().items.clone();
        for resource in ["products", "customers", "orders"] {
            let body = json!({"resource": resource, "seq": 0, "items": items[resource]});
            let answer = plugin_post(
                &app,
                &token,
                &format!("/connect/v1/sync/runs/{run}/batches"),
                body,
            )
            .await;
            assert_eq!(answer["rejected"], json!([]), "{backend}");
        }
        plugin_post(
            &app,
            &token,
            &format!("/connect/v1/sync/runs/{run}/complete"),
            json!({"counts": {"products": 3, "customers": 2, "orders": 5}}),
        )
        .await;
        app.projected().await;

        let rest = outcome(&app, &app.a).await;
        let plugin = outcome(&app, &app.b).await;
        assert_eq!(rest.0.len(), 5, "{backend}: {:?}", rest.0);
        assert!(
            rest.2.iter().any(|e| e.contains("Order Completed")),
            "{backend}: {:?}",
            rest.2
        );
        assert!(
            rest.1.iter().all(|p| p.contains("@example.com")),
            "{backend}: {:?}",
            rest.1
        );
        assert!(
            rest.2.iter().all(|e| !e.contains("null null")),
            "{backend}: {:?}",
            rest.2
        );
        assert_eq!(rest, plugin, "{backend}: the two modes differ");
    }
}
