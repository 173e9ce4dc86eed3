//! The admin web UI through the real router, on SQLite and PostgreSQL:
//! sign-in (CSRF, rate limit), sign-out, roles (a viewer changes nothing),
//! every page rendered with real data, the forms that change things, the
//! live debugger's stream, a walk of every UI route as a member of
//! another organisation (404 everywhere), and one of every route as an
//! owner and as an anonymous visitor; the setup page.

// The app builder the API's tests use: the API and the pages together, as
// `cohort serve` serves them.
#[path = "../../cohort-api/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cohort_domain::accounts::hash_password;
use cohort_domain::ids::OrgId;
use cohort_store::users::Role;
use common::{apps, readable, Answer, TestApp};
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
        Self {
            app,
            jar: BTreeMap::new(),
        }
    }

    fn cookies(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
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
        let request = Request::get(path)
            .header("cookie", self.cookies())
            .header("host", "cohort.test")
            .body(Body::empty())
            .unwrap();
        let answer = self.app.send(request).await;
        self.keep_cookies(&answer);
        answer
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let form = fields
            .iter()
            .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = Request::post(path)
            .header("cookie", self.cookies())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let answer = self.app.send(request).await;
        self.keep_cookies(&answer);
        answer
    }

    /// POSTs owned fields (repeated names kept in order).
    async fn post_pairs(&mut self, path: &str, fields: &[(&'static str, String)]) -> Answer {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(path, &refs).await
    }

    /// POSTs JSON, as the segment editor's script does.
    async fn post_json(&mut self, path: &str, body: &Value) -> Answer {
        let request = Request::post(path)
            .header("cookie", self.cookies())
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let answer = self.app.send(request).await;
        self.keep_cookies(&answer);
        answer
    }

    /// GETs a page that must answer 200 and returns its HTML.
    async fn page(&mut self, path: &str) -> String {
        let answer = self.get(path).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{} GET {path}: {}",
            self.app.backend(),
            answer.text()
        );
        readable(&answer.text())
    }

    /// Signs in with the form; the browser then holds a session.
    async fn sign_in(&mut self, email: &str) {
        let form = self.page("/app/sign-in").await;
        let answer = self
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &csrf(&form)),
                    ("email", email),
                    ("password", PASSWORD),
                    ("next", "/app"),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
        assert!(self.jar.contains_key("cohort_session"));
    }

    /// The CSRF token of the session, read from a page of the layout.
    async fn csrf(&mut self) -> String {
        csrf(&self.page("/app/account").await)
    }
}

fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn location(answer: &Answer) -> String {
    answer
        .headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn user(app: &TestApp, org: &OrgId, email: &str, role: Role) -> String {
    let hash = hash_password(PASSWORD).unwrap();
    app.t
        .db
        .create_user(org, email, &hash, role)
        .await
        .unwrap()
        .id
        .as_str()
        .to_owned()
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/fixtures/wc-rest-v3-{name}.docs-example.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Org A gets a customer with traits, an order, a product, and a
/// connected store (an installation row as approval leaves it).
async fn shop(app: &TestApp) -> String {
    let batch = json!({"batch": [
        {"type": "identify", "userId": "25", "anonymousId": "visitor-9", "traits": {"email": "john.doe@example.com", "plan": "gold"}},
        {"type": "track", "event": "Product Viewed", "userId": "25", "properties": {"product_id": "93"}},
    ]});
    assert_eq!(
        app.post("/v1/batch", batch.to_string()).await.status,
        StatusCode::OK
    );
    let path = format!("/api/v1/sources/{}/woocommerce", app.a.source.id.as_str());
    for (topic, name) in [("product.updated", "product"), ("order.updated", "order")] {
        let answer = app
            .api(
                &app.a,
                "POST",
                &path,
                Some(json!({"topic": topic, "resource": fixture(name), "currency": "USD"})),
            )
            .await;
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
    assert_eq!(
        h.get("x-frame-options").map(|v| v.to_str().unwrap()),
        Some("DENY"),
        "{what}"
    );
    let csp = h
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe"),
        "{what}: {csp}"
    );
}

#[tokio::test]
async fn sign_in_needs_the_form_token_and_the_right_password_and_sign_out_ends_the_session() {
    for app in apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);

        let answer = browser
            .get(&format!("/app/o/{}/profiles?q=x", app.a.org.as_str()))
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(
            location(&answer),
            format!(
                "/app/sign-in?next=/app/o/{}/profiles%3Fq%3Dx",
                app.a.org.as_str()
            ),
            "{b}"
        );

        let form = browser.page("/app/sign-in").await;
        assert!(
            form.contains("<label for=\"email\">Email</label>")
                && form.contains("<label for=\"password\">Password</label>"),
            "{b}"
        );
        let token = csrf(&form);
        let no_token = browser
            .post(
                "/app/sign-in",
                &[("email", "ann@example.com"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(
            no_token.status,
            StatusCode::FORBIDDEN,
            "{b}: a sign-in without the form's token"
        );
        let mut stranger = Browser::new(&app);
        let foreign = stranger
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &token),
                    ("email", "ann@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            foreign.status,
            StatusCode::FORBIDDEN,
            "{b}: a token without its cookie (another site's form)"
        );
        let wrong = browser
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &token),
                    ("email", "ann@example.com"),
                    ("password", "not the password"),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{b}");
        assert!(
            readable(&wrong.text()).contains("The email or the password is wrong."),
            "{b}"
        );
        assert!(!browser.jar.contains_key("cohort_session"), "{b}");

        let next = format!("/app/o/{}/sources", app.a.org.as_str());
        let ok = browser
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &token),
                    ("email", "ANN@example.com "),
                    ("password", PASSWORD),
                    ("next", &next),
                ],
            )
            .await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{b}: {}", ok.text());
        assert_eq!(location(&ok), next, "{b}: back where the user was going");
        let cookie = ok
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("cohort_session="))
            .unwrap();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{b}: {cookie}"
        );
        let evil = browser
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &token),
                    ("email", "ann@example.com"),
                    ("password", PASSWORD),
                    ("next", "//evil.example/x"),
                ],
            )
            .await;
        assert_eq!(location(&evil), "/app", "{b}: no redirect off the server");

        let home = browser.get("/app").await;
        assert_eq!(
            location(&home),
            format!("/app/o/{}", app.a.org.as_str()),
            "{b}"
        );
        let overview = browser.get(&location(&home)).await;
        assert_eq!(overview.status, StatusCode::OK, "{b}");
        assert_protected(&overview, "overview");
        assert_eq!(
            overview.headers.get("cache-control").unwrap(),
            "no-store",
            "{b}"
        );

        let bad_out = browser.post("/app/sign-out", &[("csrf", "forged")]).await;
        assert_eq!(
            bad_out.status,
            StatusCode::FORBIDDEN,
            "{b}: sign-out needs the session's token"
        );
        let token = browser.csrf().await;
        let out = browser.post("/app/sign-out", &[("csrf", &token)]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER, "{b}");
        assert!(
            !browser.jar.contains_key("cohort_session"),
            "{b}: the cookie is cleared"
        );
        assert_eq!(
            browser.get("/app").await.status,
            StatusCode::SEE_OTHER,
            "{b}: signed out"
        );
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
            let wrong = browser
                .post(
                    "/app/sign-in",
                    &[
                        ("csrf", &token),
                        ("email", "ann@example.com"),
                        ("password", "guess"),
                    ],
                )
                .await;
            assert_eq!(
                wrong.status,
                StatusCode::UNAUTHORIZED,
                "{b}: attempt {attempt}"
            );
        }
        let blocked = browser
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &token),
                    ("email", "ann@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            blocked.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{b}: even the right password, once over the limit"
        );
        assert!(
            readable(&blocked.text()).contains("Too many failed sign-ins. Wait 15 minutes"),
            "{b}: {}",
            blocked.text()
        );
        assert_eq!(blocked.headers.get("retry-after").unwrap(), "900", "{b}");
        assert!(!browser.jar.contains_key("cohort_session"), "{b}");
        let other = browser
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &token),
                    ("email", "bob@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            other.status,
            StatusCode::SEE_OTHER,
            "{b}: another account is not locked by these attempts"
        );

        // The store authorize page's sign-in form shares the limit.
        let pairing = json!({"store_url": "https://shop.example", "site_name": "Shop", "platform": "woocommerce",
            "plugin_version": "0.1.0", "wp_version": "6.6.2", "wc_version": "9.3.3", "php_version": "8.2.24",
            "currency": "EUR", "timezone": "Europe/Paris", "return_url": "https://shop.example/wp-admin/"});
        let created = app
            .send(
                Request::post("/connect/v1/pairings")
                    .header("content-type", "application/json")
                    .body(Body::from(pairing.to_string()))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{b}: {}",
            created.text()
        );
        let authorize = format!(
            "/setup/woocommerce?pairing={}",
            created.json()["pairing_id"].as_str().unwrap()
        );
        let mut other_browser = Browser::new(&app);
        let page = other_browser.page(&authorize).await;
        let answer = other_browser
            .post(
                &authorize,
                &[
                    ("action", "sign_in"),
                    ("csrf", &csrf(&page)),
                    ("email", "ann@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{b}: {}",
            answer.text()
        );
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
        assert!(
            overview.contains("<svg class=\"chart\"")
                && overview.contains("Events per hour, last 7 days"),
            "{b}"
        );
        assert!(
            overview.contains("Test source")
                && overview.contains("Ann's Shop")
                && overview.contains("healthy"),
            "{b}: {overview}"
        );
        let events = app.count(&app.a).await;
        assert!(events >= 4, "{b}");
        assert!(
            overview.contains(&format!("<b>{events}</b><span>events, last 24 hours")),
            "{b}: the hourly counts hold every event: {overview}"
        );
        assert!(
            overview.contains(&format!("{events} events in all")),
            "{b}: and the chart says so"
        );
        app.post(
            "/v1/track",
            json!({"userId": "25", "event": "One More"}).to_string(),
        )
        .await;
        let again = browser.page(&base).await;
        assert!(
            again.contains(&format!("<b>{}</b><span>events, last 24 hours", events + 1)),
            "{b}: a new event is counted on the next view"
        );

        // Sources: create one, rotate its key, disable it.
        let created = browser
            .post(
                &format!("{base}/sources"),
                &[("csrf", &token), ("name", "Website <main>")],
            )
            .await;
        assert_eq!(
            created.status,
            StatusCode::SEE_OTHER,
            "{b}: {}",
            created.text()
        );
        let source_page = location(&created);
        let page = browser.page(&source_page).await;
        let sources = app.t.db.list_sources(&app.a.org).await.unwrap();
        let website = sources
            .iter()
            .find(|s| s.name == "Website <main>")
            .expect("created");
        assert!(
            page.contains("Website &lt;main&gt;") && !page.contains("Website <main>"),
            "{b}: names are escaped"
        );
        assert!(
            page.contains(&format!("writeKey: '{}'", website.write_key)),
            "{b}: the snippet carries the key"
        );
        assert!(
            page.contains("apiHost: 'http://cohort.test'"),
            "{b}: and this server's URL"
        );
        assert!(
            page.contains("cdnURL: 'http://cohort.test'"),
            "{b}: analytics.js points at Cohort"
        );
        let rotated = browser
            .post(
                &format!("{base}/sources/{}", website.id.as_str()),
                &[("csrf", &token), ("action", "rotate")],
            )
            .await;
        assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{b}");
        let after = app
            .t
            .db
            .find_source(&app.a.org, website.id.as_str())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(after.write_key, website.write_key, "{b}: a new write key");
        assert!(
            browser
                .page(&location(&rotated))
                .await
                .contains("Write key rotated"),
            "{b}"
        );
        let disabled = browser
            .post(
                &format!("{base}/sources/{}", website.id.as_str()),
                &[("csrf", &token), ("action", "disable")],
            )
            .await;
        assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{b}");
        assert!(
            !app.t
                .db
                .find_source(&app.a.org, website.id.as_str())
                .await
                .unwrap()
                .unwrap()
                .enabled,
            "{b}"
        );
        let source = browser
            .page(&format!("{base}/sources/{}", app.a.source.id.as_str()))
            .await;
        assert!(
            source.contains("Product Viewed") && source.contains("data-message-id"),
            "{b}: the newest events are listed"
        );

        // Profiles: search by email, userId and anonymousId; the profile page.
        for q in ["john.doe@example.com", "25", "visitor-9"] {
            let found = browser.page(&format!("{base}/profiles?q={q}")).await;
            assert!(
                found.contains("john.doe@example.com") && found.contains("/profiles/prof_"),
                "{b}: search {q}"
            );
        }
        let none = browser
            .page(&format!("{base}/profiles?q=nobody%40example.com"))
            .await;
        assert!(none.contains("No profile has the identity"), "{b}");
        let profile_id = app
            .t
            .db
            .list_profiles(&app.a.org, &Default::default())
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.profile.user_id.as_deref() == Some("25"))
            .unwrap()
            .profile
            .id;
        let profile = browser.page(&format!("{base}/profiles/{profile_id}")).await;
        assert!(
            profile.contains("<code>plan</code>")
                && profile.contains("gold")
                && profile.contains("Test source"),
            "{b}: traits with where they came from"
        );
        assert!(
            profile.contains("Product Viewed") && profile.contains("Erase profile"),
            "{b}"
        );
        let export = browser
            .get(&format!("{base}/profiles/{profile_id}/export"))
            .await;
        assert_eq!(export.status, StatusCode::OK, "{b}");
        assert!(
            export
                .headers
                .get("content-disposition")
                .unwrap()
                .to_str()
                .unwrap()
                .contains(&profile_id),
            "{b}"
        );

        // Orders and products: exact money in the store's currency.
        let orders = browser.page(&format!("{base}/orders")).await;
        let order = app
            .t
            .db
            .list_orders(
                &app.a.org,
                &cohort_store::projection::OrderFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let (_, order) = order.first().expect("the order was projected");
        let total = format!("${}", order.total.amount);
        assert!(
            orders.contains(&format!(
                "#{}",
                order.number.clone().unwrap_or(order.order_id.clone())
            )),
            "{b}: {orders}"
        );
        assert!(
            orders.contains(&total[..total.len().min(4)]),
            "{b}: {total}"
        );
        let filtered = browser
            .page(&format!("{base}/orders?status=cancelled"))
            .await;
        assert!(filtered.contains("No order matches these filters"), "{b}");
        let products = browser.page(&format!("{base}/products")).await;
        let product = &app
            .t
            .db
            .list_products(
                &app.a.org,
                &cohort_store::projection::ProductFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap()[0];
        assert!(products.contains(&product.product.name), "{b}");

        // Stores: Sync store queues one sync_store command; a second click
        // finds it waiting and queues nothing more.
        let stores = browser.page(&format!("{base}/stores")).await;
        assert!(
            stores.contains("Sync store") && stores.contains("WooCommerce 9.3.3"),
            "{b}"
        );
        let sync = browser
            .post(
                &format!("{base}/stores/{installation}"),
                &[("csrf", &token), ("action", "sync")],
            )
            .await;
        assert_eq!(sync.status, StatusCode::SEE_OTHER, "{b}: {}", sync.text());
        assert_eq!(
            location(&sync),
            format!("{base}/stores/{installation}?done=sync"),
            "{b}"
        );
        assert!(
            browser.page(&location(&sync)).await.contains("Sync queued"),
            "{b}"
        );
        let again = browser
            .post(
                &format!("{base}/stores/{installation}"),
                &[("csrf", &token), ("action", "sync")],
            )
            .await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{b}: {}", again.text());
        assert!(
            browser
                .page(&location(&again))
                .await
                .contains("A sync is already queued"),
            "{b}"
        );
        let pending: Vec<_> = sqlx::query_scalar::<_, String>("SELECT kind FROM connect_commands WHERE org_id = $1 AND installation_id = $2 AND status = 'pending'")
            .bind(app.a.org.as_str())
            .bind(&installation)
            .fetch_all(app.t.db.pool())
            .await
            .unwrap();
        assert_eq!(
            pending,
            ["sync_store"],
            "{b}: one pending command after two clicks"
        );

        // API tokens: shown once, working, then revoked.
        let created = browser
            .post(
                &format!("{base}/tokens"),
                &[("csrf", &token), ("name", "Reporting")],
            )
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{b}");
        let token_page = location(&created);
        assert!(
            token_page.starts_with(&format!("{base}/tokens/")),
            "{b}: {token_page}"
        );
        let html = browser.page(&token_page).await;
        let secret = between(&html, "id=\"new-token\">", "<").to_owned();
        assert!(secret.starts_with("cht_"), "{b}: {secret}");
        assert!(
            !browser.page(&token_page).await.contains(&secret),
            "{b}: a reload shows the secret no more"
        );
        let api = |secret: String| {
            let app = &app;
            async move {
                app.send(
                    Request::get("/api/v1/events?limit=1")
                        .header("authorization", format!("Bearer {secret}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .status
            }
        };
        assert_eq!(api(secret.clone()).await, StatusCode::OK, "{b}");
        assert!(
            !browser
                .page(&format!("{base}/tokens"))
                .await
                .contains(&secret),
            "{b}: never shown again"
        );
        let id = app
            .t
            .db
            .list_api_tokens(&app.a.org)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == "Reporting")
            .unwrap()
            .id;
        let revoked = browser
            .post(&format!("{base}/tokens/{id}"), &[("csrf", &token)])
            .await;
        assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(api(secret).await, StatusCode::UNAUTHORIZED, "{b}");

        // Team: add a viewer, promote them, keep the last owner.
        let added = browser
            .post(
                &format!("{base}/members"),
                &[
                    ("csrf", &token),
                    ("email", "vic@example.com"),
                    ("role", "viewer"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{b}: {}", added.text());
        let vic = app
            .t
            .db
            .list_members(&app.a.org)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.email == "vic@example.com")
            .unwrap();
        assert_eq!(vic.role, Role::Viewer, "{b}");
        let promoted = browser
            .post(
                &format!("{base}/members/{}", vic.user_id),
                &[("csrf", &token), ("action", "role"), ("role", "admin")],
            )
            .await;
        assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(
            app.t
                .db
                .role_in(
                    &app.a.org,
                    &cohort_domain::ids::UserId::from_stored(vic.user_id.clone())
                )
                .await
                .unwrap(),
            Some(Role::Admin),
            "{b}"
        );
        let last = browser
            .post(
                &format!("{base}/members/{ann}"),
                &[("csrf", &token), ("action", "role"), ("role", "viewer")],
            )
            .await;
        assert_eq!(last.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(readable(&last.text()).contains("at least one owner"), "{b}");

        // Erasure needs the box ticked.
        let unticked = browser
            .post(
                &format!("{base}/profiles/{profile_id}/erase"),
                &[("csrf", &token)],
            )
            .await;
        assert_eq!(unticked.status, StatusCode::BAD_REQUEST, "{b}");
        let erased = browser
            .post(
                &format!("{base}/profiles/{profile_id}/erase"),
                &[("csrf", &token), ("confirm", "yes")],
            )
            .await;
        assert_eq!(erased.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(
            browser
                .get(&format!("{base}/profiles/{profile_id}"))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{b}"
        );

        // A form without the session's token changes nothing.
        let forged = browser
            .post(
                &format!("{base}/sources"),
                &[("csrf", "forged"), ("name", "Forged")],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{b}");
        assert!(
            !app.t
                .db
                .list_sources(&app.a.org)
                .await
                .unwrap()
                .iter()
                .any(|s| s.name == "Forged"),
            "{b}"
        );
    }
}

#[tokio::test]
async fn a_viewer_sees_the_pages_without_forms_and_cannot_change_anything() {
    for (app, sender) in destination_apps().await {
        let b = app.backend();
        let installation = shop(&app).await;
        let destination = everflow_destination(&app, &sender).await;
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        user(&app, &app.a.org, "vic@example.com", Role::Viewer).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("vic@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let token = browser.csrf().await;
        let dest = format!("/destinations/{destination}");
        for (path, absent) in [
            ("/sources", "Create source"),
            ("/tokens", "Create token"),
            ("/members", "Add member"),
            ("/stores", "Sync store"),
            ("/destinations", "New Everflow destination"),
            (dest.as_str(), "Send test conversion"),
            (dest.as_str(), "Delete this destination"),
            (dest.as_str(), "Rotate"),
            (&format!("{dest}/deliveries"), "Replay all failed"),
        ] {
            let page = browser.page(&format!("{base}{path}")).await;
            assert!(
                !page.contains(absent),
                "{b}: a viewer is not offered {absent:?}"
            );
        }
        let source = app.a.source.id.as_str();
        for (path, fields) in [
            (format!("{base}/sources"), vec![("name", "Nope")]),
            (
                format!("{base}/sources/{source}"),
                vec![("action", "disable")],
            ),
            (format!("{base}/tokens"), vec![("name", "Nope")]),
            (
                format!("{base}/stores/{installation}"),
                vec![("action", "sync")],
            ),
            (
                format!("{base}/destinations"),
                vec![("type", "webhook"), ("url", "https://hooks.example.com/x")],
            ),
            (
                format!("{base}/destinations/{destination}"),
                vec![("action", "pause")],
            ),
            (
                format!("{base}/destinations/{destination}"),
                vec![("action", "delete"), ("confirm", "yes")],
            ),
            (
                format!("{base}/destinations/{destination}/deliveries/m-1"),
                vec![],
            ),
            (
                format!("{base}/members"),
                vec![
                    ("email", "x@example.com"),
                    ("role", "viewer"),
                    ("password", PASSWORD),
                ],
            ),
        ] {
            let mut all = vec![("csrf", token.as_str())];
            all.extend(fields);
            let answer = browser.post(&path, &all).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{b}: POST {path}");
        }
        assert!(
            app.t
                .db
                .find_source(&app.a.org, source)
                .await
                .unwrap()
                .unwrap()
                .enabled,
            "{b}"
        );
        assert_eq!(
            app.t.db.list_sources(&app.a.org).await.unwrap().len(),
            1,
            "{b}"
        );
        assert!(
            app.t
                .db
                .pending_commands(&app.a.org, &installation)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        assert_eq!(
            app.t.db.list_members(&app.a.org).await.unwrap().len(),
            2,
            "{b}"
        );
        let all = app
            .t
            .db
            .list_destinations(&app.a.org, sender.key())
            .await
            .unwrap();
        assert!(
            all.len() == 1 && all[0].enabled,
            "{b}: the destination is untouched"
        );
        assert_eq!(
            browser
                .get(&format!("{base}/destinations/new?type=webhook"))
                .await
                .status,
            StatusCode::FORBIDDEN,
            "{b}"
        );
        browser
            .page(&format!("{base}/destinations/{destination}/deliveries"))
            .await;
    }
}

/// An Everflow destination of org A, created as the admin API would.
async fn everflow_destination(
    app: &TestApp,
    sender: &cohort_engine::destinations::Dispatcher,
) -> String {
    let input = cohort_engine::destinations::manage::Input {
        kind: "everflow".into(),
        name: Some("Everflow".into()),
        settings: json!({"tracking_domain": "http://127.0.0.1:9", "network_id": "115", "event_mapping": {"Order Completed": 0}}),
        ..Default::default()
    };
    let prepared = cohort_engine::destinations::manage::prepare(input, true)
        .await
        .unwrap();
    app.t
        .db
        .create_destination(&app.a.org, sender.key(), &prepared.new)
        .await
        .unwrap()
        .id
}

/// Org A's first profile and API token: ids for the walks' paths.
async fn first_profile_and_token(app: &TestApp) -> (String, String) {
    let db = &app.t.db;
    let profiles = db.list_profiles(&app.a.org, &Default::default()).await;
    let tokens = db.list_api_tokens(&app.a.org).await;
    (
        profiles.unwrap().remove(0).profile.id,
        tokens.unwrap().remove(0).id,
    )
}

/// Every UI route of `cohort_web::routes`, with org A's ids in its
/// parameters, as an owner of org B: each answers 404 (and changes nothing).
#[tokio::test]
async fn every_ui_route_answers_404_to_a_member_of_another_organisation() {
    let mut paths: Vec<(String, Vec<&'static str>)> = Vec::new();
    for route in cohort_web::routes() {
        if !route.path.starts_with("/app/o/{org}") {
            continue;
        }
        let method = if route.method == axum::http::Method::POST {
            "POST"
        } else {
            "GET"
        };
        match paths.iter_mut().find(|(path, _)| path == route.path) {
            Some((_, methods)) => methods.push(method),
            None => paths.push((route.path.to_owned(), vec![method])),
        }
    }
    assert!(
        paths.len() >= 18,
        "the walk covers the organisation's routes: {paths:?}"
    );
    for (app, sender) in destination_apps().await {
        let b = app.backend();
        let installation = shop(&app).await;
        let destination = everflow_destination(&app, &sender).await;
        let ann = user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        user(&app, &app.b.org, "bea@example.com", Role::Owner).await;
        let (profile, token) = first_profile_and_token(&app).await;
        let segment = gold_segment(&app).await;
        let mail = mail_objects(&app).await;
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
                .replace("{token}", &token)
                .replace("{destination}", &destination)
                .replace("{segment}", &segment)
                .replace("{message}", "ord-1")
                .replace("{mail}", &mail.sent)
                .replace("{provider}", &mail.provider)
                .replace("{domain}", &mail.domain)
                .replace("{webhook}", &mail.webhook);
            assert!(
                !path.contains('{'),
                "a parameter the walk does not know: {template}"
            );
            for method in methods {
                let answer = match *method {
                    "GET" => browser.get(&path).await,
                    _ => {
                        browser
                            .post(
                                &path,
                                &[
                                    ("csrf", &csrf),
                                    ("action", "sync"),
                                    ("name", "x"),
                                    ("email", "x@example.com"),
                                    ("role", "owner"),
                                    ("confirm", "yes"),
                                    ("rule", "email exists"),
                                ],
                            )
                            .await
                    }
                };
                assert_eq!(
                    answer.status,
                    StatusCode::NOT_FOUND,
                    "{b}: {method} {template} as another organisation's member"
                );
                if *method == "POST" && path.contains("/destinations") {
                    for action in ["pause", "delete", "save", "rotate", "test", "replay_failed"] {
                        let answer = browser
                            .post(
                                &path,
                                &[
                                    ("csrf", &csrf),
                                    ("action", action),
                                    ("confirm", "yes"),
                                    ("type", "webhook"),
                                    ("url", "https://x.example/"),
                                ],
                            )
                            .await;
                        assert_eq!(
                            answer.status,
                            StatusCode::NOT_FOUND,
                            "{b}: POST {template} action={action}"
                        );
                    }
                }
                walked += 1;
            }
        }
        assert!(walked >= 15, "{b}: {walked} requests");
        for action in ["save", "delete"] {
            let answer = browser
                .post(
                    &format!("/app/o/{}/segments/{segment}", app.a.org.as_str()),
                    &[
                        ("csrf", &csrf),
                        ("action", action),
                        ("confirm", "yes"),
                        ("name", "Taken over"),
                        ("rule", "email exists"),
                    ],
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{b}: segment {action}"
            );
        }
        let kept = app.t.db.segment(&app.a.org, &segment).await.unwrap();
        assert!(
            kept.is_some_and(|s| s.name == "Gold" && s.member_count == 1),
            "{b}: org A's segment is unchanged"
        );
        // Org B's own pages work for the same browser: the 404s were about A.
        browser
            .page(&format!("/app/o/{}", app.b.org.as_str()))
            .await;
        assert_eq!(
            app.t.db.list_sources(&app.a.org).await.unwrap().len(),
            1,
            "{b}"
        );
        assert!(
            app.t
                .db
                .pending_commands(&app.a.org, &installation)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        assert!(
            app.t
                .db
                .profile(&app.a.org, &profile)
                .await
                .unwrap()
                .is_some(),
            "{b}"
        );
        let kept = app
            .t
            .db
            .list_destinations(&app.a.org, sender.key())
            .await
            .unwrap();
        assert!(
            kept.len() == 1 && kept[0].enabled && kept[0].name == "Everflow",
            "{b}: org A's destination is unchanged"
        );
        // B's own destination pages work, and A's destination id is not one of B's.
        browser
            .page(&format!("/app/o/{}/destinations", app.b.org.as_str()))
            .await;
        assert_eq!(
            browser
                .get(&format!(
                    "/app/o/{}/destinations/{destination}",
                    app.b.org.as_str()
                ))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{b}"
        );
        let answer = browser
            .post(
                &format!("/app/o/{}/destinations/{destination}", app.b.org.as_str()),
                &[("csrf", &csrf), ("action", "delete"), ("confirm", "yes")],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{b}: another organisation's destination id in B's own path"
        );
        assert_eq!(
            browser
                .get(&format!(
                    "/app/o/{}/destinations/{destination}/deliveries",
                    app.b.org.as_str()
                ))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{b}"
        );
        // The switcher offers B only.
        let page = browser.page("/app/account").await;
        assert!(page.contains("Org B") && !page.contains("Org A"), "{b}");
        assert_eq!(
            browser
                .get(&format!("/app/switch?org={}", app.a.org.as_str()))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{b}"
        );
    }
}

/// The status and `Location` of a request, without reading the body (the
/// live debugger's stream never ends).
async fn status_of(
    app: &TestApp,
    method: &axum::http::Method,
    path: &str,
    cookie: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", cookie)
        .header("host", "cohort.test")
        .header("content-type", "application/x-www-form-urlencoded")
        // A wrong CSRF token: every form refuses it, so the walk changes
        // nothing. The setup form gets passwords that differ.
        .body(Body::from(
            "csrf=not-the-token&action=walk&email=walk%40example.com&password=a&password_confirmation=b",
        ))
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), location)
}

/// Every route of `cohort_web::routes`, with real ids in its parameters:
/// a signed-in owner gets a page (or a redirect to one), never 404 or an
/// error; an anonymous visitor is sent to sign-in from every signed-in
/// route and gets the public ones (sign-in, assets, setup, authorize). A
/// method the list does not name answers 405, so the list is the router's.
#[tokio::test]
async fn every_ui_route_answers_an_owner_and_sends_a_visitor_to_sign_in() {
    use axum::http::Method;
    use cohort_web::Access;

    let routes = cohort_web::routes();
    assert!(routes.len() >= 40, "{routes:?}");
    for path in [
        "/setup/{token}",
        "/setup/woocommerce",
        "/app",
        "/app/sign-in",
        "/app/sign-out",
        "/app/switch",
        "/app/assets/{file}",
        "/app/account",
        "/app/o/{org}",
        "/app/o/{org}/sources",
        "/app/o/{org}/sources/{source}",
        "/app/o/{org}/sources/{source}/live",
        "/app/o/{org}/profiles",
        "/app/o/{org}/profiles/{profile}",
        "/app/o/{org}/profiles/{profile}/erase",
        "/app/o/{org}/profiles/{profile}/export",
        "/app/o/{org}/orders",
        "/app/o/{org}/products",
        "/app/o/{org}/stores",
        "/app/o/{org}/stores/{store}",
        "/app/o/{org}/stores/{store}/runs",
        "/app/o/{org}/destinations",
        "/app/o/{org}/destinations/new",
        "/app/o/{org}/destinations/{destination}",
        "/app/o/{org}/destinations/{destination}/deliveries",
        "/app/o/{org}/destinations/{destination}/deliveries/{message}",
        "/app/o/{org}/members",
        "/app/o/{org}/members/{user}",
        "/app/o/{org}/tokens",
        "/app/o/{org}/tokens/{token}",
        "/app/o/{org}/segments",
        "/app/o/{org}/segments/new",
        "/app/o/{org}/segments/preview",
        "/app/o/{org}/segments/{segment}",
        "/app/o/{org}/segments/{segment}/edit",
        "/app/o/{org}/mail",
        "/app/o/{org}/mail/messages/{mail}",
        "/app/o/{org}/mail/providers",
        "/app/o/{org}/mail/providers/{provider}",
        "/app/o/{org}/mail/domains",
        "/app/o/{org}/mail/domains/{domain}",
        "/app/o/{org}/mail/suppressions",
        "/app/o/{org}/mail/webhooks",
        "/app/o/{org}/mail/webhooks/{webhook}",
    ] {
        assert!(
            routes.iter().any(|r| r.path == path),
            "{path} missing from cohort_web::routes"
        );
    }
    for (app, sender) in destination_apps().await {
        let b = app.backend();
        let installation = shop(&app).await;
        let destination = everflow_destination(&app, &sender).await;
        // One delivery in the destination's log (the receiver refuses it).
        let order = json!({"userId": "25", "event": "Order Completed", "messageId": "ord-walk"});
        assert_eq!(
            app.post("/v1/track", order.to_string()).await.status,
            StatusCode::OK
        );
        app.projected().await;
        sender.run_until_idle().await.unwrap();
        let message = app
            .t
            .db
            .list_deliveries(
                &app.a.org,
                &destination,
                &cohort_store::destinations::DeliveryFilter {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .remove(0)
            .message_id;
        let ann = user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let (profile, api_token) = first_profile_and_token(&app).await;
        let segment = gold_segment(&app).await;
        let mail = mail_objects(&app).await;
        let setup = app.t.db.create_setup_link(&app.b.org).await.unwrap();
        let pairing = app
            .send(
                Request::post("/connect/v1/pairings")
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({
                            "store_url": "https://walk.example", "site_name": "Walk", "platform": "woocommerce",
                            "plugin_version": "0.1.0", "wp_version": "6.6.2", "wc_version": "9.3.3",
                            "php_version": "8.2.24", "currency": "EUR", "timezone": "Europe/Paris",
                            "return_url": "https://walk.example/wp-admin/admin.php?page=cohort",
                        })
                        .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(pairing.status, StatusCode::CREATED, "{}", pairing.text());
        let pairing = pairing.json()["pairing_id"].as_str().unwrap().to_owned();
        let mut browser = Browser::new(&app);
        let sign_in = browser.page("/app/sign-in").await;
        let stylesheet = sign_in
            .split('"')
            .find(|part| part.starts_with("/app/assets/") && part.ends_with(".css"))
            .expect("the page names its stylesheet")
            .to_owned();
        browser.sign_in("ann@example.com").await;
        let owner = browser.cookies();

        let concrete = |template: &str| {
            let ids = if template.starts_with("/setup/") {
                template.replace("{token}", setup.reveal())
            } else {
                template.replace("{token}", &api_token)
            };
            let path = ids
                .replace("{org}", app.a.org.as_str())
                .replace("{source}", app.a.source.id.as_str())
                .replace("{profile}", &profile)
                .replace("{store}", &installation)
                .replace("{user}", &ann)
                .replace("{destination}", &destination)
                .replace("{segment}", &segment)
                .replace("{message}", &message)
                .replace("{mail}", &mail.sent)
                .replace("{provider}", &mail.provider)
                .replace("{domain}", &mail.domain)
                .replace("{webhook}", &mail.webhook)
                .replace("/app/assets/{file}", &stylesheet);
            assert!(
                !path.contains('{'),
                "a parameter the walk does not know: {template}"
            );
            match template {
                "/app/switch" => format!("{path}?org={}", app.a.org.as_str()),
                "/setup/woocommerce" => format!("{path}?pairing={pairing}"),
                _ => path,
            }
        };
        for route in &routes {
            let path = concrete(route.path);
            let what = format!("{b}: {} {}", route.method, route.path);
            let (status, location) = status_of(&app, &route.method, &path, &owner).await;
            if route.method == Method::GET {
                assert!(
                    status == StatusCode::OK || status == StatusCode::SEE_OTHER,
                    "{what} as the owner: {status}"
                );
            } else {
                assert!(
                    status != StatusCode::NOT_FOUND
                        && status != StatusCode::METHOD_NOT_ALLOWED
                        && !status.is_server_error(),
                    "{what} as the owner: {status}"
                );
            }
            assert!(
                !location.starts_with("/app/sign-in"),
                "{what}: the owner is signed in"
            );
            let (status, location) = status_of(&app, &route.method, &path, "").await;
            match (route.access, &route.method) {
                (Access::SignedIn, _) => assert!(
                    status == StatusCode::SEE_OTHER && location.starts_with("/app/sign-in?next="),
                    "{what} anonymously: {status} to {location:?}"
                ),
                (Access::Public, &Method::GET) => {
                    assert_eq!(status, StatusCode::OK, "{what} anonymously")
                }
                (Access::Public, _) => assert!(
                    status != StatusCode::NOT_FOUND
                        && status != StatusCode::METHOD_NOT_ALLOWED
                        && !status.is_server_error()
                        && !location.starts_with("/app/sign-in"),
                    "{what} anonymously: {status} to {location:?}"
                ),
            }
            for other in [Method::GET, Method::POST] {
                let listed = routes
                    .iter()
                    .any(|r| r.path == route.path && r.method == other);
                if !listed {
                    let (status, _) = status_of(&app, &other, &path, &owner).await;
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{b}: {other} {} is not in the list, so not served",
                        route.path
                    );
                }
            }
        }
        // The walk changed nothing: the wrong CSRF token was refused everywhere.
        assert!(app
            .t
            .db
            .check_setup_link(setup.reveal())
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            app.t.db.list_api_tokens(&app.a.org).await.unwrap().len(),
            1,
            "{b}"
        );
        assert_eq!(app.t.db.count_members(&app.a.org).await.unwrap(), 1, "{b}");
        let segments = app.t.db.segments_of(&app.a.org).await.unwrap();
        assert!(
            segments.len() == 1 && segments[0].name == "Gold",
            "{b}: the walk made no segment and changed none"
        );
        assert_eq!(
            (
                app.mail.providers(&app.a.org).await.unwrap().len(),
                app.mail.webhooks(&app.a.org).await.unwrap().len(),
                app.mail.domains(&app.a.org).await.unwrap().len(),
            ),
            (1, 1, 1),
            "{b}: the walk made no mail object and removed none"
        );
    }
}

#[tokio::test]
async fn the_setup_link_creates_the_first_owner_once() {
    for app in apps().await {
        let link = app.t.db.create_setup_link(&app.a.org).await.unwrap();
        let path = format!("/setup/{}", link.reveal());
        let form = app
            .send(Request::get(&path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.text().contains("<label for=\"email\">"));
        let post = |body: &'static str| {
            Request::post(&path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap()
        };
        let short = app
            .send(post(
                "email=o%40example.com&password=short&password_confirmation=short",
            ))
            .await;
        assert_eq!(short.status, StatusCode::BAD_REQUEST);
        assert!(short.text().contains("at least"));
        let created = app
            .send(post("email=o%40example.com&password=long+enough+pass&password_confirmation=long+enough+pass"))
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text());
        assert_eq!(location(&created), "/app/sign-in?done=account");
        let sign_in = app
            .send(
                Request::get("/app/sign-in?done=account")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert!(
            sign_in.text().contains("Account created."),
            "{}",
            sign_in.text()
        );
        assert_eq!(app.t.db.count_members(&app.a.org).await.unwrap(), 1);
        let again = app
            .send(post("email=p%40example.com&password=long+enough+pass&password_confirmation=long+enough+pass"))
            .await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
        let unknown = app
            .send(
                Request::get("/setup/setup_x_y")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
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
        let wrong = laptop
            .post(
                "/app/account",
                &[
                    ("csrf", &token),
                    ("current_password", "nope"),
                    ("new_password", new),
                    ("new_password_confirmation", new),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{b}");
        let differ = laptop
            .post(
                "/app/account",
                &[
                    ("csrf", &token),
                    ("current_password", PASSWORD),
                    ("new_password", new),
                    ("new_password_confirmation", "x"),
                ],
            )
            .await;
        assert_eq!(differ.status, StatusCode::BAD_REQUEST, "{b}");
        let short = laptop
            .post(
                "/app/account",
                &[
                    ("csrf", &token),
                    ("current_password", PASSWORD),
                    ("new_password", "short"),
                    ("new_password_confirmation", "short"),
                ],
            )
            .await;
        assert_eq!(short.status, StatusCode::BAD_REQUEST, "{b}");
        let ok = laptop
            .post(
                "/app/account",
                &[
                    ("csrf", &token),
                    ("current_password", PASSWORD),
                    ("new_password", new),
                    ("new_password_confirmation", new),
                ],
            )
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{b}: {}", ok.text());
        assert!(readable(&ok.text()).contains("Password changed"), "{b}");
        assert_eq!(
            laptop.get("/app/account").await.status,
            StatusCode::OK,
            "{b}: this session stays"
        );
        assert_eq!(
            phone.get("/app/account").await.status,
            StatusCode::SEE_OTHER,
            "{b}: the other one ended"
        );
        assert!(
            app.t
                .db
                .authenticate_user("ann@example.com", new)
                .await
                .unwrap()
                .is_some(),
            "{b}"
        );
        assert!(
            app.t
                .db
                .authenticate_user("ann@example.com", PASSWORD)
                .await
                .unwrap()
                .is_none(),
            "{b}"
        );
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
            assert_eq!(
                answer.headers.get("cache-control").unwrap(),
                "public, max-age=31536000, immutable",
                "{b}"
            );
            let stale = browser
                .get(&format!("/app/assets/app-0000000000000000.{ext}"))
                .await;
            assert_eq!(stale.status, StatusCode::NOT_FOUND, "{b}");
        }
        assert!(
            !page.contains("<script>") && !page.contains("style="),
            "{b}: nothing inline, as the CSP demands"
        );
    }
}

#[tokio::test]
async fn the_live_debugger_streams_each_new_event_of_the_source() {
    for app in apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let path = format!(
            "/app/o/{}/sources/{}/live",
            app.a.org.as_str(),
            app.a.source.id.as_str()
        );
        let request = Request::get(&path)
            .header("cookie", browser.cookies())
            .body(Body::empty())
            .unwrap();
        let response = app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{b}");
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/event-stream",
            "{b}"
        );
        let event = json!({"userId": "u-live", "event": "Live Event", "messageId": "live-1"});
        assert_eq!(
            app.post("/v1/track", event.to_string()).await.status,
            StatusCode::OK,
            "{b}"
        );
        let mut body = response.into_body();
        let mut seen = String::new();
        // A guard against a hang, not a speed check.
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            while !seen.contains("live-1") {
                match body.frame().await {
                    Some(Ok(frame)) => seen.push_str(&String::from_utf8_lossy(
                        &frame.into_data().unwrap_or_default(),
                    )),
                    _ => break,
                }
            }
        })
        .await;
        assert!(read.is_ok(), "{b}: no event in the stream: {seen}");
        assert!(
            seen.contains("event: event")
                && seen.contains("\"label\":\"Live Event\"")
                && seen.contains("\"who\":\"user u-live\""),
            "{b}: {seen}"
        );
        let other = format!(
            "/app/o/{}/sources/{}/live",
            app.a.org.as_str(),
            app.b.source.id.as_str()
        );
        assert_eq!(
            browser.get(&other).await.status,
            StatusCode::NOT_FOUND,
            "{b}: another organisation's source"
        );
    }
}

/// A local HTTP receiver for destinations: records each request, answers
/// the scripted statuses (200 when none is left).
#[derive(Clone, Default)]
struct Receiver {
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let receiver = Receiver::default();
        let state = receiver.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri| {
                let state = state.clone();
                async move {
                    state
                        .requests
                        .lock()
                        .unwrap()
                        .push(format!("{method} {uri}"));
                    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
                    (StatusCode::from_u16(status).unwrap(), "{\"received\":true}")
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, format!("http://{addr}"))
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn dispatcher(db: &cohort_store::Db) -> cohort_engine::destinations::Dispatcher {
    let options = cohort_engine::destinations::DispatcherOptions {
        allow_private_addresses: true,
        schedule: Vec::new(),
        poll: Duration::from_millis(20),
        ..Default::default()
    };
    cohort_engine::destinations::Dispatcher::new(
        db.clone(),
        cohort_store::destinations::SecretsKey::generate(),
        options,
    )
    .unwrap()
}

/// Apps with destinations on (loopback receivers allowed), one per backend.
async fn destination_apps() -> Vec<(TestApp, cohort_engine::destinations::Dispatcher)> {
    let mut out = Vec::new();
    for t in cohort_testkit::all_backends().await {
        let mut kept = None;
        let app = TestApp::with_dispatcher(t, |db| {
            let d = dispatcher(db);
            kept = Some(d.clone());
            d
        })
        .await;
        out.push((app, kept.unwrap()));
    }
    out
}

fn between<'h>(html: &'h str, start: &str, end: &str) -> &'h str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in {html}"))
        + start.len();
    let rest = &html[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[tokio::test]
async fn everflow_and_webhook_destinations_are_created_tested_edited_and_their_log_replayed_from_the_pages(
) {
    for (app, sender) in destination_apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let token = browser.csrf().await;
        let (receiver, url) = Receiver::start().await;
        let secret_token = "vt_do_not_show_0123456789";

        let list = browser.page(&format!("{base}/destinations")).await;
        assert!(
            list.contains("No destination yet") && list.contains("New Everflow destination"),
            "{b}"
        );
        let form = browser
            .page(&format!("{base}/destinations/new?type=everflow"))
            .await;
        assert!(
            form.contains("<label for=\"f-nid\">Network id</label>")
                && form.contains("name=\"map_event\"")
                && form.contains("Order Completed"),
            "{b}"
        );

        // The domain's checks become inline errors naming the field; nothing is written.
        let everflow = |nid: &'static str| {
            vec![
                ("csrf", token.clone()),
                ("type", "everflow".to_owned()),
                ("name", "Everflow <main>".to_owned()),
                ("tracking_domain", url.clone()),
                ("network_id", nid.to_owned()),
                ("source_kind", "all".to_owned()),
                ("attribution_window_days", "30".to_owned()),
                ("verification_token", secret_token.to_owned()),
                ("map_event", "Order Completed".to_owned()),
                ("map_id", "0".to_owned()),
                ("map_event", "Purchase".to_owned()),
                ("map_id", "24".to_owned()),
                ("map_event", String::new()),
                ("map_id", String::new()),
            ]
        };
        let bad = browser
            .post_pairs(&format!("{base}/destinations"), &everflow("abc"))
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{b}: {}", bad.text());
        let html = readable(&bad.text());
        assert!(
            html.contains("settings.network_id: must be Everflow")
                && html.contains("aria-invalid=\"true\" aria-describedby=\"err-network_id\""),
            "{b}: {html}"
        );
        assert!(
            html.contains("value=\"Purchase\"")
                && html.contains(&url)
                && !html.contains(secret_token),
            "{b}: the values are kept, the secret is not echoed"
        );
        let key = sender.key();
        assert!(
            app.t
                .db
                .list_destinations(&app.a.org, key)
                .await
                .unwrap()
                .is_empty(),
            "{b}: nothing written"
        );
        let mut no_map = everflow("115");
        no_map.retain(|(k, _)| !k.starts_with("map_"));
        let bad = browser
            .post_pairs(&format!("{base}/destinations"), &no_map)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            readable(&bad.text()).contains("settings.event_mapping"),
            "{b}"
        );

        let created = browser
            .post_pairs(&format!("{base}/destinations"), &everflow("115"))
            .await;
        assert_eq!(
            created.status,
            StatusCode::SEE_OTHER,
            "{b}: {}",
            created.text()
        );
        let all = app.t.db.list_destinations(&app.a.org, key).await.unwrap();
        assert_eq!(all.len(), 1, "{b}");
        let d = &all[0];
        assert_eq!(
            location(&created),
            format!("{base}/destinations/{}?done=created", d.id),
            "{b}"
        );
        assert_eq!(
            d.settings["event_mapping"],
            json!({"Order Completed": 0, "Purchase": 24}),
            "{b}"
        );
        assert_eq!(
            d.secrets.verification_token.as_deref(),
            Some(secret_token),
            "{b}"
        );
        let page = browser.page(&location(&created)).await;
        assert!(
            page.contains("Everflow &lt;main&gt;")
                && page.contains("Destination created")
                && !page.contains(secret_token),
            "{b}"
        );
        assert!(
            page.contains("No event in the log matches this destination yet"),
            "{b}"
        );

        // The field mapping shows what the last matching event would send.
        let order = json!({"userId": "25", "event": "Order Completed", "messageId": "ord-ui-1",
            "context": {"referrer": {"type": "everflow", "id": "tid-ui-9"}, "ip": "203.0.113.7"},
            "properties": {"orderId": "A-100", "total": 99.90, "currency": "USD", "products": [{"sku": "SKU-1", "name": "Mug", "quantity": 2}]}});
        assert_eq!(
            app.post("/v1/track", order.to_string()).await.status,
            StatusCode::OK,
            "{b}"
        );
        let page = browser.page(&format!("{base}/destinations/{}", d.id)).await;
        assert!(
            page.contains("A delivery of this event would send the values below")
                && page.contains("<code>tid-ui-9</code>"),
            "{b}: {page}"
        );
        let amount = between(&page, "<code>amount</code>", "</tr>");
        assert!(
            amount.contains("<code class=\"value\">99.9</code>"),
            "{b}: {amount}"
        );
        let coupon = between(&page, "<code>coupon_code</code>", "</tr>");
        assert!(coupon.contains("missing"), "{b}: {coupon}");
        let sku = between(&page, "<code>order_line_items[i].sku</code>", "</tr>");
        assert!(sku.contains("SKU-1"), "{b}: {sku}");
        assert!(
            page.contains("Mobile sources") && page.contains("not sent (web event)"),
            "{b}"
        );

        // Send test conversion: the receiver gets it, the page shows the exact request, masked.
        let tested = browser
            .post(
                &format!("{base}/destinations/{}", d.id),
                &[("csrf", &token), ("action", "test")],
            )
            .await;
        assert_eq!(tested.status, StatusCode::OK, "{b}: {}", tested.text());
        let got = receiver.requests();
        assert_eq!(got.len(), 1, "{b}: {got:?}");
        assert!(
            got[0].starts_with("GET /?nid=115&transaction_id=tid-ui-9")
                && got[0].contains(&format!("verification_token={secret_token}")),
            "{b}: {got:?}"
        );
        let html = readable(&tested.text());
        let shown = between(
            &html,
            "<pre class=\"request\" id=\"test-request\">",
            "</pre>",
        );
        let expected = got[0]
            .replacen("GET /?", &format!("GET {url}/?"), 1)
            .replace(
                &format!("verification_token={secret_token}"),
                "verification_token=***",
            );
        assert!(
            shown.starts_with(&expected.replace('&', "&amp;")),
            "{b}: the exact request: {shown} vs {expected}"
        );
        assert!(
            !html.contains(secret_token)
                && html.contains("HTTP 200")
                && html.contains("the last matching event of the log"),
            "{b}"
        );
        assert!(
            html.contains("<span class=\"badge delivered\">delivered</span>"),
            "{b}"
        );

        // Edit: a bad value names its field; a good one is saved, the token kept.
        let mut edit = everflow("");
        edit.retain(|(k, _)| *k != "type" && *k != "verification_token");
        edit.push(("action", "save".into()));
        let bad = browser
            .post_pairs(&format!("{base}/destinations/{}", d.id), &edit.clone())
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            readable(&bad.text()).contains("Not saved. settings.network_id"),
            "{b}"
        );
        let mut edit: Vec<_> = edit
            .into_iter()
            .map(|(k, v)| {
                if k == "network_id" {
                    (k, "116".to_owned())
                } else if k == "name" {
                    (k, "Everflow EU".to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        edit.retain(|(k, v)| {
            !((*k == "map_event" && v == "Purchase") || (*k == "map_id" && v == "24"))
        });
        let saved = browser
            .post_pairs(&format!("{base}/destinations/{}", d.id), &edit)
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{b}: {}", saved.text());
        let d = app
            .t
            .db
            .get_destination(&app.a.org, key, &d.id)
            .await
            .unwrap();
        assert_eq!(
            (d.name.as_str(), d.settings["network_id"].as_str()),
            ("Everflow EU", Some("116")),
            "{b}"
        );
        assert_eq!(
            (&d.settings["event_mapping"], &d.filters.events),
            (
                &json!({"Order Completed": 0}),
                &vec!["Order Completed".to_owned()]
            ),
            "{b}: the mapping row removed, the filters follow"
        );
        assert_eq!(
            d.secrets.verification_token.as_deref(),
            Some(secret_token),
            "{b}: an empty secret field keeps the secret"
        );

        // A failed delivery in the log: filters, detail, replay.
        receiver.script.lock().unwrap().push_back(400);
        sender.run_until_idle().await.unwrap();
        let failed = browser
            .page(&format!(
                "{base}/destinations/{}/deliveries?status=failed",
                d.id
            ))
            .await;
        assert!(
            failed.contains("ord-ui-1") && failed.contains("HTTP 400"),
            "{b}: {failed}"
        );
        let delivered = browser
            .page(&format!(
                "{base}/destinations/{}/deliveries?status=delivered",
                d.id
            ))
            .await;
        assert!(
            delivered.contains("No delivery matches these filters"),
            "{b}"
        );
        let text = browser
            .page(&format!(
                "{base}/destinations/{}/deliveries?q=TID-UI-9&event=Order+Completed",
                d.id
            ))
            .await;
        assert!(text.contains("ord-ui-1"), "{b}: text search");
        let bad_time = browser
            .get(&format!(
                "{base}/destinations/{}/deliveries?since=yesterday",
                d.id
            ))
            .await;
        assert_eq!(bad_time.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            readable(&bad_time.text()).contains("since: a UTC time"),
            "{b}"
        );
        let later = browser
            .page(&format!(
                "{base}/destinations/{}/deliveries?since=2999-01-01T00:00",
                d.id
            ))
            .await;
        assert!(
            later.contains("No delivery matches"),
            "{b}: the time range filters"
        );
        let detail = browser
            .page(&format!("{base}/destinations/{}/deliveries/ord-ui-1", d.id))
            .await;
        assert!(
            detail.contains("verification_token=***")
                && !detail.contains(secret_token)
                && detail.contains("received"),
            "{b}: {detail}"
        );
        let list = browser.page(&format!("{base}/destinations")).await;
        assert!(
            list.contains("<span class=\"badge failed\">1</span>"),
            "{b}: failures in 24 h: {list}"
        );
        let replay = browser
            .post(
                &format!("{base}/destinations/{}/deliveries/ord-ui-1", d.id),
                &[("csrf", &token)],
            )
            .await;
        assert_eq!(replay.status, StatusCode::SEE_OTHER, "{b}");
        assert!(
            browser
                .page(&location(&replay))
                .await
                .contains("Delivery queued again"),
            "{b}"
        );
        sender.run_until_idle().await.unwrap();
        let delivery = app
            .t
            .db
            .get_delivery(&app.a.org, &d.id, "ord-ui-1")
            .await
            .unwrap();
        assert_eq!(delivery.status.as_str(), "delivered", "{b}");
        let list = browser.page(&format!("{base}/destinations")).await;
        assert!(list.contains("just now"), "{b}: the last delivery");

        // Pause and resume.
        let paused = browser
            .post(
                &format!("{base}/destinations/{}", d.id),
                &[("csrf", &token), ("action", "pause")],
            )
            .await;
        assert_eq!(paused.status, StatusCode::SEE_OTHER, "{b}");
        assert!(
            !app.t
                .db
                .get_destination(&app.a.org, key, &d.id)
                .await
                .unwrap()
                .enabled,
            "{b}"
        );
        assert!(
            browser
                .page(&format!("{base}/destinations"))
                .await
                .contains("badge paused"),
            "{b}"
        );
        browser
            .post(
                &format!("{base}/destinations/{}", d.id),
                &[("csrf", &token), ("action", "resume")],
            )
            .await;
        assert!(
            app.t
                .db
                .get_destination(&app.a.org, key, &d.id)
                .await
                .unwrap()
                .enabled,
            "{b}"
        );

        // A webhook: its signing secret shown once, rotated, shown once again.
        let hook = browser
            .post(
                &format!("{base}/destinations"),
                &[
                    ("csrf", &token),
                    ("type", "webhook"),
                    ("name", "Hook"),
                    ("url", &format!("{url}/hook")),
                    ("filter_types", "track"),
                ],
            )
            .await;
        assert_eq!(hook.status, StatusCode::SEE_OTHER, "{b}: {}", hook.text());
        let html = browser.page(&location(&hook)).await;
        let first = between(&html, "<code id=\"new-secret\">", "<").to_owned();
        assert!(first.starts_with("whsec_"), "{b}: {first}");
        let hook = app
            .t
            .db
            .list_destinations(&app.a.org, key)
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.kind.as_str() == "webhook")
            .unwrap();
        assert_eq!(
            hook.secrets.signing_secret.as_deref(),
            Some(first.as_str()),
            "{b}"
        );
        assert_eq!(hook.filters.types, ["track"], "{b}");
        assert!(
            !browser
                .page(&format!("{base}/destinations/{}", hook.id))
                .await
                .contains(&first),
            "{b}: never shown again"
        );
        let rotated = browser
            .post(
                &format!("{base}/destinations/{}", hook.id),
                &[("csrf", &token), ("action", "rotate")],
            )
            .await;
        assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{b}");
        let rotated_page = browser.page(&location(&rotated)).await;
        let second = between(&rotated_page, "<code id=\"new-secret\">", "<").to_owned();
        assert!(
            rotated_page.contains("Signing secret rotated"),
            "{b}: {rotated_page}"
        );
        assert!(
            !browser.page(&location(&rotated)).await.contains(&second),
            "{b}: a reload shows the rotated secret no more"
        );
        let hook = app
            .t
            .db
            .get_destination(&app.a.org, key, &hook.id)
            .await
            .unwrap();
        assert_eq!(
            (
                hook.secrets.signing_secret.as_deref(),
                hook.secrets.previous_signing_secret.as_deref()
            ),
            (Some(second.as_str()), Some(first.as_str())),
            "{b}"
        );
        let no_url = browser
            .post(
                &format!("{base}/destinations"),
                &[
                    ("csrf", &token),
                    ("type", "webhook"),
                    ("name", "Hook"),
                    ("url", "ftp://x.example/"),
                ],
            )
            .await;
        assert_eq!(no_url.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(readable(&no_url.text()).contains("settings.url"), "{b}");

        // Delete needs the box ticked.
        let unticked = browser
            .post(
                &format!("{base}/destinations/{}", hook.id),
                &[("csrf", &token), ("action", "delete")],
            )
            .await;
        assert_eq!(unticked.status, StatusCode::BAD_REQUEST, "{b}");
        let deleted = browser
            .post(
                &format!("{base}/destinations/{}", hook.id),
                &[("csrf", &token), ("action", "delete"), ("confirm", "yes")],
            )
            .await;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{b}");
        assert_eq!(
            browser
                .get(&format!("{base}/destinations/{}", hook.id))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{b}"
        );
        assert_eq!(
            app.t
                .db
                .list_destinations(&app.a.org, key)
                .await
                .unwrap()
                .len(),
            1,
            "{b}"
        );

        // The overview links the destination and its failures.
        let overview = browser.page(&base).await;
        assert!(
            overview.contains(&format!("{base}/destinations/{}", d.id)),
            "{b}"
        );
    }
}

#[tokio::test]
async fn a_store_page_shows_its_sync_runs_and_the_fragment_stays_live_while_one_runs() {
    for app in apps().await {
        let b = app.backend();
        let installation = shop(&app).await;
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let page = browser.page(&format!("{base}/stores/{installation}")).await;
        assert!(
            page.contains("No sync run yet") && page.contains("data-live=\"false\""),
            "{b}"
        );
        assert!(
            page.contains("Outbox")
                && page.contains("Failures 24 h")
                && page.contains("Cohort Connect 0.1.0"),
            "{b}: diagnostics and versions"
        );

        let resources: Vec<String> = ["products", "orders"].map(String::from).to_vec();
        let (run, _) = app
            .t
            .db
            .start_sync_run(&app.a.org, &installation, None, &resources)
            .await
            .unwrap();
        app.t
            .db
            .record_sync_batch(&run.id, "products", 1, 100, 98, 2)
            .await
            .unwrap();
        app.t
            .db
            .record_sync_batch(&run.id, "products", 2, 40, 40, 0)
            .await
            .unwrap();
        let fragment = browser
            .get(&format!("{base}/stores/{installation}/runs"))
            .await;
        assert_eq!(fragment.status, StatusCode::OK, "{b}");
        let html = readable(&fragment.text());
        assert!(
            !html.contains("<html") && html.contains("data-live=\"true\""),
            "{b}: a fragment that keeps the page watching: {html}"
        );
        assert!(
            html.contains("badge running")
                && html.contains("<b>138</b>")
                && html.contains("2 batches")
                && html.contains("2 rejected"),
            "{b}: {html}"
        );
        assert!(
            between(&html, "<tbody>", "</tbody>").contains("waiting"),
            "{b}: orders not started yet"
        );

        app.t
            .db
            .record_sync_batch(&run.id, "orders", 1, 5, 5, 0)
            .await
            .unwrap();
        app.t
            .db
            .complete_sync_run(
                &app.a.org,
                &installation,
                &run.id,
                &json!({"products": 140, "orders": 5}).to_string(),
            )
            .await
            .unwrap();
        let done = readable(
            &browser
                .get(&format!("{base}/stores/{installation}/runs"))
                .await
                .text(),
        );
        assert!(
            done.contains("data-live=\"false\"")
                && done.contains("badge completed")
                && done.contains("<b>5</b> / 5"),
            "{b}: {done}"
        );
        assert_eq!(
            browser
                .get(&format!("{base}/stores/inst_nope"))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{b}"
        );
    }
}

/// The rows a reload could duplicate, counted straight from the database.
async fn created_rows(
    app: &TestApp,
    sender: &cohort_engine::destinations::Dispatcher,
) -> [usize; 9] {
    let db = &app.t.db;
    let org = &app.a.org;
    let suppressions = cohort_store::suppressions::SuppressionQuery {
        limit: 1000,
        ..Default::default()
    };
    [
        db.segments_of(org).await.unwrap().len(),
        db.list_sources(org).await.unwrap().len(),
        db.list_api_tokens(org).await.unwrap().len(),
        db.list_destinations(org, sender.key()).await.unwrap().len(),
        db.count_members(org).await.unwrap() as usize,
        app.mail.providers(org).await.unwrap().len(),
        app.mail.domains(org).await.unwrap().len(),
        app.mail.webhooks(org).await.unwrap().len(),
        db.suppressions_page(org, &suppressions)
            .await
            .unwrap()
            .len(),
    ]
}

#[tokio::test]
async fn every_create_form_answers_303_to_what_it_created_and_a_reload_creates_nothing_more() {
    for (app, sender) in destination_apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let token = browser.csrf().await;
        let (_receiver, url) = Receiver::start().await;
        // (what, form's path, its fields, where its redirect leads)
        type CreateForm = (&'static str, String, Vec<(&'static str, String)>, String);
        let forms: Vec<CreateForm> = vec![
            (
                "source",
                format!("{base}/sources"),
                vec![("name", "Website".into())],
                format!("{base}/sources/src_"),
            ),
            (
                "API token",
                format!("{base}/tokens"),
                vec![("name", "Reporting".into())],
                format!("{base}/tokens/"),
            ),
            (
                "Everflow destination",
                format!("{base}/destinations"),
                vec![
                    ("type", "everflow".into()),
                    ("name", "Everflow".into()),
                    ("tracking_domain", url.clone()),
                    ("network_id", "7".into()),
                    ("source_kind", "all".into()),
                    ("attribution_window_days", "30".into()),
                    ("map_event", "Order Completed".into()),
                    ("map_id", "0".into()),
                ],
                format!("{base}/destinations/dst_"),
            ),
            (
                "webhook",
                format!("{base}/destinations"),
                vec![
                    ("type", "webhook".into()),
                    ("name", "Hook".into()),
                    ("url", format!("{url}/hook")),
                ],
                format!("{base}/destinations/dst_"),
            ),
            (
                "segment",
                format!("{base}/segments"),
                vec![
                    ("name", "Everyone with an email".into()),
                    ("description", String::new()),
                    ("rule", "email exists".into()),
                ],
                format!("{base}/segments/seg_"),
            ),
            (
                "member",
                format!("{base}/members"),
                vec![
                    ("email", "vic@example.com".into()),
                    ("role", "viewer".into()),
                    ("password", PASSWORD.into()),
                ],
                format!("{base}/members?done=added"),
            ),
            (
                "mail provider",
                format!("{base}/mail/providers"),
                vec![
                    ("name", "Relay".into()),
                    ("host", "127.0.0.1".into()),
                    ("port", "2525".into()),
                    ("tls", "none".into()),
                ],
                format!("{base}/mail/providers/"),
            ),
            (
                "sending domain",
                format!("{base}/mail/domains"),
                vec![("domain", "bluemugs.example".into())],
                format!("{base}/mail/domains/bluemugs.example?done=added"),
            ),
            (
                "bounce webhook",
                format!("{base}/mail/webhooks"),
                vec![("kind", "ses".into()), ("name", "SES".into())],
                format!("{base}/mail/webhooks/"),
            ),
            (
                "suppression",
                format!("{base}/mail/suppressions"),
                vec![
                    ("action", "add".into()),
                    ("email", "carol@example.com".into()),
                ],
                format!("{base}/mail/suppressions?q=carol%40example.com&done=added"),
            ),
        ];
        for (what, path, fields, target) in forms {
            let before = created_rows(&app, &sender).await;
            let mut posted = vec![("csrf", token.clone())];
            posted.extend(fields);
            let answer = browser.post_pairs(&path, &posted).await;
            assert_eq!(
                answer.status,
                StatusCode::SEE_OTHER,
                "{b}: creating a {what}: {}",
                answer.text()
            );
            let next = location(&answer);
            assert!(next.starts_with(&target), "{b}: a {what} leads to {next}");
            let after = created_rows(&app, &sender).await;
            assert_eq!(
                after.iter().sum::<usize>(),
                before.iter().sum::<usize>() + 1,
                "{b}: one {what} created: {before:?} → {after:?}"
            );
            // What the browser shows after the redirect, then two reloads.
            for _ in 0..3 {
                browser.page(&next).await;
            }
            assert_eq!(
                created_rows(&app, &sender).await,
                after,
                "{b}: reloading after creating a {what} created nothing"
            );
        }

        // The setup link's form too: the first owner, then the sign-in page.
        let link = app.t.db.create_setup_link(&app.b.org).await.unwrap();
        let setup = browser
            .post(
                &format!("/setup/{}", link.reveal()),
                &[
                    ("email", "olga@example.com"),
                    ("password", PASSWORD),
                    ("password_confirmation", PASSWORD),
                ],
            )
            .await;
        assert_eq!(setup.status, StatusCode::SEE_OTHER, "{b}: {}", setup.text());
        for _ in 0..2 {
            assert!(browser
                .page(&location(&setup))
                .await
                .contains("Account created."));
        }
        assert_eq!(app.t.db.count_members(&app.b.org).await.unwrap(), 1, "{b}");
    }
}

/// Org A's segment "Gold" (`trait.plan = "gold"`, the shop's one customer),
/// made through the engine as the editor makes it.
async fn gold_segment(app: &TestApp) -> String {
    cohort_engine::segments::Segments::new(app.t.db.clone())
        .create(
            &app.a.org,
            cohort_engine::segments::SegmentDraft {
                name: "Gold".into(),
                description: Some("Gold plan".into()),
                rule: cohort_engine::segments::RuleSource::Text(r#"trait.plan = "gold""#.into()),
            },
        )
        .await
        .unwrap()
        .segment_id
}

/// The segment pages as a merchant uses them without script: the empty
/// list, a rule refused with its line and column (nothing saved), a
/// segment created (303 to its page, a reload and a re-post create nothing
/// more), the list with its count and chart, the profile page listing it,
/// the preview endpoint, an edit, and deletion (confirmed; refused with 409
/// while another rule names it).
#[tokio::test]
async fn segments_are_made_listed_edited_and_deleted_with_the_pages() {
    for app in apps().await {
        let b = app.backend();
        shop(&app).await;
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let (profile, _) = first_profile_and_token(&app).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let csrf = browser.csrf().await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let count = || async { app.t.db.segments_of(&app.a.org).await.unwrap().len() };

        let list = browser.page(&format!("{base}/segments")).await;
        assert!(
            list.contains("No segment yet")
                && list.contains(&format!("href=\"{base}/segments/new\""))
                && list.contains(&format!("href=\"{base}/segments\" aria-current=\"page\"")),
            "{b}: the empty state, its action and the navigation: {list}"
        );
        let editor = browser.page(&format!("{base}/segments/new")).await;
        assert!(
            editor.contains("<textarea id=\"seg-rule\" name=\"rule\"")
                && editor.contains("action=\"/app/o/")
                && editor.contains("/app/assets/segments-"),
            "{b}: {editor}"
        );

        // A rule that does not parse: the form again with the position, nothing saved.
        let bad = "trait.plan = \"gold\"\nand orders.count >= x";
        let answer = browser
            .post(
                &format!("{base}/segments"),
                &[
                    ("csrf", &csrf),
                    ("name", "Gold"),
                    ("description", "Gold plan"),
                    ("rule", bad),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{b}");
        let html = readable(&answer.text());
        assert!(
            html.contains("line 2, col 21: expected a number")
                && html.contains("aria-label=\"Line 2, column 21\"")
                && html.contains("and orders.count &gt;= <mark class=\"\">x</mark>")
                && html.contains("value=\"Gold\"")
                && html.contains("and orders.count &gt;= x</textarea>"),
            "{b}: the error, its position marked, the form kept: {html}"
        );
        assert_eq!(count().await, 0, "{b}: nothing saved");

        // Saved: 303 to the segment's page.
        let fields = [
            ("csrf", csrf.as_str()),
            ("name", "Gold"),
            ("description", "Gold plan"),
            ("rule", "trait.plan = \"gold\""),
        ];
        let answer = browser.post(&format!("{base}/segments"), &fields).await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{b}: {}",
            answer.text()
        );
        let page_path = location(&answer);
        assert!(
            page_path.starts_with(&format!("{base}/segments/seg_"))
                && page_path.ends_with("?done=created"),
            "{b}: {page_path}"
        );
        let gold = page_path
            .trim_start_matches(&format!("{base}/segments/"))
            .trim_end_matches("?done=created")
            .to_owned();
        for _ in 0..2 {
            let page = browser.page(&page_path).await;
            assert!(
                page.contains("<h1>Gold</h1>")
                    && page.contains("<b data-member-count>1</b>")
                    && page.contains("trait.plan = &quot;gold&quot;")
                    && page.contains(&format!(
                        "href=\"{base}/profiles/{profile}\">john.doe@example.com</a>"
                    ))
                    && page.contains("<svg class=\"chart membership\"")
                    && page.contains("Segment saved."),
                "{b}: {page}"
            );
        }
        assert_eq!(count().await, 1, "{b}: reloading created nothing");
        let again = browser.post(&format!("{base}/segments"), &fields).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            readable(&again.text()).contains("A segment named “Gold” already exists"),
            "{b}"
        );
        assert_eq!(
            count().await,
            1,
            "{b}: posting the form again created nothing"
        );

        // The list: name, description, count, chart.
        let list = browser.page(&format!("{base}/segments")).await;
        assert!(
            list.contains(&format!("<a href=\"{base}/segments/{gold}\">Gold</a>"))
                && list.contains("Gold plan")
                && list.contains("<td class=\"num\" data-members>1</td>")
                && list.contains("<svg class=\"spark\""),
            "{b}: {list}"
        );

        // The profile page lists the segment and the entry.
        let person = browser.page(&format!("{base}/profiles/{profile}")).await;
        assert!(
            person.contains(&format!(
                "<a href=\"{base}/segments/{gold}\">Gold</a> <span class=\"muted small\">since"
            )) && person.contains("badge entered")
                && person.contains("segment created"),
            "{b}: {person}"
        );

        // The editor's preview: count, sample, both faces; errors placed; nothing saved.
        let preview = format!("{base}/segments/preview");
        let answer = browser
            .post_json(
                &preview,
                &json!({"csrf": csrf, "text": "trait.plan = \"gold\" or tag \"vip\""}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{b}: {}", answer.text());
        let p = answer.json();
        assert_eq!(p["count"], 1, "{b}: {p}");
        assert_eq!(p["sample"][0]["email"], "john.doe@example.com", "{b}");
        assert_eq!(
            p["sample"][0]["href"],
            format!("{base}/profiles/{profile}"),
            "{b}"
        );
        assert_eq!(p["ast"]["kind"], "or", "{b}: {p}");
        let answer = browser
            .post_json(&preview, &json!({"csrf": csrf, "ast": p["ast"]}))
            .await;
        assert_eq!(
            answer.json()["text"],
            "trait.plan = \"gold\" or tag \"vip\"",
            "{b}"
        );
        let answer = browser
            .post_json(&preview, &json!({"csrf": csrf, "text": "tag"}))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{b}");
        let e = answer.json();
        assert_eq!(
            (e["error"]["line"].clone(), e["error"]["column"].clone()),
            (json!(1), json!(4)),
            "{b}: {e}"
        );
        assert_eq!(e["error"]["mark"]["at_end"], true, "{b}: {e}");
        let answer = browser
            .post_json(&preview, &json!({"csrf": "forged", "text": "email exists"}))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{b}: a preview needs the page's token"
        );
        assert_eq!(count().await, 1, "{b}: previews save nothing");

        // Edit: the form holds the segment; saving answers 303 to its page.
        let edit = browser.page(&format!("{base}/segments/{gold}/edit")).await;
        assert!(
            edit.contains("value=\"Gold\"")
                && edit.contains("trait.plan = &quot;gold&quot;</textarea>")
                && edit.contains("name=\"action\" value=\"save\""),
            "{b}: {edit}"
        );
        let answer = browser
            .post(
                &format!("{base}/segments/{gold}"),
                &[
                    ("csrf", &csrf),
                    ("action", "save"),
                    ("name", "Silver"),
                    ("description", ""),
                    ("rule", "trait.plan = \"silver\""),
                ],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{b}: {}",
            answer.text()
        );
        assert_eq!(
            location(&answer),
            format!("{base}/segments/{gold}?done=saved"),
            "{b}"
        );
        let saved = app.t.db.segment(&app.a.org, &gold).await.unwrap().unwrap();
        assert_eq!(
            (
                saved.name.as_str(),
                saved.description.as_deref(),
                saved.member_count
            ),
            ("Silver", None, 0),
            "{b}"
        );
        let page = browser.page(&format!("{base}/segments/{gold}")).await;
        let changes = page.split("id=\"changes-h\"").nth(1).unwrap_or_default();
        assert!(
            matches!(
                (changes.find("left</span>"), changes.find("entered</span>")),
                (Some(left), Some(entered)) if left < entered
            ) && changes.contains("rule changed")
                && changes.contains("segment created")
                && changes.contains("john.doe@example.com</a>"),
            "{b}: the segment's recent changes, newest first: {changes}"
        );
        let person = browser.page(&format!("{base}/profiles/{profile}")).await;
        assert!(
            person.contains("In no segment.")
                && person.contains("badge exited")
                && person.contains("rule changed"),
            "{b}: the exit and its reason: {person}"
        );
        // A bad rule in the edit form: shown, the segment unchanged.
        let answer = browser
            .post(
                &format!("{base}/segments/{gold}"),
                &[
                    ("csrf", &csrf),
                    ("action", "save"),
                    ("name", "Silver"),
                    ("rule", "orders.count >="),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            readable(&answer.text()).contains("line 1, col 16"),
            "{b}: {}",
            answer.text()
        );
        assert_eq!(
            app.t.db.segment(&app.a.org, &gold).await.unwrap().unwrap(),
            saved,
            "{b}"
        );

        // A segment another rule names is neither deleted nor renamed (409, said).
        let answer = browser
            .post(
                &format!("{base}/segments"),
                &[
                    ("csrf", &csrf),
                    ("name", "Silver or email"),
                    ("rule", "in segment \"Silver\" or email exists"),
                ],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{b}: {}",
            answer.text()
        );
        let dependent = location(&answer)
            .trim_start_matches(&format!("{base}/segments/"))
            .trim_end_matches("?done=created")
            .to_owned();
        let answer = browser
            .post(
                &format!("{base}/segments/{gold}"),
                &[("csrf", &csrf), ("action", "delete"), ("confirm", "yes")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{b}");
        assert!(
            readable(&answer.text()).contains(
                "“Silver” cannot be deleted: it is named by other segments (“Silver or email”)"
            ),
            "{b}: {}",
            answer.text()
        );
        let answer = browser
            .post(
                &format!("{base}/segments/{gold}"),
                &[
                    ("csrf", &csrf),
                    ("action", "save"),
                    ("name", "Bronze"),
                    ("rule", "trait.plan = \"silver\""),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{b}");
        assert!(
            readable(&answer.text()).contains("“Silver” cannot be renamed"),
            "{b}"
        );
        assert_eq!(count().await, 2, "{b}");
        // Deletion needs the box; then the list says so.
        let answer = browser
            .post(
                &format!("{base}/segments/{dependent}"),
                &[("csrf", &csrf), ("action", "delete")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(count().await, 2, "{b}");
        for id in [&dependent, &gold] {
            let answer = browser
                .post(
                    &format!("{base}/segments/{id}"),
                    &[("csrf", &csrf), ("action", "delete"), ("confirm", "yes")],
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::SEE_OTHER,
                "{b}: {}",
                answer.text()
            );
            assert_eq!(
                location(&answer),
                format!("{base}/segments?done=deleted"),
                "{b}"
            );
        }
        assert_eq!(count().await, 0, "{b}");
        let list = browser.page(&format!("{base}/segments?done=deleted")).await;
        assert!(list.contains("Segment deleted."), "{b}: {list}");
        assert_eq!(
            browser.get(&format!("{base}/segments/{gold}")).await.status,
            StatusCode::NOT_FOUND,
            "{b}"
        );
    }
}

/// Segments as another organisation and as a viewer: B's member gets 404
/// for A's segment even in B's own path, B's previews see none of A's
/// people or segment names, and a viewer reads but cannot change.
#[tokio::test]
async fn segments_are_invisible_to_other_organisations_and_read_only_to_viewers() {
    for app in apps().await {
        let b = app.backend();
        shop(&app).await;
        let gold = gold_segment(&app).await;
        user(&app, &app.b.org, "bea@example.com", Role::Owner).await;
        user(&app, &app.a.org, "vic@example.com", Role::Viewer).await;
        let mut bea = Browser::new(&app);
        bea.sign_in("bea@example.com").await;
        let csrf = bea.csrf().await;
        let own = format!("/app/o/{}", app.b.org.as_str());
        let list = bea.page(&format!("{own}/segments")).await;
        assert!(
            list.contains("No segment yet") && !list.contains("Gold"),
            "{b}: {list}"
        );
        for path in [
            format!("{own}/segments/{gold}"),
            format!("{own}/segments/{gold}/edit"),
        ] {
            assert_eq!(
                bea.get(&path).await.status,
                StatusCode::NOT_FOUND,
                "{b}: {path}"
            );
        }
        let answer = bea
            .post(
                &format!("{own}/segments/{gold}"),
                &[("csrf", &csrf), ("action", "delete"), ("confirm", "yes")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{b}");
        let preview = format!("{own}/segments/preview");
        let answer = bea
            .post_json(
                &preview,
                &json!({"csrf": csrf, "text": "trait.plan = \"gold\""}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{b}");
        assert_eq!(answer.json()["count"], 0, "{b}: none of A's people");
        let answer = bea
            .post_json(
                &preview,
                &json!({"csrf": csrf, "text": "in segment \"Gold\""}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            answer.text().contains("no segment is named"),
            "{b}: {}",
            answer.text()
        );
        let answer = bea
            .post_json(
                &format!("/app/o/{}/segments/preview", app.a.org.as_str()),
                &json!({"csrf": csrf, "text": "trait.plan = \"gold\""}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{b}: A's preview");
        assert!(!answer.text().contains("john.doe"), "{b}");
        assert!(
            app.t.db.segment(&app.a.org, &gold).await.unwrap().is_some(),
            "{b}"
        );

        let mut vic = Browser::new(&app);
        vic.sign_in("vic@example.com").await;
        let csrf = vic.csrf().await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let list = vic.page(&format!("{base}/segments")).await;
        assert!(
            list.contains("Gold") && !list.contains("/segments/new"),
            "{b}: {list}"
        );
        let page = vic.page(&format!("{base}/segments/{gold}")).await;
        assert!(
            page.contains("john.doe@example.com")
                && !page.contains("Delete segment")
                && !page.contains("/edit\""),
            "{b}"
        );
        for path in [
            format!("{base}/segments/new"),
            format!("{base}/segments/{gold}/edit"),
        ] {
            assert_eq!(
                vic.get(&path).await.status,
                StatusCode::FORBIDDEN,
                "{b}: {path}"
            );
        }
        let answer = vic
            .post(
                &format!("{base}/segments"),
                &[("csrf", &csrf), ("name", "Mine"), ("rule", "email exists")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{b}");
        let answer = vic
            .post(
                &format!("{base}/segments/{gold}"),
                &[("csrf", &csrf), ("action", "delete"), ("confirm", "yes")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{b}");
        assert_eq!(
            app.t.db.segments_of(&app.a.org).await.unwrap().len(),
            1,
            "{b}"
        );
    }
}

/// RFM on the pages: once scored, the segments page shows the six groups
/// with their customers and a customer's profile shows its scores.
#[tokio::test]
async fn rfm_groups_show_on_the_segments_page_and_scores_on_the_profile() {
    for app in apps().await {
        let b = app.backend();
        shop(&app).await;
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let before = browser.page(&format!("{base}/segments")).await;
        assert!(
            !before.contains("RFM groups"),
            "{b}: no grid before scoring"
        );

        let report = cohort_engine::segments::Segments::new(app.t.db.clone())
            .recompute_rfm(&app.a.org)
            .await
            .unwrap();
        assert!(report.customers > 0, "{b}: the shop has customers");
        let page = browser.page(&format!("{base}/segments")).await;
        assert!(page.contains("RFM groups"), "{b}: {page}");
        let mut shown = 0i64;
        for group in cohort_domain::segments::rfm::GROUPS {
            let cell = page
                .split(&format!("data-rfm-group=\"{group}\""))
                .nth(1)
                .unwrap_or_else(|| panic!("{b}: no cell for {group}: {page}"));
            let n: String = cell
                .split("<span data-customers>")
                .nth(1)
                .unwrap()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            shown += n.parse::<i64>().unwrap();
        }
        assert_eq!(
            shown, report.customers as i64,
            "{b}: the grid counts every customer"
        );

        let scored = app
            .t
            .db
            .list_profiles(
                &app.a.org,
                &cohort_store::projection::ProfileFilter {
                    min_orders: Some(1),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .remove(0);
        let profile = browser
            .page(&format!("{base}/profiles/{}", scored.profile.id))
            .await;
        assert!(profile.contains("data-rfm>RFM: <strong>"), "{b}: {profile}");
    }
}

/// "Talk to your data": the merchant's words are read into the editor's
/// rule with unplaced words marked, and nothing is saved until they save.
#[tokio::test]
async fn talk_to_your_data_fills_the_editor_and_saves_nothing() {
    for app in apps().await {
        let b = app.backend();
        shop(&app).await;
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let list = browser.page(&format!("{base}/segments")).await;
        assert!(
            list.contains("Talk to your data")
                && list.contains(&format!("action=\"{base}/segments/new\""))
                && list.contains("name=\"text\""),
            "{b}: {list}"
        );
        let read = browser
            .page(&format!(
                "{base}/segments/new?text=customers+who+bought+twice+zorblax"
            ))
            .await;
        assert!(read.contains(">orders.count = 2</textarea>"), "{b}: {read}");
        assert!(
            read.contains(
                "<mark class=\"unplaced\" title=\"not placed in the rule\">zorblax</mark>"
            ),
            "{b}: {read}"
        );
        let failed = browser
            .page(&format!("{base}/segments/new?text=zorblax+quux"))
            .await;
        assert!(failed.contains("Not understood"), "{b}: {failed}");
        assert!(
            app.t.db.segments_of(&app.a.org).await.unwrap().is_empty(),
            "{b}: nothing saved from text"
        );
    }
}

/// With the operator's model configured, the box offers "Ask the model
/// too"; the editor shows the model's rule and says it came from the
/// model, or why its answer was not used. (SQLite: the model's part does
/// not touch the database.)
#[tokio::test]
async fn talk_to_your_data_asks_the_configured_model_and_says_what_it_made() {
    use cohort_engine::segments::model::{ModelSettings, RuleModel};
    let server = cohort_testkit::ChatServer::start("local-rules-7b", None).await;
    server.reply("zorblax", "orders.count >= 1 and trait.plan = \"gold\"");
    server.reply("quux", "Sure! Here are your customers.");
    let model = RuleModel::new(ModelSettings {
        endpoint: server.base_url().parse().unwrap(),
        model: "local-rules-7b".into(),
        api_key: None,
        timeout: std::time::Duration::from_secs(5),
    })
    .unwrap();
    let app =
        TestApp::with_rule_model(cohort_testkit::sqlite().await, std::sync::Arc::new(model)).await;
    shop(&app).await;
    user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("ann@example.com").await;
    let base = format!("/app/o/{}", app.a.org.as_str());
    let list = browser.page(&format!("{base}/segments")).await;
    assert!(list.contains("name=\"model\""), "{list}");
    assert!(list.contains("Ask the model too"), "{list}");

    let read = browser
        .page(&format!(
            "{base}/segments/new?text=customers+who+bought+twice+zorblax"
        ))
        .await;
    assert!(
        read.contains(">orders.count &gt;= 1 and trait.plan = &quot;gold&quot;</textarea>"),
        "{read}"
    );
    assert!(read.contains("Read by the model local-rules-7b"), "{read}");

    let discarded = browser
        .page(&format!(
            "{base}/segments/new?text=customers+who+bought+twice+quux"
        ))
        .await;
    assert!(
        discarded.contains(">orders.count = 2</textarea>"),
        "{discarded}"
    );
    assert!(
        discarded.contains("The model was asked; its answer was not used"),
        "{discarded}"
    );
    assert_eq!(server.requests().len(), 2);
    assert!(app.t.db.segments_of(&app.a.org).await.unwrap().is_empty());
}

/// A message of org A to `to`, as campaigns will hand them to the outbox.
fn mail_to(to: &str, key: &str) -> cohort_engine::mail::Outgoing {
    cohort_engine::mail::Outgoing {
        send_key: key.into(),
        to: to.into(),
        from: None,
        purpose: cohort_domain::suppression::MailPurpose::Marketing,
        body: cohort_mail::MessageBody {
            subject: "Our new mugs".into(),
            html: "<p>New mugs are in.</p>".into(),
            text: "New mugs are in.\n".into(),
        },
        unsubscribe: Some(cohort_mail::Unsubscribe {
            https: "https://cohort.test/u/1".into(),
            mailto: "mailto:unsubscribe@bluemugs.example".into(),
        }),
        profile_id: None,
        user_id: None,
        campaign_id: Some("cmp_ui".into()),
        flow_id: None,
        provider_id: None,
    }
}

/// A dead letter of org A, made the way they happen: a service whose
/// messages get one attempt, sending to a port where nothing listens.
async fn dead_letter(app: &TestApp, to: &str) -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = cohort_engine::mail::MailSettings::folder(
        app.mail_dir.path(),
        "Blue Mugs <news@bluemugs.example>",
    );
    settings.max_attempts = 1;
    settings.transport = cohort_engine::mail::NodeTransport::Smtp(cohort_mail::SmtpSettings {
        host: "127.0.0.1".into(),
        port: closed,
        tls: cohort_mail::TlsMode::None,
        username: None,
        password: None,
        max_connections: 1,
        timeout: Duration::from_secs(5),
        hello_name: None,
    });
    let once = cohort_engine::mail::Mail::new(
        app.t.db.clone(),
        cohort_store::destinations::SecretsKey::generate(),
        settings,
    )
    .unwrap();
    let queued = once
        .enqueue(&app.a.org, &mail_to(to, "campaign:cmp_dead"))
        .await
        .unwrap();
    once.send_round("ui-test").await.unwrap();
    let (message, _) = once.message(&app.a.org, &queued.id).await.unwrap();
    assert_eq!(message.state.as_str(), "dead", "{message:?}");
    queued.id
}

/// Every mail object of org A the walks need, made through the service.
struct MailIds {
    sent: String,
    provider: String,
    domain: String,
    webhook: String,
}

async fn mail_objects(app: &TestApp) -> MailIds {
    let queued = app
        .mail
        .enqueue(
            &app.a.org,
            &mail_to("walk@example.com", "campaign:cmp_walk"),
        )
        .await
        .unwrap();
    app.mail.send_round("ui-test").await.unwrap();
    let provider = app
        .mail
        .create_provider(
            &app.a.org,
            cohort_engine::mail::ProviderInput {
                name: "Relay".into(),
                host: "127.0.0.1".into(),
                port: 2525,
                tls: "none".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (domain, _) = app
        .mail
        .add_domain(&app.a.org, "bluemugs.example")
        .await
        .unwrap();
    let webhook = app
        .mail
        .create_webhook(
            &app.a.org,
            cohort_store::mail::webhooks::WebhookKind::Postmark,
            "Postmark",
            None,
        )
        .await
        .unwrap();
    MailIds {
        sent: queued.id,
        provider: provider.id,
        domain: domain.domain.domain,
        webhook: webhook.webhook.id,
    }
}

/// The mail pages on both backends, as a merchant uses them: the outbox
/// with its filters, a message with its SMTP answers and the retry of a
/// dead letter; providers made, tested against a real smtp-sink, edited
/// with the password kept and never shown, made default and deleted;
/// a sending domain with its records; suppressions searched, added and
/// lifted with a reason; a bounce webhook whose URL shows once.
#[tokio::test]
async fn mail_pages_run_the_outbox_providers_domains_suppressions_and_webhooks() {
    let sink =
        cohort_testkit::SmtpSink::start("the providers page's connection test against smtp-sink");
    for app in common::apps().await {
        let b = app.backend();
        user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ann@example.com").await;
        let csrf = browser.csrf().await;
        let base = format!("/app/o/{}", app.a.org.as_str());

        // The outbox: empty, then one sent message and one dead letter.
        let page = browser.page(&format!("{base}/mail")).await;
        assert!(page.contains("No message yet"), "{b}: {page}");
        let sent = app
            .mail
            .enqueue(&app.a.org, &mail_to("amy@example.com", "campaign:cmp_ui"))
            .await
            .unwrap();
        app.mail.send_round("ui-test").await.unwrap();
        let dead = dead_letter(&app, "bob@example.com").await;
        let page = browser.page(&format!("{base}/mail")).await;
        assert!(
            page.contains("amy@example.com") && page.contains("bob@example.com"),
            "{b}: {page}"
        );
        let only_dead = browser.page(&format!("{base}/mail?state=dead")).await;
        assert!(
            only_dead.contains("bob@example.com") && !only_dead.contains("amy@example.com"),
            "{b}: the state filter"
        );
        let only_ann = browser
            .page(&format!("{base}/mail?recipient=AMY%40example.com"))
            .await;
        assert!(
            only_ann.contains(&format!("/mail/messages/{}", sent.id))
                && !only_ann.contains(&format!("/mail/messages/{dead}")),
            "{b}: the recipient filter"
        );
        let refused = browser.get(&format!("{base}/mail?state=lost")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(refused.text().contains("state: one of"), "{b}");

        // A dead letter shows the connection's failure and is retried.
        let message = browser.page(&format!("{base}/mail/messages/{dead}")).await;
        assert!(
            message.contains("Retry this dead letter") && message.contains("temporary"),
            "{b}: {message}"
        );
        let retried = browser
            .post(
                &format!("{base}/mail/messages/{dead}"),
                &[("csrf", &csrf), ("action", "retry")],
            )
            .await;
        assert_eq!(retried.status, StatusCode::SEE_OTHER, "{b}");
        let again = browser.page(&location(&retried)).await;
        assert!(
            again.contains("Queued again") && !again.contains("Retry this dead letter"),
            "{b}"
        );
        let (m, _) = app.mail.message(&app.a.org, &dead).await.unwrap();
        assert_eq!(m.state.as_str(), "queued", "{b}");
        // A sent message is not a dead letter: left as it is.
        let not_dead = browser
            .post(
                &format!("{base}/mail/messages/{}", sent.id),
                &[("csrf", &csrf), ("action", "retry")],
            )
            .await;
        assert!(location(&not_dead).ends_with("done=not_dead"), "{b}");
        let shown = browser
            .page(&format!("{base}/mail/messages/{}", sent.id))
            .await;
        assert!(
            shown.contains("accepted") && shown.contains("New mugs are in."),
            "{b}: the attempt and the text part"
        );

        // Providers: a bad port is named and nothing is made.
        let providers = format!("{base}/mail/providers");
        let bad = browser
            .post(
                &providers,
                &[
                    ("csrf", &csrf),
                    ("name", "Postmark"),
                    ("host", "smtp.postmarkapp.com"),
                    ("port", "five"),
                    ("tls", "starttls"),
                    ("username", "apikey"),
                    ("password", "s3cr3t-pass"),
                ],
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{b}");
        let text = readable(&bad.text());
        assert!(
            text.contains("port: a whole number")
                && text.contains("value=\"smtp.postmarkapp.com\"")
                && !text.contains("s3cr3t-pass"),
            "{b}: the error, the values kept, never the password: {text}"
        );
        assert!(app.mail.providers(&app.a.org).await.unwrap().is_empty());
        let made = browser
            .post(
                &providers,
                &[
                    ("csrf", &csrf),
                    ("name", "Postmark"),
                    ("host", "127.0.0.1"),
                    ("port", "1"),
                    ("tls", "none"),
                    ("username", "apikey"),
                    ("password", "s3cr3t-pass"),
                    ("max_connections", "4"),
                    ("rate_per_second", "10"),
                    ("default", "yes"),
                ],
            )
            .await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{b}: {}", made.text());
        let provider_page = location(&made);
        let page = browser.page(&provider_page).await;
        assert!(
            page.contains("Provider created")
                && page.contains("password •••••••• (set)")
                && !page.contains("s3cr3t-pass"),
            "{b}: {page}"
        );
        let postmark = app.mail.providers(&app.a.org).await.unwrap().remove(0);
        assert!(postmark.is_default && postmark.limits.per_second == Some(10));
        // Nothing listens on port 1: the test says so with the network's answer.
        let failed = browser
            .post(&provider_page, &[("csrf", &csrf), ("action", "test")])
            .await;
        assert_eq!(failed.status, StatusCode::OK, "{b}");
        assert!(
            readable(&failed.text()).contains("Connection test failed"),
            "{b}"
        );
        // Saved with the password left empty: the stored one is kept.
        let saved = browser
            .post(
                &provider_page,
                &[
                    ("csrf", &csrf),
                    ("action", "save"),
                    ("name", "Postmark EU"),
                    ("host", "127.0.0.1"),
                    ("port", "2"),
                    ("tls", "none"),
                    ("username", "apikey"),
                    ("password", ""),
                    ("max_connections", "4"),
                    ("rate_per_second", ""),
                    ("rate_per_hour", "5000"),
                ],
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{b}: {}", saved.text());
        let kept = app.mail.provider(&app.a.org, &postmark.id).await.unwrap();
        assert_eq!(
            (
                kept.name.as_str(),
                kept.port,
                kept.password.as_deref(),
                kept.limits.per_second,
                kept.limits.per_hour,
                kept.is_default
            ),
            (
                "Postmark EU",
                2,
                Some("s3cr3t-pass"),
                None,
                Some(5000),
                true
            ),
            "{b}"
        );
        if let Some(sink) = &sink {
            let local = browser
                .post(
                    &providers,
                    &[
                        ("csrf", &csrf),
                        ("name", "Local sink"),
                        ("host", "127.0.0.1"),
                        ("port", &sink.port().to_string()),
                        ("tls", "none"),
                    ],
                )
                .await;
            let local_page = location(&local);
            let tested = browser
                .post(&local_page, &[("csrf", &csrf), ("action", "test")])
                .await;
            let text = readable(&tested.text());
            assert!(text.contains("Connection test passed"), "{b}: {text}");
            let made_default = browser
                .post(&local_page, &[("csrf", &csrf), ("action", "default")])
                .await;
            assert!(location(&made_default).ends_with("done=default"), "{b}");
            let list = app.mail.providers(&app.a.org).await.unwrap();
            assert_eq!(
                list.iter()
                    .map(|p| (p.name.as_str(), p.is_default))
                    .collect::<Vec<_>>(),
                [("Local sink", true), ("Postmark EU", false)],
                "{b}"
            );
        }
        let unconfirmed = browser
            .post(&provider_page, &[("csrf", &csrf), ("action", "delete")])
            .await;
        assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST, "{b}");
        let deleted = browser
            .post(
                &provider_page,
                &[("csrf", &csrf), ("action", "delete"), ("confirm", "yes")],
            )
            .await;
        assert!(
            location(&deleted).ends_with("/mail/providers?done=deleted"),
            "{b}"
        );
        assert_eq!(
            browser.get(&provider_page).await.status,
            StatusCode::NOT_FOUND
        );

        // Sending domains: the records to publish.
        let domains = format!("{base}/mail/domains");
        let bad = browser
            .post(&domains, &[("csrf", &csrf), ("domain", "not a domain")])
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(readable(&bad.text()).contains("domain: "), "{b}");
        let added = browser
            .post(&domains, &[("csrf", &csrf), ("domain", "BlueMugs.example")])
            .await;
        assert_eq!(
            location(&added),
            format!("{base}/mail/domains/bluemugs.example?done=added"),
            "{b}"
        );
        let page = browser.page(&location(&added)).await;
        for needle in [
            "._domainkey.bluemugs.example",
            "v=DKIM1",
            "v=spf1",
            "_dmarc.bluemugs.example",
            "v=DMARC1",
        ] {
            assert!(page.contains(needle), "{b}: {needle} in {page}");
        }
        assert!(!page.contains("PRIVATE KEY"), "{b}");
        let again = browser
            .post(&domains, &[("csrf", &csrf), ("domain", "bluemugs.example")])
            .await;
        assert!(location(&again).ends_with("done=kept"), "{b}");

        // Suppressions: added, found, refused with the field, lifted with a reason.
        let suppressions = format!("{base}/mail/suppressions");
        let added = browser
            .post(
                &suppressions,
                &[
                    ("csrf", &csrf),
                    ("action", "add"),
                    ("email", "Carol@Example.com"),
                    ("reason", "imported"),
                    ("detail", "from the old ESP"),
                ],
            )
            .await;
        assert!(location(&added).ends_with("done=added"), "{b}");
        let page = browser.page(&location(&added)).await;
        assert!(
            page.contains("carol@example.com") && page.contains("from the old ESP"),
            "{b}"
        );
        let twice = browser
            .post(
                &suppressions,
                &[
                    ("csrf", &csrf),
                    ("action", "add"),
                    ("email", "carol@example.com"),
                    ("reason", "imported"),
                ],
            )
            .await;
        assert!(location(&twice).ends_with("done=already"), "{b}");
        for (fields, error) in [
            (vec![("email", "carol"), ("reason", "manual")], "email: "),
            (
                vec![("email", "dan@example.com"), ("reason", "soft_bounces")],
                "reason: one of",
            ),
        ] {
            let mut all = vec![("csrf", csrf.as_str()), ("action", "add")];
            all.extend(fields);
            let refused = browser.post(&suppressions, &all).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{b}");
            assert!(readable(&refused.text()).contains(error), "{b}: {error}");
        }
        let found = browser.page(&format!("{suppressions}?q=CAROL")).await;
        assert!(found.contains("carol@example.com"), "{b}");
        let none = browser
            .page(&format!("{suppressions}?q=carol&reason=complaint"))
            .await;
        assert!(none.contains("No suppressed address matches"), "{b}");
        let no_reason = browser
            .post(
                &suppressions,
                &[
                    ("csrf", &csrf),
                    ("action", "lift"),
                    ("email", "carol@example.com"),
                    ("why", " "),
                ],
            )
            .await;
        assert_eq!(no_reason.status, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(
            app.t
                .db
                .suppressions_of(&app.a.org, "carol@example.com")
                .await
                .unwrap()
                .len(),
            1,
            "{b}: nothing lifted without a reason"
        );
        let lifted = browser
            .post(
                &suppressions,
                &[
                    ("csrf", &csrf),
                    ("action", "lift"),
                    ("email", "carol@example.com"),
                    ("why", "asked to be mailed again"),
                ],
            )
            .await;
        assert!(location(&lifted).ends_with("done=lifted"), "{b}");
        assert!(app
            .t
            .db
            .suppressions_of(&app.a.org, "carol@example.com")
            .await
            .unwrap()
            .is_empty());

        // Bounce webhooks: Mailgun's needs its key; the URL shows once and works.
        let webhooks = format!("{base}/mail/webhooks");
        let refused = browser
            .post(
                &webhooks,
                &[("csrf", &csrf), ("kind", "mailgun"), ("name", "Mailgun")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{b}");
        assert!(readable(&refused.text()).contains("signing_key: "), "{b}");
        let made = browser
            .post(
                &webhooks,
                &[
                    ("csrf", &csrf),
                    ("kind", "postmark"),
                    ("name", "Postmark bounces"),
                ],
            )
            .await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{b}");
        let hook_page = location(&made).split('?').next().unwrap().to_owned();
        let page = browser.page(&location(&made)).await;
        let url = between(&page, "<code id=\"hook-url\">", "</code>").to_owned();
        let at = url.find("/mail/webhooks/").expect("a webhook URL");
        assert!(url.starts_with("http://"), "{b}: {url}");
        let reload = browser.page(&hook_page).await;
        assert!(!reload.contains(&url), "{b}: the URL is shown once");
        let path = &url[at..];
        let bounce = std::fs::read_to_string(format!(
            "{}/../cohort-mail/tests/fixtures/bounces/postmark-bounce.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let answer = app.post(path, bounce).await;
        assert!(answer.status.is_success(), "{b}: {}", answer.text());
        let page = browser.page(&hook_page).await;
        assert!(page.contains("Reports received</dt><dd>1"), "{b}: {page}");
        let deleted = browser
            .post(&hook_page, &[("csrf", &csrf), ("confirm", "yes")])
            .await;
        assert!(
            location(&deleted).ends_with("/mail/webhooks?done=deleted"),
            "{b}"
        );
        assert!(
            app.mail.webhooks(&app.a.org).await.unwrap().is_empty(),
            "{b}"
        );
    }
}

/// A viewer reads every mail page without a form and changes nothing; a
/// member of another organisation finds none of org A's mail.
#[tokio::test]
async fn mail_pages_are_read_only_to_viewers_and_invisible_to_other_organisations() {
    for app in common::apps().await {
        let b = app.backend();
        let ids = mail_objects(&app).await;
        let dead = dead_letter(&app, "dora@example.com").await;
        app.t
            .db
            .suppress(
                &app.a.org,
                "carol@example.com",
                cohort_domain::suppression::SuppressionReason::Manual,
                None,
                "test",
            )
            .await
            .unwrap();
        user(&app, &app.a.org, "vic@example.com", Role::Viewer).await;
        user(&app, &app.b.org, "bea@example.com", Role::Owner).await;
        let base = format!("/app/o/{}", app.a.org.as_str());
        let pages = [
            (format!("{base}/mail"), "Retry"),
            (
                format!("{base}/mail/messages/{dead}"),
                "Retry this dead letter",
            ),
            (format!("{base}/mail/providers"), "Add provider"),
            (
                format!("{base}/mail/providers/{}", ids.provider),
                "Delete provider",
            ),
            (format!("{base}/mail/domains"), "Add domain"),
            (format!("{base}/mail/domains/{}", ids.domain), "Add domain"),
            (format!("{base}/mail/suppressions"), "Lift"),
            (format!("{base}/mail/webhooks"), "Make webhook"),
            (
                format!("{base}/mail/webhooks/{}", ids.webhook),
                "Delete webhook",
            ),
        ];
        let mut viewer = Browser::new(&app);
        viewer.sign_in("vic@example.com").await;
        let token = viewer.csrf().await;
        for (path, absent) in &pages {
            let page = viewer.page(path).await;
            assert!(
                !page.contains(absent),
                "{b}: a viewer is not offered {absent:?} on {path}"
            );
        }
        let posts = [
            (
                format!("{base}/mail/messages/{dead}"),
                vec![("action", "retry")],
            ),
            (
                format!("{base}/mail/providers"),
                vec![
                    ("name", "x"),
                    ("host", "h.example"),
                    ("port", "25"),
                    ("tls", "none"),
                ],
            ),
            (
                format!("{base}/mail/providers/{}", ids.provider),
                vec![("action", "delete"), ("confirm", "yes")],
            ),
            (
                format!("{base}/mail/providers/{}", ids.provider),
                vec![("action", "test")],
            ),
            (
                format!("{base}/mail/domains"),
                vec![("domain", "other.example")],
            ),
            (
                format!("{base}/mail/suppressions"),
                vec![("action", "add"), ("email", "x@example.com")],
            ),
            (
                format!("{base}/mail/suppressions"),
                vec![
                    ("action", "lift"),
                    ("email", "carol@example.com"),
                    ("why", "x"),
                ],
            ),
            (
                format!("{base}/mail/webhooks"),
                vec![("kind", "ses"), ("name", "x")],
            ),
            (
                format!("{base}/mail/webhooks/{}", ids.webhook),
                vec![("confirm", "yes")],
            ),
        ];
        for (path, fields) in &posts {
            let mut all = vec![("csrf", token.as_str())];
            all.extend(fields.iter().copied());
            let answer = viewer.post(path, &all).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{b}: a viewer's POST {path}"
            );
        }
        let mut other = Browser::new(&app);
        other.sign_in("bea@example.com").await;
        let token = other.csrf().await;
        for (path, _) in &pages {
            assert_eq!(
                other.get(path).await.status,
                StatusCode::NOT_FOUND,
                "{b}: GET {path} as org B"
            );
        }
        for (path, fields) in &posts {
            let mut all = vec![("csrf", token.as_str())];
            all.extend(fields.iter().copied());
            assert_eq!(
                other.post(path, &all).await.status,
                StatusCode::NOT_FOUND,
                "{b}: POST {path} as org B"
            );
        }
        // A's ids in B's own paths are not B's either.
        let b_base = format!("/app/o/{}", app.b.org.as_str());
        for path in [
            format!("{b_base}/mail/messages/{}", ids.sent),
            format!("{b_base}/mail/providers/{}", ids.provider),
            format!("{b_base}/mail/domains/{}", ids.domain),
            format!("{b_base}/mail/webhooks/{}", ids.webhook),
        ] {
            assert_eq!(
                other.get(&path).await.status,
                StatusCode::NOT_FOUND,
                "{b}: {path}"
            );
        }
        for (path, fields) in [
            (
                format!("{b_base}/mail/providers/{}", ids.provider),
                vec![("action", "delete"), ("confirm", "yes")],
            ),
            (
                format!("{b_base}/mail/webhooks/{}", ids.webhook),
                vec![("confirm", "yes")],
            ),
            (
                format!("{b_base}/mail/messages/{}", ids.sent),
                vec![("action", "retry")],
            ),
        ] {
            let mut all = vec![("csrf", token.as_str())];
            all.extend(fields);
            assert_eq!(
                other.post(&path, &all).await.status,
                StatusCode::NOT_FOUND,
                "{b}: POST {path}"
            );
        }
        let lift = other
            .post(
                &format!("{b_base}/mail/suppressions"),
                &[
                    ("csrf", &token),
                    ("action", "lift"),
                    ("email", "carol@example.com"),
                    ("why", "x"),
                ],
            )
            .await;
        assert_eq!(
            lift.status,
            StatusCode::NOT_FOUND,
            "{b}: B cannot lift A's suppression"
        );
        let b_outbox = other.page(&format!("{b_base}/mail")).await;
        assert!(!b_outbox.contains("walk@example.com"), "{b}");
        // Nothing of A changed.
        assert_eq!(
            app.mail.providers(&app.a.org).await.unwrap().len(),
            1,
            "{b}"
        );
        assert_eq!(app.mail.webhooks(&app.a.org).await.unwrap().len(), 1, "{b}");
        assert_eq!(app.mail.domains(&app.a.org).await.unwrap().len(), 1, "{b}");
        assert_eq!(
            app.t
                .db
                .suppressions_of(&app.a.org, "carol@example.com")
                .await
                .unwrap()
                .len(),
            1,
            "{b}"
        );
        assert!(
            app.t
                .db
                .suppressions_of(&app.a.org, "x@example.com")
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        let (m, _) = app.mail.message(&app.a.org, &dead).await.unwrap();
        assert_eq!(m.state.as_str(), "dead", "{b}: the dead letter stays dead");
    }
}
