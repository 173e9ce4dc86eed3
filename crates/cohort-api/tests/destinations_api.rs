//! Destinations through the HTTP API, on SQLite and PostgreSQL, with local
//! receivers that record every request: CRUD with masked secrets, field
//! validation, tenancy, the delivery log with search and replay, test
//! conversions that show the exact request, the profile transaction-id
//! fallback, and a hanging receiver that slows neither ingestion nor
//! another destination.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use cohort_api::{ApiSettings, AppState};
use cohort_engine::destinations::{Dispatcher, DispatcherOptions};
use cohort_store::destinations::SecretsKey;
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_testkit::{Receiver, Seeded, TestDb, RECEIVER_ANSWER};
use common::{basic, Answer};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct App {
    t: TestDb,
    router: Router,
    a: Seeded,
    b: Seeded,
    dispatcher: Dispatcher,
    _tasks: Vec<tokio::task::AbortHandle>,
    _writer: tokio::task::JoinSet<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        for t in &self._tasks {
            t.abort();
        }
    }
}

fn options(allow_private: bool) -> DispatcherOptions {
    DispatcherOptions {
        allow_private_addresses: allow_private,
        schedule: vec![Duration::ZERO; 2],
        poll: Duration::from_millis(20),
        ..DispatcherOptions::default()
    }
}

impl App {
    async fn on(t: TestDb, options: DispatcherOptions, projector: bool) -> App {
        let a = cohort_testkit::seed(&t.db, "Org A").await;
        let b = cohort_testkit::seed(&t.db, "Org B").await;
        let (writer, writer_tasks) = EventWriter::start(t.db.clone(), WriterOptions::default());
        let dispatcher = Dispatcher::new(t.db.clone(), SecretsKey::generate(), options).unwrap();
        let state = AppState::new(t.db.clone(), writer, ApiSettings::default())
            .with_destinations(dispatcher.clone());
        let mut tasks = Vec::new();
        if projector {
            tasks.push(
                cohort_store::projection::Projector::new(t.db.clone())
                    .spawn(Duration::from_millis(20))
                    .abort_handle(),
            );
        }
        App {
            router: cohort_api::router(state),
            t,
            a,
            b,
            dispatcher,
            _tasks: tasks,
            _writer: writer_tasks,
        }
    }

    fn backend(&self) -> &'static str {
        self.t.backend().as_str()
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn api(&self, who: &Seeded, method: &str, path: &str, body: Option<Value>) -> Answer {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", who.token))
            .header("content-type", "application/json");
        let body = body
            .map(|b| Body::from(b.to_string()))
            .unwrap_or_else(Body::empty);
        self.send(builder.body(body).unwrap()).await
    }

    /// Sends events to the collect API with org A's write key.
    async fn track(&self, batch: Vec<Value>) {
        let request = Request::post("/v1/batch")
            .header("authorization", basic(&self.a.source.write_key))
            .header("content-type", "application/json")
            .body(Body::from(json!({ "batch": batch }).to_string()))
            .unwrap();
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }

