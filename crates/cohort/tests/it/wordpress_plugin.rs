//! The WordPress plugin (`plugins/wordpress/cohort-connect`) in a real
//! WordPress against the real `cohort serve`, on SQLite and PostgreSQL
//! (issue 6): Debian's `wordpress` on PHP's built-in server and a MariaDB of
//! the test's own (`tests/wordpress/site.sh`), driven in Debian's Chromium by
//! `tests/clients/wordpress_plugin.mjs` through both admin pages, the
//! plugin's and Cohort's authorize page.
//!
//! What a merchant would check: activation; pairing (deny, then approve) with
//! the same code on both sides and "Connected to <organisation>"; the SDK
//! injected async with a page view arriving, and a signed-in visitor
//! identified; the heartbeat recorded and the installation healthy; Cohort
//! down for a while, then up: every call the plugin queued meanwhile
//! delivered, each event once; disconnect revokes (the old token gets 401);
//! a token revoked on Cohort's side puts the plugin in "disconnected";
//! deactivate keeps the connection; deleting the plugin revokes and leaves no
//! option, table or cron event; no PHP notice caused by the plugin with
//! WP_DEBUG on.
//!
//! Without WordPress, MariaDB, PHP, Chromium or playwright-core it skips
//! loudly, unless COHORT_TEST_REQUIRE_WORDPRESS=1 (set by scripts/test.sh).

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use cohort_domain::discounts::signing;
use common::wordpress::{self, drive, eventually, free_port, WordPress};
use common::{admin_call, all_events, api_token, databases, Server};
use serde_json::{json, Value};
const ACCOUNT_EMAIL: &str = "owner@shop.test";
const ACCOUNT_PASSWORD: &str = "correct horse battery";

async fn installations(url: &str, token: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/installations"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("installations: {body}"))
}

