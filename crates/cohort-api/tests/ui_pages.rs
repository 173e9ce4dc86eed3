//! The admin web UI through the real router, on SQLite and PostgreSQL:
//! sign-in (CSRF, rate limit), sign-out, roles (a viewer changes nothing),
//! every page rendered with real data, the forms that change things, the
//! live debugger's stream, and a walk of every UI route as a member of
//! another organisation (404 everywhere).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cohort_domain::ids::OrgId;
use cohort_store::users::{hash_password, Role};
use common::{apps, Answer, TestApp};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

/// A browser: keeps its cookies, follows no redirect by itself.
struct Browser<'a> {
    app: &'a TestApp,
    jar: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self { app, jar: BTreeMap::new() }
    }

    fn cookies(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, answer: &Answer) {
        for header in answer.headers.get_all("set-cookie") {
            let line = header.to_str().unwrap();
            let (pair, rest) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if rest.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = Request::get(path).header("cookie", self.cookies()).header("host", "cohort.test").body(Body::empty()).unwrap();
        let answer = self.app.send(request).await;
        self.keep_cookies(&answer);
        answer
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let form = fields.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&");
        let request = Request::post(path)
            .header("cookie", self.cookies())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let answer = self.app.send(request).await;
        self.keep_cookies(&answer);
        answer
    }

    /// GETs a page that must answer 200 and returns its HTML.
    async fn page(&mut self, path: &str) -> String {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{} GET {path}: {}", self.app.backend(), answer.text());
        readable(&answer.text())
    }

    /// Signs in with the form; the browser then holds a session.
    async fn sign_in(&mut self, email: &str) {
        let form = self.page("/app/sign-in").await;
        let answer = self.post("/app/sign-in", &[("csrf", &csrf(&form)), ("email", email), ("password", PASSWORD), ("next", "/app")]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
        assert!(self.jar.contains_key("cohort_session"));
    }

    /// The CSRF token of the session, read from a page of the layout.
    async fn csrf(&mut self) -> String {
        csrf(&self.page("/app/account").await)
    }
}

/// The page with the escapes of `/` and `'` undone (minijinja escapes
/// both); `<`, `>`, `&` and `"` stay escaped.
fn readable(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&#x27;", "'")
}

fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn location(answer: &Answer) -> String {
    answer.headers.get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn user(app: &TestApp, org: &OrgId, email: &str, role: Role) -> String {
    let hash = hash_password(PASSWORD).unwrap();
    app.t.db.create_user(org, email, &hash, role).await.unwrap().id.as_str().to_owned()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../../shared/fixtures/wc-rest-v3-{name}.docs-example.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Org A gets a customer with traits, an order, a product, and a
/// connected store (an installation row as approval leaves it).
async fn shop(app: &TestApp) -> String {
    let batch = json!({"batch": [
        {"type": "identify", "userId": "25", "anonymousId": "visitor-9", "traits": {"email": "john.doe@example.com", "plan": "gold"}},
        {"type": "track", "event": "Product Viewed", "userId": "25", "properties": {"product_id": "93"}},
    ]});
    assert_eq!(app.post("/v1/batch", batch.to_string()).await.status, StatusCode::OK);
    let path = format!("/api/v1/sources/{}/woocommerce", app.a.source.id.as_str());
    for (topic, name) in [("product.updated", "product"), ("order.updated", "order")] {
        let answer = app.api(&app.a, "POST", &path, Some(json!({"topic": topic, "resource": fixture(name), "currency": "USD"}))).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    }
    app.projected().await;
    sqlx::query(
        "INSERT INTO connect_installations (id, org_id, pairing_id, source_id, store_url, site_name, platform, plugin_version, \
         wp_version, wc_version, php_version, currency, timezone, status, created_at, connected_at, last_heartbeat_at) \
         VALUES ('inst_ui_a', $1, 'cpr_x', $2, 'https://shop.example', 'Ann''s Shop', 'woocommerce', '0.1.0', '6.6.2', '9.3.3', \
         '8.2.24', 'EUR', 'Europe/Paris', 'connected', $3, $3, $3)",
    )
    .bind(app.a.org.as_str())
    .bind(app.a.source.id.as_str())
    .bind(cohort_store::now_micros())
    .execute(app.t.db.pool())
    .await
    .unwrap();
    "inst_ui_a".into()
}

fn assert_protected(answer: &Answer, what: &str) {
    let h = &answer.headers;
    assert_eq!(h.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{what}");
    let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap()).unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"), "{what}: {csp}");
}

#[tokio::test]
async fn sign_in_needs_the_form_token_and_the_right_password_and_sign_out_ends_the_session() {
    for app in apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);

        let answer = browser.get(&format!("/app/o/{}/profiles?q=x", app.a.org.as_str())).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(location(&answer), format!("/app/sign-in?next=/app/o/{}/profiles%3Fq%3Dx", app.a.org.as_str()), "{b}");

        let form = browser.page("/app/sign-in").await;
        assert!(form.contains("<label for=\"email\">Email</label>") && form.contains("<label for=\"password\">Password</label>"), "{b}");
        let token = csrf(&form);
        let no_token = browser.post("/app/sign-in", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(no_token.status, StatusCode::FORBIDDEN, "{b}: a sign-in without the form's token");
        let mut stranger = Browser::new(&app);
        let foreign = stranger.post("/app/sign-in", &[("csrf", &token), ("email", "ann@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{b}: a token without its cookie (another site's form)");
        let wrong = browser.post("/app/sign-in", &[("csrf", &token), ("email", "ann@example.com"), ("password", "not the password")]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{b}");
        assert!(readable(&wrong.text()).contains("The email or the password is wrong."), "{b}");
        assert!(!browser.jar.contains_key("cohort_session"), "{b}");

        let next = format!("/app/o/{}/sources", app.a.org.as_str());
        let ok = browser.post("/app/sign-in", &[("csrf", &token), ("email", "ANN@example.com "), ("password", PASSWORD), ("next", &next)]).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{b}: {}", ok.text());
        assert_eq!(location(&ok), next, "{b}: back where the user was going");
        let cookie = ok.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).find(|c| c.starts_with("cohort_session=")).unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{b}: {cookie}");
        let evil = browser.post("/app/sign-in", &[("csrf", &token), ("email", "ann@example.com"), ("password", PASSWORD), ("next", "//evil.example/x")]).await;
        assert_eq!(location(&evil), "/app", "{b}: no redirect off the server");

        let home = browser.get("/app").await;
        assert_eq!(location(&home), format!("/app/o/{}", app.a.org.as_str()), "{b}");
        let overview = browser.get(&location(&home)).await;
        assert_eq!(overview.status, StatusCode::OK, "{b}");
        assert_protected(&overview, "overview");
        assert_eq!(overview.headers.get("cache-control").unwrap(), "no-store", "{b}");

        let bad_out = browser.post("/app/sign-out", &[("csrf", "forged")]).await;
        assert_eq!(bad_out.status, StatusCode::FORBIDDEN, "{b}: sign-out needs the session's token");
        let token = browser.csrf().await;
        let out = browser.post("/app/sign-out", &[("csrf", &token)]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER, "{b}");
        assert!(!browser.jar.contains_key("cohort_session"), "{b}: the cookie is cleared");
        assert_eq!(browser.get("/app").await.status, StatusCode::SEE_OTHER, "{b}: signed out");
    }
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_email_and_answered_429() {
    for app in apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        user(&app, &app.a.org, "bob@example.com", Role::Admin).await;
        let mut browser = Browser::new(&app);
        let token = csrf(&browser.page("/app/sign-in").await);
        for attempt in 1..=5 {
            let wrong = browser.post("/app/sign-in", &[("csrf", &token), ("email", "ann@example.com"), ("password", "guess")]).await;
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{b}: attempt {attempt}");
        }
        let blocked = browser.post("/app/sign-in", &[("csrf", &token), ("email", "ann@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS, "{b}: even the right password, once over the limit");
        assert!(readable(&blocked.text()).contains("Too many failed sign-ins. Wait 15 minutes"), "{b}: {}", blocked.text());
        assert_eq!(blocked.headers.get("retry-after").unwrap(), "900", "{b}");
        assert!(!browser.jar.contains_key("cohort_session"), "{b}");
        let other = browser.post("/app/sign-in", &[("csrf", &token), ("email", "bob@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(other.status, StatusCode::SEE_OTHER, "{b}: another account is not locked by these attempts");

        // The store authorize page's sign-in form shares the limit.
        let pairing = json!({"store_url": "https://shop.example", "site_name": "Shop", "platform": "woocommerce",
            "plugin_version": "0.1.0", "wp_version": "6.6.2", "wc_version": "9.3.3", "php_version": "8.2.24",
            "currency": "EUR", "timezone": "Europe/Paris", "return_url": "https://shop.example/wp-admin/"});
        let created = app.send(Request::post("/connect/v1/pairings").header("content-type", "application/json").body(Body::from(pairing.to_string())).unwrap()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{b}: {}", created.text());
        let authorize = format!("/setup/woocommerce?pairing={}", created.json()["pairing_id"].as_str().unwrap());
        let mut other_browser = Browser::new(&app);
        let page = other_browser.page(&authorize).await;
        let answer = other_browser.post(&authorize, &[("action", "sign_in"), ("csrf", &csrf(&page)), ("email", "ann@example.com"), ("password", PASSWORD)]).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{b}: {}", answer.text());
    }
}

#[tokio::test]
async fn pages_render_real_data_and_their_forms_change_it() {
    for app in apps().await {
        let b = app.backend();
        let installation = shop(&app).await;
        let ann = user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let token = browser.csrf().await;

        // Overview: the chart, the counts, the source and the store.
        let overview = browser.page(&base).await;
        assert!(overview.contains("<svg class=\"chart\"") && overview.contains("Events per hour, last 7 days"), "{b}");
        assert!(overview.contains("Test source") && overview.contains("Ann's Shop") && overview.contains("healthy"), "{b}: {overview}");
        let events = app.count(&app.a).await;
        assert!(events >= 4, "{b}");
        assert!(overview.contains(&format!("<b>{events}</b><span>events, last 24 hours")), "{b}: the hourly counts hold every event: {overview}");
        assert!(overview.contains(&format!("{events} events in all")), "{b}: and the chart says so");
        app.post("/v1/track", json!({"userId": "25", "event": "One More"}).to_string()).await;
        let again = browser.page(&base).await;
        assert!(again.contains(&format!("<b>{}</b><span>events, last 24 hours", events + 1)), "{b}: a new event is counted on the next view");

        // Sources: create one, rotate its key, disable it.
        let created = browser.post(&format!("{base}/sources"), &[("csrf", &token), ("name", "Website <main>")]).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{b}: {}", created.text());
        let source_page = location(&created);
        let page = browser.page(&source_page).await;
        let sources = app.t.db.list_sources(&app.a.org).await.unwrap();
        let website = sources.iter().find(|s| s.name == "Website <main>").expect("created");
        assert!(page.contains("Website &lt;main&gt;") && !page.contains("Website <main>"), "{b}: names are escaped");
        assert!(page.contains(&format!("writeKey: '{}'", website.write_key)), "{b}: the snippet carries the key");
        assert!(page.contains("apiHost: 'http://cohort.test'"), "{b}: and this server's URL");
        assert!(page.contains("cdnURL: 'http://cohort.test'"), "{b}: analytics.js points at Cohort");
        let rotated = browser.post(&format!("{base}/sources/{}", website.id.as_str()), &[("csrf", &token), ("action", "rotate")]).await;
        assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{b}");
        let after = app.t.db.find_source(&app.a.org, website.id.as_str()).await.unwrap().unwrap();
        assert_ne!(after.write_key, website.write_key, "{b}: a new write key");
        assert!(browser.page(&location(&rotated)).await.contains("Write key rotated"), "{b}");
        let disabled = browser.post(&format!("{base}/sources/{}", website.id.as_str()), &[("csrf", &token), ("action", "disable")]).await;
        assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{b}");
        assert!(!app.t.db.find_source(&app.a.org, website.id.as_str()).await.unwrap().unwrap().enabled, "{b}");
        let source = browser.page(&format!("{base}/sources/{}", app.a.source.id.as_str())).await;
        assert!(source.contains("Product Viewed") && source.contains("data-message-id"), "{b}: the newest events are listed");

        // Profiles: search by email, userId and anonymousId; the profile page.
        for q in ["john.doe@example.com", "25", "visitor-9"] {
            let found = browser.page(&format!("{base}/profiles?q={q}")).await;
            assert!(found.contains("john.doe@example.com") && found.contains("/profiles/prof_"), "{b}: search {q}");
        }
        let none = browser.page(&format!("{base}/profiles?q=nobody%40example.com")).await;
        assert!(none.contains("No profile has the identity"), "{b}");
        let profile_id = app.t.db.list_profiles(&app.a.org, &Default::default()).await.unwrap().into_iter()
            .find(|p| p.profile.user_id.as_deref() == Some("25")).unwrap().profile.id;
        let profile = browser.page(&format!("{base}/profiles/{profile_id}")).await;
        assert!(profile.contains("<code>plan</code>") && profile.contains("gold") && profile.contains("Test source"), "{b}: traits with where they came from");
        assert!(profile.contains("Product Viewed") && profile.contains("Erase profile"), "{b}");
        let export = browser.get(&format!("{base}/profiles/{profile_id}/export")).await;
        assert_eq!(export.status, StatusCode::OK, "{b}");
        assert!(export.headers.get("content-disposition").unwrap().to_str().unwrap().contains(&profile_id), "{b}");

        // Orders and products: exact money in the store's currency.
        let orders = browser.page(&format!("{base}/orders")).await;
        let order = app.t.db.list_orders(&app.a.org, &cohort_store::projection::OrderFilter { limit: 10, ..Default::default() }).await.unwrap();
        let (_, order) = order.first().expect("the order was projected");
        let total = format!("${}", order.total.amount);
        assert!(orders.contains(&format!("#{}", order.number.clone().unwrap_or(order.order_id.clone()))), "{b}: {orders}");
        assert!(orders.contains(&total[..total.len().min(4)]), "{b}: {total}");
        let filtered = browser.page(&format!("{base}/orders?status=cancelled")).await;
        assert!(filtered.contains("No order matches these filters"), "{b}");
        let products = browser.page(&format!("{base}/products")).await;
        let product = &app.t.db.list_products(&app.a.org, &cohort_store::projection::ProductFilter { limit: 10, ..Default::default() }).await.unwrap()[0];
        assert!(products.contains(&product.product.name), "{b}");

        // Stores: Sync store queues a sync_store command.
        let stores = browser.page(&format!("{base}/stores")).await;
        assert!(stores.contains("Sync store") && stores.contains("WooCommerce 9.3.3"), "{b}");
        let sync = browser.post(&format!("{base}/stores/{installation}"), &[("csrf", &token), ("action", "sync")]).await;
        assert_eq!(sync.status, StatusCode::SEE_OTHER, "{b}: {}", sync.text());
        let commands = app.t.db.pending_commands(&app.a.org, &installation).await.unwrap();
        assert_eq!(commands.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), ["sync_store"], "{b}");
        assert!(browser.page(&location(&sync)).await.contains("Sync queued"), "{b}");

        // API tokens: shown once, working, then revoked.
        let created = browser.post(&format!("{base}/tokens"), &[("csrf", &token), ("name", "Reporting")]).await;
        assert_eq!(created.status, StatusCode::CREATED, "{b}");
        let html = readable(&created.text());
        let start = html.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
        let secret = html[start..].split('<').next().unwrap().to_owned();
        assert!(secret.starts_with("cht_"), "{b}: {secret}");
        let api = |secret: String| {
            let app = &app;
            async move {
                app.send(Request::get("/api/v1/events?limit=1").header("authorization", format!("Bearer {secret}")).body(Body::empty()).unwrap()).await.status
            }
        };
        assert_eq!(api(secret.clone()).await, StatusCode::OK, "{b}");
        assert!(!browser.page(&format!("{base}/tokens")).await.contains(&secret), "{b}: never shown again");
        let id = app.t.db.list_api_tokens(&app.a.org).await.unwrap().into_iter().find(|t| t.name == "Reporting").unwrap().id;
        let revoked = browser.post(&format!("{base}/tokens/{id}"), &[("csrf", &token)]).await;
        assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(api(secret).await, StatusCode::UNAUTHORIZED, "{b}");

        // Team: add a viewer, promote them, keep the last owner.
        let added = browser.post(&format!("{base}/members"), &[("csrf", &token), ("email", "vic@example.com"), ("role", "viewer"), ("password", PASSWORD)]).await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{b}: {}", added.text());
        let vic = app.t.db.list_members(&app.a.org).await.unwrap().into_iter().find(|m| m.email == "vic@example.com").unwrap();
        assert_eq!(vic.role, Role::Viewer, "{b}");
        let promoted = browser.post(&format!("{base}/members/{}", vic.user_id), &[("csrf", &token), ("action", "role"), ("role", "admin")]).await;
        assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(app.t.db.role_in(&app.a.org, &cohort_domain::ids::UserId::from_stored(vic.user_id.clone())).await.unwrap(), Some(Role::Admin), "{b}");
        let last = browser.post(&format!("{base}/members/{ann}"), &[("csrf", &token), ("action", "role"), ("role", "viewer")]).await;
        assert_eq!(last.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(readable(&last.text()).contains("at least one owner"), "{b}");

        // Erasure needs the box ticked.
        let unticked = browser.post(&format!("{base}/profiles/{profile_id}/erase"), &[("csrf", &token)]).await;
        assert_eq!(unticked.status, StatusCode::BAD_REQUEST, "{b}");
        let erased = browser.post(&format!("{base}/profiles/{profile_id}/erase"), &[("csrf", &token), ("confirm", "yes")]).await;
        assert_eq!(erased.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(browser.get(&format!("{base}/profiles/{profile_id}")).await.status, StatusCode::NOT_FOUND, "{b}");

        // A form without the session's token changes nothing.
        let forged = browser.post(&format!("{base}/sources"), &[("csrf", "forged"), ("name", "Forged")]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{b}");
        assert!(!app.t.db.list_sources(&app.a.org).await.unwrap().iter().any(|s| s.name == "Forged"), "{b}");
    }
}

#[tokio::test]
async fn a_viewer_sees_the_pages_without_forms_and_cannot_change_anything() {
    for app in apps().await {
        let b = app.backend();
        let installation = shop(&app).await;
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        user(&app, &app.a.org, "vic@example.com", Role::Viewer).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("vic@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let token = browser.csrf().await;
        for (path, absent) in [("/sources", "Create source"), ("/tokens", "Create token"), ("/members", "Add member"), ("/stores", "Sync store")] {
            let page = browser.page(&format!("{base}{path}")).await;
            assert!(!page.contains(absent), "{b}: a viewer is not offered {absent:?}");
        }
        let source = app.a.source.id.as_str();
        for (path, fields) in [
            (format!("{base}/sources"), vec![("name", "Nope")]),
            (format!("{base}/sources/{source}"), vec![("action", "disable")]),
            (format!("{base}/tokens"), vec![("name", "Nope")]),
            (format!("{base}/stores/{installation}"), vec![("action", "sync")]),
            (format!("{base}/members"), vec![("email", "x@example.com"), ("role", "viewer"), ("password", PASSWORD)]),
        ] {
            let mut all = vec![("csrf", token.as_str())];
            all.extend(fields);
            let answer = browser.post(&path, &all).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{b}: POST {path}");
        }
        assert!(app.t.db.find_source(&app.a.org, source).await.unwrap().unwrap().enabled, "{b}");
        assert_eq!(app.t.db.list_sources(&app.a.org).await.unwrap().len(), 1, "{b}");
        assert!(app.t.db.pending_commands(&app.a.org, &installation).await.unwrap().is_empty(), "{b}");
        assert_eq!(app.t.db.list_members(&app.a.org).await.unwrap().len(), 2, "{b}");
    }
}

/// Every UI route of the OpenAPI document, with org A's ids in its
/// parameters, as an owner of org B: each answers 404 (and changes nothing).
#[tokio::test]
async fn every_ui_route_answers_404_to_a_member_of_another_organisation() {
    let document = cohort_api::openapi_document();
    let paths: Vec<(String, Vec<&'static str>)> = document
        .paths
        .paths
        .iter()
        .filter(|(path, _)| path.starts_with("/app/o/{org}"))
        .map(|(path, item)| {
            let mut methods = Vec::new();
            if item.get.is_some() {
                methods.push("GET");
            }
            if item.post.is_some() {
                methods.push("POST");
            }
            (path.clone(), methods)
        })
        .collect();
    assert!(paths.len() >= 12, "the walk covers the organisation's routes: {paths:?}");
    for app in apps().await {
        let b = app.backend();
        let installation = shop(&app).await;
        let ann = user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        user(&app, &app.b.org, "bea@example.com", Role::Owner).await;
        let profile = app.t.db.list_profiles(&app.a.org, &Default::default()).await.unwrap().remove(0).profile.id;
        let token = app.t.db.list_api_tokens(&app.a.org).await.unwrap().remove(0).id;
        let mut browser = Browser::new(&app);
        browser.sign_in("bea@example.com").await;
        let csrf = browser.csrf().await;
        let mut walked = 0;
        for (template, methods) in &paths {
            let path = template
                .replace("{org}", app.a.org.as_str())
                .replace("{source}", app.a.source.id.as_str())
                .replace("{profile}", &profile)
                .replace("{store}", &installation)
                .replace("{user}", &ann)
                .replace("{token}", &token);
            assert!(!path.contains('{'), "a parameter the walk does not know: {template}");
            for method in methods {
                let answer = match *method {
                    "GET" => browser.get(&path).await,
                    _ => browser.post(&path, &[("csrf", &csrf), ("action", "sync"), ("name", "x"), ("email", "x@example.com"), ("role", "owner"), ("confirm", "yes")]).await,
                };
                assert_eq!(answer.status, StatusCode::NOT_FOUND, "{b}: {method} {template} as another organisation's member");
                walked += 1;
            }
        }
        assert!(walked >= 15, "{b}: {walked} requests");
        // Org B's own pages work for the same browser: the 404s were about A.
        browser.page(&format!("/app/o/{}", app.b.org.as_str())).await;
        assert_eq!(app.t.db.list_sources(&app.a.org).await.unwrap().len(), 1, "{b}");
        assert!(app.t.db.pending_commands(&app.a.org, &installation).await.unwrap().is_empty(), "{b}");
        assert!(app.t.db.profile(&app.a.org, &profile).await.unwrap().is_some(), "{b}");
        // The switcher offers B only.
        let page = browser.page("/app/account").await;
        assert!(page.contains("Org B") && !page.contains("Org A"), "{b}");
        assert_eq!(browser.get(&format!("/app/switch?org={}", app.a.org.as_str())).await.status, StatusCode::NOT_FOUND, "{b}");
    }
}

#[tokio::test]
async fn the_password_changes_and_other_sessions_end() {
    for app in apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut laptop = Browser::new(&app);
        laptop.sign_in("ann@example.com").await;
        let mut phone = Browser::new(&app);
        phone.sign_in("ann@example.com").await;
        let token = laptop.csrf().await;
        let new = "a much longer passphrase";
        let wrong = laptop.post("/app/account", &[("csrf", &token), ("current_password", "nope"), ("new_password", new), ("new_password_confirmation", new)]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{b}");
        let differ = laptop.post("/app/account", &[("csrf", &token), ("current_password", PASSWORD), ("new_password", new), ("new_password_confirmation", "x")]).await;
        assert_eq!(differ.status, StatusCode::BAD_REQUEST, "{b}");
        let short = laptop.post("/app/account", &[("csrf", &token), ("current_password", PASSWORD), ("new_password", "short"), ("new_password_confirmation", "short")]).await;
        assert_eq!(short.status, StatusCode::BAD_REQUEST, "{b}");
        let ok = laptop.post("/app/account", &[("csrf", &token), ("current_password", PASSWORD), ("new_password", new), ("new_password_confirmation", new)]).await;
        assert_eq!(ok.status, StatusCode::OK, "{b}: {}", ok.text());
        assert!(readable(&ok.text()).contains("Password changed"), "{b}");
        assert_eq!(laptop.get("/app/account").await.status, StatusCode::OK, "{b}: this session stays");
        assert_eq!(phone.get("/app/account").await.status, StatusCode::SEE_OTHER, "{b}: the other one ended");
        assert!(app.t.db.authenticate_user("ann@example.com", new).await.unwrap().is_some(), "{b}");
        assert!(app.t.db.authenticate_user("ann@example.com", PASSWORD).await.unwrap().is_none(), "{b}");
    }
}

#[tokio::test]
async fn assets_are_served_under_their_hash_for_a_year() {
    for app in apps().await {
        let b = app.backend();
        let mut browser = Browser::new(&app);
        let page = browser.page("/app/sign-in").await;
        for ext in ["css", "js"] {
            let marker = "/app/assets/app-";
            let start = page.find(marker).unwrap();
            let url = page[start..].split('"').next().unwrap();
            let url = if url.ends_with(ext) {
                url.to_owned()
            } else {
                let rest = &page[start + url.len()..];
                let s = rest.find(marker).unwrap();
                rest[s..].split('"').next().unwrap().to_owned()
            };
            let answer = browser.get(&url).await;
            assert_eq!(answer.status, StatusCode::OK, "{b} {url}");
            assert_eq!(answer.headers.get("cache-control").unwrap(), "public, max-age=31536000, immutable", "{b}");
            let stale = browser.get(&format!("/app/assets/app-0000000000000000.{ext}")).await;
            assert_eq!(stale.status, StatusCode::NOT_FOUND, "{b}");
        }
        assert!(!page.contains("<script>") && !page.contains("style="), "{b}: nothing inline, as the CSP demands");
    }
}

#[tokio::test]
async fn the_live_debugger_streams_each_new_event_of_the_source() {
    for app in apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let path = format!("/app/o/{}/sources/{}/live", app.a.org.as_str(), app.a.source.id.as_str());
        let request = Request::get(&path).header("cookie", browser.cookies()).body(Body::empty()).unwrap();
        let response = app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{b}");
        assert_eq!(response.headers().get("content-type").unwrap(), "text/event-stream", "{b}");
        let event = json!({"userId": "u-live", "event": "Live Event", "messageId": "live-1"});
        assert_eq!(app.post("/v1/track", event.to_string()).await.status, StatusCode::OK, "{b}");
        let mut body = response.into_body();
        let mut seen = String::new();
        // A guard against a hang, not a speed check.
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            while !seen.contains("live-1") {
                match body.frame().await {
                    Some(Ok(frame)) => seen.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap_or_default())),
                    _ => break,
                }
            }
        })
        .await;
        assert!(read.is_ok(), "{b}: no event in the stream: {seen}");
        assert!(seen.contains("event: event") && seen.contains("\"label\":\"Live Event\"") && seen.contains("\"who\":\"user u-live\""), "{b}: {seen}");
        let other = format!("/app/o/{}/sources/{}/live", app.a.org.as_str(), app.b.source.id.as_str());
        assert_eq!(browser.get(&other).await.status, StatusCode::NOT_FOUND, "{b}: another organisation's source");
    }
}
