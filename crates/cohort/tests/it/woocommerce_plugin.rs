//! The plugin's WooCommerce side in a real WooCommerce against the real
//! `cohort serve`, on SQLite and PostgreSQL (issue 7): a site connected as
//! plain WordPress gains WooCommerce and accepts the upgrade offer; the
//! initial sync Cohort then queues brings products, customers, guest buyers
//! and orders with exact totals; live changes (a product, an order paid,
//! fulfilled and refunded) arrive through the outbox, each derived event
//! once; a signed-in shopper's cart and checkout produce `Cart Started` and
//! `Checkout Started` with their tags, cleared by the order; the cart's
//! `recover_url` rebuilds it in another browser; an anonymous cart sends
//! nothing.
//!
//! WooCommerce is in no package registry CI reaches: this test runs when
//! COHORT_WOOCOMMERCE_DIR names an unpacked WooCommerce (7.8.x runs on
//! Debian's WordPress 6.1; docs/PLUGIN.md) and skips loudly otherwise.

use crate::common;

use std::collections::HashMap;
use std::str::FromStr;

use common::wordpress::{self, drive, eventually, free_port, path, site, WordPress};
use common::{admin_call, all_events, api_token, databases, Server};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const ACCOUNT: (&str, &str) = ("owner@shop.test", "correct horse battery");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_in_a_real_woocommerce() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    if !wordpress::available("the WooCommerce plugin end-to-end test") {
        return;
    }
    let Some(woocommerce) = wordpress::woocommerce_dir("the WooCommerce plugin end-to-end test")
    else {
        return;
    };
    for test_db in databases().await {
        run_scenario(&test_db, &woocommerce).await;
    }
}

