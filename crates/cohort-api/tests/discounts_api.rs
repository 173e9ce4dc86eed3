//! The admin discount routes (connect.md §5) on SQLite and PostgreSQL,
//! against stores served over real HTTP: a store that verifies the
//! signature the way the plugin does (cohort_domain's verifier, nonces
//! remembered) and keeps coupons in memory; a WordPress without the
//! endpoints (`404 rest_no_route`); a store holding another secret; and no
//! store at all. The real plugin in a real WordPress is driven by
//! crates/cohort/tests/wordpress_discounts.rs.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use cohort_domain::discounts::signing::{self, SignedHeaders};
use cohort_domain::ids::OrgId;
use cohort_store::connect::{NewPairing, PollOutcome};
use cohort_store::users::Role;
use cohort_store::Db;
use serde_json::{json, Value};

#[derive(Default)]
struct StoreState {
    coupons: BTreeMap<u64, Value>,
    next_id: u64,
    nonces: HashSet<String>,
    verified: usize,
    refused: Vec<String>,
    /// The REQUEST_URIs that verified, in order.
    uris: Vec<String>,
}

/// A store over HTTP: `secret` is what it verifies with; `plugin` false
/// answers like WordPress without the plugin.
struct FakeStore {
    url: String,
    state: Arc<Mutex<StoreState>>,
    /// Settable after pairing (the secret exists only once the store is paired).
    secret: Arc<Mutex<String>>,
    _server: tokio::task::JoinHandle<()>,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn wp_error(
    status: StatusCode,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> axum::response::Response {
    let mut data = json!({"status": status.as_u16()});
    if let Some(f) = field {
        data["field"] = json!(f);
    }
    (
        status,
        Json(json!({"code": code, "message": message, "data": data})),
    )
        .into_response()
}

async fn store_handler(
    state: Arc<Mutex<StoreState>>,
    secret: String,
    plugin: bool,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let route = query.get("rest_route").cloned().unwrap_or_default();
    if !plugin || !route.starts_with("/cohort/v1/discounts") {
        return wp_error(
            StatusCode::NOT_FOUND,
            "rest_no_route",
            "No route was found matching the URL and request method.",
            None,
        );
    }
    let signed = SignedHeaders {
        timestamp: header(&headers, "x-cohort-timestamp"),
        nonce: header(&headers, "x-cohort-nonce"),
        signature: header(&headers, "x-cohort-signature"),
    };
    let request_uri = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let mut s = state.lock().unwrap();
    let verdict = {
        let nonces = &mut s.nonces;
        signing::verify(
            &secret,
            &signed,
            method.as_str(),
            &request_uri,
            &body,
            now,
            |n, _| nonces.insert(n.to_owned()),
        )
    };
    if let Err(refusal) = verdict {
        s.refused.push(refusal.to_string());
        return wp_error(
            StatusCode::UNAUTHORIZED,
            "cohort_bad_signature",
            &refusal.to_string(),
            None,
        );
    }
    s.verified += 1;
    s.uris.push(request_uri);
    let tail = route.trim_start_matches("/cohort/v1/discounts");
    match (method.as_str(), tail) {
        ("POST", "") => {
            let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let code = input["code"].as_str().unwrap_or("").to_owned();
            if s.coupons.values().any(|c| {
                c["code"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&code))
            }) {
                return wp_error(
                    StatusCode::CONFLICT,
                    "cohort_discount_exists",
                    "A coupon with this code already exists.",
                    Some("code"),
                );
            }
            if input["expiresAt"].as_str() == Some("2098-01-01T00:00:00Z") {
                // A refusal only the store makes (Cohort's own checks pass), to see the field mapped back.
                return wp_error(
                    StatusCode::BAD_REQUEST,
                    "cohort_invalid_discount",
                    "not on that day",
                    Some("expiresAt"),
                );
            }
            s.next_id += 1;
            let id = 100 + s.next_id;
            s.coupons.insert(
                id,
                json!({"providerId": id, "code": code, "kind": "percentage", "amount": input["amount"], "minPurchaseAmount": input.get("minPurchaseAmount").cloned().unwrap_or(Value::Null),
                       "expiresAt": input.get("expiresAt").cloned().unwrap_or(Value::Null), "usageLimit": input.get("usageLimit").cloned().unwrap_or(Value::Null),
                       "usageCount": 0, "emailRestrictions": input.get("emailRestrictions").cloned().unwrap_or(json!([])), "currency": "EUR"}),
            );
            (
                StatusCode::CREATED,
                Json(json!({"providerId": id, "code": code})),
            )
                .into_response()
        }
        ("GET", "/redemptions") => {
            let rows = [
                json!({"providerOrderId": "727", "code": "summer20", "customerId": null, "email": "guest@example.com", "amount": "4.40", "currency": "EUR", "createdAt": "2026-01-02T10:00:00Z"}),
                json!({"providerOrderId": "728", "code": "summer20", "customerId": "12", "email": "ada@example.com", "amount": "10.05", "currency": "EUR", "createdAt": "2026-01-02T10:00:00Z"}),
            ];
            match query.get("cursor").map(String::as_str) {
                None => Json(json!({"redemptions": [rows[0]], "nextCursor": "c1.after-727"}))
                    .into_response(),
                Some("c1.after-727") => {
                    Json(json!({"redemptions": [rows[1]], "nextCursor": null})).into_response()
                }
                Some(_) => wp_error(
                    StatusCode::BAD_REQUEST,
                    "cohort_invalid_discount",
                    "bad cursor",
                    Some("cursor"),
                ),
            }
        }
        ("GET", t) if t.starts_with("/by-code/") => {
            let code = t.trim_start_matches("/by-code/");
            match s
                .coupons
                .values()
                .find(|c| c["code"].as_str() == Some(code))
            {
                Some(c) => Json(c.clone()).into_response(),
                None => wp_error(
                    StatusCode::NOT_FOUND,
                    "cohort_discount_not_found",
                    "No such coupon.",
                    None,
                ),
            }
        }
        (m, t) => {
            let id: u64 = t.trim_start_matches('/').parse().unwrap_or(0);
            match (m, s.coupons.get(&id).cloned()) {
                ("GET", Some(c)) => Json(c).into_response(),
                ("DELETE", Some(_)) => {
                    s.coupons.remove(&id);
                    Json(json!({"providerId": id, "deleted": true})).into_response()
                }
                _ => wp_error(
                    StatusCode::NOT_FOUND,
                    "cohort_discount_not_found",
                    "No such coupon.",
                    None,
                ),
            }
        }
    }
}

impl FakeStore {
    async fn start(secret: &str, plugin: bool) -> Self {
        let state = Arc::new(Mutex::new(StoreState::default()));
        let secret = Arc::new(Mutex::new(secret.to_owned()));
        let (st, cell) = (state.clone(), secret.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let secret = cell.lock().unwrap().clone();
                store_handler(st.clone(), secret, plugin, method, uri, headers, body)
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            state,
            secret,
            _server: server,
        }
    }
}

/// Pairs a store at `store_url` into `org` server-side (create, approve,
/// poll) and returns (installation id, signing secret).
async fn connect(db: &Db, org: &OrgId, store_url: &str) -> (String, String) {
    let admin = db
        .add_member(
            org,
            &format!("admin-{}@example.com", rand_suffix()),
            Role::Admin,
            Some("$argon2id$unused"),
        )
        .await
        .unwrap();
    let new = NewPairing {
        store_url: store_url.to_owned(),
        site_name: "Shop".into(),
        platform: cohort_domain::connect::Platform::Woocommerce,
        plugin_version: "0.1.0".into(),
        wp_version: "6.1".into(),
        wc_version: Some("7.8.2".into()),
        php_version: "8.2".into(),
        currency: Some("EUR".into()),
        timezone: "UTC".into(),
        return_url: format!("{store_url}/wp-admin/"),
    };
    let (pairing, poll_secret) = db.create_pairing(&new).await.unwrap();
    db.approve_pairing(&pairing.id, org, &admin.id)
        .await
        .unwrap();
    match db.poll_pairing(&pairing.id, &poll_secret).await.unwrap() {
        PollOutcome::Approved(claimed) => (claimed.installation_id, claimed.signing_secret),
        _ => panic!("the pairing was not approved"),
    }
}

fn rand_suffix() -> String {
    signing::new_nonce()[..8].to_lowercase()
}

fn base(installation: &str) -> String {
    format!("/api/v1/installations/{installation}/discounts")
}

#[tokio::test]
async fn discounts_go_to_the_store_signed_and_come_back_typed() {
    for app in common::apps_allowing_private_addresses().await {
        let backend = app.backend();
        let store = FakeStore::start("", true).await;
        let (ins, secret) = connect(&app.t.db, &app.a.org, &store.url).await;
        *store.secret.lock().unwrap() = secret;
        let b = base(&ins);

        let created = app
            .api(&app.a, "POST", &b, Some(json!({"code": "SUMMER20", "amount": "20", "min_purchase_amount": "50.00", "expires_at": "2099-12-31T00:00:00Z", "usage_limit": 10, "email_restrictions": ["Ada@Example.com"]})))
            .await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{backend}: {}",
            created.text()
        );
        let id = created.json()["provider_id"].as_u64().unwrap();
        assert_eq!(created.json()["code"], json!("SUMMER20"));

        let again = app
            .api(
                &app.a,
                "POST",
                &b,
                Some(json!({"code": "summer20", "kind": "percentage", "amount": 5})),
            )
            .await;
        assert_eq!(
            again.status,
            StatusCode::CONFLICT,
            "{backend}: {}",
            again.text()
        );
        assert_eq!(again.json()["error"]["code"], json!("discount_exists"));

        let got = app.api(&app.a, "GET", &format!("{b}/{id}"), None).await;
        assert_eq!(got.status, StatusCode::OK, "{backend}: {}", got.text());
        let got = got.json();
        assert_eq!(got["amount"], json!("20"));
        assert_eq!(got["min_purchase_amount"], json!("50"));
        assert_eq!(got["email_restrictions"], json!(["ada@example.com"]));
        assert_eq!(got["usage_limit"], json!(10));
        let by_code = app
            .api(&app.a, "GET", &format!("{b}/by-code/SUMMER20"), None)
            .await;
        assert_eq!(
            by_code.status,
            StatusCode::OK,
            "{backend}: {}",
            by_code.text()
        );
        assert_eq!(by_code.json()["provider_id"], json!(id));

        // A coupon that does not exist is 404 not_found (not "plugin update required").
        let missing = app.api(&app.a, "GET", &format!("{b}/999999"), None).await;
        assert_eq!(
            missing.status,
            StatusCode::NOT_FOUND,
            "{backend}: {}",
            missing.text()
        );
        assert_eq!(missing.json()["error"]["code"], json!("not_found"));
        let missing = app
            .api(&app.a, "GET", &format!("{b}/by-code/NOPE"), None)
            .await;
        assert_eq!(
            missing.status,
            StatusCode::NOT_FOUND,
            "{backend}: {}",
            missing.text()
        );

        // Redemptions: two pages through the store's cursor, amounts exact.
        let page = app
            .api(
                &app.a,
                "GET",
                &format!("{b}/redemptions?since=2026-01-01T00:00:00Z"),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{backend}: {}", page.text());
        let page = page.json();
        assert_eq!(page["data"][0]["amount"], json!("4.40"));
        assert_eq!(page["data"][0]["customer_id"], Value::Null);
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let next = app
            .api(
                &app.a,
                "GET",
                &format!("{b}/redemptions?since=2026-01-01T00:00:00Z&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(next.status, StatusCode::OK, "{backend}: {}", next.text());
        assert_eq!(next.json()["data"][0]["provider_order_id"], json!("728"));
        assert_eq!(next.json()["next_cursor"], Value::Null);

        // A field only the store refuses comes back under the admin API's name.
        let refused = app
            .api(
                &app.a,
                "POST",
                &b,
                Some(json!({"code": "LATER", "amount": 5, "expires_at": "2098-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{backend}: {}",
            refused.text()
        );
        assert_eq!(refused.json()["error"]["field"], json!("expires_at"));

        let deleted = app.api(&app.a, "DELETE", &format!("{b}/{id}"), None).await;
        assert_eq!(
            deleted.status,
            StatusCode::OK,
            "{backend}: {}",
            deleted.text()
        );
        assert_eq!(deleted.json(), json!({"provider_id": id, "deleted": true}));
        assert_eq!(
            app.api(&app.a, "GET", &format!("{b}/{id}"), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );

        // Every call reached the store signed, each with its own nonce, and verified.
        let s = store.state.lock().unwrap();
        assert!(s.refused.is_empty(), "{backend}: {:?}", s.refused);
        assert_eq!(s.verified, 11, "{backend}: create, create again, get, by code, two missing, two redemption pages, a refused create, delete, get after delete");
        assert_eq!(s.nonces.len(), 11, "{backend}");
        assert!(
            s.uris
                .iter()
                .all(|u| u.starts_with("/?rest_route=/cohort/v1/discounts")),
            "{backend}: {:?}",
            s.uris
        );
    }
}

#[tokio::test]
async fn input_and_tenancy_are_checked_before_any_call() {
    for app in common::apps_allowing_private_addresses().await {
        let backend = app.backend();
        let store = FakeStore::start("unused", true).await;
        let (ins, _) = connect(&app.t.db, &app.a.org, &store.url).await;
        let b = base(&ins);
        let cases = [
            (json!({"amount": 10}), "code"),
            (json!({"code": "X", "amount": 0}), "amount"),
            (json!({"code": "X", "amount": "100.5"}), "amount"),
            (json!({"code": "X", "kind": "fixed", "amount": 5}), "kind"),
            (
                json!({"code": "X", "amount": 5, "expires_at": "tomorrow"}),
                "expires_at",
            ),
            (
                json!({"code": "X", "amount": 5, "usage_limit": -1}),
                "usage_limit",
            ),
            (
                json!({"code": "X", "amount": 5, "email_restrictions": ["ok@example.com", "nope"]}),
                "email_restrictions[1]",
            ),
            (json!(["not", "an", "object"]), "body"),
        ];
        for (body, field) in cases {
            let answer = app.api(&app.a, "POST", &b, Some(body.clone())).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{backend} {body}: {}",
                answer.text()
            );
            assert_eq!(
                answer.json()["error"]["field"],
                json!(field),
                "{backend} {body}"
            );
        }
        let bad_id = app.api(&app.a, "GET", &format!("{b}/abc"), None).await;
        assert_eq!(
            (bad_id.status, bad_id.json()["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("provider_id")),
            "{backend}"
        );
        let no_since = app
            .api(&app.a, "GET", &format!("{b}/redemptions"), None)
            .await;
        assert_eq!(
            (no_since.status, no_since.json()["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("since")),
            "{backend}"
        );
        let bad_since = app
            .api(
                &app.a,
                "GET",
                &format!("{b}/redemptions?since=yesterday"),
                None,
            )
            .await;
        assert_eq!(
            bad_since.json()["error"]["field"],
            json!("since"),
            "{backend}"
        );
        let bad_cursor = app
            .api(
                &app.a,
                "GET",
                &format!("{b}/redemptions?since=2026-01-01T00:00:00Z&cursor=a%20b"),
                None,
            )
            .await;
        assert_eq!(
            bad_cursor.json()["error"]["field"],
            json!("cursor"),
            "{backend}"
        );
        let reached = {
            let s = store.state.lock().unwrap();
            s.verified + s.refused.len()
        };
        assert_eq!(reached, 0, "{backend}: no call reached the store");

        // Org B sees nothing of org A's installation: 404 on every route.
        for (method, path, body) in [
            ("POST", b.clone(), Some(json!({"code": "X", "amount": 5}))),
            ("GET", format!("{b}/1"), None),
            ("DELETE", format!("{b}/1"), None),
            ("GET", format!("{b}/by-code/X"), None),
            (
                "GET",
                format!("{b}/redemptions?since=2026-01-01T00:00:00Z"),
                None,
            ),
        ] {
            let answer = app.api(&app.b, method, &path, body).await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{backend} {method} {path}: {}",
                answer.text()
            );
        }
        let unknown = app
            .api(
                &app.a,
                "GET",
                "/api/v1/installations/ins_nope/discounts/1",
                None,
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{backend}");
        let anonymous = app
            .send(
                axum::http::Request::get(format!("{b}/1"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{backend}");
        // A disconnected installation is not called.
        app.t
            .db
            .disconnect_installation(&app.a.org, &ins)
            .await
            .unwrap();
        let gone = app.api(&app.a, "GET", &format!("{b}/1"), None).await;
        assert_eq!(
            gone.status,
            StatusCode::CONFLICT,
            "{backend}: {}",
            gone.text()
        );
        assert_eq!(
            gone.json()["error"]["code"],
            json!("installation_not_connected")
        );
    }
}

#[tokio::test]
async fn stores_that_cannot_answer_are_told_apart() {
    for app in common::apps_allowing_private_addresses().await {
        let backend = app.backend();
        // WordPress without the discount endpoints: 404 rest_no_route.
        let old = FakeStore::start("unused", false).await;
        let (ins, _) = connect(&app.t.db, &app.a.org, &old.url).await;
        for (method, path, body) in [
            ("POST", base(&ins), Some(json!({"code": "X", "amount": 5}))),
            ("GET", format!("{}/1", base(&ins)), None),
            ("GET", format!("{}/by-code/X", base(&ins)), None),
            ("DELETE", format!("{}/1", base(&ins)), None),
            (
                "GET",
                format!("{}/redemptions?since=2026-01-01T00:00:00Z", base(&ins)),
                None,
            ),
        ] {
            let answer = app.api(&app.a, method, &path, body).await;
            assert_eq!(
                answer.status,
                StatusCode::CONFLICT,
                "{backend} {method} {path}: {}",
                answer.text()
            );
            assert_eq!(
                answer.json()["error"]["code"],
                json!("plugin_update_required"),
                "{backend}"
            );
            assert!(answer.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("plugin update required"));
        }

        // A store that holds another secret refuses the signature: 502, said so.
        let other = FakeStore::start("another-secret", true).await;
        let (ins, _) = connect(&app.t.db, &app.a.org, &other.url).await;
        let answer = app
            .api(&app.a, "GET", &format!("{}/1", base(&ins)), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(
            answer.json()["error"]["code"],
            json!("store_refused_signature")
        );
        assert_eq!(
            other.state.lock().unwrap().refused,
            vec!["signature mismatch".to_owned()]
        );

        // Nothing listening: 502 store_unreachable with a message.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let (ins, _) = connect(&app.t.db, &app.a.org, &closed).await;
        let answer = app
            .api(
                &app.a,
                "GET",
                &format!("{}/redemptions?since=2026-01-01T00:00:00Z", base(&ins)),
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["error"]["code"], json!("store_unreachable"));
        assert!(answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"));
    }
}

/// The store discounts client is under the one outbound policy: by default
/// a store on a private address is never called (the stand-in counts no
/// request), and the refusal says why.
#[tokio::test]
async fn a_store_on_a_private_address_is_not_called_unless_allowed() {
    for app in common::apps().await {
        let backend = app.backend();
        let store = FakeStore::start("unused", true).await;
        let (ins, secret) = connect(&app.t.db, &app.a.org, &store.url).await;
        *store.secret.lock().unwrap() = secret;
        let answer = app
            .api(&app.a, "GET", &format!("{}/1", base(&ins)), None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{backend}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["error"]["code"], json!("store_unreachable"));
        assert!(
            answer.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("private address"),
            "{backend}: {}",
            answer.text()
        );
        let state = store.state.lock().unwrap();
        assert_eq!(state.verified + state.refused.len(), 0, "{backend}");
    }
}