    async fn create(&self, body: Value) -> Value {
        let answer = self
            .api(&self.a, "POST", "/api/v1/destinations", Some(body))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{}: {}",
            self.backend(),
            answer.text()
        );
        answer.json()
    }

    async fn projected(&self) {
        for _ in 0..2000 {
            let (cursor, last) = self.t.db.projection_position().await.unwrap();
            if cursor >= last {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the projection did not catch up");
    }
}

async fn apps(allow_private: bool) -> Vec<App> {
    let mut out = Vec::new();
    for t in cohort_testkit::all_backends().await {
        out.push(App::on(t, options(allow_private), false).await);
    }
    out
}

fn error_field(answer: &Answer) -> String {
    answer.json()["error"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn order(message_id: &str, tid: Option<&str>) -> Value {
    let text = common::fixture("browser-analytics-next-1.84.3.track-order-completed.body.json");
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("writeKey");
    o.remove("_metadata");
    o.remove("sentAt");
    v["messageId"] = json!(message_id);
    v["anonymousId"] = json!(format!("anon-{message_id}"));
    match tid {
        Some(t) => v["context"]["referrer"]["id"] = json!(t),
        None => {
            v["context"].as_object_mut().unwrap().remove("referrer");
        }
    }
    v
}

fn query_of(uri: &str) -> BTreeMap<String, String> {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn destinations_are_created_edited_paused_and_deleted_with_secrets_masked() {
    for app in apps(true).await {
        let (_receiver, url) = Receiver::start().await;
        // A webhook: the generated secret is shown once, then masked.
        let hook = app.create(json!({"type": "webhook", "name": "Hook", "settings": {"url": format!("{url}/hook?token=abc123")}})).await;
        let secret = hook["signing_secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        let id = hook["id"].as_str().unwrap().to_owned();
        let shown = app
            .api(&app.a, "GET", &format!("/api/v1/destinations/{id}"), None)
            .await;
        assert_eq!(shown.status, StatusCode::OK);
        let shown_text = shown.text();
        assert!(!shown_text.contains(&secret[6..]), "{shown_text}");
        assert!(
            !shown_text.contains("abc123"),
            "the URL's token is masked: {shown_text}"
        );
        let d = shown.json();
        assert!(d.get("signing_secret").is_none());
        assert!(d["secrets"]["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_***"));
        assert_eq!(d["filters"], json!({"events": [], "types": []}));

        // Everflow: secrets move out of the settings; filters follow the mapping.
        let ef = app
            .create(json!({"type": "everflow", "name": "EF", "settings": {"tracking_domain": url, "network_id": "7",
                "event_mapping": {"Order Completed": 0, "Purchase": 24}, "verification_token": "vt-very-secret-token-1"},
                "secrets": {"api_key": "ef-api-key-0123456789"}}))
            .await;
        let ef_id = ef["id"].as_str().unwrap().to_owned();
        assert_eq!(
            ef["filters"]["events"],
            json!(["Order Completed", "Purchase"])
        );
        assert!(ef["settings"].get("verification_token").is_none());
        let text = ef.to_string();
        assert!(
            !text.contains("vt-very-secret") && !text.contains("ef-api-key"),
            "{text}"
        );
        assert_eq!(ef["secrets"]["verification_token"], "***en-1");
        // Encrypted at rest: no secret in any stored column.
        let rows = sqlx::query("SELECT settings, secrets FROM destinations")
            .fetch_all(app.t.db.pool())
            .await
            .unwrap();
        for row in &rows {
            use sqlx::Row;
            let stored = format!("{}{}", row.get::<String, _>(0), row.get::<String, _>(1));
            for plain in ["vt-very-secret-token-1", "ef-api-key-0123456789", &secret] {
                assert!(
                    !stored.contains(plain),
                    "{} stores a secret in clear",
                    app.backend()
                );
            }
        }

        // Edit: a new mapping moves the default filters along; pause, resume.
        let edited = app
            .api(&app.a, "PATCH", &format!("/api/v1/destinations/{ef_id}"), Some(json!({"name": "Everflow", "settings": {"event_mapping": {"Order Completed": 0, "Signed Up": 3}}})))
            .await;
        assert_eq!(edited.status, StatusCode::OK, "{}", edited.text());
        let e = edited.json();
        assert_eq!(
            (e["name"].as_str(), e["filters"]["events"].clone()),
            (Some("Everflow"), json!(["Order Completed", "Signed Up"]))
        );
        assert_eq!(
            e["secrets"]["verification_token"], "***en-1",
            "secrets survive an edit"
        );
        let paused = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{ef_id}/pause"),
                None,
            )
            .await
            .json();
        assert_eq!(paused["enabled"], false);
        let resumed = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{ef_id}/resume"),
                None,
            )
            .await
            .json();
        assert_eq!(resumed["enabled"], true);
        let filtered = app
            .api(
                &app.a,
                "PATCH",
                &format!("/api/v1/destinations/{ef_id}"),
                Some(json!({"filters": {"events": ["Order Completed"], "types": ["track"]}})),
            )
            .await
            .json();
        assert_eq!(
            filtered["filters"],
            json!({"events": ["Order Completed"], "types": ["track"]})
        );

        // Rotation: a new secret, the old one still listed (masked) as valid.
        let rotated = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/rotate-secret"),
                Some(json!({"grace_hours": 2})),
            )
            .await;
        assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
        let r = rotated.json();
        let new_secret = r["signing_secret"].as_str().unwrap();
        assert_ne!(new_secret, secret);
        assert!(r["secrets"]["previous_signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_***"));
        assert!(r["secrets"]["previous_valid_until"].is_string());
        let not_hook = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{ef_id}/rotate-secret"),
                None,
            )
            .await;
        assert_eq!(
            (not_hook.status, error_field(&not_hook)),
            (StatusCode::BAD_REQUEST, "type".into())
        );

        let list = app
            .api(&app.a, "GET", "/api/v1/destinations", None)
            .await
            .json();
        assert_eq!(list["data"].as_array().unwrap().len(), 2);
        let deleted = app
            .api(
                &app.a,
                "DELETE",
                &format!("/api/v1/destinations/{id}"),
                None,
            )
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert_eq!(
            app.api(&app.a, "GET", &format!("/api/v1/destinations/{id}"), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.api(&app.a, "GET", "/api/v1/destinations", None)
                .await
                .json()["data"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn invalid_destinations_are_refused_naming_the_field_and_nothing_is_written() {
    for app in apps(false).await {
        let ok_everflow = json!({"tracking_domain": "https://www.abc123trk.com", "network_id": "7", "event_mapping": {"Order Completed": 0}});
        let cases = [
            (json!({"type": "ftp", "settings": {}}), "type"),
            (
                json!({"type": "webhook", "settings": {"url": "not a url"}}),
                "settings.url",
            ),
            (json!({"type": "webhook", "settings": {}}), "settings.url"),
            (
                json!({"type": "webhook", "settings": {"url": "http://127.0.0.1:8080/hook"}}),
                "settings.url",
            ),
            (
                json!({"type": "webhook", "settings": {"url": "http://localhost/hook"}}),
                "settings.url",
            ),
            (
                json!({"type": "webhook", "settings": {"url": "http://10.1.2.3/hook"}}),
                "settings.url",
            ),
            (
                json!({"type": "webhook", "settings": {"url": "https://hooks.example.com/x", "secret": "x"}}),
                "settings.secret",
            ),
            (
                json!({"type": "webhook", "settings": {"url": "https://hooks.example.com/x"}, "secrets": {"signing_secret": "hunter2"}}),
                "secrets.signing_secret",
            ),
            (
                json!({"type": "webhook", "settings": {"url": "https://hooks.example.com/x"}, "filters": {"types": ["click"]}}),
                "filters.types",
            ),
            (
                json!({"type": "webhook", "settings": {"url": "https://hooks.example.com/x"}, "filters": {"events": "Order Completed"}}),
                "filters.events",
            ),
            (
                json!({"type": "everflow", "settings": {"tracking_domain": "https://www.abc123trk.com", "network_id": "7", "event_mapping": {"Order Completed": "base"}}}),
                "settings.event_mapping",
            ),
            (
                json!({"type": "everflow", "settings": {"tracking_domain": "https://www.abc123trk.com", "network_id": "7", "event_mapping": {}}}),
                "settings.event_mapping",
            ),
            (
                json!({"type": "everflow", "settings": {"tracking_domain": "http://www.abc123trk.com", "network_id": "7", "event_mapping": {"A": 0}}}),
                "settings.tracking_domain",
            ),
            (
                json!({"type": "everflow", "settings": {"tracking_domain": "https://www.abc123trk.com", "event_mapping": {"A": 0}}}),
                "settings.network_id",
            ),
            (
                json!({"type": "everflow", "settings": ok_everflow.clone(), "secrets": {"signing_secret": "x"}}),
                "secrets.signing_secret",
            ),
        ];
        for (body, field) in cases {
            let answer = app
                .api(&app.a, "POST", "/api/v1/destinations", Some(body.clone()))
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{}: {body}: {}",
                app.backend(),
                answer.text()
            );
            assert_eq!(error_field(&answer), field, "{body}: {}", answer.text());
        }
        let broken = app
            .send(
                Request::post("/api/v1/destinations")
                    .header("authorization", format!("Bearer {}", app.a.token))
                    .header("content-type", "application/json")
                    .body(Body::from("{not json"))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            (broken.status, error_field(&broken)),
            (StatusCode::BAD_REQUEST, "body".into())
        );
        assert_eq!(
            app.api(&app.a, "GET", "/api/v1/destinations", None)
                .await
                .json()["data"],
            json!([]),
            "nothing half-written"
        );

        // An edit is checked the same way and leaves the row as it was.
        let created = app
            .create(json!({"type": "everflow", "settings": ok_everflow}))
            .await;
        let id = created["id"].as_str().unwrap();
        let bad = app
            .api(
                &app.a,
                "PATCH",
                &format!("/api/v1/destinations/{id}"),
                Some(json!({"settings": {"tracking_domain": "https://127.0.0.1/"}})),
            )
            .await;
        assert_eq!(
            (bad.status, error_field(&bad)),
            (StatusCode::BAD_REQUEST, "settings.tracking_domain".into())
        );
        let after = app
            .api(&app.a, "GET", &format!("/api/v1/destinations/{id}"), None)
            .await
            .json();
        assert_eq!(
            after["settings"]["tracking_domain"],
            "https://www.abc123trk.com"
        );
        let no_token = app.api(&app.b, "GET", "/api/v1/destinations", None).await;
        assert_eq!(no_token.json()["data"], json!([]));
        let anonymous = app
            .send(
                Request::get("/api/v1/destinations")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn another_organisation_gets_404_for_every_destination_route() {
    for app in apps(true).await {
        let (receiver, url) = Receiver::start().await;
        let hook = app
            .create(json!({"type": "webhook", "settings": {"url": url}}))
            .await;
        let id = hook["id"].as_str().unwrap();
        app.track(vec![
            json!({"type": "track", "event": "A", "userId": "u", "messageId": "m-a"}),
        ])
        .await;
        app.dispatcher.run_until_idle().await.unwrap();
        assert_eq!(receiver.requests().len(), 1);
        for (method, path, body) in [
            ("GET", format!("/api/v1/destinations/{id}"), None),
            (
                "PATCH",
                format!("/api/v1/destinations/{id}"),
                Some(json!({"name": "mine"})),
            ),
            ("DELETE", format!("/api/v1/destinations/{id}"), None),
            ("POST", format!("/api/v1/destinations/{id}/pause"), None),
            ("POST", format!("/api/v1/destinations/{id}/resume"), None),
            (
                "POST",
                format!("/api/v1/destinations/{id}/rotate-secret"),
                None,
            ),
            ("GET", format!("/api/v1/destinations/{id}/deliveries"), None),
            (
                "GET",
                format!("/api/v1/destinations/{id}/deliveries/m-a"),
                None,
            ),
            (
                "POST",
                format!("/api/v1/destinations/{id}/deliveries/m-a/replay"),
                None,
            ),
            ("POST", format!("/api/v1/destinations/{id}/replay"), None),
            ("POST", format!("/api/v1/destinations/{id}/test"), None),
        ] {
            let answer = app.api(&app.b, method, &path, body).await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{} {method} {path}: {}",
                app.backend(),
                answer.text()
            );
            // The store's NotFound is the API's 404 in the envelope (it was
            // 503 wherever a handler did not map it itself).
            assert_eq!(
                answer.json()["error"]["code"],
                json!("not_found"),
                "{method} {path}"
            );
            assert!(
                !answer.headers.contains_key("retry-after"),
                "{method} {path}"
            );
        }
        assert_eq!(receiver.requests().len(), 1, "org B's test sent nothing");
        let still = app
            .api(&app.a, "GET", &format!("/api/v1/destinations/{id}"), None)
            .await
            .json();
        assert_eq!(
            (still["name"].as_str(), still["enabled"].as_bool()),
            (Some("webhook"), Some(true))
        );
    }
}

/// A storage failure is 503 with Retry-After and the generic envelope:
/// the driver's text goes to the log, never into the body.
#[tokio::test]
async fn a_storage_failure_answers_503_without_its_text() {
    for app in apps(true).await {
        app.t.db.close().await;
        for path in ["/api/v1/destinations", "/api/v1/events"] {
            let answer = app.api(&app.a, "GET", path, None).await;
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{} {path}: {}",
                app.backend(),
                answer.text()
            );
            assert_eq!(answer.headers["retry-after"], "5");
            assert_eq!(
                answer.json(),
                json!({"error": {"code": "unavailable", "message": "storage is unavailable; retry shortly"}}),
                "{path}"
            );
            let text = answer.text().to_ascii_lowercase();
            for internal in ["pool", "closed", "sqlx", "select", "database error"] {
                assert!(!text.contains(internal), "{path}: {text}");
            }
        }
    }
}

#[tokio::test]
async fn the_delivery_log_is_searchable_and_failed_deliveries_are_replayed() {
    for app in apps(true).await {
        let (receiver, url) = Receiver::start().await;
        let hook = app.create(json!({"type": "webhook", "settings": {"url": format!("{url}/in?api_key=k-secret-1")}})).await;
        let id = hook["id"].as_str().unwrap().to_owned();
        // m-1 is refused (400: failed at once); m-4 gets 503 twice, then 200.
        receiver.answer(&[400]);
        app.track(vec![
            json!({"type": "track", "event": "Refused", "userId": "u1", "messageId": "m-1"}),
        ])
        .await;
        app.dispatcher.run_until_idle().await.unwrap();
        app.track(vec![
            json!({"type": "track", "event": "Signed Up", "userId": "u2", "messageId": "m-2"}),
            json!({"type": "identify", "userId": "u3", "messageId": "m-3", "traits": {"plan": "gold"}}),
        ])
        .await;
        app.dispatcher.run_until_idle().await.unwrap();
        receiver.answer(&[503, 503, 200]);
        app.track(vec![
            json!({"type": "track", "event": "Flaky", "userId": "u4", "messageId": "m-4"}),
        ])
        .await;
        app.dispatcher.run_until_idle().await.unwrap();

        let this = &app;
        let page = |q: &str| {
            let path = format!("/api/v1/destinations/{id}/deliveries{q}");
            async move { this.api(&this.a, "GET", &path, None).await }
        };
        let all = page("").await;
        assert_eq!(all.status, StatusCode::OK, "{}", all.text());
        let ids = |v: &Value| {
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["message_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&all.json()),
            ["m-4", "m-3", "m-2", "m-1"],
            "{}",
            app.backend()
        );
        assert!(
            !all.text().contains("k-secret-1"),
            "the URL's key is masked in the log: {}",
            all.text()
        );
        assert_eq!(ids(&page("?status=failed").await.json()), ["m-1"]);
        assert_eq!(ids(&page("?event=Signed%20Up").await.json()), ["m-2"]);
        assert_eq!(ids(&page("?message_id=m-3").await.json()), ["m-3"]);
        assert_eq!(
            ids(&page("?q=flak").await.json()),
            ["m-4"],
            "text search, case-insensitive"
        );
        assert_eq!(
            ids(&page("?q=HTTP%20400").await.json()),
            ["m-1"],
            "search reaches the reason"
        );
        assert_eq!(
            ids(
                &page("?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z&status=delivered")
                    .await
                    .json()
            ),
            ["m-4", "m-3", "m-2"]
        );
        assert_eq!(
            ids(&page("?until=2000-01-01T00:00:00Z").await.json()),
            Vec::<String>::new()
        );
        let first = page("?limit=3").await.json();
        assert_eq!(ids(&first), ["m-4", "m-3", "m-2"]);
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        let second = page(&format!("?limit=3&cursor={cursor}")).await.json();
        assert_eq!(ids(&second), ["m-1"]);
        assert!(second["next_cursor"].is_null());
        for (q, field) in [
            ("?status=lost", "status"),
            ("?since=yesterday", "since"),
            ("?cursor=x", "cursor"),
            ("?limit=0", "limit"),
        ] {
            let bad = page(q).await;
            assert_eq!(
                (bad.status, error_field(&bad)),
                (StatusCode::BAD_REQUEST, field.to_owned()),
                "{q}"
            );
        }

        // One delivery in detail: masked request, status, excerpt, attempts, outcome.
        let flaky = app
            .api(
                &app.a,
                "GET",
                &format!("/api/v1/destinations/{id}/deliveries/m-4"),
                None,
            )
            .await
            .json();
        assert_eq!(
            (
                flaky["status"].as_str(),
                flaky["attempts"].as_i64(),
                flaky["response_status"].as_i64()
            ),
            (Some("delivered"), Some(3), Some(200))
        );
        let request = flaky["request"].as_str().unwrap();
        assert!(
            request.starts_with(&format!("POST {url}/in?api_key=***")),
            "{request}"
        );
        assert!(
            request.contains("\nwebhook-id: m-4") && request.contains("\nwebhook-signature: v1,"),
            "{request}"
        );
        assert_eq!(flaky["response_excerpt"], RECEIVER_ANSWER);
        let failed = app
            .api(
                &app.a,
                "GET",
                &format!("/api/v1/destinations/{id}/deliveries/m-1"),
                None,
            )
            .await
            .json();
        assert_eq!(
            (failed["outcome"].as_str(), failed["reason"].as_str()),
            (Some("failed"), Some("HTTP 400"))
        );
        assert_eq!(
            app.api(
                &app.a,
                "GET",
                &format!("/api/v1/destinations/{id}/deliveries/nope"),
                None
            )
            .await
            .status,
            StatusCode::NOT_FOUND
        );

        // Replay of a delivered one does nothing; of the failed one sends it again.
        let no = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/deliveries/m-2/replay"),
                None,
            )
            .await
            .json();
        assert_eq!(no, json!({"replayed": false, "status": "delivered"}));
        let yes = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/deliveries/m-1/replay"),
                None,
            )
            .await
            .json();
        assert_eq!(yes, json!({"replayed": true, "status": "pending"}));
        app.dispatcher.run_until_idle().await.unwrap();
        let m1 = app
            .api(
                &app.a,
                "GET",
                &format!("/api/v1/destinations/{id}/deliveries/m-1"),
                None,
            )
            .await
            .json();
        assert_eq!(m1["status"], "delivered");
        let sent = |id: &str| {
            receiver
                .requests()
                .iter()
                .filter(|r| r.headers.get("webhook-id").is_some_and(|v| v == id))
                .count()
        };
        assert_eq!((sent("m-1"), sent("m-2"), sent("m-4")), (2, 1, 3));

        // Replay of every failed one (filtered by event).
        receiver.answer(&[410, 410, 410]);
        app.track(vec![
            json!({"type": "track", "event": "Gone", "userId": "u5", "messageId": "m-5"}),
            json!({"type": "track", "event": "Gone", "userId": "u6", "messageId": "m-6"}),
            json!({"type": "track", "event": "Other", "userId": "u7", "messageId": "m-7"}),
        ])
        .await;
        app.dispatcher.run_until_idle().await.unwrap();
        assert_eq!(
            ids(&page("?status=failed").await.json()),
            ["m-7", "m-6", "m-5"]
        );
        let replayed = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/replay"),
                Some(json!({"event": "Gone"})),
            )
            .await
            .json();
        assert_eq!(replayed, json!({"replayed": 2}));
        app.dispatcher.run_until_idle().await.unwrap();
        assert_eq!(ids(&page("?status=failed").await.json()), ["m-7"]);
        let rest = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/replay"),
                None,
            )
            .await
            .json();
        assert_eq!(rest, json!({"replayed": 1}));
        app.dispatcher.run_until_idle().await.unwrap();
        assert_eq!(
            ids(&page("?status=failed").await.json()),
            Vec::<String>::new()
        );
        let delivered: BTreeSet<String> = ids(&page("?status=delivered").await.json())
            .into_iter()
            .collect();
        assert_eq!(delivered.len(), 7);
    }
}

#[tokio::test]
async fn a_test_conversion_sends_and_shows_the_exact_request() {
    for app in apps(true).await {
        let (receiver, url) = Receiver::start().await;
        let ef = app
            .create(json!({"type": "everflow", "settings": {"tracking_domain": url, "network_id": "7", "event_mapping": {"Order Completed": 24}},
                           "secrets": {"verification_token": "vt-test-secret-999"}}))
            .await;
        let id = ef["id"].as_str().unwrap().to_owned();
        app.track(vec![order("ord-msg-1", Some("tid-from-log"))])
            .await;
        let answer = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/test"),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let t = answer.json();
        assert_eq!(
            (
                t["event_source"].as_str(),
                t["message_id"].as_str(),
                t["outcome"].as_str()
            ),
            (Some("log"), Some("ord-msg-1"), Some("delivered"))
        );
        assert_eq!(t["response_status"], 200);
        assert!(
            !answer.text().contains("vt-test-secret-999"),
            "{}",
            answer.text()
        );
        let shown_url = t["request"]["url"].as_str().unwrap();
        assert_eq!(t["request"]["method"], "GET");
        let got = receiver.requests();
        assert_eq!(got.len(), 1);
        // What was shown is exactly what was sent, but for the masked token.
        let mut sent = query_of(&got[0].uri.to_string());
        let shown = query_of(shown_url);
        assert_eq!(
            sent.remove("verification_token").as_deref(),
            Some("vt-test-secret-999")
        );
        let mut shown_rest = shown.clone();
        assert_eq!(
            shown_rest.remove("verification_token").as_deref(),
            Some("***")
        );
        assert_eq!(sent, shown_rest);
        assert_eq!(
            (
                shown["transaction_id"].as_str(),
                shown["adv_event_id"].as_str(),
                shown["amount"].as_str()
            ),
            ("tid-from-log", "24", "27.5")
        );
        assert_eq!(
            (got[0].method.clone(), got[0].uri.path()),
            (Method::GET, "/")
        );
        // A test is not a delivery.
        let log = app
            .api(
                &app.a,
                "GET",
                &format!("/api/v1/destinations/{id}/deliveries"),
                None,
            )
            .await
            .json();
        assert_eq!(log["data"], json!([]));

        // A sample given in the request; one without a transaction id is skipped.
        let given = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/test"),
                Some(json!({"event": order("given-1", Some("tid-given"))})),
            )
            .await
            .json();
        assert_eq!(
            (given["event_source"].as_str(), given["outcome"].as_str()),
            (Some("given"), Some("delivered"))
        );
        assert!(given["request"]["url"]
            .as_str()
            .unwrap()
            .contains("transaction_id=tid-given"));
        let skipped = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/test"),
                Some(json!({"event": order("given-2", None)})),
            )
            .await
            .json();
        assert_eq!(
            (skipped["outcome"].as_str(), skipped["reason"].as_str()),
            (Some("skipped"), Some("skipped: no transaction id"))
        );
        assert!(skipped["request"].is_null());
        let bad = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/test"),
                Some(json!({"event": [1]})),
            )
            .await;
        assert_eq!(
            (bad.status, error_field(&bad)),
            (StatusCode::BAD_REQUEST, "event".into())
        );
        let missing = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{id}/test"),
                Some(json!({"message_id": "nope"})),
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(receiver.requests().len(), 2);

        // A webhook's test shows its headers and body, signed.
        let hook = app
            .create(json!({"type": "webhook", "settings": {"url": format!("{url}/hook")}}))
            .await;
        let secret = hook["signing_secret"].as_str().unwrap().to_owned();
        let w = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/destinations/{}/test", hook["id"].as_str().unwrap()),
                None,
            )
            .await
            .json();
        let r = &receiver.requests()[2];
        let headers: BTreeMap<String, String> = w["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for name in [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "content-type",
        ] {
            assert_eq!(headers[name], r.headers[name].to_str().unwrap(), "{name}");
        }
        assert_eq!(
            w["request"]["body"].as_str().unwrap().as_bytes(),
            &r.body[..]
        );
        let ts: i64 = headers["webhook-timestamp"].parse().unwrap();
        assert!(cohort_domain::destinations::webhook::verify(
            &secret,
            &headers["webhook-id"],
            ts,
            &r.body,
            &headers["webhook-signature"],
            ts,
            5
        ));
        assert!(!w.to_string().contains(&secret[6..]));
    }
}