/// A browser without JavaScript: cookies kept by hand (reqwest's cookie
/// store is a feature this workspace does not otherwise need), redirects
/// not followed.
struct Shopper {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Shopper {
    fn new(base: &str) -> Shopper {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Shopper {
            http,
            base: base.to_owned(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || value == "deleted" || text.contains("Max-Age=0") {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies
                        .insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
    }

    async fn get(&mut self, url_or_path: &str) -> reqwest::Response {
        let url = if url_or_path.starts_with("http") {
            url_or_path.to_owned()
        } else {
            format!("{}{url_or_path}", self.base)
        };
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    async fn sign_in(&mut self, user: &str, password: &str) {
        self.cookies
            .insert("wordpress_test_cookie".into(), "WP%20Cookie%20check".into());
        let response = self
            .http
            .post(format!("{}/wp-login.php", self.base))
            .header("cookie", self.cookie_header())
            .form(&[
                ("log", user),
                ("pwd", password),
                ("wp-submit", "Log In"),
                ("testcookie", "1"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "sign-in as {user}");
        self.keep(&response);
    }

    /// The Store API's cart (and its nonce for writes).
    async fn cart(&mut self) -> (Value, String) {
        let response = self.get("/?rest_route=/wc/store/v1/cart").await;
        let nonce = response
            .headers()
            .get("nonce")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.json().await.unwrap(), nonce)
    }

    /// Applies a coupon to the cart through the Store API; the cart after it.
    async fn apply_coupon(&mut self, code: &str) -> Value {
        let (_, nonce) = self.cart().await;
        let response = self
            .http
            .post(format!(
                "{}/?rest_route=/wc/store/v1/cart/apply-coupon",
                self.base
            ))
            .header("cookie", self.cookie_header())
            .header("nonce", nonce)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap();
        self.keep(&response);
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(
            status.is_success(),
            "apply coupon {code}: {status} {body:#}"
        );
        body
    }

    /// Places the cart's order through the Store API, cash on delivery.
    async fn checkout(&mut self, email: &str) -> Value {
        let (_, nonce) = self.cart().await;
        let address = json!({"first_name": "Bea", "last_name": "Buyer", "address_1": "1 Main St", "city": "Springfield",
            "state": "CA", "postcode": "94105", "country": "US", "email": email, "phone": "555"});
        let response = self
            .http
            .post(format!("{}/?rest_route=/wc/store/v1/checkout", self.base))
            .header("cookie", self.cookie_header())
            .header("nonce", nonce)
            .json(&json!({"billing_address": address, "shipping_address": address, "payment_method": "cod"}))
            .send()
            .await
            .unwrap();
        self.keep(&response);
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "checkout: {status} {body:#}");
        body
    }
}

fn money(value: &Value) -> Decimal {
    let text = value.get("amount").unwrap_or(value);
    Decimal::from_str(
        text.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| text.to_string())
            .trim_matches('"'),
    )
    .unwrap_or_else(|e| panic!("money {value}: {e}"))
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

async fn get_json(url: &str, token: &str) -> Value {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "GET {url}: {status} {body:#}");
    body
}

async fn orders(url: &str, token: &str) -> Vec<Value> {
    get_json(&format!("{url}/api/v1/orders?limit=1000"), token).await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn events_named(url: &str, token: &str, name: &str) -> Vec<Value> {
    all_events(url, token)
        .await
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

async fn profile_by_email(url: &str, token: &str, email: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/profiles/lookup"))
        .query(&[("email", email)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if response.status().is_success() {
        Some(response.json().await.unwrap())
    } else {
        None
    }
}

fn has_tag(profile: &Option<Value>, tag: &str) -> bool {
    profile
        .as_ref()
        .and_then(|p| p["tags"].as_array())
        .is_some_and(|tags| tags.iter().any(|t| t == tag))
}

/// Runs WP-Cron through `wp-cron.php` until the store sync has finished.
async fn run_sync(wp: &WordPress) -> Value {
    for _ in 0..200 {
        let done = wp.option("cohort_connect_last_sync").await;
        if done.is_object() {
            return done;
        }
        wp.run_cron_event("cohort_connect_sync").await;
    }
    panic!(
        "the store sync did not finish: {}",
        wp.option("cohort_connect_sync").await
    );
}

/// Seeds the store through WooCommerce's own PHP API; returns the ids it made.
async fn seed_store(wp: &WordPress) -> Value {
    let out = wp
        .php(
            r#"
        $mug = new WC_Product_Simple(); $mug->set_name( 'Mug' ); $mug->set_sku( 'MUG-1' ); $mug->set_regular_price( '12.50' ); $mug->save();
        $cap = new WC_Product_Simple(); $cap->set_name( 'Cap' ); $cap->set_sku( 'CAP-1' ); $cap->set_regular_price( '19.99' ); $cap->save();
        $buyer = wc_create_new_customer( 'buyer@shop.test', 'buyer', 'password', array( 'first_name' => 'Bea' ) );
        $order = function ( $customer, $email, $lines, $status ) {
            $o = wc_create_order( array( 'customer_id' => $customer ) );
            foreach ( $lines as $line ) { $o->add_product( wc_get_product( $line[0] ), $line[1] ); }
            $o->set_billing_email( $email ); $o->set_billing_first_name( 'Guest' ); $o->set_payment_method( 'cod' );
            $o->calculate_totals(); $o->save(); $o->update_status( $status ); return $o->get_id();
        };
        $registered = $order( $buyer, 'buyer@shop.test', array( array( $mug->get_id(), 2 ), array( $cap->get_id(), 1 ) ), 'processing' );
        $g1a = $order( 0, 'g1@guest.test', array( array( $mug->get_id(), 1 ) ), 'completed' );
        $g1b = $order( 0, 'G1@guest.test', array( array( $cap->get_id(), 1 ) ), 'processing' );
        $g2  = $order( 0, 'g2@guest.test', array( array( $cap->get_id(), 3 ) ), 'pending' );
        $refund = wc_create_refund( array( 'order_id' => $registered, 'amount' => '5.00', 'reason' => 'dented' ) );
        if ( is_wp_error( $refund ) ) { fwrite( STDERR, $refund->get_error_message() ); exit( 1 ); }
        echo wp_json_encode( array( 'mug' => $mug->get_id(), 'cap' => $cap->get_id(), 'buyer' => $buyer, 'registered' => $registered, 'g1a' => $g1a, 'g1b' => $g1b, 'g2' => $g2 ) );
    "#,
        )
        .await;
    serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("seed: {e}: {out}"))
}

async fn run_scenario(test_db: &cohort_testkit::TestDb, woocommerce: &std::path::Path) {
    let backend = format!("{:?}", test_db.backend());
    eprintln!("woocommerce_plugin: {backend}");
    let cohort_port = free_port();
    let listen = format!("127.0.0.1:{cohort_port}");
    let env = [
        ("COHORT_SERVER__LISTEN", listen.as_str()),
        ("COHORT_DESTINATIONS__ENABLED", "false"),
        // The WordPress under test listens on 127.0.0.1.
        ("COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES", "true"),
    ];
    let cohort = Server::start(&test_db.url, &env).await;
    let url = cohort.url.clone();
    let token = api_token(&test_db.db).await;
    let wp = WordPress::start().await;

    // Connected as plain WordPress: no commerce, no sync.
    drive("activate", &wp, &url, json!({})).await;
    let account = json!({"email": ACCOUNT.0, "password": ACCOUNT.1});
    let paired = drive(
        "pair",
        &wp,
        &url,
        json!({"account": account, "org": "Default", "decision": "approve"}),
    )
    .await;
    assert_eq!(
        paired["page"]["connected"], "✓ Connected to Default",
        "{paired:#}"
    );
    assert_eq!(
        wp.option("cohort_connect_connection").await["platform"],
        "wordpress"
    );
    let installation_id = wp.option("cohort_connect_connection").await["installation_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // WooCommerce arrives with a store's worth of history; nothing of it is sent before the upgrade.
    site(&["woocommerce", path(wp.dir.path()), path(woocommerce)]).await;
    let ids = seed_store(&wp).await;
    assert!(
        orders(&url, &token).await.is_empty(),
        "no order is sent before the merchant accepts the upgrade"
    );

    // The offer, accepted: Cohort queues the initial sync, which the plugin carries out from WP-Cron.
    let offered = drive("admin-page", &wp, &url, json!({"woocommerce": true})).await;
    assert!(
        offered["page"]["upgradeOffer"]
            .as_str()
            .is_some_and(|t| t.contains("WooCommerce is active")),
        "{offered:#}"
    );
    let upgraded = drive(
        "admin-page",
        &wp,
        &url,
        json!({"woocommerce": true, "click": "upgrade"}),
    )
    .await;
    assert!(
        upgraded["page"]["notices"]
            .to_string()
            .contains("Store features are on"),
        "{upgraded:#}"
    );
    assert!(upgraded["page"]["upgradeOffer"].is_null());
    assert_eq!(
        wp.option("cohort_connect_connection").await["platform"],
        "woocommerce"
    );
    let last = run_sync(&wp).await;
    assert_eq!(
        last["counts"],
        json!({"products": 2, "customers": 2, "guests": 2, "orders": 4}),
        "buyer and shopper are customers; g1 (twice, any case) and g2 are guests: {last:#}"
    );
    assert_eq!(last["rejected"], 0);

    let runs = get_json(
        &format!("{url}/api/v1/installations/{installation_id}/sync-runs"),
        &token,
    )
    .await;
    let run = &runs["data"][0];
    assert_eq!(run["status"], "completed", "{runs:#}");
    assert_eq!(run["progress"]["orders"]["accepted"], 4, "{run:#}");
    assert_eq!(run["progress"]["products"]["accepted"], 2, "{run:#}");
    assert_eq!(run["reported_counts"]["guests"], 2, "{run:#}");

    // Exact totals, in the store's currency, for registered and guest orders.
    eventually("the synced orders projected", || async {
        orders(&url, &token).await.len() == 4
    })
    .await;
    let synced = orders(&url, &token).await;
    let by_id = |id: &Value| {
        synced
            .iter()
            .find(|o| o["order_id"] == id.to_string().as_str())
            .cloned()
            .unwrap_or_else(|| panic!("order {id} in {synced:?}"))
    };
    let registered = by_id(&ids["registered"]);
    assert_eq!(money(&registered["total"]), dec("44.99"), "{registered:#}");
    assert_eq!(
        money(&registered["refunded_total"]),
        dec("5"),
        "{registered:#}"
    );
    assert_eq!(registered["currency"], "USD");
    assert_eq!(money(&by_id(&ids["g2"])["total"]), dec("59.97"));
    assert_eq!(
        by_id(&ids["g1b"])["email"],
        "g1@guest.test",
        "guest emails are one identity in any case"
    );
    let completed = events_named(&url, &token, "Order Completed").await;
    assert_eq!(
        completed.len(),
        3,
        "the three paid orders, once each: {completed:?}"
    );
    assert_eq!(events_named(&url, &token, "Order Refunded").await.len(), 1);
    assert!(
        profile_by_email(&url, &token, "g2@guest.test")
            .await
            .is_some(),
        "a guest buyer has a profile"
    );

    // The sync again (on demand, through the admin API): nothing derived twice, counts the same.
    let queued = reqwest::Client::new()
        .post(format!("{url}/api/v1/installations/{installation_id}/sync"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(
        queued.status().is_success(),
        "{}",
        queued.text().await.unwrap()
    );
    wp.php("delete_option('cohort_connect_last_sync'); Cohort_Heartbeat::run(); echo 'ok';")
        .await;
    let again = run_sync(&wp).await;
    assert_eq!(again["counts"]["orders"], 4);
    assert_eq!(
        events_named(&url, &token, "Order Completed").await.len(),
        3,
        "a second sync derives nothing new"
    );

    // Live changes through the outbox: a product, an order paid, fulfilled, then fully refunded.
    let live = wp
        .php(&format!(
            r#"
        $scarf = new WC_Product_Simple(); $scarf->set_name( 'Scarf' ); $scarf->set_regular_price( '30.00' ); $scarf->save();
        $o = wc_create_order( array( 'customer_id' => {buyer} ) );
        $o->add_product( $scarf, 1 ); $o->set_billing_email( 'buyer@shop.test' ); $o->calculate_totals(); $o->save();
        $o->update_status( 'processing' );
        echo wp_json_encode( array( 'scarf' => $scarf->get_id(), 'order' => $o->get_id() ) );
    "#,
            buyer = ids["buyer"]
        ))
        .await;
    let live: Value = serde_json::from_str(live.lines().last().unwrap()).unwrap();
    eventually("the live order paid", || async {
        events_named(&url, &token, "Order Completed").await.len() == 4
    })
    .await;
    let products = get_json(&format!("{url}/api/v1/products?limit=100"), &token).await;
    assert!(
        products["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Scarf"),
        "{products:#}"
    );
    wp.php(&format!(
        "$o = wc_get_order({id}); $o->update_status('completed'); wc_create_refund(array('order_id' => {id}, 'amount' => '30.00')); echo 'ok';",
        id = live["order"]
    ))
    .await;
    eventually("fulfilled and refunded", || async {
        let refunded = events_named(&url, &token, "Order Refunded").await;
        refunded.len() == 2 && events_named(&url, &token, "Order Fulfilled").await.len() == 2
    })
    .await;
    assert_eq!(
        events_named(&url, &token, "Order Completed").await.len(),
        4,
        "still once per order"
    );

    // A signed-in shopper's cart: Cart Started and the tag; the checkout page: Checkout Started and its tag.
    let mut buyer = Shopper::new(&wp.url);
    buyer.sign_in("buyer", "password").await;
    let added = buyer.get(&format!("/?add-to-cart={}", ids["mug"])).await;
    assert!(
        added.status().is_success() || added.status().is_redirection(),
        "{}",
        added.status()
    );
    eventually("Cart Started", || async {
        !events_named(&url, &token, "Cart Started").await.is_empty()
    })
    .await;
    let started = events_named(&url, &token, "Cart Started").await.remove(0);
    let properties = &started["message"]["properties"];
    assert_eq!(properties["products"][0]["sku"], "MUG-1", "{started:#}");
    assert_eq!(properties["products"][0]["price"], "12.50");
    assert_eq!(properties["value"], "12.50");
    assert_eq!(properties["currency"], "USD");
    eventually("the in_cart tag", || async {
        has_tag(
            &profile_by_email(&url, &token, "buyer@shop.test").await,
            "ecommerce.in_cart",
        )
    })
    .await;
    let checkout_page = wp
        .php("echo get_option('woocommerce_checkout_page_id');")
        .await;
    buyer
        .get(&format!("/?page_id={}", checkout_page.trim()))
        .await;
    eventually("Checkout Started and its tag", || async {
        !events_named(&url, &token, "Checkout Started")
            .await
            .is_empty()
            && has_tag(
                &profile_by_email(&url, &token, "buyer@shop.test").await,
                "ecommerce.in_checkout",
            )
    })
    .await;

    // The recover link rebuilds the cart in another browser.
    let recover_url = properties["recover_url"].as_str().unwrap().to_owned();
    let mut elsewhere = Shopper::new(&wp.url);
    let followed = elsewhere.get(&recover_url).await;
    assert!(followed.status().is_redirection(), "{}", followed.status());
    let (rebuilt, _) = elsewhere.cart().await;
    assert_eq!(rebuilt["items"][0]["id"], ids["mug"], "{rebuilt:#}");
    assert_eq!(rebuilt["items"][0]["quantity"], 1);
    assert!(
        events_named(&url, &token, "Cart Started").await.len() == 1,
        "the other browser is anonymous: nothing sent"
    );

    // A coupon made through Cohort's admin API (signed call to the plugin) works at checkout
    // and shows up in the store's redemptions with the exact discount.
    let discounts = format!("{url}/api/v1/installations/{installation_id}/discounts");
    let since =
        cohort_domain::time::format_rfc3339(chrono::Utc::now() - chrono::Duration::hours(1));
    let created = admin_call(reqwest::Method::POST, &discounts, &token, Some(json!({"code": "WELCOME10", "amount": "10", "min_purchase_amount": "5.00", "usage_limit": 100}))).await;
    assert_eq!(created.0, 201, "{:#}", created.1);
    let provider_id = created.1["provider_id"].as_u64().unwrap();
    let code = created.1["code"].as_str().unwrap().to_owned();
    assert!(code.eq_ignore_ascii_case("WELCOME10"), "{:#}", created.1);
    let again = admin_call(
        reqwest::Method::POST,
        &discounts,
        &token,
        Some(json!({"code": "welcome10", "amount": "5"})),
    )
    .await;
    assert_eq!(
        (again.0, again.1["error"]["code"].as_str()),
        (409, Some("discount_exists")),
        "{:#}",
        again.1
    );
    let by_code = admin_call(
        reqwest::Method::GET,
        &format!("{discounts}/by-code/WELCOME10"),
        &token,
        None,
    )
    .await;
    assert_eq!(by_code.0, 200, "{:#}", by_code.1);
    assert_eq!(
        (
            &by_code.1["provider_id"],
            &by_code.1["kind"],
            &by_code.1["amount"],
            &by_code.1["min_purchase_amount"]
        ),
        (
            &json!(provider_id),
            &json!("percentage"),
            &json!("10"),
            &json!("5")
        ),
        "{:#}",
        by_code.1
    );
    let discounted = buyer.apply_coupon(&code).await;
    assert_eq!(
        discounted["totals"]["total_discount"], "125",
        "10 % of 12.50 in cents: {discounted:#}"
    );

    // The order clears both tags, and its emptied cart is not a Cart Cleared.
    let placed = buyer.checkout("buyer@shop.test").await;
    let order_id = placed["order_id"].to_string();
    let redeemed = admin_call(
        reqwest::Method::GET,
        &format!("{discounts}/redemptions?since={since}"),
        &token,
        None,
    )
    .await;
    assert_eq!(redeemed.0, 200, "{:#}", redeemed.1);
    let rows = redeemed.1["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{:#}", redeemed.1);
    assert_eq!(rows[0]["provider_order_id"], order_id.as_str());
    assert_eq!(rows[0]["code"], code.as_str());
    assert_eq!(rows[0]["email"], "buyer@shop.test");
    assert_eq!(rows[0]["customer_id"], ids["buyer"].to_string().as_str());
    assert_eq!(
        (money(&rows[0]["amount"]), &rows[0]["currency"]),
        (dec("1.25"), &json!("USD")),
        "{:#}",
        redeemed.1
    );
    let used = admin_call(
        reqwest::Method::GET,
        &format!("{discounts}/{provider_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(used.1["usage_count"], 1, "{:#}", used.1);
    // The command line reads and deletes the same coupon.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
            .args(["store", "discount"])
            .args(args)
            .env("COHORT_DATABASE__URL", &test_db.url)
            .env("COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES", "true")
            .current_dir(wp.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cohort store discount {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown: Value =
        serde_json::from_str(&cli(&["get", &installation_id, "--code", "WELCOME10"])).unwrap();
    assert_eq!(shown["usageCount"], 1, "{shown:#}");
    let listed = cli(&["redemptions", &installation_id, "--since", &since, "--all"]);
    assert!(
        listed.starts_with(&format!("{order_id}\t{code}\t")) && listed.contains("\t1.25\tUSD\t"),
        "{listed}"
    );
    assert_eq!(
        cli(&["delete", &installation_id, &provider_id.to_string()]).trim(),
        format!("{provider_id}\tdeleted")
    );
    let gone = admin_call(
        reqwest::Method::GET,
        &format!("{discounts}/{provider_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        (gone.0, gone.1["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{:#}",
        gone.1
    );
    let mut cleared = false;
    for _ in 0..600 {
        let profile = profile_by_email(&url, &token, "buyer@shop.test").await;
        if !has_tag(&profile, "ecommerce.in_cart") && !has_tag(&profile, "ecommerce.in_checkout") {
            cleared = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !cleared {
        let recent: Vec<Value> = all_events(&url, &token)
            .await
            .into_iter()
            .rev()
            .take(8)
            .map(|e| {
                json!([
                    e["seq"],
                    e["type"],
                    e["event"],
                    e["timestamp"],
                    e["message"]["resource"]["status"]
                ])
            })
            .collect();
        panic!(
            "the order did not clear the tags: {:#}\nlast events: {recent:?}",
            profile_by_email(&url, &token, "buyer@shop.test")
                .await
                .unwrap_or_default()
        );
    }
    assert!(events_named(&url, &token, "Cart Cleared").await.is_empty());

    // No PHP notice from the plugin with WP_DEBUG on (WooCommerce's own are not ours).
    assert_eq!(
        wp.log("plugin-errors.log"),
        "",
        "PHP errors raised in the plugin's code"
    );
    drop(cohort);
}
