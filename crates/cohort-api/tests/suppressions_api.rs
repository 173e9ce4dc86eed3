//! The suppression list through the HTTP API on SQLite and PostgreSQL: add
//! (normalised, idempotent per reason), list with search, reason filter
//! and seek pagination, lift with a reason (logged), the refusals with
//! the field they name, what each reason stops (marketing, transactional),
//! and every route as another organisation.

mod common;

use axum::http::StatusCode;
use cohort_domain::suppression::MailPurpose;
use common::{apps, TestApp};
use serde_json::{json, Value};

async fn call(
    app: &TestApp,
    who: &cohort_testkit::Seeded,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.api_json(who, method, path, body).await
}

#[tokio::test]
async fn addresses_are_suppressed_listed_and_lifted_with_a_reason() {
    for app in apps().await {
        let b = app.backend();
        let (status, added) = call(
            &app,
            &app.a,
            "POST",
            "/api/v1/suppressions",
            Some(json!({"email": " Ann@Example.com ", "detail": "asked by phone"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {added}");
        assert_eq!(added["created"], true);
        assert_eq!(added["suppression"]["email"], "ann@example.com");
        assert_eq!(added["suppression"]["reason"], "manual");
        assert_eq!(added["suppression"]["detail"], "asked by phone");
        assert_eq!(added["suppression"]["source"], "api");

        // Again: nothing changes, the first record stands.
        let (status, again) = call(
            &app,
            &app.a,
            "POST",
            "/api/v1/suppressions",
            Some(json!({"email": "ann@example.com", "detail": "other"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}: {again}");
        assert_eq!(again["created"], false);
        assert_eq!(again["suppression"]["detail"], "asked by phone");

        let (status, _) = call(&app, &app.a, "POST", "/api/v1/suppressions", Some(json!({"email": "ann@example.com", "reason": "hard_bounce", "detail": "550 5.1.1 User unknown"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
        for i in 0..5 {
            let (status, _) = call(
                &app,
                &app.a,
                "POST",
                "/api/v1/suppressions",
                Some(json!({"email": format!("p{i}@shop.example"), "reason": "imported"})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{b}");
        }

        // What each stops, at send time.
        let db = &app.t.db;
        let hard = db
            .blocking_suppression(&app.a.org, "ann@example.com", MailPurpose::Transactional)
            .await
            .unwrap();
        assert_eq!(hard.map(|s| s.reason.as_str()), Some("hard_bounce"), "{b}");
        assert!(db
            .blocking_suppression(&app.a.org, "p0@shop.example", MailPurpose::Marketing)
            .await
            .unwrap()
            .is_some());
        assert!(
            db.blocking_suppression(&app.a.org, "p0@shop.example", MailPurpose::Transactional)
                .await
                .unwrap()
                .is_none(),
            "{b}: an import stops marketing only"
        );
        assert!(
            db.blocking_suppression(&app.b.org, "ann@example.com", MailPurpose::Marketing)
                .await
                .unwrap()
                .is_none(),
            "{b}: org B's list is its own"
        );

        // Pages of 3, in address order, then search and reason filters.
        let (_, first) = call(&app, &app.a, "GET", "/api/v1/suppressions?limit=3", None).await;
        let emails = |page: &Value| {
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s["email"].as_str().unwrap(),
                        s["reason"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            emails(&first),
            [
                "ann@example.com hard_bounce",
                "ann@example.com manual",
                "p0@shop.example imported"
            ],
            "{b}"
        );
        let cursor = first["next_cursor"].as_str().unwrap();
        let (_, second) = call(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/suppressions?limit=3&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(
            emails(&second),
            [
                "p1@shop.example imported",
                "p2@shop.example imported",
                "p3@shop.example imported"
            ],
            "{b}"
        );
        let (_, found) = call(&app, &app.a, "GET", "/api/v1/suppressions?q=ANN", None).await;
        assert_eq!(found["data"].as_array().unwrap().len(), 2, "{b}: {found}");
        assert_eq!(found["next_cursor"], Value::Null);
        let (_, bounced) = call(
            &app,
            &app.a,
            "GET",
            "/api/v1/suppressions?reason=hard_bounce",
            None,
        )
        .await;
        assert_eq!(emails(&bounced), ["ann@example.com hard_bounce"], "{b}");
        let (_, none) = call(&app, &app.a, "GET", "/api/v1/suppressions?q=%25", None).await;
        assert_eq!(
            none["data"],
            json!([]),
            "{b}: % is a character, not a wildcard"
        );

        // Lifted with a reason: both reasons go, the log keeps them.
        let (status, lifted) = call(
            &app,
            &app.a,
            "DELETE",
            "/api/v1/suppressions/ANN@example.com",
            Some(json!({"reason": "the customer asked to be mailed again"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}: {lifted}");
        assert_eq!(lifted, json!({"email": "ann@example.com", "lifted": 2}));
        assert!(db
            .suppressions_of(&app.a.org, "ann@example.com")
            .await
            .unwrap()
            .is_empty());
        let history = db
            .suppression_history(&app.a.org, "ann@example.com")
            .await
            .unwrap();
        let actions: Vec<_> = history
            .iter()
            .map(|h| (h.0.as_str(), h.1.as_str()))
            .collect();
        assert_eq!(actions.len(), 4, "{b}: {history:?}");
        assert!(history
            .iter()
            .filter(|h| h.0 == "removed")
            .all(|h| h.2.as_deref() == Some("the customer asked to be mailed again")));
        let (status, _) = call(
            &app,
            &app.a,
            "DELETE",
            "/api/v1/suppressions/ann@example.com",
            Some(json!({"reason": "again"})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{b}");
    }
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    for app in apps().await {
        let b = app.backend();
        for (body, field) in [
            (json!({"email": "not-an-address"}), "email"),
            (
                json!({"email": "a@b.example", "reason": "bounced"}),
                "reason",
            ),
            (
                json!({"email": "a@b.example", "reason": "soft_bounces"}),
                "reason",
            ),
            (
                json!({"email": "a@b.example", "detail": "x".repeat(501)}),
                "detail",
            ),
            (json!({"email": "a@b.example", "colour": "red"}), "body"),
        ] {
            let (status, answer) = call(
                &app,
                &app.a,
                "POST",
                "/api/v1/suppressions",
                Some(body.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{b}: {answer}");
        }
        for (path, field) in [
            ("/api/v1/suppressions?reason=bounced", "reason"),
            ("/api/v1/suppressions?cursor=%21%21", "cursor"),
            ("/api/v1/suppressions?limit=0", "limit"),
        ] {
            let (status, answer) = call(&app, &app.a, "GET", path, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {path}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{b}: {answer}");
        }
        let (status, answer) = call(
            &app,
            &app.a,
            "DELETE",
            "/api/v1/suppressions/a@b.example",
            Some(json!({"reason": "  "})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {answer}");
        assert_eq!(answer["error"]["field"], "reason");
        let (_, listed) = call(&app, &app.a, "GET", "/api/v1/suppressions", None).await;
        assert_eq!(listed["data"], json!([]), "{b}: nothing was added");
    }
}

#[tokio::test]
async fn another_organisation_sees_and_lifts_nothing() {
    for app in apps().await {
        let b = app.backend();
        let (status, _) = call(
            &app,
            &app.a,
            "POST",
            "/api/v1/suppressions",
            Some(json!({"email": "ann@example.com"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, theirs) = call(&app, &app.b, "GET", "/api/v1/suppressions", None).await;
        assert_eq!(theirs["data"], json!([]), "{b}");
        let (status, _) = call(
            &app,
            &app.b,
            "DELETE",
            "/api/v1/suppressions/ann@example.com",
            Some(json!({"reason": "not mine"})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{b}");
        let (status, added) = call(
            &app,
            &app.b,
            "POST",
            "/api/v1/suppressions",
            Some(json!({"email": "ann@example.com"})),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{b}: org B's own record: {added}"
        );
        let (_, ours) = call(&app, &app.a, "GET", "/api/v1/suppressions", None).await;
        assert_eq!(ours["data"].as_array().unwrap().len(), 1, "{b}");
        for (method, path) in [
            ("GET", "/api/v1/suppressions"),
            ("POST", "/api/v1/suppressions"),
            ("DELETE", "/api/v1/suppressions/ann@example.com"),
        ] {
            let answer = app
                .send(
                    axum::http::Request::builder()
                        .method(method)
                        .uri(path)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{b}: {method} {path} without a token"
            );
        }
    }
}