#[tokio::test]
async fn an_order_without_a_transaction_id_takes_the_profiles_within_the_window() {
    for t in cohort_testkit::all_backends().await {
        let app = App::on(
            t,
            DispatcherOptions {
                profile_fallback: true,
                ..options(true)
            },
            true,
        )
        .await;
        let (receiver, url) = Receiver::start().await;
        let ef = app.create(json!({"type": "everflow", "settings": {"tracking_domain": url, "network_id": "7", "event_mapping": {"Order Completed": 0}, "attribution_window_days": 30}})).await;
        let id = ef["id"].as_str().unwrap().to_owned();
        let now = chrono::Utc::now();
        let at =
            |days: i64| cohort_domain::time::format_rfc3339(now - chrono::Duration::days(days));
        app.track(vec![
            // A landing 10 days ago (the SDK's identify carries the click id) …
            json!({"type": "page", "anonymousId": "visitor-1", "timestamp": at(10), "messageId": "land-1", "context": {"referrer": {"type": "everflow", "id": "ef-click-recent"}}}),
            json!({"type": "identify", "anonymousId": "visitor-1", "userId": "buyer-1", "timestamp": at(10), "messageId": "id-1"}),
            // … and one 60 days ago, outside the window.
            json!({"type": "page", "anonymousId": "visitor-2", "timestamp": at(60), "messageId": "land-2", "context": {"referrer": {"type": "everflow", "id": "ef-click-old"}}}),
        ])
        .await;
        let mut recent = order("order-recent", None);
        recent["userId"] = json!("buyer-1");
        recent["timestamp"] = json!(at(0));
        let mut old = order("order-old", None);
        old.as_object_mut().unwrap().remove("userId");
        old["anonymousId"] = json!("visitor-2");
        old["timestamp"] = json!(at(0));
        let mut nobody = order("order-nobody", None);
        nobody["userId"] = json!("stranger");
        app.track(vec![recent, old, nobody]).await;
        app.projected().await;
        app.dispatcher.run_until_idle().await.unwrap();

        let got = receiver.requests();
        assert_eq!(got.len(), 1, "{}: {got:?}", app.backend());
        assert_eq!(
            query_of(&got[0].uri.to_string())["transaction_id"],
            "ef-click-recent"
        );
        let this = &app;
        let status = |m: &str| {
            let path = format!("/api/v1/destinations/{id}/deliveries/{m}");
            async move { this.api(&this.a, "GET", &path, None).await.json() }
        };
        assert_eq!(status("order-recent").await["status"], "delivered");
        for m in ["order-old", "order-nobody"] {
            let d = status(m).await;
            assert_eq!(
                (d["status"].as_str(), d["outcome"].as_str()),
                (Some("skipped"), Some("skipped: no transaction id")),
                "{m}"
            );
        }
    }
}