/// How many stored events carry each messageId.
async fn stored_message_ids(url: &str, token: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in all_events(url, token).await {
        let id = event["message_id"]
            .as_str()
            .or(event["messageId"].as_str())
            .unwrap_or_default()
            .to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

async fn events_named(url: &str, token: &str, name: &str) -> Vec<Value> {
    all_events(url, token)
        .await
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

async fn heartbeat_status(url: &str, token: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{url}/connect/v1/heartbeat"))
        .bearer_auth(token)
        .json(&json!({"plugin_version": "0.1.0", "wp_version": "6.1", "php_version": "8.2"}))
        .send()
        .await
        .unwrap()
        .status()
}

/// One call to the plugin's discount routes with the given headers: (status, WordPress's error code, its reason).
async fn store_call(
    wp_url: &str,
    method: &str,
    request_uri: &str,
    body: &str,
    headers: &[(&str, String)],
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new()
        .request(method, format!("{wp_url}{request_uri}"))
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, json!([body["code"], body["data"]["reason"]]))
}

fn signed(
    secret: &str,
    timestamp: i64,
    nonce: &str,
    method: &str,
    request_uri: &str,
    body: &str,
) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    vec![
        (signing::TIMESTAMP_HEADER, ts.clone()),
        (signing::NONCE_HEADER, nonce.to_owned()),
        (
            signing::SIGNATURE_HEADER,
            signing::signature(secret, &ts, nonce, method, request_uri, body.as_bytes()),
        ),
    ]
}

/// The plugin's check of connect.md §5, call by call: a good signature gets
/// past it (to "WooCommerce is not active"); the same call again, an old
/// timestamp, another secret, another body or URI than signed, and no
/// headers are 401 `cohort_bad_signature` with the reason.
async fn signed_calls_refused_by_the_plugin(wp_url: &str, secret: &str) {
    let now = chrono::Utc::now().timestamp();
    let uri = "/?rest_route=/cohort/v1/discounts/1";
    let good = signed(secret, now, "nonce-aaaaaaaaaaaaaaaa", "GET", uri, "");
    assert_eq!(
        store_call(wp_url, "GET", uri, "", &good).await,
        (503, json!(["cohort_woocommerce_inactive", null])),
        "a good signature passes"
    );
    let refused = |reason: &str| (401, json!(["cohort_bad_signature", reason]));
    assert_eq!(
        store_call(wp_url, "GET", uri, "", &good).await,
        refused("replayed_nonce"),
        "the same nonce twice"
    );
    let stale = signed(secret, now - 400, "nonce-bbbbbbbbbbbbbbbb", "GET", uri, "");
    assert_eq!(
        store_call(wp_url, "GET", uri, "", &stale).await,
        refused("stale_timestamp")
    );
    let future = signed(secret, now + 400, "nonce-cccccccccccccccc", "GET", uri, "");
    assert_eq!(
        store_call(wp_url, "GET", uri, "", &future).await,
        refused("stale_timestamp")
    );
    let other_secret = signed(
        "not-the-secret",
        now,
        "nonce-dddddddddddddddd",
        "GET",
        uri,
        "",
    );
    assert_eq!(
        store_call(wp_url, "GET", uri, "", &other_secret).await,
        refused("signature_mismatch")
    );
    let create = "/?rest_route=/cohort/v1/discounts";
    let body_signed = signed(
        secret,
        now,
        "nonce-eeeeeeeeeeeeeeee",
        "POST",
        create,
        r#"{"code":"A","kind":"percentage","amount":"10"}"#,
    );
    let tampered = r#"{"code":"A","kind":"percentage","amount":"99"}"#;
    assert_eq!(
        store_call(wp_url, "POST", create, tampered, &body_signed).await,
        refused("signature_mismatch"),
        "another body than signed"
    );
    let uri_signed = signed(secret, now, "nonce-ffffffffffffffff", "GET", uri, "");
    assert_eq!(
        store_call(
            wp_url,
            "GET",
            "/?rest_route=/cohort/v1/discounts/2",
            "",
            &uri_signed
        )
        .await,
        refused("signature_mismatch"),
        "another URI than signed"
    );
    let method_signed = signed(secret, now, "nonce-gggggggggggggggg", "GET", uri, "");
    assert_eq!(
        store_call(wp_url, "DELETE", uri, "", &method_signed).await,
        refused("signature_mismatch"),
        "another method than signed"
    );
    assert_eq!(
        store_call(wp_url, "GET", uri, "", &[]).await,
        refused("missing_headers")
    );
    let short_nonce = signed(secret, now, "short", "GET", uri, "");
    assert_eq!(
        store_call(wp_url, "GET", uri, "", &short_nonce).await,
        refused("bad_nonce")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_in_a_real_wordpress() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    if !wordpress::available("the WordPress plugin end-to-end test") {
        return;
    }
    for test_db in databases().await {
        run_scenario(&test_db).await;
    }
}

async fn run_scenario(test_db: &cohort_testkit::TestDb) {
    let backend = format!("{:?}", test_db.backend());
    eprintln!("wordpress_plugin: {backend}");
    let cohort_port = free_port();
    let listen = format!("127.0.0.1:{cohort_port}");
    let env = [
        ("COHORT_SERVER__LISTEN", listen.as_str()),
        ("COHORT_DESTINATIONS__ENABLED", "false"),
        // The WordPress under test listens on 127.0.0.1.
        ("COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES", "true"),
    ];
    let mut cohort = Server::start(&test_db.url, &env).await;
    let url = cohort.url.clone();
    let token = api_token(&test_db.db).await;
    let wp = WordPress::start().await;

    // Activation, and the Cohort URL saved through the Settings API.
    let activated = drive("activate", &wp, &url, json!({})).await;
    assert!(
        activated["activatedNotice"]
            .as_str()
            .unwrap()
            .contains("Plugin activated"),
        "{activated:#}"
    );
    assert_eq!(activated["savedUrl"], url.as_str());
    assert!(activated["page"]["buttons"]
        .as_array()
        .unwrap()
        .contains(&json!("cohort-connect-start")));
    assert_eq!(wp.php("global $wpdb; echo $wpdb->get_var(\"SHOW TABLES LIKE '{$wpdb->prefix}cohort_connect_outbox'\");").await.trim(), "wp_cohort_connect_outbox");

    // Deny first: WordPress says so, and nothing is connected.
    let account = json!({"email": ACCOUNT_EMAIL, "password": ACCOUNT_PASSWORD});
    let denied = drive(
        "pair",
        &wp,
        &url,
        json!({"account": account, "org": "Default", "decision": "deny"}),
    )
    .await;
    assert_eq!(
        denied["cohortSession"], "created-first-admin",
        "a fresh Cohort offers to create the first admin: {denied:#}"
    );
    assert!(
        denied["page"]["denied"]
            .as_str()
            .is_some_and(|t| t.contains("denied")),
        "{denied:#}"
    );
    assert!(denied["page"]["connected"].is_null());
    assert!(installations(&url, &token)
        .await
        .iter()
        .all(|i| i["status"] != "connected"));

    // Approve: the same code on both sides, "Connected to Default".
    let paired = drive(
        "pair",
        &wp,
        &url,
        json!({"account": account, "org": "Default", "decision": "approve"}),
    )
    .await;
    assert_eq!(
        paired["cohortSession"], "already-signed-in",
        "the Cohort session is kept: {paired:#}"
    );
    let code = paired["cohortCode"].as_str().unwrap();
    assert!(
        code.len() == 9 && code.as_bytes()[4] == b'-',
        "user code {code}"
    );
    assert!(paired["authorizeUrl"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{url}/setup/woocommerce?pairing=")));
    assert!(
        paired["cohortPageText"].as_str().unwrap().contains(&wp.url),
        "Cohort shows the store: {paired:#}"
    );
    assert_eq!(
        paired["page"]["connected"], "✓ Connected to Default",
        "{paired:#}"
    );
    assert!(paired["returnedTo"]
        .as_str()
        .unwrap()
        .contains("cohort_pairing=approved"));
    let connection = wp.option("cohort_connect_connection").await;
    let installation_id = connection["installation_id"].as_str().unwrap().to_owned();
    let first_token = connection["installation_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first heartbeat follows the pairing: Cohort shows the installation healthy, with versions.
    eventually("a first heartbeat", || async {
        installations(&url, &token)
            .await
            .iter()
            .any(|i| i["id"] == installation_id.as_str() && !i["last_heartbeat_at"].is_null())
    })
    .await;
    let listed = installations(&url, &token).await;
    let installation = listed
        .iter()
        .find(|i| i["id"] == installation_id.as_str())
        .unwrap();
    assert_eq!(installation["status"], "connected");
    assert_eq!(installation["health"], "healthy", "{installation:#}");
    assert_eq!(installation["plugin_version"], "0.1.0");
    assert!(installation["wp_version"]
        .as_str()
        .unwrap()
        .starts_with("6."));

    // Cohort's signed calls to the store (connect.md §5), checked by the real plugin: the admin
    // API's call passes the signature and the plugin answers that WooCommerce is missing; every
    // forgery, replay or stale call is refused with 401 before anything runs.
    let discounts = format!("{url}/api/v1/installations/{installation_id}/discounts");
    let (status, body) = admin_call(
        reqwest::Method::GET,
        &format!("{discounts}/1"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("woocommerce_inactive")),
        "{body:#}"
    );
    let (status, body) = admin_call(
        reqwest::Method::POST,
        &discounts,
        &token,
        Some(json!({"code": "WELCOME10", "amount": "10"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("woocommerce_inactive")),
        "{body:#}"
    );
    // The same from the command line: the CLI's client passes the signature too.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(["store", "discount", "get", &installation_id, "1"])
        .env("COHORT_DATABASE__URL", &test_db.url)
        .env("COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES", "true")
        .current_dir(wp.dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&cli.stderr);
    assert!(
        !cli.status.success() && said.contains("WooCommerce is not active"),
        "cohort store discount get: {said}"
    );
    let signing_secret = connection["signing_secret"].as_str().unwrap().to_owned();
    signed_calls_refused_by_the_plugin(&wp.url, &signing_secret).await;

    // Storefront: the SDK from Cohort, async, and a page view arriving.
    let anonymous = drive("storefront", &wp, &url, json!({})).await;
    let tags = anonymous["sdkTag"].as_array().unwrap();
    assert_eq!(tags.len(), 1, "{anonymous:#}");
    assert_eq!(tags[0]["async"], true);
    assert_eq!(anonymous["config"]["apiHost"], url.as_str());
    assert!(anonymous["config"]["user"].is_null());
    let page_view = anonymous["sent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "page")
        .cloned()
        .expect("a page call");
    assert!(
        anonymous["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == 200),
        "{anonymous:#}"
    );
    let stored = stored_message_ids(&url, &token).await;
    assert_eq!(
        stored.get(page_view["messageId"].as_str().unwrap()),
        Some(&1),
        "the page view is stored once"
    );

    // A signed-in visitor: identified by the SDK (user id and email) and "Signed In" from the server side.
    let shopper = drive(
        "storefront",
        &wp,
        &url,
        json!({"user": "shopper", "password": "password", "thenSignOut": true}),
    )
    .await;
    let shopper_id = wp
        .php("echo get_user_by('login', 'shopper')->ID;")
        .await
        .trim()
        .to_owned();
    assert_eq!(shopper["config"]["user"]["email"], "shopper@shop.test");
    let identify = shopper["sent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "identify")
        .cloned()
        .expect("an identify");
    assert_eq!(identify["userId"], shopper_id.as_str());
    assert_eq!(identify["traits"]["email"], "shopper@shop.test");
    // Signed out: the SDK forgets the user (a new anonymous id, no user id).
    let after: Vec<&Value> = shopper["afterSignOut"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "page")
        .collect();
    assert!(
        shopper["configAfterSignOut"]["user"].is_null(),
        "{shopper:#}"
    );
    assert!(
        !after.is_empty()
            && after
                .iter()
                .all(|m| m["userId"].is_null() && m["anonymousId"] != identify["anonymousId"]),
        "{shopper:#}"
    );
    eventually("Signed In stored", || async {
        !events_named(&url, &token, "Signed In").await.is_empty()
    })
    .await;
    let signed_in = events_named(&url, &token, "Signed In").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(
        signed_in[0]["user_id"]
            .as_str()
            .or(signed_in[0]["userId"].as_str()),
        Some(shopper_id.as_str())
    );

    // The heartbeat through WordPress's own cron runner.
    let before = installations(&url, &token).await[0]["last_heartbeat_at"].clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    wp.run_cron_event("cohort_connect_heartbeat").await;
    eventually("a newer heartbeat", || async {
        installations(&url, &token)
            .await
            .iter()
            .any(|i| i["id"] == installation_id.as_str() && i["last_heartbeat_at"] != before)
    })
    .await;

    // Cohort down: sign-ups, a sign-in and heartbeats wait in the outbox.
    cohort.kill9();
    cohort.wait().await;
    let mut new_users = Vec::new();
    for n in 1..=3 {
        let id = wp
            .php(&format!(
                "echo wp_insert_user(array('user_login' => 'buyer{n}', 'user_pass' => 'password', 'user_email' => 'buyer{n}@shop.test', 'first_name' => 'Buyer{n}'));"
            ))
            .await;
        new_users.push(id.trim().to_owned());
    }
    let offline = drive(
        "storefront",
        &wp,
        &url,
        json!({"user": "buyer1", "password": "password"}),
    )
    .await;
    assert_eq!(
        offline["title"], "Cohort Test Shop",
        "the shop works while Cohort is down: {offline:#}"
    );
    wp.run_cron_event("cohort_connect_heartbeat").await;
    wp.run_cron_event("cohort_connect_heartbeat").await;
    let waiting = drive("admin-page", &wp, &url, json!({})).await;
    // Three sign-ups (one call each), one sign-in, one heartbeat (a queued heartbeat is replaced).
    assert_eq!(waiting["page"]["outboxDepth"], "5", "{waiting:#}");
    let failures = waiting["page"]["failures"].as_array().unwrap();
    assert!(
        !failures.is_empty()
            && failures
                .iter()
                .all(|f| f.as_str().unwrap().contains("will retry")),
        "{waiting:#}"
    );
    assert_eq!(
        waiting["page"]["connected"], "✓ Connected to Default",
        "network errors do not disconnect"
    );

    // Cohort back on the same address and database; "Retry now" sends everything.
    let mut cohort = Server::start(&test_db.url, &env).await;
    assert_eq!(cohort.url, url);
    let retried = drive("admin-page", &wp, &url, json!({"click": "retry"})).await;
    assert_eq!(retried["page"]["outboxDepth"], "0", "{retried:#}");
    let signed_up = events_named(&url, &token, "Signed Up").await;
    let mut signed_up_users: Vec<String> = signed_up
        .iter()
        .map(|e| {
            e["user_id"]
                .as_str()
                .or(e["userId"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    signed_up_users.sort();
    let mut expected_users = new_users.clone();
    expected_users.sort();
    assert_eq!(
        signed_up_users, expected_users,
        "each sign-up delivered once"
    );
    assert_eq!(
        events_named(&url, &token, "Signed In").await.len(),
        2,
        "the sign-in made while Cohort was down arrived once"
    );
    let stored = stored_message_ids(&url, &token).await;
    assert!(stored.values().all(|n| *n == 1), "no message stored twice");

    // Disconnect revokes: the old token gets 401, Cohort shows it disconnected.
    let disconnected = drive("admin-page", &wp, &url, json!({"click": "disconnect"})).await;
    assert!(
        disconnected["page"]["disconnected"].is_string(),
        "{disconnected:#}"
    );
    assert!(disconnected["page"]["notices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("revoked")));
    assert_eq!(
        heartbeat_status(&url, &first_token).await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    let listed = installations(&url, &token).await;
    assert_eq!(
        listed
            .iter()
            .find(|i| i["id"] == installation_id.as_str())
            .unwrap()["status"],
        "disconnected"
    );
    assert!(wp.option("cohort_connect_connection").await.is_null());

    // Reconnect; then Cohort revokes the token behind the plugin's back: the
    // next call gets 401 and the plugin says it is disconnected, everywhere in wp-admin.
    let again = drive(
        "pair",
        &wp,
        &url,
        json!({"account": account, "org": "Default", "decision": "approve"}),
    )
    .await;
    assert_eq!(
        again["page"]["connected"], "✓ Connected to Default",
        "{again:#}"
    );
    let revoked_token = wp.option("cohort_connect_connection").await["installation_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = reqwest::Client::new()
        .delete(format!("{url}/connect/v1/installation"))
        .bearer_auth(&revoked_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), reqwest::StatusCode::NO_CONTENT);
    wp.run_cron_event("cohort_connect_heartbeat").await;
    let revoked = drive("admin-page", &wp, &url, json!({})).await;
    assert!(
        revoked["page"]["revoked"]
            .as_str()
            .is_some_and(|t| t.starts_with("Disconnected.")),
        "{revoked:#}"
    );
    assert!(
        revoked["page"]["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("401")),
        "{revoked:#}"
    );
    assert!(
        revoked["page"]["buttons"]
            .as_array()
            .unwrap()
            .contains(&json!("cohort-connect-start")),
        "it offers to reconnect"
    );
    let elsewhere = drive(
        "admin-page",
        &wp,
        &url,
        json!({"path": "/wp-admin/index.php"}),
    )
    .await;
    assert!(
        elsewhere["page"]["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n
                .as_str()
                .unwrap()
                .contains("Cohort Connect is disconnected")),
        "{elsewhere:#}"
    );

    // Reconnect, then deactivate: nothing is sent, the connection is kept.
    let again = drive(
        "pair",
        &wp,
        &url,
        json!({"account": account, "org": "Default", "decision": "approve"}),
    )
    .await;
    assert_eq!(
        again["page"]["connected"], "✓ Connected to Default",
        "{again:#}"
    );
    let second_token = wp.option("cohort_connect_connection").await["installation_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_token, first_token);
    drive("deactivate", &wp, &url, json!({})).await;
    assert!(
        wp.option("cohort_connect_connection").await["installation_token"].is_string(),
        "deactivate keeps the connection"
    );
    let cron = wp.php("echo wp_json_encode(array(wp_next_scheduled('cohort_connect_outbox'), wp_next_scheduled('cohort_connect_heartbeat')));").await;
    assert_eq!(
        cron.trim(),
        "[false,false]",
        "deactivate stops the cron events"
    );
    // A store without the discount routes (here: the plugin inactive) is "plugin update required".
    let current = wp.option("cohort_connect_connection").await["installation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = admin_call(
        reqwest::Method::GET,
        &format!("{url}/api/v1/installations/{current}/discounts/1"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("plugin_update_required")),
        "{body:#}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plugin update required"),
        "{body:#}"
    );

    // Delete (WordPress runs uninstall.php): revoked on Cohort, nothing left behind.
    let deleted = drive("delete", &wp, &url, json!({})).await;
    assert_eq!(deleted["rowsLeft"], 0, "{deleted:#}");
    assert!(
        deleted["deletedMessage"]
            .as_str()
            .unwrap()
            .contains("successfully deleted"),
        "{deleted:#}"
    );
    assert_eq!(
        heartbeat_status(&url, &second_token).await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    let leftovers = wp
        .php(
            "global $wpdb; echo wp_json_encode(array(\
               'options' => $wpdb->get_col(\"SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE '%cohort%'\"),\
               'tables' => $wpdb->get_col(\"SHOW TABLES LIKE '%cohort%'\"),\
               'cron' => array_values(array_filter(array_merge(...array_map('array_keys', array_values(array_filter(_get_cron_array(), 'is_array')))), fn($h) => str_contains($h, 'cohort'))),\
             ));",
        )
        .await;
    let leftovers: Value = serde_json::from_str(leftovers.trim()).unwrap();
    assert_eq!(
        leftovers,
        json!({"options": [], "tables": [], "cron": []}),
        "uninstall leaves nothing"
    );

    // WP_DEBUG was on throughout: no notice, warning or deprecation caused by the plugin.
    let plugin_errors = wp.log("plugin-errors.log");
    assert!(
        plugin_errors.is_empty(),
        "PHP errors caused by the plugin:\n{plugin_errors}"
    );
    let debug_log = wp.log("debug.log");
    let ours: Vec<&str> = debug_log
        .lines()
        .filter(|l| l.contains("cohort-connect"))
        .collect();
    assert!(
        ours.is_empty(),
        "debug.log names the plugin:\n{}",
        ours.join("\n")
    );
    eprintln!(
        "wordpress_plugin: {backend}: passed; debug.log has {} lines from WordPress core itself (PHP 8.2 deprecations, offline update checks)",
        debug_log.lines().count()
    );

    cohort.sigterm();
    cohort.wait().await;
    drop(wp);
}
