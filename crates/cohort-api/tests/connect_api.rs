//! Connect (connect.md §1–2), through the router on both databases: the
//! pairing flow with the authorize page's forms (cookies and CSRF),
//! approve, deny, expiry, poll-once, reconnect, heartbeat and health,
//! commands and their acks, upgrade, disconnect, bad input, and
//! organisations' isolation.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cohort_domain::accounts::hash_password;
use cohort_domain::secrets;
use cohort_store::users::Role;
use common::{apps, readable, Answer, TestApp};
use serde_json::{json, Value};

const RETURN_URL: &str = "https://shop.example/wp-admin/admin.php?page=cohort";
const PASSWORD: &str = "correct horse battery";

fn pairing_body(store_url: &str, platform: &str) -> Value {
    json!({
        "store_url": store_url, "site_name": "Ann's <Shop>", "platform": platform,
        "plugin_version": "0.1.0", "wp_version": "6.6.2",
        "wc_version": if platform == "woocommerce" { json!("9.3.3") } else { Value::Null },
        "php_version": "8.2.24", "currency": "EUR", "timezone": "Europe/Paris", "return_url": RETURN_URL,
    })
}

async fn send_json(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<String>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "cohort.test")
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    app.send(
        request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap(),
    )
    .await
}

async fn create_pairing(app: &TestApp, body: &Value) -> Value {
    let answer = send_json(
        app,
        "POST",
        "/connect/v1/pairings",
        None,
        Some(body.to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    answer.json()
}

async fn poll(app: &TestApp, pairing: &Value) -> Answer {
    let path = format!(
        "/connect/v1/pairings/{}/poll",
        pairing["pairing_id"].as_str().unwrap()
    );
    send_json(app, "POST", &path, pairing["poll_secret"].as_str(), None).await
}

/// A browser: keeps cookies, follows nothing by itself.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, answer: &Answer) {
        for value in answer.headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let answer = self
            .app
            .send(
                Request::get(path)
                    .header("cookie", self.cookie_header())
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        self.absorb(&answer);
        answer
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let answer = self
            .app
            .send(
                Request::post(path)
                    .header("cookie", self.cookie_header())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        self.absorb(&answer);
        answer
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn csrf_of(html: &str) -> String {
    let start =
        html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn authorize_path(pairing: &Value) -> String {
    format!(
        "/setup/woocommerce?pairing={}",
        pairing["pairing_id"].as_str().unwrap()
    )
}

/// Signs `email` in on the pairing's page; the browser then holds a session.
async fn sign_in(browser: &mut Browser<'_>, pairing: &Value, email: &str) {
    let path = authorize_path(pairing);
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("Sign in to Cohort"), "{}", page.text());
    let csrf = csrf_of(&page.text());
    let answer = browser
        .post(
            &path,
            &[
                ("action", "sign_in"),
                ("csrf", &csrf),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    assert!(browser.cookies.contains_key("cohort_session"));
}

/// Approves or denies from a signed-in browser; returns the redirect.
async fn decide(browser: &mut Browser<'_>, pairing: &Value, action: &str, org: &str) -> Answer {
    let path = authorize_path(pairing);
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let csrf = csrf_of(&page.text());
    browser
        .post(&path, &[("action", action), ("csrf", &csrf), ("org", org)])
        .await
}

async fn create_user(app: &TestApp, org: &cohort_domain::ids::OrgId, email: &str, role: Role) {
    let hash = hash_password(PASSWORD).unwrap();
    app.t.db.create_user(org, email, &hash, role).await.unwrap();
}

/// The whole flow for `store_url` by a signed-in owner of org A; returns
/// the approved poll answer.
async fn connect(
    app: &TestApp,
    browser: &mut Browser<'_>,
    store_url: &str,
    platform: &str,
) -> Value {
    let pairing = create_pairing(app, &pairing_body(store_url, platform)).await;
    let answer = decide(browser, &pairing, "approve", app.a.org.as_str()).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    let approved = poll(app, &pairing).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text());
    approved.json()
}

async fn installations(app: &TestApp, who: &cohort_testkit::Seeded) -> Vec<Value> {
    let answer = app.get_api(who, "/api/v1/installations").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json()["data"].as_array().unwrap().clone()
}

fn heartbeat_body() -> Value {
    json!({"plugin_version": "0.1.1", "wp_version": "6.7", "wc_version": "9.4.0", "php_version": "8.3.1",
           "store_url": "https://shop.example", "site_name": "Ann's Shop", "currency": "EUR", "timezone": "Europe/Paris",
           "outbox_depth": 3, "failures_24h": 1, "last_error": "HTTP 503 from Cohort"})
}

#[tokio::test]
async fn a_fresh_server_pairs_a_store_creating_its_first_account_and_the_token_is_claimed_once() {
    for app in apps().await {
        let backend = app.backend();
        let pairing =
            create_pairing(&app, &pairing_body("https://Shop.example/", "woocommerce")).await;
        let code = pairing["user_code"].as_str().unwrap();
        assert_eq!(code.len(), 9, "{backend}");
        assert!(code.chars().enumerate().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            "BCDFGHJKLMNPQRSTVWXZ".contains(c)
        }));
        assert!(pairing["poll_secret"].as_str().unwrap().starts_with("cps_"));
        assert_eq!(
            pairing["authorize_url"],
            json!(format!("http://cohort.test{}", authorize_path(&pairing)))
        );
        assert!(pairing["poll_interval_s"].as_u64().unwrap() >= 1);
        assert!(pairing["expires_at"].as_str().unwrap().ends_with('Z'));

        // Only the digest of the poll secret is stored.
        let stored: String = sqlx::Row::get(
            &sqlx::query("SELECT poll_secret_digest FROM connect_pairings WHERE id = $1")
                .bind(pairing["pairing_id"].as_str().unwrap())
                .fetch_one(app.t.db.pool())
                .await
                .unwrap(),
            "poll_secret_digest",
        );
        assert_eq!(
            stored,
            secrets::digest(pairing["poll_secret"].as_str().unwrap())
        );

        // Polling: pending; a wrong or missing secret is refused; an unknown pairing is 404.
        let answer = poll(&app, &pairing).await;
        assert_eq!(
            (answer.status, answer.json()),
            (StatusCode::OK, json!({"status": "pending"})),
            "{backend}"
        );
        let path = format!(
            "/connect/v1/pairings/{}/poll",
            pairing["pairing_id"].as_str().unwrap()
        );
        assert_eq!(
            send_json(&app, "POST", &path, Some("cps_wrong"), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            send_json(&app, "POST", &path, None, None).await.status,
            StatusCode::UNAUTHORIZED
        );
        let unknown = send_json(
            &app,
            "POST",
            "/connect/v1/pairings/pair_nope/poll",
            Some("cps_x"),
            None,
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        // The page: no account exists yet, so it offers to create the first one.
        let mut browser = Browser::new(&app);
        let path = authorize_path(&pairing);
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{backend}: {}", page.text());
        // The page is the UI's template: `/` and `'` come escaped too.
        let html = readable(&page.text());
        assert!(html.contains("Create the first account"), "{html}");
        assert!(
            html.contains(code) && html.contains("https://shop.example"),
            "{html}"
        );
        assert!(
            html.contains("Ann's &lt;Shop&gt;"),
            "the site name is escaped: {html}"
        );
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["cache-control"], "no-store");
        let csrf = csrf_of(&html);
        let account = [
            ("action", "create_account"),
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ];

        // Without the form's CSRF token, or from another browser (no cookie): refused.
        assert_eq!(
            browser.post(&path, &account).await.status,
            StatusCode::FORBIDDEN
        );
        let mut stranger = Browser::new(&app);
        let mut with_csrf = account.to_vec();
        with_csrf.push(("csrf", &csrf));
        assert_eq!(
            stranger.post(&path, &with_csrf).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.t.db.count_users().await.unwrap(), 0);

        // Different passwords: the form again.
        let mut mismatch = with_csrf.clone();
        mismatch[4] = ("password_confirmation", "something else entirely");
        assert_eq!(
            browser.post(&path, &mismatch).await.status,
            StatusCode::BAD_REQUEST
        );

        let created = browser.post(&path, &with_csrf).await;
        assert_eq!(
            created.status,
            StatusCode::SEE_OTHER,
            "{backend}: {}",
            created.text()
        );
        assert_eq!(created.headers["location"], path.as_str());
        let cookie = created.headers["set-cookie"].to_str().unwrap();
        assert!(
            cookie.starts_with("cohort_session=ses_")
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax")
        );

        // A second "first account" is refused now that one exists.
        let mut late = Browser::new(&app);
        let late_page = late.get(&path).await.text();
        assert!(late_page.contains("Sign in to Cohort"), "{late_page}");

        // Signed in: the decision form lists the organisations (the first account owns both).
        let page = browser.get(&path).await;
        let html = page.text();
        assert!(
            html.contains("Approve") && html.contains("Org A") && html.contains("Org B"),
            "{html}"
        );
        let session_csrf = csrf_of(&html);
        let wrong = browser
            .post(
                &path,
                &[
                    ("action", "approve"),
                    ("csrf", "nope"),
                    ("org", app.a.org.as_str()),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        assert_eq!(
            poll(&app, &pairing).await.json(),
            json!({"status": "pending"})
        );

        let approved = browser
            .post(
                &path,
                &[
                    ("action", "approve"),
                    ("csrf", &session_csrf),
                    ("org", app.a.org.as_str()),
                ],
            )
            .await;
        assert_eq!(
            approved.status,
            StatusCode::SEE_OTHER,
            "{backend}: {}",
            approved.text()
        );
        assert_eq!(
            approved.headers["location"],
            format!("{RETURN_URL}&cohort_pairing=approved").as_str()
        );

        // The poll hands the secrets out exactly once.
        let first = poll(&app, &pairing).await;
        assert_eq!(first.status, StatusCode::OK, "{backend}: {}", first.text());
        assert_eq!(first.headers["cache-control"], "no-store");
        let got = first.json();
        assert_eq!(got["status"], json!("approved"));
        assert_eq!(
            got["organization"],
            json!({"id": app.a.org.as_str(), "name": "Org A"})
        );
        let token = got["installation_token"].as_str().unwrap();
        assert!(token.starts_with("cin_"));
        assert!(got["signing_secret"].as_str().unwrap().len() >= 32);
        let again = poll(&app, &pairing).await;
        assert_eq!(
            (again.status, again.json()),
            (StatusCode::GONE, json!({"status": "claimed"})),
            "{backend}"
        );
        assert_eq!(browser.get(&path).await.status, StatusCode::GONE);

        // The write key is a new source of org A; the signing secret is readable by Cohort; the token is stored hashed.
        let source = app
            .t
            .db
            .find_source_by_write_key(got["write_key"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(source.org_id, app.a.org);
        let id = got["installation_id"].as_str().unwrap();
        assert_eq!(
            app.t
                .db
                .installation_signing_secret(&app.a.org, id)
                .await
                .unwrap()
                .as_deref(),
            got["signing_secret"].as_str()
        );
        let digest: String = sqlx::Row::get(
            &sqlx::query("SELECT token_digest FROM connect_installations WHERE id = $1")
                .bind(id)
                .fetch_one(app.t.db.pool())
                .await
                .unwrap(),
            "token_digest",
        );
        assert_ne!(digest, token);
        assert!(!token.contains(&digest));

        // Org A sees the installation with its initial sync queued; org B sees nothing.
        let list = installations(&app, &app.a).await;
        assert_eq!(list.len(), 1, "{backend}");
        let i = &list[0];
        assert_eq!(i["id"], json!(id));
        assert_eq!(i["store_url"], json!("https://shop.example"));
        assert_eq!(
            (i["status"].as_str(), i["health"].as_str()),
            (Some("connected"), Some("pending"))
        );
        assert_eq!(i["platform"], json!("woocommerce"));
        assert_eq!(i["wc_version"], json!("9.3.3"));
        assert_eq!(i["source_id"], json!(source.id.as_str()));
        assert_eq!(i["last_command"]["kind"], json!("sync_store"));
        assert_eq!(i["last_command"]["status"], json!("pending"));
        assert_eq!(installations(&app, &app.b).await, Vec::<Value>::new());
        assert_eq!(
            app.get_api(&app.a, "/api/v1/installations").await.status,
            StatusCode::OK
        );
        let anonymous = app
            .send(
                Request::get("/api/v1/installations")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        // Signing out ends the session.
        let page = browser
            .get(&authorize_path(
                &create_pairing(&app, &pairing_body("https://other.example", "wordpress")).await,
            ))
            .await;
        let csrf = csrf_of(&page.text());
        let other = readable(&page.text())
            .split("action=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&");
        let out = browser
            .post(&other, &[("action", "sign_out"), ("csrf", &csrf)])
            .await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        assert!(!browser.cookies.contains_key("cohort_session"));
        assert!(browser
            .get(&other)
            .await
            .text()
            .contains("Sign in to Cohort"));
    }
}

#[tokio::test]
async fn heartbeat_health_commands_acks_upgrade_and_disconnect() {
    for app in apps().await {
        let backend = app.backend();
        create_user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        let mut browser = Browser::new(&app);
        let first =
            create_pairing(&app, &pairing_body("https://shop.example", "woocommerce")).await;
        sign_in(&mut browser, &first, "ann@example.com").await;
        let answer = decide(&mut browser, &first, "approve", app.a.org.as_str()).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
        let got = poll(&app, &first).await.json();
        let token = got["installation_token"].as_str().unwrap().to_owned();
        let id = got["installation_id"].as_str().unwrap().to_owned();

        // Heartbeat: recorded, answers the server time and the pending commands.
        let beat = send_json(
            &app,
            "POST",
            "/connect/v1/heartbeat",
            Some(&token),
            Some(heartbeat_body().to_string()),
        )
        .await;
        assert_eq!(beat.status, StatusCode::OK, "{backend}: {}", beat.text());
        assert_eq!(beat.json()["commands_pending"], json!(1));
        assert!(beat.json()["server_time"].as_str().unwrap().ends_with('Z'));
        let i = installations(&app, &app.a).await.remove(0);
        assert_eq!(i["health"], json!("healthy"), "{backend}");
        assert_eq!(
            (i["plugin_version"].as_str(), i["wp_version"].as_str()),
            (Some("0.1.1"), Some("6.7"))
        );
        assert_eq!(
            (i["wc_version"].as_str(), i["php_version"].as_str()),
            (Some("9.4.0"), Some("8.3.1"))
        );
        assert_eq!(
            (i["outbox_depth"].as_i64(), i["failures_24h"].as_i64()),
            (Some(3), Some(1))
        );
        assert_eq!(i["last_error"], json!("HTTP 503 from Cohort"));
        assert_eq!(i["site_name"], json!("Ann's Shop"));
        assert!(i["last_heartbeat_at"].is_string());

        // Health follows the time since the last heartbeat.
        let minute: i64 = 60_000_000;
        for (ago, health) in [
            (30 * minute, "stale"),
            (61 * minute, "lost"),
            (5 * minute, "healthy"),
        ] {
            sqlx::query("UPDATE connect_installations SET last_heartbeat_at = $1 WHERE id = $2")
                .bind(cohort_store::now_micros() - ago)
                .bind(&id)
                .execute(app.t.db.pool())
                .await
                .unwrap();
            assert_eq!(
                installations(&app, &app.a).await[0]["health"],
                json!(health),
                "{backend}"
            );
        }

        // Bad heartbeats name the field.
        for (body, field) in [
            (
                json!({"wp_version": "6.7", "php_version": "8.3"}).to_string(),
                "plugin_version",
            ),
            (
                {
                    let mut b = heartbeat_body();
                    b["outbox_depth"] = json!("many");
                    b.to_string()
                },
                "outbox_depth",
            ),
            (
                {
                    let mut b = heartbeat_body();
                    b["failures_24h"] = json!(-1);
                    b.to_string()
                },
                "failures_24h",
            ),
            (
                {
                    let mut b = heartbeat_body();
                    b["store_url"] = json!("not a url");
                    b.to_string()
                },
                "store_url",
            ),
            ("not json".to_owned(), "body"),
        ] {
            let answer = send_json(
                &app,
                "POST",
                "/connect/v1/heartbeat",
                Some(&token),
                Some(body),
            )
            .await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}");
            assert_eq!(answer.json()["error"]["field"], json!(field), "{backend}");
        }

        // Commands: the initial full sync, listed until acknowledged.
        let commands = send_json(&app, "GET", "/connect/v1/commands", Some(&token), None).await;
        assert_eq!(commands.status, StatusCode::OK, "{}", commands.text());
        let list = commands.json()["commands"].as_array().unwrap().clone();
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0]["kind"].as_str(), &list[0]["params"]),
            (Some("sync_store"), &json!({}))
        );
        let command_id = list[0]["id"].as_str().unwrap().to_owned();
        let ack_path = format!("/connect/v1/commands/{command_id}/ack");
        for (body, field) in [
            (json!({"status": "finished"}), "status"),
            (
                json!({"status": "done", "started_at": "yesterday"}),
                "started_at",
            ),
            (
                json!({"status": "done", "started_at": "2026-01-01T10:00:00Z", "finished_at": "2026-01-01T09:00:00Z"}),
                "finished_at",
            ),
            (
                json!({"status": "done", "counts": {"orders": -1}}),
                "counts.orders",
            ),
            (json!({"status": "done", "counts": [1]}), "counts"),
        ] {
            let answer = send_json(
                &app,
                "POST",
                &ack_path,
                Some(&token),
                Some(body.to_string()),
            )
            .await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}");
            assert_eq!(answer.json()["error"]["field"], json!(field), "{backend}");
        }
        let ack = json!({"status": "done", "started_at": "2026-01-01T10:00:00Z", "finished_at": "2026-01-01T10:05:00Z",
                         "counts": {"products": 12, "customers": 30, "guests": 4, "orders": 57}, "error": null});
        let answer = send_json(&app, "POST", &ack_path, Some(&token), Some(ack.to_string())).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.json(), json!({"id": command_id, "status": "done"}));
        let retry = send_json(
            &app,
            "POST",
            &ack_path,
            Some(&token),
            Some(json!({"status": "failed"}).to_string()),
        )
        .await;
        assert_eq!(
            retry.json()["status"],
            json!("done"),
            "a repeated ack changes nothing"
        );
        let unknown = send_json(
            &app,
            "POST",
            "/connect/v1/commands/cmd_nope/ack",
            Some(&token),
            Some(ack.to_string()),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(
            send_json(&app, "GET", "/connect/v1/commands", Some(&token), None)
                .await
                .json(),
            json!({"commands": []})
        );
        let i = installations(&app, &app.a).await.remove(0);
        assert_eq!(i["commands_pending"], json!(0));
        assert_eq!(i["last_command"]["status"], json!("done"));
        assert_eq!(
            i["last_command"]["counts"],
            json!({"products": 12, "customers": 30, "guests": 4, "orders": 57})
        );
        assert_eq!(
            i["last_command"]["finished_at"],
            json!("2026-01-01T10:05:00Z")
        );

        // A plain WordPress site: no initial sync; upgrading queues one, once.
        let wp = connect(&app, &mut browser, "https://blog.example", "wordpress").await;
        let wp_token = wp["installation_token"].as_str().unwrap();
        assert_eq!(
            send_json(&app, "GET", "/connect/v1/commands", Some(wp_token), None)
                .await
                .json(),
            json!({"commands": []})
        );
        // Another installation's command is not this one's.
        let foreign = send_json(
            &app,
            "POST",
            &ack_path,
            Some(wp_token),
            Some(ack.to_string()),
        )
        .await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND);
        let bad = send_json(
            &app,
            "POST",
            "/connect/v1/installation/upgrade",
            Some(wp_token),
            Some(json!({"platform": "shopify", "wc_version": "9"}).to_string()),
        )
        .await;
        assert_eq!(
            (bad.status, bad.json()["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("platform"))
        );
        let upgrade = json!({"platform": "woocommerce", "wc_version": "9.4.0"}).to_string();
        let up = send_json(
            &app,
            "POST",
            "/connect/v1/installation/upgrade",
            Some(wp_token),
            Some(upgrade.clone()),
        )
        .await;
        assert_eq!(up.status, StatusCode::OK, "{}", up.text());
        assert!(up.json()["command_id"].is_string());
        let again = send_json(
            &app,
            "POST",
            "/connect/v1/installation/upgrade",
            Some(wp_token),
            Some(upgrade),
        )
        .await;
        assert_eq!(again.json()["command_id"], Value::Null);
        let commands = send_json(&app, "GET", "/connect/v1/commands", Some(wp_token), None)
            .await
            .json();
        assert_eq!(commands["commands"].as_array().unwrap().len(), 1);
        assert_eq!(commands["commands"][0]["kind"], json!("sync_store"));
        let blog = installations(&app, &app.a)
            .await
            .into_iter()
            .find(|i| i["store_url"] == json!("https://blog.example"))
            .unwrap();
        assert_eq!(blog["platform"], json!("woocommerce"));

        // Disconnect: 204, then the token is refused everywhere.
        let gone = send_json(
            &app,
            "DELETE",
            "/connect/v1/installation",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text());
        for (method, path) in [
            ("POST", "/connect/v1/heartbeat"),
            ("GET", "/connect/v1/commands"),
            ("DELETE", "/connect/v1/installation"),
        ] {
            let answer = send_json(
                &app,
                method,
                path,
                Some(&token),
                Some(heartbeat_body().to_string()),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{backend} {method} {path}"
            );
            assert_eq!(answer.json()["error"]["code"], json!("unauthorized"));
        }
        for bad in [None, Some("nope"), Some("cin_abc_def")] {
            let answer = send_json(
                &app,
                "POST",
                "/connect/v1/heartbeat",
                bad,
                Some(heartbeat_body().to_string()),
            )
            .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        }
        let shop = installations(&app, &app.a)
            .await
            .into_iter()
            .find(|i| i["id"] == json!(id))
            .unwrap();
        assert_eq!(
            (shop["status"].as_str(), &shop["health"]),
            (Some("disconnected"), &Value::Null)
        );
        assert!(shop["disconnected_at"].is_string());
        // The other installation still works.
        let ok = send_json(
            &app,
            "POST",
            "/connect/v1/heartbeat",
            Some(wp_token),
            Some(heartbeat_body().to_string()),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn deny_expiry_reconnect_and_who_may_approve() {
    for app in apps().await {
        let backend = app.backend();
        create_user(&app, &app.a.org, "ann@example.com", Role::Owner).await;
        create_user(&app, &app.b.org, "bob@example.com", Role::Admin).await;
        let mut ann = Browser::new(&app);

        // A wrong password: the form again, no session.
        let pairing =
            create_pairing(&app, &pairing_body("https://shop.example", "woocommerce")).await;
        let path = authorize_path(&pairing);
        let page = ann.get(&path).await;
        let csrf = csrf_of(&page.text());
        let wrong = ann
            .post(
                &path,
                &[
                    ("action", "sign_in"),
                    ("csrf", &csrf),
                    ("email", "ann@example.com"),
                    ("password", "not the password"),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{backend}");
        assert!(!ann.cookies.contains_key("cohort_session"));
        let nobody = ann
            .post(
                &path,
                &[
                    ("action", "sign_in"),
                    ("csrf", &csrf),
                    ("email", "zed@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);

        // Deny.
        sign_in(&mut ann, &pairing, "ANN@example.com").await;
        let denied = decide(&mut ann, &pairing, "deny", "").await;
        assert_eq!(denied.status, StatusCode::SEE_OTHER, "{}", denied.text());
        assert_eq!(
            denied.headers["location"],
            format!("{RETURN_URL}&cohort_pairing=denied").as_str()
        );
        let answer = poll(&app, &pairing).await;
        assert_eq!(
            (answer.status, answer.json()),
            (StatusCode::GONE, json!({"status": "denied"})),
            "{backend}"
        );
        assert_eq!(ann.get(&path).await.status, StatusCode::GONE);

        // Expiry (the row's expires_at moved into the past instead of waiting 15 minutes).
        let late = create_pairing(&app, &pairing_body("https://shop.example", "woocommerce")).await;
        let page = ann.get(&authorize_path(&late)).await;
        let csrf = csrf_of(&page.text());
        sqlx::query("UPDATE connect_pairings SET expires_at = $1 WHERE id = $2")
            .bind(cohort_store::now_micros() - 1)
            .bind(late["pairing_id"].as_str().unwrap())
            .execute(app.t.db.pool())
            .await
            .unwrap();
        let answer = poll(&app, &late).await;
        assert_eq!(
            (answer.status, answer.json()),
            (StatusCode::GONE, json!({"status": "expired"})),
            "{backend}"
        );
        let page = ann.get(&authorize_path(&late)).await;
        assert_eq!(page.status, StatusCode::GONE);
        assert!(
            page.text().contains("cohort_pairing=expired"),
            "{}",
            page.text()
        );
        let approve = ann
            .post(
                &authorize_path(&late),
                &[
                    ("action", "approve"),
                    ("csrf", &csrf),
                    ("org", app.a.org.as_str()),
                ],
            )
            .await;
        assert_eq!(approve.status, StatusCode::GONE);
        assert_eq!(installations(&app, &app.a).await.len(), 0);

        // Bob administers org B only: he cannot approve into org A.
        let mut bob = Browser::new(&app);
        let pairing =
            create_pairing(&app, &pairing_body("https://shop.example", "woocommerce")).await;
        sign_in(&mut bob, &pairing, "bob@example.com").await;
        let page = bob.get(&authorize_path(&pairing)).await.text();
        assert!(page.contains("Org B") && !page.contains("Org A"), "{page}");
        let refused = decide(&mut bob, &pairing, "approve", app.a.org.as_str()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{backend}");
        assert_eq!(
            poll(&app, &pairing).await.json(),
            json!({"status": "pending"})
        );

        // Reconnect: the new installation replaces the old one; the old token stops working.
        let old = connect(&app, &mut ann, "https://shop.example", "woocommerce").await;
        let old_token = old["installation_token"].as_str().unwrap();
        let beat = heartbeat_body().to_string();
        assert_eq!(
            send_json(
                &app,
                "POST",
                "/connect/v1/heartbeat",
                Some(old_token),
                Some(beat.clone())
            )
            .await
            .status,
            StatusCode::OK
        );
        let new = connect(&app, &mut ann, "HTTPS://shop.example/", "woocommerce").await;
        let new_token = new["installation_token"].as_str().unwrap();
        assert_ne!(old["installation_id"], new["installation_id"]);
        assert_eq!(
            old["write_key"], new["write_key"],
            "the store keeps its source"
        );
        let refused = send_json(
            &app,
            "POST",
            "/connect/v1/heartbeat",
            Some(old_token),
            Some(beat.clone()),
        )
        .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{backend}");
        assert_eq!(
            send_json(
                &app,
                "POST",
                "/connect/v1/heartbeat",
                Some(new_token),
                Some(beat)
            )
            .await
            .status,
            StatusCode::OK
        );
        let list = installations(&app, &app.a).await;
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0]["status"].as_str(), list[1]["status"].as_str()),
            (Some("connected"), Some("replaced"))
        );
        assert_eq!(list[1]["last_command"]["status"], json!("cancelled"));
        assert_eq!(list[0]["last_command"]["status"], json!("pending"));
        assert_eq!(installations(&app, &app.b).await, Vec::<Value>::new());

        // The same store approved by Bob into org B is a separate installation: A's keeps working.
        let pairing =
            create_pairing(&app, &pairing_body("https://shop.example", "woocommerce")).await;
        let answer = decide(&mut bob, &pairing, "approve", app.b.org.as_str()).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        let in_b = poll(&app, &pairing).await.json();
        assert_eq!(in_b["organization"]["name"], json!("Org B"));
        assert_ne!(in_b["write_key"], new["write_key"]);
        assert_eq!(installations(&app, &app.b).await.len(), 1);
        let beat = heartbeat_body().to_string();
        assert_eq!(
            send_json(
                &app,
                "POST",
                "/connect/v1/heartbeat",
                Some(new_token),
                Some(beat)
            )
            .await
            .status,
            StatusCode::OK
        );
    }
}

/// A change to a valid pairing body.
type Change = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn bad_pairing_requests_are_refused_naming_the_field() {
    for app in apps().await {
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|b| {
                    b.as_object_mut().unwrap().remove("store_url");
                }),
                "store_url",
            ),
            (
                Box::new(|b| b["store_url"] = json!("ftp://shop.example")),
                "store_url",
            ),
            (Box::new(|b| b["store_url"] = json!(42)), "store_url"),
            (
                Box::new(|b| {
                    b.as_object_mut().unwrap().remove("site_name");
                }),
                "site_name",
            ),
            (Box::new(|b| b["platform"] = json!("shopify")), "platform"),
            (
                Box::new(|b| b["plugin_version"] = json!("")),
                "plugin_version",
            ),
            (
                Box::new(|b| {
                    b.as_object_mut().unwrap().remove("wp_version");
                }),
                "wp_version",
            ),
            (Box::new(|b| b["wc_version"] = Value::Null), "wc_version"),
            (
                Box::new(|b| b["php_version"] = json!(["8.2"])),
                "php_version",
            ),
            (Box::new(|b| b["currency"] = json!(978)), "currency"),
            (Box::new(|b| b["timezone"] = json!(5)), "timezone"),
            (
                Box::new(|b| b["return_url"] = json!("javascript:alert(1)")),
                "return_url",
            ),
            (
                Box::new(|b| {
                    b.as_object_mut().unwrap().remove("return_url");
                }),
                "return_url",
            ),
        ];
        for (change, field) in cases {
            let mut body = pairing_body("https://shop.example", "woocommerce");
            change(&mut body);
            let answer = send_json(
                &app,
                "POST",
                "/connect/v1/pairings",
                None,
                Some(body.to_string()),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{field}: {}",
                answer.text()
            );
            let error = &answer.json()["error"];
            assert_eq!(error["field"], json!(field), "{}", app.backend());
            assert_eq!(error["code"], json!("invalid_request"));
            assert!(error["message"].as_str().unwrap().contains(field));
        }
        for body in ["", "not json", "[1,2]"] {
            let answer = send_json(
                &app,
                "POST",
                "/connect/v1/pairings",
                None,
                Some(body.to_owned()),
            )
            .await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            assert_eq!(answer.json()["error"]["field"], json!("body"));
        }
        // A plain WordPress site needs no WooCommerce version.
        create_pairing(&app, &pairing_body("http://127.0.0.1:8081/wp", "wordpress")).await;
        // The authorize page for an unknown or malformed pairing.
        let mut browser = Browser::new(&app);
        for path in [
            "/setup/woocommerce?pairing=pair_nope",
            "/setup/woocommerce",
            "/setup/woocommerce?pairing=%3Cscript%3E",
        ] {
            assert_eq!(
                browser.get(path).await.status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }
}

/// A store of organisation A paired by its owner; returns the installation's
/// token and id.
async fn paired_store(app: &TestApp, store_url: &str, platform: &str) -> (String, String) {
    create_user(app, &app.a.org, "ann@example.com", Role::Owner).await;
    let mut browser = Browser::new(app);
    let mut body = pairing_body(store_url, platform);
    body["currency"] = json!("USD");
    let pairing = create_pairing(app, &body).await;
    sign_in(&mut browser, &pairing, "ann@example.com").await;
    assert_eq!(
        decide(&mut browser, &pairing, "approve", app.a.org.as_str())
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let got = poll(app, &pairing).await.json();
    (
        got["installation_token"].as_str().unwrap().to_owned(),
        got["installation_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn store_events_are_stored_once_under_the_installations_source() {
    for app in apps().await {
        let backend = app.backend();
        let (token, _) = paired_store(&app, "https://blog.example", "wordpress").await;
        let source = installations(&app, &app.a).await[0]["source_id"]
            .as_str()
            .unwrap()
            .to_owned();

        let batch = json!({
            "batch": [
                {"type": "identify", "messageId": "wp-signup-identify-1", "userId": "7", "traits": {"email": "sam@shop.test"}},
                {"type": "track", "messageId": "wp-signup-1", "userId": "7", "event": "Signed Up"},
            ],
            "context": {"library": {"name": "cohort-connect", "version": "0.1.0"}},
            "writeKey": "wk_not_this_one",
        });
        // The outbox retries a call whose answer it did not see: the second is a duplicate.
        for _ in 0..2 {
            let answer = send_json(
                &app,
                "POST",
                "/connect/v1/events",
                Some(&token),
                Some(batch.to_string()),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{backend}: {}",
                answer.text()
            );
            assert_eq!(answer.json(), json!({"success": true}));
        }
        let events = app.get_api(&app.a, "/api/v1/events?order=asc").await.json()["data"]
            .as_array()
            .unwrap()
            .clone();
        let ours: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["message_id"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("wp-signup"))
            })
            .collect();
        assert_eq!(ours.len(), 2, "{backend}: {events:#?}");
        assert!(
            ours.iter().all(|e| e["source_id"] == json!(source)),
            "{backend}: stored under the store's source"
        );
        assert_eq!(ours[1]["event"], json!("Signed Up"));
        // Organisation B sees none of it.
        let other = app.get_api(&app.b, "/api/v1/events").await.json();
        assert!(other["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["message_id"]
                .as_str()
                .is_none_or(|m| !m.starts_with("wp-signup"))));

        // Bad input: 400 naming the message's field, nothing stored.
        let bad = json!({"batch": [{"type": "track", "messageId": "wp-bad-1", "userId": "7"}]});
        let answer = send_json(
            &app,
            "POST",
            "/connect/v1/events",
            Some(&token),
            Some(bad.to_string()),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(
            answer.json()["error"]["field"],
            json!("batch[0].event"),
            "{backend}: {}",
            answer.text()
        );
        let not_json = send_json(
            &app,
            "POST",
            "/connect/v1/events",
            Some(&token),
            Some("{".into()),
        )
        .await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST, "{backend}");
        assert!(not_json.json()["error"]["code"].is_string());

        // No token, a wrong one, or one revoked by a disconnect: 401.
        for bearer in [None, Some("cin_wrong")] {
            let answer = send_json(
                &app,
                "POST",
                "/connect/v1/events",
                bearer,
                Some(batch.to_string()),
            )
            .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{backend}");
        }
        assert_eq!(
            send_json(
                &app,
                "DELETE",
                "/connect/v1/installation",
                Some(&token),
                None
            )
            .await
            .status,
            StatusCode::NO_CONTENT
        );
        let answer = send_json(
            &app,
            "POST",
            "/connect/v1/events",
            Some(&token),
            Some(batch.to_string()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{backend}");
        let events = app.get_api(&app.a, "/api/v1/events").await.json()["data"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(events, 2, "{backend}: nothing else was stored");
    }
}

fn wc_fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/fixtures/wc-rest-v3-{name}.docs-example.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn store_resources_become_orders_products_and_derived_events_once() {
    for app in apps().await {
        let backend = app.backend();
        let (token, _) = paired_store(&app, "https://shop.example", "woocommerce").await;
        let send = |topic: &str, resource: Value| {
            send_json(
                &app,
                "POST",
                "/connect/v1/resources",
                Some(&token),
                Some(json!({"topic": topic, "resource": resource}).to_string()),
            )
        };

        // A product priced in the store's currency, then the order, twice (the outbox retried it).
        let product = send("product.updated", wc_fixture("product")).await;
        assert_eq!(
            product.status,
            StatusCode::ACCEPTED,
            "{backend}: {}",
            product.text()
        );
        let first = send("order.updated", wc_fixture("order")).await;
        assert_eq!(
            first.status,
            StatusCode::ACCEPTED,
            "{backend}: {}",
            first.text()
        );
        assert_eq!(first.json()["duplicate"], json!(false));
        let again = send("order.updated", wc_fixture("order")).await;
        assert_eq!(again.json()["duplicate"], json!(true), "{backend}");
        assert_eq!(again.json()["message_id"], first.json()["message_id"]);
        app.projected().await;

        let orders = app.get_api(&app.a, "/api/v1/orders").await.json();
        assert_eq!(
            orders["data"].as_array().unwrap().len(),
            1,
            "{backend}: {orders}"
        );
        assert_eq!(orders["data"][0]["order_id"], json!("727"));
        assert_eq!(
            orders["data"][0]["total"],
            json!({"amount": "29.35", "currency": "USD"}),
            "{backend}"
        );
        let products = app.get_api(&app.a, "/api/v1/products").await.json();
        assert_eq!(
            products["data"][0]["price"],
            json!({"amount": "21.99", "currency": "USD"}),
            "{backend}"
        );
        let completed = app
            .get_api(&app.a, "/api/v1/events?event=Order%20Completed")
            .await
            .json();
        assert_eq!(
            completed["data"].as_array().unwrap().len(),
            1,
            "{backend}: derived once: {completed}"
        );

        // Bad input names the field and stores nothing.
        let mut bad = wc_fixture("order");
        bad["line_items"][0]["total"] = json!("12,00");
        let answer = send("order.updated", bad).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(
            answer.json()["error"]["field"],
            json!("resource.line_items[0].total"),
            "{backend}"
        );
        let answer = send("coupon.updated", json!({})).await;
        assert_eq!(answer.json()["error"]["field"], json!("topic"), "{backend}");
        let answer = send_json(
            &app,
            "POST",
            "/connect/v1/resources",
            Some(&token),
            Some("[]".into()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{backend}");
        let answer = send_json(
            &app,
            "POST",
            "/connect/v1/resources",
            Some("cin_wrong"),
            Some(json!({"topic": "order.updated", "resource": wc_fixture("order")}).to_string()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{backend}");
        assert_eq!(
            app.get_api(&app.b, "/api/v1/orders").await.json()["data"],
            json!([]),
            "{backend}: tenancy"
        );
    }
}

#[tokio::test]
async fn a_sync_run_counts_each_batch_once_and_resumes_after_a_crash() {
    for app in apps().await {
        let backend = app.backend();
        let (token, installation) = paired_store(&app, "https://shop.example", "woocommerce").await;
        let post = |path: String, body: Value| {
            send_json(
                &app,
                "POST",
                Box::leak(path.into_boxed_str()),
                Some(&token),
                Some(body.to_string()),
            )
        };

        // Approval queued the initial sync; asking again from the admin API returns the same command.
        let asked = app
            .api(
                &app.a,
                "POST",
                &format!("/api/v1/installations/{installation}/sync"),
                None,
            )
            .await;
        assert_eq!(
            asked.status,
            StatusCode::ACCEPTED,
            "{backend}: {}",
            asked.text()
        );
        assert_eq!(asked.json()["queued"], json!(false));
        let commands = send_json(&app, "GET", "/connect/v1/commands", Some(&token), None)
            .await
            .json();
        let command = commands["commands"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(asked.json()["command_id"], json!(command));

        let started = post(
            "/connect/v1/sync/runs".into(),
            json!({"command_id": command, "resources": ["products", "customers", "orders"]}),
        )
        .await;
        assert_eq!(
            started.status,
            StatusCode::CREATED,
            "{backend}: {}",
            started.text()
        );
        let run = started.json()["run_id"].as_str().unwrap().to_owned();
        let batches = format!("/connect/v1/sync/runs/{run}/batches");

        let products = post(
            batches.clone(),
            json!({"resource": "products", "seq": 0, "items": [wc_fixture("product")]}),
        )
        .await;
        assert_eq!(
            products.json(),
            json!({"accepted": 1, "rejected": [], "already_counted": false}),
            "{backend}"
        );
        let mut second = wc_fixture("order");
        second["id"] = json!(728);
        second["total"] = json!("10.00");
        let mut bad = wc_fixture("order");
        bad["id"] = json!(729);
        bad["line_items"][0]["total"] = json!("ten");
        let orders =
            json!({"resource": "orders", "seq": 0, "items": [wc_fixture("order"), second, bad]});
        let answer = post(batches.clone(), orders.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["accepted"], json!(2));
        assert_eq!(answer.json()["rejected"][0]["index"], json!(2));
        assert_eq!(
            answer.json()["rejected"][0]["error"]["field"],
            json!("items[2].line_items[0].total"),
            "{backend}"
        );

        // The plugin crashed: starting the run again for the same command resumes it.
        let resumed = post(
            "/connect/v1/sync/runs".into(),
            json!({"command_id": command, "resources": ["products", "customers", "orders"]}),
        )
        .await;
        assert_eq!(
            resumed.status,
            StatusCode::OK,
            "{backend}: {}",
            resumed.text()
        );
        assert_eq!(resumed.json()["run_id"], json!(run));
        assert_eq!(
            resumed.json()["next_seq"],
            json!({"customers": 0, "orders": 1, "products": 1}),
            "{backend}"
        );
        // The last batch sent again (its answer was lost): stored, not counted twice.
        let again = post(batches.clone(), orders).await;
        assert_eq!(again.json()["already_counted"], json!(true), "{backend}");
        let customers = post(
            batches.clone(),
            json!({"resource": "customers", "seq": 0, "items": [wc_fixture("customer")]}),
        )
        .await;
        assert_eq!(
            customers.json()["accepted"],
            json!(1),
            "{backend}: {}",
            customers.text()
        );

        // Bad batches name the field.
        let too_many: Vec<Value> = (0..101).map(|_| wc_fixture("product")).collect();
        for (body, field) in [
            (
                json!({"resource": "products", "seq": 1, "items": too_many}),
                "items",
            ),
            (
                json!({"resource": "coupons", "seq": 0, "items": []}),
                "resource",
            ),
            (json!({"resource": "orders", "seq": -1, "items": []}), "seq"),
            (json!({"resource": "orders", "seq": 1}), "items"),
        ] {
            let answer = post(batches.clone(), body).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{backend}: {}",
                answer.text()
            );
            assert_eq!(answer.json()["error"]["field"], json!(field), "{backend}");
        }
        for (body, field) in [
            (json!({"resources": ["guests"]}), "resources[0]"),
            (json!({"resources": ["orders", "orders"]}), "resources[1]"),
            (json!({"resources": []}), "resources"),
        ] {
            let answer = post("/connect/v1/sync/runs".into(), body).await;
            assert_eq!(
                answer.json()["error"]["field"],
                json!(field),
                "{backend}: {}",
                answer.text()
            );
        }
        let unknown = post(
            "/connect/v1/sync/runs".into(),
            json!({"command_id": "cmd_nope", "resources": ["orders"]}),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{backend}");

        // Complete: the run shows its progress and the plugin's counts; no more batches.
        let done = post(
            format!("/connect/v1/sync/runs/{run}/complete"),
            json!({"counts": {"products": 1, "customers": 1, "orders": 2}}),
        )
        .await;
        assert_eq!(done.status, StatusCode::OK, "{backend}: {}", done.text());
        let late = post(
            batches.clone(),
            json!({"resource": "orders", "seq": 5, "items": []}),
        )
        .await;
        assert_eq!(late.status, StatusCode::CONFLICT, "{backend}");
        let runs = app
            .get_api(
                &app.a,
                &format!("/api/v1/installations/{installation}/sync-runs"),
            )
            .await;
        assert_eq!(runs.status, StatusCode::OK, "{backend}: {}", runs.text());
        let view = &runs.json()["data"][0];
        assert_eq!(view["status"], json!("completed"));
        assert_eq!(
            view["progress"]["orders"],
            json!({"batches": 1, "received": 3, "accepted": 2, "rejected": 1, "next_seq": 1}),
            "{backend}"
        );
        assert_eq!(view["progress"]["products"]["accepted"], json!(1));
        assert_eq!(
            view["reported_counts"],
            json!({"products": 1, "customers": 1, "orders": 2})
        );
        assert!(view["finished_at"].is_string());

        app.projected().await;
        let stored = app.get_api(&app.a, "/api/v1/orders").await.json();
        let mut totals: Vec<(String, String)> = stored["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["order_id"].as_str().unwrap().to_owned(),
                    o["total"]["amount"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        totals.sort();
        assert_eq!(
            totals,
            vec![("727".into(), "29.35".into()), ("728".into(), "10".into())],
            "{backend}"
        );

        // Another organisation sees neither the runs nor may ask for a sync.
        let theirs = app
            .get_api(
                &app.b,
                &format!("/api/v1/installations/{installation}/sync-runs"),
            )
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{backend}");
        let theirs = app
            .api(
                &app.b,
                "POST",
                &format!("/api/v1/installations/{installation}/sync"),
                None,
            )
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{backend}");
    }
}
