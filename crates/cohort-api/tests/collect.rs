//! The collect API over HTTP against a real database, on both backends.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{apps, basic, fixture, TestApp};
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use std::io::Write;

const SINGLE_PATHS: [(&str, &str); 12] = [
    ("/v1/identify", "identify"),
    ("/v1/track", "track"),
    ("/v1/page", "page"),
    ("/v1/screen", "screen"),
    ("/v1/group", "group"),
    ("/v1/alias", "alias"),
    ("/v1/i", "identify"),
    ("/v1/t", "track"),
    ("/v1/p", "page"),
    ("/v1/s", "screen"),
    ("/v1/g", "group"),
    ("/v1/a", "alias"),
];

fn valid_message(kind: &str, id: &str) -> Value {
    json!({"userId": "u1", "anonymousId": "anon-1", "event": "Clicked", "groupId": "g1", "previousId": "p1",
           "messageId": id, "type": kind, "properties": {"n": 1}})
}

#[tokio::test]
async fn every_endpoint_alias_stores_its_type_and_answers_exactly_success() {
    for app in apps().await {
        for (i, (path, kind)) in SINGLE_PATHS.iter().enumerate() {
            let answer = app
                .post(path, valid_message("ignored", &format!("m{i}")).to_string())
                .await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{path} on {}: {}",
                app.backend(),
                answer.text()
            );
            assert_eq!(answer.text(), r#"{"success":true}"#);
            let stored = app
                .get_api(&app.a, &format!("/api/v1/events?message_id=m{i}"))
                .await
                .json();
            assert_eq!(stored["data"][0]["type"], json!(kind), "{path}");
        }
        for (i, path) in ["/v1/batch", "/v1/b", "/v1/import"].iter().enumerate() {
            let body = json!({"batch": [valid_message("track", &format!("b{i}")), valid_message("page", &format!("c{i}"))]});
            let answer = app.post(path, body.to_string()).await;
            assert_eq!(answer.text(), r#"{"success":true}"#, "{path}");
        }
        assert_eq!(app.count(&app.a).await, 18, "{}", app.backend());
        assert_eq!(app.count(&app.b).await, 0);
    }
}

#[tokio::test]
async fn captured_client_bodies_are_accepted_and_read_back_field_by_field() {
    for app in apps().await {
        for (file, path) in [
            ("node-analytics-node-3.1.0.batch.body.json", "/v1/batch"),
            ("python-analytics-python-2.4.0.batch.body.json", "/v1/batch"),
            (
                "browser-analytics-next-1.84.3.batching.v1-b.body.json",
                "/v1/b",
            ),
            (
                "browser-analytics-next-1.84.3.track-order-completed.body.json",
                "/v1/t",
            ),
            ("browser-analytics-next-1.84.3.identify.body.json", "/v1/i"),
            ("browser-analytics-next-1.84.3.page.body.json", "/v1/p"),
            ("browser-analytics-next-1.84.3.group.body.json", "/v1/g"),
            ("browser-analytics-next-1.84.3.alias.body.json", "/v1/a"),
            ("browser-standalone-snippet.track.body.json", "/v1/t"),
        ] {
            let body = fixture(file);
            let answer = app.post(path, body.clone()).await;
            assert_eq!(answer.status, StatusCode::OK, "{file}: {}", answer.text());
            let sent: Value = serde_json::from_str(&body).unwrap();
            let messages = sent
                .get("batch")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![sent.clone()]);
            for m in messages {
                let id = m["messageId"].as_str().unwrap();
                let stored = app
                    .get_api(&app.a, &format!("/api/v1/events?message_id={id}"))
                    .await
                    .json();
                let stored = &stored["data"][0];
                assert_eq!(stored["message_id"], json!(id), "{file}");
                for key in [
                    "properties",
                    "traits",
                    "event",
                    "userId",
                    "groupId",
                    "previousId",
                ] {
                    if let Some(v) = m.get(key).filter(|v| !v.is_null()) {
                        assert_eq!(&stored["message"][key], v, "{file} {id} {key}");
                    }
                }
                // Client context survives, merged with nothing lost.
                if let Some(Value::Object(context)) = m.get("context") {
                    for (k, v) in context {
                        assert_eq!(&stored["message"]["context"][k], v, "{file} context.{k}");
                    }
                }
                assert_eq!(
                    stored["message"]["originalTimestamp"], m["timestamp"],
                    "{file}"
                );
                assert!(stored["message"].get("writeKey").is_none());
                assert!(stored["message"].get("_metadata").is_none());
            }
        }
        // Node's batch: the custom messageId and past timestamp survive.
        let custom = app
            .get_api(&app.a, "/api/v1/events?event=Order%20Completed")
            .await
            .json();
        assert!(custom["data"].as_array().unwrap().len() >= 3);
    }
}