#[tokio::test]
async fn a_hanging_receiver_slows_neither_ingestion_nor_another_destination() {
    for t in cohort_testkit::all_backends().await {
        let options = DispatcherOptions {
            concurrency: 6,
            per_destination: 2,
            // The hanging receiver keeps its requests open for the whole test.
            timeout: Duration::from_secs(600),
            lease: Duration::from_secs(601),
            ..options(true)
        };
        let app = App::on(t, options, false).await;
        let (hanging, hanging_url) = Receiver::start_with(cohort_testkit::Answer::Hang).await;
        let (healthy, healthy_url) = Receiver::start().await;
        let slow = app
            .create(json!({"type": "webhook", "name": "slow", "settings": {"url": hanging_url}}))
            .await;
        app.create(json!({"type": "webhook", "name": "fine", "settings": {"url": healthy_url}}))
            .await;
        let worker = tokio::spawn(app.dispatcher.clone().run());

        let mut sent = BTreeSet::new();
        for round in 0..5 {
            let batch: Vec<Value> = (0..10)
                .map(|i| {
                    let id = format!("evt-{round}-{i}");
                    sent.insert(id.clone());
                    json!({"type": "track", "event": "Tick", "userId": "u", "messageId": id})
                })
                .collect();
            // Ingestion answers while the slow destination hangs.
            app.track(batch).await;
        }
        assert_eq!(app.t.db.count_events(&app.a.org).await.unwrap(), 50);
        let mut delivered = BTreeSet::new();
        for _ in 0..3000 {
            delivered = healthy
                .requests()
                .iter()
                .filter_map(|r| {
                    r.headers
                        .get("webhook-id")
                        .map(|v| v.to_str().unwrap().to_owned())
                })
                .collect();
            if delivered.len() == sent.len() && !hanging.requests().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            delivered,
            sent,
            "{}: the healthy destination got every event",
            app.backend()
        );
        assert_eq!(healthy.requests().len(), 50, "and each once");
        // The hanging one holds at most its share, still unanswered.
        let held = hanging.requests().len();
        assert!(
            (1..=2).contains(&held),
            "{held} requests to the hanging receiver"
        );
        let slow_log = app
            .api(
                &app.a,
                "GET",
                &format!(
                    "/api/v1/destinations/{}/deliveries?status=delivered",
                    slow["id"].as_str().unwrap()
                ),
                None,
            )
            .await
            .json();
        assert_eq!(slow_log["data"], json!([]));
        let health = app
            .send(Request::get("/healthz").body(Body::empty()).unwrap())
            .await;
        assert_eq!(health.status, StatusCode::OK);
        worker.abort();
    }
}
