//! Profiles, orders and products through the HTTP API, on SQLite and
//! PostgreSQL: events sent to the collect API and WooCommerce resources
//! posted for a store become one customer with traits, identities, tags,
//! orders and metrics; lookups, lists, the timeline, export and erasure.

mod common;

use axum::http::StatusCode;
use common::{apps, TestApp};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/fixtures/wc-rest-v3-{name}.docs-example.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

async fn ingest(app: &TestApp, topic: &str, resource: Value) -> common::Answer {
    let path = format!("/api/v1/sources/{}/woocommerce", app.a.source.id.as_str());
    app.api(
        &app.a,
        "POST",
        &path,
        Some(json!({"topic": topic, "resource": resource, "currency": "USD"})),
    )
    .await
}

async fn shop_history(app: &TestApp) {
    let batch = json!({"batch": [
        {"type": "page", "anonymousId": "visitor-9", "name": "Home", "timestamp": "2017-03-20T10:00:00Z",
         "context": {"referrer": {"type": "everflow", "id": "ef-tx-42"}}},
        {"type": "track", "event": "Product Viewed", "anonymousId": "visitor-9", "timestamp": "2017-03-20T10:01:00Z"},
        {"type": "identify", "anonymousId": "visitor-9", "userId": "25", "timestamp": "2017-03-20T10:02:00Z",
         "traits": {"email": " John.Doe@Example.com ", "plan": "gold"}},
        {"type": "track", "event": "Cart Started", "userId": "25", "timestamp": "2017-03-20T10:03:00Z",
         "properties": {"cart_id": "cart-1", "products": [{"product_id": "93", "price": 3, "quantity": 2}], "value": 6, "currency": "USD",
                        "recover_url": "https://shop.example/cart/recover/abc"}},
        {"type": "track", "event": "Checkout Started", "userId": "25", "timestamp": "2017-03-20T10:04:00Z",
         "properties": {"products": [{"product_id": "93", "price": 3, "quantity": 2}]}},
        // An older identify arriving last must not overwrite the newer plan.
        {"type": "identify", "userId": "25", "timestamp": "2017-03-01T00:00:00Z", "traits": {"plan": "free", "city": "Oslo"}}
    ]});
    assert_eq!(
        app.post("/v1/batch", batch.to_string()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        ingest(app, "customer.updated", fixture("customer"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        ingest(app, "product.updated", fixture("product"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let answer = ingest(app, "order.updated", fixture("order")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    assert_eq!(answer.json()["duplicate"], false);
    let again = ingest(app, "order.updated", fixture("order")).await;
    assert_eq!(
        again.json()["duplicate"],
        true,
        "the same version of a resource is recognised"
    );
    app.projected().await;
    // The events derived from the order's states are projected too.
    app.projected().await;
}

#[tokio::test]
async fn a_shopper_becomes_one_profile_with_traits_tags_orders_and_metrics() {
    for app in apps().await {
        shop_history(&app).await;
        let by_email = app
            .get_api(&app.a, "/api/v1/profiles/lookup?email=JOHN.DOE@example.com")
            .await;
        assert_eq!(
            by_email.status,
            StatusCode::OK,
            "{}: {}",
            app.backend(),
            by_email.text()
        );
        let p = by_email.json();
        let id = p["id"].as_str().unwrap().to_owned();
        for query in ["user_id=25", "anonymous_id=visitor-9"] {
            let other = app
                .get_api(&app.a, &format!("/api/v1/profiles/lookup?{query}"))
                .await
                .json();
            assert_eq!(other["id"], id.as_str(), "{query} finds the same person");
        }
        assert_eq!(p["user_id"], "25");
        assert_eq!(p["email"], "john.doe@example.com");
        assert_eq!(
            p["traits"]["plan"], "gold",
            "the latest value by timestamp wins"
        );
        assert_eq!(p["traits"]["city"], "Oslo");
        assert_eq!(
            p["traits"]["first_name"], "John",
            "from the WooCommerce customer"
        );
        assert_eq!(p["traits"]["ef_transaction_id"], "ef-tx-42");
        assert_eq!(
            p["trait_sources"]["plan"]["updated_at"],
            "2017-03-20T10:02:00Z"
        );
        assert_eq!(
            p["trait_sources"]["plan"]["source_id"],
            app.a.source.id.as_str()
        );
        let kinds: Vec<&str> = p["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["kind"].as_str().unwrap())
            .collect();
        for kind in ["user_id", "email", "anonymous_id", "store_customer"] {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
        assert_eq!(
            p["tags"],
            json!([]),
            "the paid order cleared in_cart and in_checkout"
        );
        let m = &p["metrics"];
        assert_eq!(m["order_count"], 1);
        assert_eq!(
            m["total_spent"],
            json!([{"amount": "29.35", "currency": "USD"}])
        );
        assert_eq!(
            m["average_order_value"],
            json!([{"amount": "29.35", "currency": "USD"}])
        );
        assert_eq!(m["first_order_at"], "2017-03-22T19:28:08Z");
        assert!(m.get("last_email_open_at").is_some() && m.get("last_email_click_at").is_some());
        let orders = p["orders"].as_array().unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(
            orders[0]["total"],
            json!({"amount": "29.35", "currency": "USD"})
        );
        assert_eq!(orders[0]["line_items"][1]["sku"], "Bar3");
        assert_eq!(orders[0]["status_history"][0]["status"], "processing");

        // The timeline, in pages of 3, newest first, holds every event once.
        let mut seen = Vec::new();
        let mut path = format!("/api/v1/profiles/{id}/events?limit=3");
        loop {
            let page = app.get_api(&app.a, &path).await.json();
            for e in page["data"].as_array().unwrap() {
                seen.push((
                    e["timestamp"].as_str().unwrap().to_owned(),
                    e["message_id"].as_str().unwrap().to_owned(),
                    e["event"].clone(),
                ));
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!("/api/v1/profiles/{id}/events?limit=3&cursor={cursor}")
                }
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.0.cmp(&a.0));
        assert_eq!(
            seen.iter().map(|s| &s.0).collect::<Vec<_>>(),
            sorted.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        let ids: std::collections::BTreeSet<&String> = seen.iter().map(|s| &s.1).collect();
        assert_eq!(ids.len(), seen.len(), "no event twice");
        let completed = seen.iter().filter(|s| s.2 == "Order Completed").count();
        assert_eq!(
            completed, 1,
            "Order Completed derived exactly once: {seen:?}"
        );
        assert!(seen.iter().any(|s| s.2 == "Order Created"));
        assert!(seen.len() >= 10, "{}", seen.len());

        // Lists: filters and seek pagination.
        let buyers = app
            .get_api(&app.a, "/api/v1/profiles?min_orders=1")
            .await
            .json();
        assert_eq!(buyers["data"].as_array().unwrap().len(), 1);
        let carts = app
            .get_api(&app.a, "/api/v1/profiles?tag=ecommerce.in_cart")
            .await
            .json();
        assert_eq!(carts["data"], json!([]));
        let orders = app
            .get_api(&app.a, "/api/v1/orders?status=processing")
            .await
            .json();
        assert_eq!(orders["data"][0]["order_id"], "727");
        let products = app.get_api(&app.a, "/api/v1/products").await.json();
        assert_eq!(
            products["data"][0]["price"],
            json!({"amount": "21.99", "currency": "USD"})
        );
        assert_eq!(
            products["data"][0]["categories"],
            json!(["Clothing", "T-shirts"])
        );

        // Another organisation sees none of it.
        let theirs = app.get_api(&app.b, &format!("/api/v1/profiles/{id}")).await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.get_api(&app.b, "/api/v1/profiles/lookup?user_id=25")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get_api(&app.b, "/api/v1/orders").await.json()["data"],
            json!([])
        );
    }
}

#[tokio::test]
async fn carts_set_tags_until_the_order_and_lists_page_by_seek() {
    for app in apps().await {
        let mut batch = Vec::new();
        for i in 0..7 {
            batch.push(
                json!({"type": "track", "event": "Cart Started", "userId": format!("shopper-{i}"),
                              "timestamp": "2024-02-01T10:00:00Z",
                              "properties": {"products": [{"product_id": "p1", "price": "9.99"}]}}),
            );
        }
        // Events are ordered by their own time (ties by messageId), so the
        // clients' timestamps say which came last.
        batch.push(json!({"type": "track", "event": "Cart Cleared", "userId": "shopper-0", "timestamp": "2024-02-01T10:05:00Z"}));
        batch.push(json!({"type": "track", "event": "Order Completed", "userId": "shopper-1", "timestamp": "2024-02-01T10:06:00Z",
                          "properties": {"order_id": "S-1", "total": "19.98", "currency": "EUR"}}));
        assert_eq!(
            app.post("/v1/batch", json!({"batch": batch}).to_string())
                .await
                .status,
            StatusCode::OK
        );
        app.projected().await;
        let mut ids = Vec::new();
        let mut path = "/api/v1/profiles?tag=ecommerce.in_cart&limit=2".to_owned();
        loop {
            let page = app.get_api(&app.a, &path).await.json();
            for p in page["data"].as_array().unwrap() {
                assert!(p["tags"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("ecommerce.in_cart")));
                ids.push(p["user_id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => {
                    path = format!("/api/v1/profiles?tag=ecommerce.in_cart&limit=2&cursor={c}")
                }
                None => break,
            }
        }
        ids.sort();
        assert_eq!(
            ids,
            [
                "shopper-2",
                "shopper-3",
                "shopper-4",
                "shopper-5",
                "shopper-6"
            ],
            "{}",
            app.backend()
        );
        let buyer = app
            .get_api(&app.a, "/api/v1/profiles/lookup?user_id=shopper-1")
            .await
            .json();
        assert_eq!(
            buyer["metrics"]["total_spent"],
            json!([{"amount": "19.98", "currency": "EUR"}])
        );
        assert!(buyer["cart"].is_null());
    }
}

#[tokio::test]
async fn bad_requests_name_the_field_and_change_nothing() {
    for app in apps().await {
        let mut order = fixture("order");
        order["line_items"][0]["total"] = json!("six");
        let answer = ingest(&app, "order.updated", order).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.json()["error"]["field"],
            "resource.line_items[0].total",
            "{}",
            answer.text()
        );
        let answer = ingest(&app, "coupon.created", fixture("order")).await;
        assert_eq!(answer.json()["error"]["field"], "topic");
        let path = format!("/api/v1/sources/{}/woocommerce", app.a.source.id.as_str());
        let answer = app
            .api(
                &app.a,
                "POST",
                &path,
                Some(json!({"topic": "product.updated", "resource": fixture("product")})),
            )
            .await;
        assert_eq!(
            answer.json()["error"]["field"],
            "currency",
            "a priced product needs the store's currency"
        );
        let answer = app
            .api(&app.a, "POST", &path, Some(json!({"resource": {}})))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        // Another organisation's source is not found.
        let theirs = format!("/api/v1/sources/{}/woocommerce", app.b.source.id.as_str());
        let answer = app
            .api(
                &app.a,
                "POST",
                &theirs,
                Some(json!({"topic": "order.updated", "resource": fixture("order")})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count(&app.a).await, 0, "nothing was stored");

        for (query, field) in [
            ("/api/v1/profiles/lookup?email=a@b.c&user_id=1", "query"),
            ("/api/v1/profiles/lookup?email=nope", "email"),
            ("/api/v1/profiles?min_orders=many", "min_orders"),
            ("/api/v1/profiles?seen_since=yesterday", "seen_since"),
            ("/api/v1/profiles?limit=0", "limit"),
            ("/api/v1/orders?cursor=zzz", "cursor"),
        ] {
            let answer = app.get_api(&app.a, query).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(
                answer.json()["error"]["field"],
                field,
                "{query}: {}",
                answer.text()
            );
        }
        assert_eq!(
            app.get_api(&app.a, "/api/v1/profiles/prof_nope")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        let anonymous = app
            .send(
                axum::http::Request::get("/api/v1/profiles")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn merged_profile_ids_lead_to_the_survivor() {
    for app in apps().await {
        let first = json!({"batch": [{"type": "page", "anonymousId": "tab-1", "timestamp": "2024-01-01T00:00:00Z"},
                                     {"type": "identify", "userId": "mia", "timestamp": "2024-01-01T00:01:00Z", "traits": {"email": "mia@example.com"}}]});
        app.post("/v1/batch", first.to_string()).await;
        app.projected().await;
        let visitor = app
            .get_api(&app.a, "/api/v1/profiles/lookup?anonymous_id=tab-1")
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mia = app
            .get_api(&app.a, "/api/v1/profiles/lookup?user_id=mia")
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(visitor, mia);
        let link = json!({"type": "identify", "anonymousId": "tab-1", "userId": "mia", "messageId": "the-link", "timestamp": "2024-01-01T00:02:00Z"});
        app.post("/v1/identify", link.to_string()).await;
        app.projected().await;
        let merged = app
            .get_api(&app.a, &format!("/api/v1/profiles/{mia}"))
            .await
            .json();
        assert_eq!(merged["id"], visitor.as_str(), "the older profile survives");
        assert_eq!(merged["requested_id"], mia.as_str());
        assert_eq!(merged["merged_from"][0]["message_id"], "the-link");
        assert_eq!(merged["merged_from"][0]["profile_id"], mia.as_str());
        let events = app
            .get_api(&app.a, &format!("/api/v1/profiles/{visitor}/events"))
            .await
            .json();
        assert_eq!(
            events["data"].as_array().unwrap().len(),
            3,
            "the merged profile's events followed"
        );
    }
}

#[tokio::test]
async fn export_then_erase_and_a_later_event_starts_a_flagged_profile() {
    for app in apps().await {
        shop_history(&app).await;
        let id = app
            .get_api(&app.a, "/api/v1/profiles/lookup?user_id=25")
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let export = app
            .get_api(&app.a, &format!("/api/v1/profiles/{id}/export"))
            .await;
        assert_eq!(export.status, StatusCode::OK);
        assert!(export.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&id));
        let export = export.json();
        assert_eq!(export["profile"]["id"], id.as_str());
        assert_eq!(export["orders"].as_array().unwrap().len(), 1);
        assert!(export["events"].as_array().unwrap().len() >= 10);

        let erased = app
            .api(&app.a, "DELETE", &format!("/api/v1/profiles/{id}"), None)
            .await;
        assert_eq!(erased.status, StatusCode::OK, "{}", erased.text());
        let report = erased.json();
        assert!(report["events"].as_i64().unwrap() >= 10);
        assert!(
            !report.to_string().contains("john"),
            "the audit record holds no personal data"
        );
        assert_eq!(
            app.get_api(&app.a, &format!("/api/v1/profiles/{id}"))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get_api(&app.a, "/api/v1/profiles/lookup?email=john.doe@example.com")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get_api(&app.a, "/api/v1/orders").await.json()["data"],
            json!([])
        );
        let raw = app.events(&app.a).await;
        assert!(
            !serde_json::to_string(&raw)
                .unwrap()
                .to_lowercase()
                .contains("john"),
            "raw events hold no personal data"
        );
        assert_eq!(
            app.api(&app.a, "DELETE", &format!("/api/v1/profiles/{id}"), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );

        app.post(
            "/v1/track",
            json!({"userId": "25", "event": "Came Back"}).to_string(),
        )
        .await;
        app.projected().await;
        let fresh = app
            .get_api(&app.a, "/api/v1/profiles/lookup?user_id=25")
            .await
            .json();
        assert_ne!(fresh["id"], id.as_str());
        assert_eq!(fresh["previously_erased"], true);
        assert!(
            fresh["traits"].get("plan").is_none(),
            "erased data is not resurrected"
        );
    }
}
