//! `GET /api/v1/events`: authentication, filters, seek pagination and
//! isolation between organisations, on both backends.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::apps;
use serde_json::{json, Value};

#[tokio::test]
async fn events_are_filtered_paginated_and_scoped_to_the_token_organisation() {
    for app in apps().await {
        let mut batch = Vec::new();
        for i in 0..30 {
            let kind = if i % 3 == 0 { "page" } else { "track" };
            batch.push(json!({"type": kind, "event": format!("E{}", i % 2), "userId": format!("u{}", i % 5),
                              "anonymousId": "anon", "messageId": format!("m{i}"),
                              "timestamp": format!("2026-01-01T00:00:{i:02}Z")}));
        }
        assert_eq!(
            app.post("/v1/batch", json!({ "batch": batch }).to_string())
                .await
                .status,
            StatusCode::OK
        );

        // Seek pagination walks every event exactly once.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("/api/v1/events?limit=7&cursor={c}"),
                None => "/api/v1/events?limit=7".into(),
            };
            let page = app.get_api(&app.a, &q).await.json();
            for e in page["data"].as_array().unwrap() {
                seen.push(e["message_id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(
            seen,
            (0..30).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "{}",
            app.backend()
        );

        let count = |q: &str| {
            let q = q.to_owned();
            let app = &app;
            async move {
                app.get_api(&app.a, &q).await.json()["data"]
                    .as_array()
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(count("/api/v1/events?type=page").await, 10);
        assert_eq!(count("/api/v1/events?type=track&event=E1").await, 10);
        assert_eq!(count("/api/v1/events?user_id=u0").await, 6);
        assert_eq!(count("/api/v1/events?anonymous_id=anon").await, 30);
        assert_eq!(
            count("/api/v1/events?since=2026-01-01T00:00:10Z&until=2026-01-01T00:00:20Z").await,
            10
        );
        let newest = app
            .get_api(&app.a, "/api/v1/events?order=desc&limit=1")
            .await
            .json();
        assert_eq!(newest["data"][0]["message_id"], json!("m29"));
        assert_eq!(
            newest["data"][0]["timestamp"],
            json!("2026-01-01T00:00:29Z")
        );

        // Org B's token sees none of it.
        let other = app.get_api(&app.b, "/api/v1/events").await.json();
        assert_eq!(other["data"], json!([]));
        let other = app
            .get_api(&app.b, "/api/v1/events?message_id=m1")
            .await
            .json();
        assert_eq!(other["data"], json!([]));
    }
}

#[tokio::test]
async fn bad_filters_and_bad_tokens_are_refused_with_json() {
    for app in apps().await {
        for (q, field) in [
            ("since=yesterday", "since"),
            ("until=2026-13-01", "until"),
            ("limit=0", "limit"),
            ("limit=5000", "limit"),
            ("order=sideways", "order"),
            ("cursor=abc", "cursor"),
            ("type=click", "type"),
        ] {
            let answer = app.get_api(&app.a, &format!("/api/v1/events?{q}")).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{q}");
            assert_eq!(answer.json()["error"]["field"], json!(field), "{q}");
        }
        for auth in [
            None,
            Some("Bearer nope"),
            Some("Bearer cht_abc_def"),
            Some("Basic Zm9vOg=="),
        ] {
            let mut r = Request::get("/api/v1/events");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let answer = app.send(r.body(Body::empty()).unwrap()).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(answer.json()["error"]["code"], json!("unauthorized"));
        }
        let id = app.t.db.list_api_tokens(&app.a.org).await.unwrap()[0]
            .id
            .clone();
        app.t.db.revoke_api_token(&app.a.org, &id).await.unwrap();
        assert_eq!(
            app.get_api(&app.a, "/api/v1/events").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn health_and_readiness_answer() {
    for app in apps().await {
        let answer = app
            .send(Request::get("/healthz").body(Body::empty()).unwrap())
            .await;
        assert_eq!(answer.json(), json!({"status": "ok"}));
        let answer = app
            .send(Request::get("/readyz").body(Body::empty()).unwrap())
            .await;
        assert_eq!(answer.json(), json!({"status": "ready"}));
    }
}

#[test]
fn every_route_is_in_the_openapi_document() {
    let doc: Value = serde_json::to_value(cohort_api::openapi_document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/identify",
        "/v1/track",
        "/v1/page",
        "/v1/screen",
        "/v1/group",
        "/v1/alias",
        "/v1/i",
        "/v1/t",
        "/v1/p",
        "/v1/s",
        "/v1/g",
        "/v1/a",
        "/v1/batch",
        "/v1/b",
        "/v1/import",
        "/v1/m",
        "/v1/projects/{write_key}/settings",
        "/api/v1/events",
        "/healthz",
        "/readyz",
        "/api/v1/profiles",
        "/api/v1/profiles/lookup",
        "/api/v1/profiles/{id}",
        "/api/v1/profiles/{id}/events",
        "/api/v1/profiles/{id}/export",
        "/api/v1/orders",
        "/api/v1/products",
        "/api/v1/sources/{source_id}/woocommerce",
        "/sdk/v1/cohort.js",
        "/sdk/{version}/cohort.js",
        "/connect/v1/pairings",
        "/connect/v1/pairings/{pairing_id}/poll",
        "/connect/v1/heartbeat",
        "/connect/v1/events",
        "/connect/v1/resources",
        "/connect/v1/sync/runs",
        "/connect/v1/sync/runs/{run_id}/batches",
        "/connect/v1/sync/runs/{run_id}/complete",
        "/api/v1/installations/{id}/sync",
        "/api/v1/installations/{id}/sync-runs",
        "/connect/v1/commands",
        "/connect/v1/commands/{id}/ack",
        "/connect/v1/installation",
        "/connect/v1/installation/upgrade",
        "/api/v1/installations",
        "/api/v1/destinations",
        "/api/v1/destinations/{id}",
        "/api/v1/destinations/{id}/pause",
        "/api/v1/destinations/{id}/resume",
        "/api/v1/destinations/{id}/rotate-secret",
        "/api/v1/destinations/{id}/deliveries",
        "/api/v1/destinations/{id}/deliveries/{message_id}",
        "/api/v1/destinations/{id}/deliveries/{message_id}/replay",
        "/api/v1/destinations/{id}/replay",
        "/api/v1/destinations/{id}/test",
        "/api/v1/segments",
        "/api/v1/segments/{id}",
        "/api/v1/segments/{id}/members",
        "/api/v1/segments/preview",
        "/api/v1/profiles/{id}/segments",
        "/api/v1/woocommerce/connections",
        "/connect/v1/woocommerce/callback",
        "/hooks/woocommerce/{installation_id}",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    // The pages a browser opens are cohort-web's (its tests walk their
    // list): HTML, not API.
    for path in paths.keys() {
        assert!(
            !path.starts_with("/app") && !path.starts_with("/setup"),
            "{path}: an HTML page in the OpenAPI document"
        );
    }
    insta::assert_json_snapshot!("openapi", doc);
}
