//! Segments through the HTTP API, on SQLite and PostgreSQL: create by text
//! and by AST, list, show, edit (a new rule recomputes), delete; members
//! with seek pagination; previews that save nothing; a profile's segments;
//! every refusal with its exact body; live membership as events arrive;
//! and every route walked as another organisation.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cohort_testkit::Seeded;
use common::{apps, basic, TestApp};
use serde_json::{json, Value};

/// Sends a batch to the collect API with `who`'s write key and waits for
/// the projection.
async fn collect(app: &TestApp, who: &Seeded, batch: Value) {
    let answer = app
        .send(
            Request::post("/v1/batch")
                .header("authorization", basic(&who.source.write_key))
                .header("content-type", "application/json")
                .body(Body::from(json!({ "batch": batch }).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    app.projected().await;
}

/// Runs live membership until it is idle.
async fn membership(app: &TestApp) {
    cohort_engine::segments::membership::drain(&app.t.db, cohort_store::now_micros())
        .await
        .expect("membership rounds");
}

fn identify(user: &str, plan: &str) -> Value {
    json!({"type": "identify", "userId": user, "timestamp": "2026-11-01T10:00:00Z",
           "traits": {"email": format!("{user}@example.com"), "plan": plan}})
}

/// Org A: u1–u3 on gold, u4–u5 on silver. Org B: b1–b2 on gold.
async fn people(app: &TestApp) {
    collect(
        app,
        &app.a,
        json!([
            identify("u1", "gold"),
            identify("u2", "gold"),
            identify("u3", "gold"),
            identify("u4", "silver"),
            identify("u5", "silver"),
        ]),
    )
    .await;
    collect(
        app,
        &app.b,
        json!([identify("b1", "gold"), identify("b2", "gold")]),
    )
    .await;
}

async fn create(app: &TestApp, who: &Seeded, body: Value) -> Value {
    let answer = app.api(who, "POST", "/api/v1/segments", Some(body)).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{}: {}",
        app.backend(),
        answer.text()
    );
    answer.json()
}

async fn ok(app: &TestApp, who: &Seeded, method: &str, path: &str, body: Option<Value>) -> Value {
    let answer = app.api(who, method, path, body).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}: {method} {path}: {}",
        app.backend(),
        answer.text()
    );
    answer.json()
}