#[tokio::test]
async fn the_write_key_is_taken_from_the_header_or_the_body() {
    for app in apps().await {
        let key = app.a.source.write_key.clone();
        let no_colon = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key)
        );
        let cases: Vec<(Option<String>, Value, StatusCode)> = vec![
            (
                None,
                json!({"writeKey": key, "userId": "u", "event": "E", "messageId": "k1"}),
                StatusCode::OK,
            ),
            (
                Some(no_colon),
                json!({"userId": "u", "event": "E", "messageId": "k2"}),
                StatusCode::OK,
            ),
            // The header wins over a wrong body key.
            (
                Some(basic(&key)),
                json!({"writeKey": "wrong", "userId": "u", "event": "E", "messageId": "k3"}),
                StatusCode::OK,
            ),
            (
                None,
                json!({"userId": "u", "event": "E"}),
                StatusCode::UNAUTHORIZED,
            ),
            (
                Some(basic("wk_unknown")),
                json!({"userId": "u", "event": "E"}),
                StatusCode::UNAUTHORIZED,
            ),
            (
                None,
                json!({"writeKey": "wk_unknown", "userId": "u", "event": "E"}),
                StatusCode::UNAUTHORIZED,
            ),
        ];
        for (header, body, expected) in cases {
            let mut request = Request::post("/v1/track").header("content-type", "text/plain");
            if let Some(h) = &header {
                request = request.header("authorization", h);
            }
            let answer = app
                .send(request.body(Body::from(body.to_string())).unwrap())
                .await;
            assert_eq!(
                answer.status,
                expected,
                "{header:?} {body}: {}",
                answer.text()
            );
            if expected == StatusCode::UNAUTHORIZED {
                assert_eq!(answer.json()["code"], json!("invalid_write_key"));
                assert_eq!(answer.json()["success"], json!(false));
            }
        }
        // Batch: the key may sit at the batch level.
        let body = json!({"writeKey": key, "batch": [{"type": "track", "event": "E", "userId": "u", "messageId": "k4"}]});
        let answer = app
            .send(
                Request::post("/v1/batch")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(app.count(&app.a).await, 4);
        // A disabled source is refused.
        app.t
            .db
            .set_source_enabled(&app.b.org, app.b.source.id.as_str(), false)
            .await
            .unwrap();
        let answer = app
            .send(
                Request::post("/v1/track")
                    .header("authorization", basic(&app.b.source.write_key))
                    .body(Body::from(r#"{"userId":"u","event":"E"}"#))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.count(&app.b).await, 0);
    }
}

#[tokio::test]
async fn gzip_and_chunked_bodies_are_accepted_and_bombs_refused() {
    for app in apps().await {
        let body = fixture("python-analytics-python-2.4.0.batch-gzip.body.json");
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body.as_bytes()).unwrap();
        let compressed = gz.finish().unwrap();
        let answer = app
            .send(
                Request::post("/v1/batch")
                    .header("authorization", basic(&app.a.source.write_key))
                    .header("content-encoding", "gzip")
                    .body(Body::from(compressed))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(app.count(&app.a).await, 4);

        // Chunked: a streamed body without Content-Length.
        let chunks: Vec<Result<String, std::io::Error>> = vec![
            Ok(r#"{"batch":[{"type":"track","#.into()),
            Ok(r#""event":"Chunked","userId":"u","messageId":"ch1"}]}"#.into()),
        ];
        let answer = app
            .send(
                Request::post("/v1/batch")
                    .header("authorization", basic(&app.a.source.write_key))
                    .body(Body::from_stream(futures::stream::iter(chunks)))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(app.count(&app.a).await, 5);

        // 10 MB of zeros compress to ~10 KB: refused after 500 KB of inflation.
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b' '; 10 * 1024 * 1024]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 100 * 1024);
        let answer = app
            .send(
                Request::post("/v1/batch")
                    .header("authorization", basic(&app.a.source.write_key))
                    .header("content-encoding", "gzip")
                    .body(Body::from(bomb))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.json()["code"], json!("payload_too_large"));

        let answer = app
            .send(
                Request::post("/v1/batch")
                    .header("authorization", basic(&app.a.source.write_key))
                    .header("content-encoding", "gzip")
                    .body(Body::from("not gzip"))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.json()["field"], json!("Content-Encoding"));
        assert_eq!(app.count(&app.a).await, 5);
    }
}

#[tokio::test]
async fn cors_preflight_and_responses_echo_the_origin() {
    for app in apps().await {
        let answer = app
            .send(
                Request::options("/v1/t")
                    .header("origin", "https://shop.example.com")
                    .header("access-control-request-method", "POST")
                    .header(
                        "access-control-request-headers",
                        "authorization,x-retry-count",
                    )
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert!(answer.status.is_success());
        let h = &answer.headers;
        assert_eq!(h["access-control-allow-origin"], "https://shop.example.com");
        let methods = h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_ascii_uppercase();
        for m in ["GET", "POST", "OPTIONS"] {
            assert!(methods.contains(m), "{methods}");
        }
        let allowed = h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for header in ["content-type", "authorization", "x-retry-count"] {
            assert!(allowed.contains(header), "{allowed}");
        }
        assert!(
            h["access-control-max-age"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 3600
        );

        let answer = app
            .send(
                Request::post("/v1/t")
                    .header("origin", "https://shop.example.com")
                    .header("authorization", basic(&app.a.source.write_key))
                    .header("content-type", "text/plain")
                    .body(Body::from(r#"{"userId":"u","event":"E"}"#))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.headers["access-control-allow-origin"],
            "https://shop.example.com"
        );
    }
}

#[tokio::test]
async fn bad_input_names_the_field_and_stores_nothing() {
    for app in apps().await {
        let cases = [
            ("/v1/track", r#"{"userId":"u"}"#.to_string(), "event", "invalid_request"),
            ("/v1/batch", json!({"batch": [{"type": "track", "event": "A", "userId": "u"}, {"type": "track", "userId": "u"}]}).to_string(), "batch[1].event", "invalid_request"),
            ("/v1/group", r#"{"userId":"u"}"#.into(), "groupId", "invalid_request"),
            ("/v1/identify", r#"{"userId":"u","traits":"x"}"#.into(), "traits", "invalid_request"),
            ("/v1/batch", json!({"batch": [{"type": "identify", "userId": "u"}, {"type": "identify", "userId": "u", "traits": {"x": "y".repeat(33 * 1024)}}]}).to_string(), "batch[1]", "payload_too_large"),
        ];
        for (path, body, field, code) in cases {
            let answer = app.post(path, body).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {field}");
            let json = answer.json();
            assert_eq!(json["success"], json!(false));
            assert_eq!(json["code"], json!(code), "{json}");
            assert_eq!(json["field"], json!(field), "{json}");
        }
        let answer = app.post("/v1/track", "{not json").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.json()["code"], json!("invalid_request"));

        let too_many: Vec<Value> = (0..2501)
            .map(|i| json!({"type": "page", "userId": "u", "messageId": format!("x{i}")}))
            .collect();
        let answer = app
            .post("/v1/batch", json!({ "batch": too_many }).to_string())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.json()["code"], json!("payload_too_large"));

        let big = json!({"batch": (0..30).map(|i| json!({"type": "page", "userId": "u", "properties": {"p": "z".repeat(20_000)}, "messageId": format!("y{i}")})).collect::<Vec<_>>()});
        let answer = app.post("/v1/batch", big.to_string()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.json()["code"], json!("payload_too_large"));
        assert_eq!(
            app.count(&app.a).await,
            0,
            "a refused request stores nothing ({})",
            app.backend()
        );
    }
}

#[tokio::test]
async fn a_retried_message_id_is_acknowledged_and_stored_once_per_organisation() {
    for app in apps().await {
        let body = json!({"batch": [{"type": "track", "event": "Order Completed", "userId": "u", "messageId": "same"}]}).to_string();
        for _ in 0..3 {
            assert_eq!(
                app.post("/v1/batch", body.clone()).await.status,
                StatusCode::OK
            );
        }
        let answer = app
            .send(
                Request::post("/v1/batch")
                    .header("authorization", basic(&app.b.source.write_key))
                    .body(Body::from(body.clone()))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(app.count(&app.a).await, 1);
        assert_eq!(app.count(&app.b).await, 1);
    }
}

#[tokio::test]
async fn the_settings_document_points_analytics_js_back_here() {
    for app in apps().await {
        let answer = app
            .send(
                Request::get(format!("/v1/projects/{}/settings", app.a.source.write_key))
                    .header("host", "cdp.example.test:8080")
                    .header("origin", "https://shop.example.com")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.headers["access-control-allow-origin"],
            "https://shop.example.com"
        );
        let doc = answer.json();
        assert_eq!(
            doc["integrations"]["Segment.io"],
            json!({"apiKey": app.a.source.write_key, "apiHost": "cdp.example.test:8080/v1", "protocol": "http"})
        );
        assert_eq!(doc["metrics"]["sampleRate"], json!(0));
        let answer = app
            .send(
                Request::get("/v1/projects/wk_nope/settings")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);

        let answer = app
            .send(
                Request::post("/v1/m")
                    .body(Body::from(fixture(
                        "browser-analytics-next-1.84.3.metrics.v1-m.body.json",
                    )))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.text(), r#"{"success":true}"#);
    }
}

#[tokio::test]
async fn a_configured_public_url_wins_in_the_settings_document() {
    let t = cohort_testkit::sqlite().await;
    let settings = cohort_api::ApiSettings {
        public_url: Some("https://cdp.example.com/".into()),
        ..Default::default()
    };
    let app = TestApp::with_settings(t, settings).await;
    let answer = app
        .send(
            Request::get(format!("/v1/projects/{}/settings", app.a.source.write_key))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        answer.json()["integrations"]["Segment.io"]["apiHost"],
        json!("cdp.example.com/v1")
    );
    assert_eq!(
        answer.json()["integrations"]["Segment.io"]["protocol"],
        json!("https")
    );
}

#[tokio::test]
async fn a_source_over_its_rate_limit_gets_429_with_retry_after() {
    let t = cohort_testkit::sqlite().await;
    let settings = cohort_api::ApiSettings {
        rate_limit_per_source: 1,
        ..Default::default()
    };
    let app = TestApp::with_settings(t, settings).await;
    let batch: Vec<Value> = (0..10)
        .map(|i| json!({"type": "page", "userId": "u", "messageId": format!("r{i}")}))
        .collect();
    assert_eq!(
        app.post("/v1/batch", json!({ "batch": batch }).to_string())
            .await
            .status,
        StatusCode::OK
    );
    let answer = app
        .post("/v1/page", r#"{"userId":"u","messageId":"r-over"}"#)
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(answer.headers.contains_key("x-ratelimit-reset"));
    assert_eq!(answer.json()["code"], json!("rate_limited"));
    assert_eq!(app.count(&app.a).await, 10);
}

#[tokio::test]
async fn a_locked_database_answers_503_with_retry_after_and_recovers() {
    let options = cohort_store::DbOptions {
        busy_timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let t = cohort_testkit::sqlite_with(&options).await;
    let url = t.url.clone();
    let app = TestApp::on(t).await;
    // Another process-like connection holds SQLite's write lock.
    let locker = cohort_store::Db::connect(&url, &options).await.unwrap();
    let mut conn = locker.pool().acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let answer = app
        .post(
            "/v1/track",
            r#"{"userId":"u","event":"E","messageId":"locked"}"#,
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(answer.json()["code"], json!("unavailable"));
    sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
    drop(conn);
    let answer = app
        .post(
            "/v1/track",
            r#"{"userId":"u","event":"E","messageId":"locked"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(app.count(&app.a).await, 1);
}

#[tokio::test]
async fn a_full_writer_queue_answers_429_and_nothing_is_lost() {
    let options = cohort_store::DbOptions {
        busy_timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let t = cohort_testkit::sqlite_with(&options).await;
    let url = t.url.clone();
    let writer = cohort_store::writer::WriterOptions {
        queue_capacity: 1,
        ..Default::default()
    };
    let app = std::sync::Arc::new(TestApp::with_writer(t, Default::default(), writer).await);
    // Hold SQLite's write lock so the writer is stuck committing the first request.
    let locker = cohort_store::Db::connect(&url, &options).await.unwrap();
    let mut conn = locker.pool().acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let send = |id: &'static str| {
        let app = app.clone();
        tokio::spawn(async move {
            app.post(
                "/v1/track",
                format!(r#"{{"userId":"u","event":"E","messageId":"{id}"}}"#),
            )
            .await
        })
    };
    let first = send("q1");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = send("q2");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let third = app
        .post(
            "/v1/track",
            r#"{"userId":"u","event":"E","messageId":"q3"}"#,
        )
        .await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.text()
    );
    assert_eq!(third.headers["retry-after"], "1");
    assert_eq!(third.json()["code"], json!("overloaded"));
    sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
    drop(conn);
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    assert_eq!(second.await.unwrap().status, StatusCode::OK);
    assert_eq!(app.count(&app.a).await, 2);
}
