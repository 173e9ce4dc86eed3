//! No-plugin mode (connect.md §6) through the real `cohort` binary, on
//! SQLite and PostgreSQL: `cohort store connect-rest`, and webhook
//! deliveries acknowledged with 200 surviving a `kill -9` right after.
//!
//! The import of a real WooCommerce store is `a_real_woocommerce_store_is_imported_without_the_plugin`:
//! it runs only when `COHORT_WOOCOMMERCE_DIR` points at an unpacked
//! WooCommerce (7.8.2 verified) and skips loudly otherwise.

use crate::common;

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
    command
        .args(args)
        .current_dir(dir.path())
        .env("COHORT_DATABASE__URL", database_url);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run cohort")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn order_fixture() -> Value {
    let path = format!(
        "{}/../../../shared/fixtures/wc-rest-v3-order.docs-example.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn connect_rest_prints_the_authorize_url_with_a_one_time_state() {
    for t in databases().await {
        let org = t.db.create_organisation("Shop Co").await.unwrap();
        let env = [("COHORT_SERVER__PUBLIC_URL", "https://cdp.example")];
        let printed = stdout(&cohort(
            &t.url,
            &["store", "connect-rest", "HTTPS://Shop.Example/"],
            &env,
        ));
        let mut lines = printed.lines();
        let first = lines.next().unwrap();
        assert!(first.starts_with("ins_"), "{printed}");
        let url = lines.next().unwrap();
        assert!(url.starts_with("https://shop.example/wc-auth/v1/authorize?app_name=Cohort&scope=read_write&user_id=wcs_"), "{url}");
        assert!(
            url.contains(
                "callback_url=https%3A%2F%2Fcdp.example%2Fconnect%2Fv1%2Fwoocommerce%2Fcallback"
            ),
            "{url}"
        );
        // The state in the URL is the one the callback accepts, once.
        let state = url
            .split("user_id=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let key = SecretsKey::generate();
        let keys = CallbackKeys {
            key_id: 1,
            consumer_key: "ck_a".into(),
            consumer_secret: "cs_b".into(),
            key_permissions: "read_write".into(),
        };
        let outcome =
            t.db.complete_rest_connection(&key, state, &keys)
                .await
                .unwrap();
        let installation = first.split('\t').next().unwrap();
        assert_eq!(
            outcome,
            CallbackOutcome::Connected {
                installation_id: installation.to_owned(),
                org_id: org.id.clone()
            }
        );
        assert_eq!(
            t.db.complete_rest_connection(&key, state, &keys)
                .await
                .unwrap(),
            CallbackOutcome::AlreadyUsed
        );

        let bad = cohort(
            &t.url,
            &["store", "connect-rest", "ftp://shop.example"],
            &env,
        );
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("not an http"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
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
        let started =
            t.db.start_rest_connection(&org.id, "http://127.0.0.1:9", "http://127.0.0.1:9", None)
                .await
                .unwrap();
        let keys = CallbackKeys {
            key_id: 1,
            consumer_key: "ck_a".into(),
            consumer_secret: "cs_b".into(),
            key_permissions: "read_write".into(),
        };
        t.db.complete_rest_connection(&key, &started.state, &keys)
            .await
            .unwrap();
        t.db.set_rest_webhook_secret(&key, &started.installation_id, "hook_secret")
            .await
            .unwrap();
        let key_text = key.to_base64();
        let mut server = Server::start(
            &t.url,
            &[
                ("COHORT_DESTINATIONS__KEY", key_text.as_str()),
                ("COHORT_WOOCOMMERCE__REST_WORKER_ENABLED", "false"),
            ],
        )
        .await;

        let client = reqwest::Client::new();
        let url = format!(
            "{}/hooks/woocommerce/{}",
            server.url, started.installation_id
        );
        let mut sends = Vec::new();
        for id in 1..=60 {
            let mut order = order_fixture();
            order["id"] = json!(id);
            let body = order.to_string();
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-wc-webhook-topic", "order.updated")
                .header(
                    "x-wc-webhook-signature",
                    sign("hook_secret", body.as_bytes()),
                )
                .body(body);
            sends.push(async move { request.send().await.map(|r| r.status().as_u16()) });
        }
        let statuses = futures::future::join_all(sends).await;
        server.kill9();
        server.wait().await;
        assert!(
            statuses.iter().all(|s| matches!(s, Ok(200))),
            "{statuses:?}"
        );
        let stored: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE org_id = $1 AND type = 'resource'",
        )
        .bind(org.id.as_str())
        .fetch_one(t.db.pool())
        .await
        .unwrap();
        assert_eq!(
            stored,
            60,
            "{}: every acknowledged delivery is in the log",
            t.backend().as_str()
        );
    }
}

/// PHP creating the store's data through WooCommerce's own CRUD API: three
/// products, a registered customer with a processing order, and a guest
/// order completed straight away. Prints the ids and WooCommerce's totals.
const CREATE_STORE_DATA: &str = r#"
wp_set_current_user( 1 );
$ids = array();
foreach ( array( array( 'Blue T-Shirt', '19.90' ), array( 'Mug', '7.25' ), array( 'Poster', '12.00' ) ) as $i => $p ) {
    $product = new WC_Product_Simple();
    $product->set_name( $p[0] );
    $product->set_regular_price( $p[1] );
    $product->set_sku( 'SKU-' . $i );
    $product->save();
    $ids[] = $product->get_id();
}
$customer = new WC_Customer();
$customer->set_email( 'rita@shop.test' );
$customer->set_username( 'rita' );
$customer->set_password( 'pw-rita-123456' );
$customer->set_first_name( 'Rita' );
$customer->set_billing_email( 'rita@shop.test' );
$customer->save();
$registered = wc_create_order( array( 'customer_id' => $customer->get_id() ) );
$registered->add_product( wc_get_product( $ids[0] ), 2 );
$registered->set_billing_email( 'rita@shop.test' );
$registered->calculate_totals();
$registered->set_status( 'processing' );
$registered->save();
$guest = wc_create_order();
$guest->add_product( wc_get_product( $ids[1] ), 3 );
$guest->add_product( wc_get_product( $ids[2] ), 1 );
$guest->set_billing_email( 'guest@shop.test' );
$guest->set_billing_first_name( 'Gus' );
$guest->calculate_totals();
$guest->set_status( 'completed' );
$guest->save();
// WordPress serves /wp-json/ only with pretty permalinks.
update_option( 'permalink_structure', '/%postname%/' );
flush_rewrite_rules();
echo wp_json_encode( array(
    'registered' => array( $registered->get_id(), wc_format_decimal( $registered->get_total(), wc_get_price_decimals() ) ),
    'guest' => array( $guest->get_id(), wc_format_decimal( $guest->get_total(), wc_get_price_decimals() ) ),
) );
"#;

/// Imports a real WooCommerce store without the plugin, then sees a change
/// arrive through a real webhook.
///
/// The authorize step needs a signed-in administrator to click "Approve";
/// instead of driving a browser, the test runs WooCommerce's own code for
/// what that click does: `WC_Auth::create_keys()` (the key row, as the
/// administrator) and `WC_Auth::post_consumer_data()` (the POST to Cohort's
/// callback with `wp_safe_remote_post`), both called through PHP reflection.
/// The callback is on plain http here: WooCommerce's https check belongs to
/// the authorize page, which is the part skipped.
#[tokio::test]
async fn a_real_woocommerce_store_is_imported_without_the_plugin() {
    use common::wordpress::{self, eventually, WordPress};
    let Some(wc_dir) = wordpress::woocommerce_dir("the no-plugin import of a real WooCommerce")
    else {
        return;
    };
    // No browser here: only WordPress, PHP with mysqli and MariaDB.
    let mysqli = std::process::Command::new("php")
        .args(["-r", "exit(extension_loaded('mysqli') ? 0 : 1);"])
        .status()
        .is_ok_and(|s| s.success());
    let parts = [
        (
            "Debian's wordpress",
            std::path::Path::new("/usr/share/wordpress/wp-includes/version.php").exists(),
        ),
        ("php with mysqli", mysqli),
        ("mariadb-server", wordpress::which("mariadbd")),
    ];
    let missing: Vec<&str> = parts
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| *what)
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("COHORT_TEST_REQUIRE_WORDPRESS").as_deref() != Ok("1"),
            "missing {missing:?}"
        );
        cohort_testkit::skip(
            "the no-plugin import of a real WooCommerce",
            &format!("missing {}", missing.join(", ")),
        );
        return;
    }
    let wp = WordPress::start_with_woocommerce(&wc_dir).await;
    let created: Value =
        serde_json::from_str(wp.php(CREATE_STORE_DATA).await.trim()).expect("store data");

    let t = cohort_testkit::sqlite().await;
    let org = t.db.create_organisation("Shop Co").await.unwrap();
    let (_, token) = t.db.create_api_token(&org.id, "test").await.unwrap();
    let token = token.reveal().to_owned();
    let key = SecretsKey::generate();
    let key_text = key.to_base64();
    let server = Server::start(
        &t.url,
        &[
            ("COHORT_DESTINATIONS__KEY", key_text.as_str()),
            ("COHORT_WOOCOMMERCE__POLL_INTERVAL_MS", "200"),
            // The WooCommerce under test listens on 127.0.0.1.
            ("COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES", "true"),
        ],
    )
    .await;
    let started =
        t.db.start_rest_connection(&org.id, &wp.url, &server.url, None)
            .await
            .unwrap();

    // What WooCommerce does when the administrator approves.
    let callback = format!("{}/connect/v1/woocommerce/callback", server.url);
    let approve = format!(
        r#"wp_set_current_user( 1 );
        $auth = new WC_Auth();
        $create = new ReflectionMethod( $auth, 'create_keys' ); $create->setAccessible( true );
        $post = new ReflectionMethod( $auth, 'post_consumer_data' ); $post->setAccessible( true );
        $data = $create->invoke( $auth, 'Cohort', '{state}', 'read_write' );
        echo $post->invoke( $auth, $data, '{callback}' ) ? 'posted' : 'failed';"#,
        state = started.state,
    );
    assert_eq!(
        wp.php(&approve).await.trim(),
        "posted",
        "{}",
        server.output()
    );

    let client = reqwest::Client::new();
    let api = |path: String| {
        let request = client
            .get(format!("{}{path}", server.url))
            .bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let installation = started.installation_id.clone();
    eventually("the history pull is acknowledged", || {
        let api = &api;
        async move {
            let list = api("/api/v1/installations".into()).await;
            list["data"][0]["last_command"]["status"] == json!("done")
        }
    })
    .await;
    let listed = api("/api/v1/installations".into()).await;
    assert_eq!(listed["data"][0]["mode"], json!("rest"));
    assert_eq!(listed["data"][0]["currency"], json!("USD"));
    assert_eq!(
        listed["data"][0]["last_command"]["counts"],
        json!({"products": 3, "customers": 1, "orders": 2}),
        "{listed}"
    );

    eventually("the orders are projected", || {
        let api = &api;
        async move {
            api("/api/v1/orders".into()).await["data"]
                .as_array()
                .is_some_and(|o| o.len() == 2)
        }
    })
    .await;
    let orders = api("/api/v1/orders".into()).await;
    for which in ["registered", "guest"] {
        let (id, total) = (
            created[which][0].to_string(),
            created[which][1].as_str().unwrap().to_owned(),
        );
        let order = orders["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["order_id"] == json!(id))
            .unwrap_or_else(|| panic!("{which} {id}: {orders}"));
        // WooCommerce's PHP total may drop trailing zeros ("39.8"); the REST JSON has "39.80".
        let digits = |s: &str| {
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s.to_owned()
            }
        };
        assert_eq!(
            digits(order["total"]["amount"].as_str().unwrap()),
            digits(&total),
            "{which}: WooCommerce's exact total: {order}"
        );
        assert_eq!(order["total"]["currency"], json!("USD"));
    }
    let products = api("/api/v1/products".into()).await;
    assert_eq!(products["data"].as_array().unwrap().len(), 3, "{products}");
    let completed = api("/api/v1/events?event=Order%20Completed".into()).await;
    assert_eq!(
        completed["data"].as_array().unwrap().len(),
        2,
        "{completed}"
    );

    // The ten webhooks point at Cohort; a status change arrives through one.
    let hooks = wp
        .php("echo wp_json_encode( array_map( function ( $id ) { $w = wc_get_webhook( $id ); return array( $w->get_topic(), $w->get_delivery_url(), $w->get_status() ); }, WC_Data_Store::load( 'webhook' )->search_webhooks() ) );")
        .await;
    let hooks: Vec<(String, String, String)> =
        serde_json::from_str(hooks.trim()).expect("webhooks");
    assert_eq!(hooks.len(), 10, "{hooks:?}");
    let delivery_url = format!("{}/hooks/woocommerce/{installation}", server.url);
    assert!(
        hooks
            .iter()
            .all(|(_, url, status)| *url == delivery_url && status == "active"),
        "{hooks:?}"
    );
    let registered_id = created["registered"][0].as_i64().unwrap();
    wp.php(&format!("wp_set_current_user( 1 ); $o = wc_get_order( {registered_id} ); $o->update_status( 'completed' ); echo 'ok';")).await;
    eventually("the completion arrives by webhook", || {
        let api = &api;
        async move {
            api("/api/v1/events?event=Order%20Fulfilled".into()).await["data"]
                .as_array()
                .is_some_and(|e| e.len() == 2)
        }
    })
    .await;
    assert!(
        server.output().lines().all(|l| !l.contains("ERROR")),
        "{}",
        server.output()
    );
}