async fn profile_id(app: &TestApp, who: &Seeded, user: &str) -> String {
    ok(
        app,
        who,
        "GET",
        &format!("/api/v1/profiles/lookup?user_id={user}"),
        None,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ids(page: &Value, key: &str) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn segments_are_created_by_text_or_ast_listed_shown_edited_and_deleted() {
    for app in apps().await {
        people(&app).await;
        let by_text = create(
            &app,
            &app.a,
            json!({"name": "Gold", "rule": "trait.plan   =  \"gold\"", "description": "Gold plan"}),
        )
        .await;
        assert!(by_text["id"].as_str().unwrap().starts_with("seg_"));
        assert_eq!(by_text["name"], "Gold");
        assert_eq!(by_text["description"], "Gold plan");
        assert_eq!(by_text["rule"], "trait.plan = \"gold\"", "canonical text");
        assert_eq!(by_text["count"], 3, "{}", app.backend());
        assert_eq!(by_text["created_at"], by_text["updated_at"]);
        assert!(by_text["created_at"].as_str().unwrap().ends_with('Z'));

        let by_ast = create(
            &app,
            &app.a,
            json!({"name": "Gold again", "ast": by_text["ast"]}),
        )
        .await;
        assert_eq!(by_ast["rule"], by_text["rule"]);
        assert_eq!(by_ast["ast"], by_text["ast"]);
        assert_eq!(by_ast["count"], by_text["count"]);
        assert_eq!(by_ast["description"], Value::Null);
        let silver = create(
            &app,
            &app.a,
            json!({"name": "Silver", "rule": "trait.plan = \"silver\""}),
        )
        .await;
        assert_eq!(silver["count"], 2);

        let id = by_text["id"].as_str().unwrap();
        let shown = ok(&app, &app.a, "GET", &format!("/api/v1/segments/{id}"), None).await;
        assert_eq!(shown, by_text);

        // Seek pagination over the three, in id order.
        let mut seen = Vec::new();
        let mut path = "/api/v1/segments?limit=2".to_owned();
        loop {
            let page = ok(&app, &app.a, "GET", &path, None).await;
            seen.extend(ids(&page, "id"));
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/segments?limit=2&cursor={c}"),
                None => break,
            }
        }
        let mut expected: Vec<String> = [&by_text, &by_ast, &silver]
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        expected.sort();
        assert_eq!(seen, expected);
        let all = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        assert_eq!(all["data"].as_array().unwrap().len(), 3);
        assert_eq!(all["next_cursor"], Value::Null);

        // A new rule recomputes the members; name and description change.
        let patched = ok(
            &app,
            &app.a,
            "PATCH",
            &format!("/api/v1/segments/{id}"),
            Some(json!({"rule": "trait.plan in [\"gold\", \"silver\"]", "name": "Paid", "description": null})),
        )
        .await;
        assert_eq!(patched["count"], 5, "{}", app.backend());
        assert_eq!(patched["name"], "Paid");
        assert_eq!(patched["description"], Value::Null);
        assert_eq!(patched["rule"], "trait.plan in [\"gold\", \"silver\"]");
        assert_eq!(patched["created_at"], by_text["created_at"]);
        let by_ast_patch = ok(
            &app,
            &app.a,
            "PATCH",
            &format!("/api/v1/segments/{id}"),
            Some(json!({"ast": silver["ast"]})),
        )
        .await;
        assert_eq!(by_ast_patch["count"], 2);
        assert_eq!(by_ast_patch["rule"], silver["rule"]);
        let described = ok(
            &app,
            &app.a,
            "PATCH",
            &format!("/api/v1/segments/{id}"),
            Some(json!({"description": "silver now"})),
        )
        .await;
        assert_eq!(described["description"], "silver now");
        assert_eq!(described["count"], 2, "an edit without a rule keeps it");

        let deleted = app
            .api(&app.a, "DELETE", &format!("/api/v1/segments/{id}"), None)
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert!(deleted.body.is_empty());
        let gone = app.get_api(&app.a, &format!("/api/v1/segments/{id}")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        assert_eq!(
            gone.json(),
            json!({"error": {"code": "not_found", "message": "segment not found"}})
        );
        let left = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        assert_eq!(left["data"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn members_page_by_profile_id_and_profiles_list_their_segments() {
    for app in apps().await {
        people(&app).await;
        let gold = create(
            &app,
            &app.a,
            json!({"name": "Gold", "rule": "trait.plan = \"gold\""}),
        )
        .await;
        let all_paid = create(
            &app,
            &app.a,
            json!({"name": "Anyone", "rule": "trait.plan exists"}),
        )
        .await;
        let id = gold["id"].as_str().unwrap();
        let first = ok(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/segments/{id}/members?limit=2"),
            None,
        )
        .await;
        assert_eq!(first["data"].as_array().unwrap().len(), 2);
        let cursor = first["next_cursor"].as_str().expect("a next page");
        let second = ok(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/segments/{id}/members?limit=2&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(second["next_cursor"], Value::Null);
        let mut members = ids(&first, "profile_id");
        members.extend(ids(&second, "profile_id"));
        let mut expected = Vec::new();
        for u in ["u1", "u2", "u3"] {
            expected.push(profile_id(&app, &app.a, u).await);
        }
        expected.sort();
        assert_eq!(members, expected, "{}", app.backend());
        let mut emails: Vec<&str> = first["data"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["data"].as_array().unwrap())
            .map(|m| m["email"].as_str().unwrap())
            .collect();
        emails.sort();
        assert_eq!(
            emails,
            ["u1@example.com", "u2@example.com", "u3@example.com"]
        );
        assert!(first["data"][0]["entered_at"]
            .as_str()
            .unwrap()
            .ends_with('Z'));

        for bad in ["0", "1001", "ten"] {
            let answer = app
                .get_api(
                    &app.a,
                    &format!("/api/v1/segments/{id}/members?limit={bad}"),
                )
                .await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            assert_eq!(
                answer.json(),
                json!({"error": {"code": "invalid_request", "message": "limit must be between 1 and 1000", "field": "limit"}})
            );
        }
        let unknown = app
            .get_api(&app.a, "/api/v1/segments/seg_nope/members")
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        // A profile's segments, by name.
        let u1 = profile_id(&app, &app.a, "u1").await;
        let listed = ok(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/profiles/{u1}/segments"),
            None,
        )
        .await;
        let data = listed["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{listed}");
        assert_eq!(data[0]["name"], "Anyone");
        assert_eq!(data[0]["segment_id"], all_paid["id"]);
        assert_eq!(data[1]["name"], "Gold");
        assert_eq!(data[1]["segment_id"], gold["id"]);
        assert!(data[1]["entered_at"].as_str().unwrap().ends_with('Z'));
        let u4 = profile_id(&app, &app.a, "u4").await;
        let silver = ok(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/profiles/{u4}/segments"),
            None,
        )
        .await;
        assert_eq!(ids(&silver, "name"), ["Anyone"]);
        let unknown = app
            .get_api(&app.a, "/api/v1/profiles/prof_nope/segments")
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(
            unknown.json(),
            json!({"error": {"code": "not_found", "message": "profile not found"}})
        );
    }
}

#[tokio::test]
async fn a_preview_counts_and_samples_and_saves_nothing() {
    for app in apps().await {
        people(&app).await;
        let saved = create(
            &app,
            &app.a,
            json!({"name": "Gold", "rule": "trait.plan = \"gold\""}),
        )
        .await;
        let before = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        let changes_before = app
            .t
            .db
            .segment_changes_after(0, 10_000)
            .await
            .unwrap()
            .len();

        let preview = ok(
            &app,
            &app.a,
            "POST",
            "/api/v1/segments/preview",
            Some(json!({"rule": "trait.plan = \"silver\" or in segment \"Gold\""})),
        )
        .await;
        assert_eq!(preview["count"], 5, "{}", app.backend());
        assert_eq!(
            preview["rule"],
            "trait.plan = \"silver\" or in segment \"Gold\""
        );
        assert_eq!(preview["ast"]["kind"], "or");
        let sample = preview["sample"].as_array().unwrap();
        assert_eq!(sample.len(), 5);
        let u1 = profile_id(&app, &app.a, "u1").await;
        let shown = ok(&app, &app.a, "GET", &format!("/api/v1/profiles/{u1}"), None).await;
        let in_sample = sample.iter().find(|p| p["id"] == u1.as_str()).unwrap();
        for key in ["id", "email", "user_id", "traits", "identities", "metrics"] {
            assert_eq!(
                in_sample[key], shown[key],
                "{key}: as the profile route shows it"
            );
        }
        let by_ast = ok(
            &app,
            &app.a,
            "POST",
            "/api/v1/segments/preview",
            Some(json!({"ast": saved["ast"]})),
        )
        .await;
        assert_eq!(by_ast["count"], 3);
        assert_eq!(by_ast["rule"], saved["rule"]);

        // Twelve matching profiles: the sample stops at ten.
        let many: Vec<Value> = (0..12)
            .map(|i| identify(&format!("m{i:02}"), "bronze"))
            .collect();
        collect(&app, &app.a, Value::Array(many)).await;
        let big = ok(
            &app,
            &app.a,
            "POST",
            "/api/v1/segments/preview",
            Some(json!({"rule": "trait.plan = \"bronze\""})),
        )
        .await;
        assert_eq!(big["count"], 12);
        assert_eq!(big["sample"].as_array().unwrap().len(), 10);

        let after = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        assert_eq!(after, before, "a preview saves no segment");
        assert_eq!(
            app.t
                .db
                .segment_changes_after(0, 10_000)
                .await
                .unwrap()
                .len(),
            changes_before,
            "a preview records no membership change"
        );
    }
}

/// What the parser expects where a condition must start.
const CONDITION: &str = "a condition (trait., email exists, subscribed, unsubscribed, bounced, tag, orders., last_seen, performed, last performed, received/opened/clicked email, bought, in segment, rfm., not or \"(\")";

/// Asserts a refusal's status and exact body.
async fn refused(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Value,
    status: StatusCode,
    expected: Value,
) {
    let answer = app.api(&app.a, method, path, Some(body.clone())).await;
    assert_eq!(
        answer.status,
        status,
        "{}: {method} {path} {body}: {}",
        app.backend(),
        answer.text()
    );
    assert_eq!(answer.json(), expected, "{method} {path} {body}");
}

#[tokio::test]
async fn every_refusal_has_its_code_and_names_the_field_and_saves_nothing() {
    for app in apps().await {
        people(&app).await;
        let gold = create(
            &app,
            &app.a,
            json!({"name": "Gold", "rule": "trait.plan = \"gold\""}),
        )
        .await;
        let buyers = create(
            &app,
            &app.a,
            json!({"name": "Gold buyers", "rule": "in segment \"Gold\" and performed \"Order Completed\""}),
        )
        .await;
        let gold_path = format!("/api/v1/segments/{}", gold["id"].as_str().unwrap());
        let before = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        let bad = StatusCode::BAD_REQUEST;

        for path in ["/api/v1/segments", "/api/v1/segments/preview"] {
            refused(
                &app,
                "POST",
                path,
                json!({"name": "N", "rule": "orders.count >=\n"}),
                bad,
                json!({"error": {"code": "invalid_rule",
                    "message": "line 2, col 1: expected a number after \">=\"",
                    "field": "rule", "line": 2, "column": 1, "expected": "a number"}}),
            )
            .await;
            refused(
                &app,
                "POST",
                path,
                json!({"name": "N", "rule": "trait.plan = \"gold\" and\n  (orders.count > 1 or bogus)"}),
                bad,
                json!({"error": {"code": "invalid_rule",
                    "message": format!("line 2, col 24: expected {CONDITION} after \"or\""),
                    "field": "rule", "line": 2, "column": 24, "expected": CONDITION}}),
            )
            .await;
            refused(
                &app,
                "POST",
                path,
                json!({"name": "N", "ast": {"kind": "bogus"}}),
                bad,
                json!({"error": {"code": "invalid_rule",
                    "message": "ast: unknown variant `bogus`, expected one of `and`, `or`, `not`, `trait`, `email_exists`, `subscribed`, `unsubscribed`, `bounced`, `tag`, `metric`, `performed`, `last_performed`, `email`, `bought`, `in_segment`, `rfm`",
                    "field": "ast"}}),
            )
            .await;
            refused(
                &app,
                "POST",
                path,
                json!({"name": "N", "ast": {"kind": "and", "rules": [{"kind": "subscribed"}]}}),
                bad,
                json!({"error": {"code": "invalid_rule",
                    "message": "ast: `and` and `or` need at least two rules", "field": "ast"}}),
            )
            .await;
            refused(
                &app,
                "POST",
                path,
                json!({"name": "N", "rule": "in segment \"Nope\""}),
                bad,
                json!({"error": {"code": "unknown_segment",
                    "message": "no segment is named \"Nope\"", "field": "rule"}}),
            )
            .await;
            refused(
                &app,
                "POST",
                path,
                json!({"name": "N", "rule": "subscribed", "ast": {"kind": "subscribed"}}),
                bad,
                json!({"error": {"code": "invalid_request",
                    "message": "give either rule (the text form) or ast (the JSON form), not both",
                    "field": "ast"}}),
            )
            .await;
            refused(
                &app,
                "POST",
                path,
                json!({"name": "N"}),
                bad,
                json!({"error": {"code": "invalid_request",
                    "message": "give rule (the text form) or ast (the JSON form)", "field": "rule"}}),
            )
            .await;
        }
        refused(
            &app,
            "POST",
            "/api/v1/segments",
            json!({"name": "  ", "rule": "subscribed"}),
            bad,
            json!({"error": {"code": "invalid_request", "message": "a segment needs a name", "field": "name"}}),
        )
        .await;
        refused(
            &app,
            "POST",
            "/api/v1/segments",
            json!({"rule": "subscribed"}),
            bad,
            json!({"error": {"code": "invalid_request", "message": "a segment needs a name", "field": "name"}}),
        )
        .await;
        refused(
            &app,
            "POST",
            "/api/v1/segments",
            json!({"name": "Gold", "rule": "subscribed"}),
            StatusCode::CONFLICT,
            json!({"error": {"code": "conflict", "message": "a segment named \"Gold\" already exists", "field": "name"}}),
        )
        .await;
        refused(
            &app,
            "PATCH",
            &format!("/api/v1/segments/{}", buyers["id"].as_str().unwrap()),
            json!({"name": "Gold"}),
            StatusCode::CONFLICT,
            json!({"error": {"code": "conflict", "message": "a segment named \"Gold\" already exists", "field": "name"}}),
        )
        .await;
        // Gold → Gold buyers → Gold.
        refused(
            &app,
            "PATCH",
            &gold_path,
            json!({"rule": "in segment \"Gold buyers\""}),
            bad,
            json!({"error": {"code": "segment_cycle",
                "message": "segments would form a cycle: Gold → Gold buyers → Gold", "field": "rule"}}),
        )
        .await;
        refused(
            &app,
            "PATCH",
            &gold_path,
            json!({"rule": "subscribed and"}),
            bad,
            json!({"error": {"code": "invalid_rule",
                "message": format!("line 1, col 15: expected {CONDITION} after \"and\""),
                "field": "rule", "line": 1, "column": 15, "expected": CONDITION}}),
        )
        .await;
        let referenced = json!({"error": {"code": "conflict",
            "message": "segment \"Gold\" is named by \"Gold buyers\": change or delete those segments' rules first"}});
        refused(
            &app,
            "PATCH",
            &gold_path,
            json!({"name": "Golden"}),
            StatusCode::CONFLICT,
            referenced.clone(),
        )
        .await;
        let delete = app.api(&app.a, "DELETE", &gold_path, None).await;
        assert_eq!(delete.status, StatusCode::CONFLICT);
        assert_eq!(delete.json(), referenced);
        refused(
            &app,
            "PATCH",
            "/api/v1/segments/seg_nope",
            json!({"name": "X"}),
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "not_found", "message": "segment not found"}}),
        )
        .await;
        let delete = app
            .api(&app.a, "DELETE", "/api/v1/segments/seg_nope", None)
            .await;
        assert_eq!(delete.status, StatusCode::NOT_FOUND);
        let not_json = app
            .send(
                Request::post("/api/v1/segments")
                    .header("authorization", format!("Bearer {}", app.a.token))
                    .header("content-type", "application/json")
                    .body(Body::from("{\"name\": "))
                    .unwrap(),
            )
            .await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
        assert_eq!(not_json.json()["error"]["field"], "body");
        let no_token = app
            .send(
                Request::get("/api/v1/segments")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);

        let after = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        assert_eq!(
            after,
            before,
            "{}: a refusal changes nothing",
            app.backend()
        );
    }
}

#[tokio::test]
async fn membership_follows_events_as_they_arrive() {
    for app in apps().await {
        people(&app).await;
        let buyers = create(
            &app,
            &app.a,
            json!({"name": "Buyers", "rule": "performed \"Order Completed\" >= 1 times"}),
        )
        .await;
        assert_eq!(buyers["count"], 0);
        let id = buyers["id"].as_str().unwrap();
        let u2 = profile_id(&app, &app.a, "u2").await;

        collect(
            &app,
            &app.a,
            json!([{"type": "track", "event": "Order Completed", "userId": "u2",
                    "properties": {"order_id": "o-1", "total": "20.00", "currency": "EUR"}}]),
        )
        .await;
        membership(&app).await;
        let shown = ok(&app, &app.a, "GET", &format!("/api/v1/segments/{id}"), None).await;
        assert_eq!(shown["count"], 1, "{}", app.backend());
        let members = ok(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/segments/{id}/members"),
            None,
        )
        .await;
        assert_eq!(ids(&members, "profile_id"), std::slice::from_ref(&u2));
        assert_eq!(members["data"][0]["email"], "u2@example.com");
        let listed = ok(
            &app,
            &app.a,
            "GET",
            &format!("/api/v1/profiles/{u2}/segments"),
            None,
        )
        .await;
        assert_eq!(ids(&listed, "segment_id"), [id.to_owned()]);

        // A rule change that drops them: they exit at once.
        let patched = ok(
            &app,
            &app.a,
            "PATCH",
            &format!("/api/v1/segments/{id}"),
            Some(json!({"rule": "performed \"Order Completed\" >= 2 times"})),
        )
        .await;
        assert_eq!(patched["count"], 0);
        collect(
            &app,
            &app.a,
            json!([{"type": "track", "event": "Order Completed", "userId": "u2",
                    "properties": {"order_id": "o-2", "total": "5.00", "currency": "EUR"}}]),
        )
        .await;
        membership(&app).await;
        let shown = ok(&app, &app.a, "GET", &format!("/api/v1/segments/{id}"), None).await;
        assert_eq!(shown["count"], 1, "{}", app.backend());
    }
}

#[tokio::test]
async fn another_organisation_sees_and_changes_nothing() {
    for app in apps().await {
        people(&app).await;
        let gold = create(
            &app,
            &app.a,
            json!({"name": "Gold", "rule": "trait.plan = \"gold\""}),
        )
        .await;
        let id = gold["id"].as_str().unwrap();
        let u1 = profile_id(&app, &app.a, "u1").await;
        let before = (
            ok(&app, &app.a, "GET", &format!("/api/v1/segments/{id}"), None).await,
            ok(
                &app,
                &app.a,
                "GET",
                &format!("/api/v1/segments/{id}/members"),
                None,
            )
            .await,
            ok(
                &app,
                &app.a,
                "GET",
                &format!("/api/v1/profiles/{u1}/segments"),
                None,
            )
            .await,
        );

        let b = &app.b;
        let listed = ok(&app, b, "GET", "/api/v1/segments", None).await;
        assert_eq!(listed, json!({"data": [], "next_cursor": null}));
        let not_found = json!({"error": {"code": "not_found", "message": "segment not found"}});
        for (method, path, body) in [
            ("GET", format!("/api/v1/segments/{id}"), None),
            (
                "PATCH",
                format!("/api/v1/segments/{id}"),
                Some(json!({"name": "Taken over", "rule": "subscribed"})),
            ),
            ("DELETE", format!("/api/v1/segments/{id}"), None),
            ("GET", format!("/api/v1/segments/{id}/members"), None),
        ] {
            let answer = app.api(b, method, &path, body).await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{method} {path}: {}",
                answer.text()
            );
            assert_eq!(answer.json(), not_found);
        }
        let theirs = app
            .get_api(b, &format!("/api/v1/profiles/{u1}/segments"))
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND);
        // B's preview counts B's two gold profiles, not A's three, and
        // cannot name A's segment.
        let preview = ok(
            &app,
            b,
            "POST",
            "/api/v1/segments/preview",
            Some(json!({"rule": "trait.plan = \"gold\""})),
        )
        .await;
        assert_eq!(preview["count"], 2, "{}", app.backend());
        let mut emails: Vec<&str> = preview["sample"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["email"].as_str().unwrap())
            .collect();
        emails.sort();
        assert_eq!(emails, ["b1@example.com", "b2@example.com"]);
        let named = app
            .api(
                b,
                "POST",
                "/api/v1/segments/preview",
                Some(json!({"rule": "in segment \"Gold\""})),
            )
            .await;
        assert_eq!(named.status, StatusCode::BAD_REQUEST);
        assert_eq!(named.json()["error"]["code"], "unknown_segment");
        // B may use the same name for its own segment.
        let own = create(
            &app,
            b,
            json!({"name": "Gold", "rule": "trait.plan = \"gold\""}),
        )
        .await;
        assert_eq!(own["count"], 2);
        let b1 = profile_id(&app, b, "b1").await;
        let mine = app
            .get_api(&app.a, &format!("/api/v1/profiles/{b1}/segments"))
            .await;
        assert_eq!(mine.status, StatusCode::NOT_FOUND);

        let after = (
            ok(&app, &app.a, "GET", &format!("/api/v1/segments/{id}"), None).await,
            ok(
                &app,
                &app.a,
                "GET",
                &format!("/api/v1/segments/{id}/members"),
                None,
            )
            .await,
            ok(
                &app,
                &app.a,
                "GET",
                &format!("/api/v1/profiles/{u1}/segments"),
                None,
            )
            .await,
        );
        assert_eq!(
            after,
            before,
            "{}: org B changed nothing of A's",
            app.backend()
        );
        let a_list = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        assert_eq!(ids(&a_list, "id"), [id.to_owned()]);
    }
}

fn order(user: &str, id: &str) -> Value {
    json!({"type": "track", "event": "Order Completed", "userId": user, "timestamp": "2026-11-02T10:00:00Z",
           "properties": {"order_id": id, "total": "30.00", "currency": "EUR"}})
}

/// Natural language: read with the store's vocabulary into a rule, shown
/// with its count, sample and unplaced words; nothing is saved; another
/// organisation's reading counts only its own people.
#[tokio::test]
async fn from_text_reads_the_merchants_words_into_a_rule_and_saves_nothing() {
    for app in apps().await {
        let b = app.backend();
        people(&app).await;
        collect(
            &app,
            &app.a,
            json!([order("u1", "a1"), order("u1", "a2"), order("u2", "a3")]),
        )
        .await;
        collect(
            &app,
            &app.b,
            json!([order("b1", "b1"), order("b1", "b2"), order("b2", "b3")]),
        )
        .await;

        let read = ok(
            &app,
            &app.a,
            "POST",
            "/api/v1/segments/from-text",
            Some(json!({"text": "customers who bought twice"})),
        )
        .await;
        assert_eq!(read["rule"], "orders.count = 2", "{b}: {read}");
        assert_eq!(read["ast"]["kind"], "metric");
        assert_eq!(read["count"], 1, "{b}: only u1 ordered twice in org A");
        assert_eq!(read["sample"][0]["email"], "u1@example.com");
        assert_eq!(read["source"], "grammar");
        assert_eq!(read["unplaced"], json!([]));

        let partly = ok(
            &app,
            &app.a,
            "POST",
            "/api/v1/segments/from-text",
            Some(json!({"text": "customers who bought twice zorblax"})),
        )
        .await;
        let unplaced = partly["unplaced"].as_array().unwrap();
        assert_eq!(unplaced.len(), 1, "{b}: {partly}");
        assert_eq!(unplaced[0]["text"], "zorblax");
        assert_eq!(unplaced[0]["start"], 27);

        for (text, code) in [("", "invalid_request"), ("zorblax quux", "not_understood")] {
            let answer = app
                .api(
                    &app.a,
                    "POST",
                    "/api/v1/segments/from-text",
                    Some(json!({"text": text})),
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{b}: {text:?}: {}",
                answer.text()
            );
            let body = answer.json();
            assert_eq!(body["error"]["code"], code, "{b}: {body}");
            assert_eq!(body["error"]["field"], "text", "{b}: {body}");
        }
        let listed = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        assert_eq!(listed["data"], json!([]), "{b}: nothing saved from text");

        let theirs = ok(
            &app,
            &app.b,
            "POST",
            "/api/v1/segments/from-text",
            Some(json!({"text": "customers who bought twice"})),
        )
        .await;
        assert_eq!(theirs["count"], 1, "{b}: org B sees b1 only");
        assert_eq!(theirs["sample"][0]["email"], "b1@example.com");
    }
}

/// A model client for `server`, with `key` as its bearer key.
fn rule_model(base: &str, key: &str) -> common::RuleModel {
    use cohort_engine::segments::model::{ModelSettings, RuleModel};
    std::sync::Arc::new(
        RuleModel::new(ModelSettings {
            endpoint: base.parse().unwrap(),
            model: "local-rules-7b".into(),
            api_key: Some(key.to_owned().into()),
            timeout: std::time::Duration::from_secs(5),
        })
        .unwrap(),
    )
}

async fn from_text(app: &TestApp, who: &Seeded, body: Value) -> Value {
    ok(app, who, "POST", "/api/v1/segments/from-text", Some(body)).await
}

/// The operator's model, over the chat-completions protocol: asked only
/// when the grammar leaves words unplaced or the merchant asks; its rule
/// used when it parses and compiles, discarded with the reason otherwise
/// (the grammar's reading stands); unreachable or refusing, the same;
/// nothing saved; org B's reading counts org B's people only.
#[tokio::test]
async fn from_text_asks_the_configured_model_only_when_needed_and_keeps_only_rules_that_parse() {
    for t in cohort_testkit::all_backends().await {
        let server =
            cohort_testkit::ChatServer::start("local-rules-7b", Some("sk-local-test")).await;
        server.reply("quux", "I cannot help with that, sorry.");
        server.reply("nope", "in segment \"Nope\"");
        server.reply(
            "zorblax",
            "Rule:\norders.count = 2 and trait.plan = \"gold\"",
        );
        server.reply("bought twice", "```cohort\norders.count >= 1\n```");
        let app = TestApp::with_rule_model(t, rule_model(server.base_url(), "sk-local-test")).await;
        let b = app.backend();
        people(&app).await;
        collect(
            &app,
            &app.a,
            json!([order("u1", "a1"), order("u1", "a2"), order("u2", "a3")]),
        )
        .await;
        collect(&app, &app.b, json!([order("b1", "b1"), order("b1", "b2")])).await;

        // Every word placed: the model is not asked.
        let read = from_text(&app, &app.a, json!({"text": "customers who bought twice"})).await;
        assert_eq!(read["source"], "grammar", "{b}: {read}");
        assert_eq!(read["rule"], "orders.count = 2");
        assert_eq!(read["model"], Value::Null);
        assert!(server.requests().is_empty(), "{b}: the model was asked");

        // A word left over: the model's rule, which parses, is used.
        let read = from_text(
            &app,
            &app.a,
            json!({"text": "customers who bought twice zorblax"}),
        )
        .await;
        assert_eq!(read["source"], "model", "{b}: {read}");
        assert_eq!(read["rule"], "orders.count = 2 and trait.plan = \"gold\"");
        assert_eq!(read["model"], json!({"used": true, "reason": null}));
        assert_eq!(read["unplaced"], json!([]));
        assert_eq!(read["count"], 1, "{b}: u1");
        assert_eq!(read["sample"][0]["email"], "u1@example.com");
        let asked = server.requests();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0]["model"], "local-rules-7b");
        assert_eq!(asked[0]["messages"][0]["role"], "system");
        assert_eq!(asked[0]["messages"][1]["role"], "user");
        assert_eq!(
            asked[0]["messages"][1]["content"],
            "customers who bought twice zorblax"
        );

        // Asked by the merchant although every word was placed; a fenced answer.
        let read = from_text(
            &app,
            &app.a,
            json!({"text": "customers who bought twice", "model": true}),
        )
        .await;
        assert_eq!(read["source"], "model", "{b}: {read}");
        assert_eq!(read["rule"], "orders.count >= 1");
        assert_eq!(read["count"], 2, "{b}: u1 and u2");

        // An answer that is not a rule: discarded with the reason; the
        // grammar's reading stands with its unplaced word.
        let read = from_text(
            &app,
            &app.a,
            json!({"text": "customers who bought twice quux"}),
        )
        .await;
        assert_eq!(read["source"], "grammar", "{b}: {read}");
        assert_eq!(read["rule"], "orders.count = 2");
        assert_eq!(read["model"]["used"], false);
        let reason = read["model"]["reason"].as_str().unwrap();
        assert!(reason.contains("does not parse"), "{b}: {reason}");
        assert!(reason.contains("I cannot help"), "{b}: {reason}");
        assert_eq!(read["unplaced"][0]["text"], "quux");

        // A rule naming a segment that does not exist: discarded.
        let read = from_text(
            &app,
            &app.a,
            json!({"text": "customers who bought twice nope"}),
        )
        .await;
        assert_eq!(read["source"], "grammar", "{b}: {read}");
        let reason = read["model"]["reason"].as_str().unwrap();
        assert!(reason.contains("Nope"), "{b}: {reason}");

        // Neither could: 400 naming the grammar's failure and the model's.
        let answer = app
            .api(
                &app.a,
                "POST",
                "/api/v1/segments/from-text",
                Some(json!({"text": "zorblax quux"})),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{b}: {}",
            answer.text()
        );
        let body = answer.json();
        assert_eq!(body["error"]["code"], "not_understood", "{b}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("model's answer was discarded"),
            "{b}: {message}"
        );

        // Org B: its own people only.
        let theirs = from_text(
            &app,
            &app.b,
            json!({"text": "customers who bought twice zorblax"}),
        )
        .await;
        assert_eq!(theirs["source"], "model", "{b}: {theirs}");
        assert_eq!(theirs["count"], 1, "{b}: b1 only");
        assert_eq!(theirs["sample"][0]["email"], "b1@example.com");

        let listed = ok(&app, &app.a, "GET", "/api/v1/segments", None).await;
        assert_eq!(listed["data"], json!([]), "{b}: nothing saved from text");
    }
}

/// A model that refuses the key, or that is not there: the grammar's
/// reading stands, with the reason; the key appears in no answer. (The
/// model's part does not touch the database: SQLite alone.)
#[tokio::test]
async fn from_text_survives_a_model_that_refuses_or_is_gone() {
    let server = cohort_testkit::ChatServer::start("local-rules-7b", Some("sk-right")).await;
    server.reply("zorblax", "orders.count >= 1");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    for (base, key, expected) in [
        (
            server.base_url().to_owned(),
            "sk-wrong-key",
            "HTTP 401: Incorrect API key",
        ),
        (gone, "sk-right", "could not be reached"),
    ] {
        let app =
            TestApp::with_rule_model(cohort_testkit::sqlite().await, rule_model(&base, key)).await;
        people(&app).await;
        let answer = app
            .api(
                &app.a,
                "POST",
                "/api/v1/segments/from-text",
                Some(json!({"text": "customers who bought twice zorblax"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert!(!answer.text().contains(key), "the key is in the answer");
        let read = answer.json();
        assert_eq!(read["source"], "grammar", "{read}");
        let reason = read["model"]["reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{reason}");
    }
}
