//! Profiles through the real binary on both databases: events sent to a
//! running server show up on profiles; `cohort reproject` rebuilds the same
//! profiles and orders from the log; `cohort profile show|export|erase`.

use crate::common;

use std::process::Output;
use std::time::Duration;

use common::{api_token, databases, Server};
use serde_json::{json, Value};

fn cohort(database_url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(args)
        .current_dir(dir.path())
        .env("COHORT_DATABASE__URL", database_url)
        .output()
        .expect("run cohort");
    assert!(
        output.status.success(),
        "cohort {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

async fn get(url: &str, token: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Everything the API shows of profiles and orders.
async fn projection(url: &str, token: &str) -> Value {
    json!({
        "profiles": get(url, token, "/api/v1/profiles?limit=1000").await,
        "orders": get(url, token, "/api/v1/orders?limit=1000").await,
        "products": get(url, token, "/api/v1/products?limit=1000&include_deleted=true").await,
    })
}

#[tokio::test]
async fn reproject_rebuilds_what_the_live_projection_built() {
    for t in databases().await {
        let server = Server::start(&t.url, &[]).await;
        let key = server.printed_write_key();
        let token = api_token(&t.db).await;
        let client = reqwest::Client::new();
        let mut batch = Vec::new();
        for i in 0..40 {
            batch.push(json!({"type": "page", "anonymousId": format!("a{}", i % 12), "timestamp": format!("2024-03-01T10:{:02}:00Z", i)}));
            if i % 5 == 0 {
                batch.push(json!({"type": "identify", "anonymousId": format!("a{}", i % 12), "userId": format!("u{}", i % 4),
                                  "traits": {"email": format!("p{}@example.com", i % 4), "step": i},
                                  "timestamp": format!("2024-03-01T10:{:02}:30Z", i)}));
            }
            if i % 7 == 0 {
                batch.push(json!({"type": "track", "event": "Order Completed", "anonymousId": format!("a{}", i % 12),
                                  "properties": {"order_id": format!("o{i}"), "total": "12.30", "currency": "EUR"},
                                  "timestamp": format!("2024-03-01T10:{:02}:45Z", i)}));
            }
        }
        let sent = client
            .post(format!("{}/v1/batch", server.url))
            .basic_auth(&key, Some(""))
            .json(&json!({"batch": batch}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
        let source = get(&server.url, &token, "/api/v1/events?limit=1").await["data"][0]
            ["source_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let order: Value = serde_json::from_str(include_str!(
            "../../../../../shared/fixtures/wc-rest-v3-order.docs-example.json"
        ))
        .unwrap();
        let posted = client
            .post(format!(
                "{}/api/v1/sources/{source}/woocommerce",
                server.url
            ))
            .bearer_auth(&token)
            .json(&json!({"topic": "order.updated", "resource": order}))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);

        // The live projection, once it has caught up (derived events included).
        let mut live = Value::Null;
        for _ in 0..200 {
            let (cursor, last) = t.db.projection_position().await.unwrap();
            let guest = get(
                &server.url,
                &token,
                "/api/v1/profiles/lookup?email=john.doe@example.com",
            )
            .await;
            if cursor >= last && guest["metrics"]["order_count"] == 1 {
                live = projection(&server.url, &token).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !live.is_null(),
            "the projection did not catch up ({:?})",
            t.backend()
        );
        assert!(live["profiles"]["data"].as_array().unwrap().len() >= 5);
        server.sigterm();

        let output = cohort(&t.url, &["reproject"]);
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(printed.starts_with("reprojected "), "{printed}");

        let server = Server::start(&t.url, &[]).await;
        assert_eq!(
            projection(&server.url, &token).await,
            live,
            "{:?}: the rebuild differs from the live projection",
            t.backend()
        );

        // The CLI finds, exports and erases a person.
        let shown: Value =
            serde_json::from_slice(&cohort(&t.url, &["profile", "show", "--user-id", "u1"]).stdout)
                .unwrap();
        assert_eq!(shown["user_id"], "u1");
        let export: Value = serde_json::from_slice(
            &cohort(&t.url, &["profile", "export", "--email", "P1@example.com"]).stdout,
        )
        .unwrap();
        assert_eq!(export["profile"]["id"], shown["id"]);
        assert!(!export["events"].as_array().unwrap().is_empty());
        let erased = cohort(&t.url, &["profile", "erase", shown["id"].as_str().unwrap()]);
        assert!(String::from_utf8_lossy(&erased.stdout).starts_with("erased profile"));
        let gone = get(&server.url, &token, "/api/v1/profiles/lookup?user_id=u1").await;
        assert_eq!(gone["error"]["code"], "not_found");
    }
}
