//! No-plugin mode (connect.md §6) through the real `cohort` binary, on
//! SQLite and PostgreSQL: `cohort store connect-rest`, and webhook
//! deliveries acknowledged with 200 surviving a `kill -9` right after.
//!
//! The import of a real WooCommerce store is `a_real_woocommerce_store_is_imported_without_the_plugin`:
//! it runs only when `COHORT_WOOCOMMERCE_DIR` points at an unpacked
//! WooCommerce (7.8.2 verified) and skips loudly otherwise.

mod common;

use std::process::Output;

use base64::Engine;
use cohort_store::destinations::SecretsKey;
use cohort_store::woocommerce_rest::{CallbackKeys, CallbackOutcome};
use common::{databases, Server};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn cohort(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"));
    command.args(args).current_dir(dir.path()).env("COHORT_DATABASE__URL", database_url);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run cohort")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn order_fixture() -> Value {
    let path = format!("{}/../../../shared/fixtures/wc-rest-v3-order.docs-example.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn connect_rest_prints_the_authorize_url_with_a_one_time_state() {
    for t in databases().await {
        let org = t.db.create_organisation("Shop Co").await.unwrap();
        let env = [("COHORT_SERVER__PUBLIC_URL", "https://cdp.example")];
        let printed = stdout(&cohort(&t.url, &["store", "connect-rest", "HTTPS://Shop.Example/"], &env));
        let mut lines = printed.lines();
        let first = lines.next().unwrap();
        assert!(first.starts_with("ins_"), "{printed}");
        let url = lines.next().unwrap();
        assert!(url.starts_with("https://shop.example/wc-auth/v1/authorize?app_name=Cohort&scope=read_write&user_id=wcs_"), "{url}");
        assert!(url.contains("callback_url=https%3A%2F%2Fcdp.example%2Fconnect%2Fv1%2Fwoocommerce%2Fcallback"), "{url}");
        // The state in the URL is the one the callback accepts, once.
        let state = url.split("user_id=").nth(1).unwrap().split('&').next().unwrap();
        let key = SecretsKey::generate();
        let keys = CallbackKeys { key_id: 1, consumer_key: "ck_a".into(), consumer_secret: "cs_b".into(), key_permissions: "read_write".into() };
        let outcome = t.db.complete_rest_connection(&key, state, &keys).await.unwrap();
        let installation = first.split('\t').next().unwrap();
        assert_eq!(outcome, CallbackOutcome::Connected { installation_id: installation.to_owned(), org_id: org.id.clone() });
        assert_eq!(t.db.complete_rest_connection(&key, state, &keys).await.unwrap(), CallbackOutcome::AlreadyUsed);

        let bad = cohort(&t.url, &["store", "connect-rest", "ftp://shop.example"], &env);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("not an http"), "{}", String::from_utf8_lossy(&bad.stderr));
    }
}

/// Every delivery answered 200 is in the log after the server is killed
/// with SIGKILL straight after the last answer: the receiver answers only
/// once the event writer has committed it.
#[tokio::test]
async fn deliveries_answered_200_survive_kill_9() {
    for t in databases().await {
        let org = t.db.create_organisation("Shop Co").await.unwrap();
        let key = SecretsKey::generate();
        let started = t.db.start_rest_connection(&org.id, "http://127.0.0.1:9", "http://127.0.0.1:9", None).await.unwrap();
        let keys = CallbackKeys { key_id: 1, consumer_key: "ck_a".into(), consumer_secret: "cs_b".into(), key_permissions: "read_write".into() };
        t.db.complete_rest_connection(&key, &started.state, &keys).await.unwrap();
        t.db.set_rest_webhook_secret(&key, &started.installation_id, "hook_secret").await.unwrap();
        let key_text = key.to_base64();
        let mut server = Server::start(
            &t.url,
            &[("COHORT_DESTINATIONS__KEY", key_text.as_str()), ("COHORT_WOOCOMMERCE__REST_WORKER_ENABLED", "false")],
        )
        .await;

        let client = reqwest::Client::new();
        let url = format!("{}/hooks/woocommerce/{}", server.url, started.installation_id);
        let mut sends = Vec::new();
        for id in 1..=60 {
            let mut order = order_fixture();
            order["id"] = json!(id);
            let body = order.to_string();
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-wc-webhook-topic", "order.updated")
                .header("x-wc-webhook-signature", sign("hook_secret", body.as_bytes()))
                .body(body);
            sends.push(async move { request.send().await.map(|r| r.status().as_u16()) });
        }
        let statuses = futures::future::join_all(sends).await;
        server.kill9();
        server.wait().await;
        assert!(statuses.iter().all(|s| matches!(s, Ok(200))), "{statuses:?}");
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE org_id = $1 AND type = 'resource'")
            .bind(org.id.as_str())
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(stored, 60, "{}: every acknowledged delivery is in the log", t.backend().as_str());
    }
}
