//! Cohort's own JS SDK in real headless Chromium against the real server, on
//! SQLite and PostgreSQL. `tests/clients/sdk_browser.mjs` loads the SDK from
//! the server's `/sdk/v1/cohort.js` into a page of another origin, plays a
//! scenario and reports what the browser did (requests seen on the network,
//! cookies, storage); these tests check it as a site owner would, and read
//! every delivered message back from `/api/v1/events`.
//!
//! Without playwright-core or Chromium they skip loudly, unless
//! COHORT_TEST_REQUIRE_CLIENTS=1 (set by scripts/test.sh and CI).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{api_token, databases, Server};
use serde_json::{json, Value};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the driver reported, plus the events stored on that backend.
struct Run {
    backend: &'static str,
    report: Value,
    stored: Vec<Value>,
}

impl Run {
    fn sent(&self) -> &Vec<Value> {
        self.report["sent"].as_array().expect("sent")
    }
    fn sent_where(&self, test: impl Fn(&Value) -> bool) -> Vec<&Value> {
        self.sent().iter().filter(|m| test(m)).collect()
    }
    fn track(&self, event: &str) -> Vec<&Value> {
        self.sent_where(|m| m["type"] == "track" && m["event"] == event)
    }
    fn one_track(&self, event: &str) -> &Value {
        let found = self.track(event);
        assert_eq!(
            found.len(),
            1,
            "{}: track {event:?} delivered {} times",
            self.backend,
            found.len()
        );
        found[0]
    }
    fn obs(&self, key: &str) -> &Value {
        &self.report["observations"][key]
    }
    /// How many accepted (200) requests carried `message_id`.
    fn accepted_requests_with(&self, message_id: &Value) -> usize {
        self.report["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|r| {
                r["status"] == 200
                    && r["messageIds"]
                        .as_array()
                        .is_some_and(|ids| ids.contains(message_id))
            })
            .count()
    }
}

/// Runs `scenario` on every backend; `check` gets each run.
async fn scenario(name: &str, check: impl Fn(&Run)) {
    let Some((dir, chromium)) = common::browser(&format!("SDK in Chromium: {name}")) else {
        return;
    };
    for t in databases().await {
        let server = Server::start(&t.url, &[]).await;
        let write_key = server.printed_write_key();
        let output = tokio::time::timeout(
            Duration::from_secs(300),
            tokio::process::Command::new("node")
                .arg(dir.join("sdk_browser.mjs"))
                .args([&server.url, &write_key, name])
                .env("CHROMIUM", &chromium)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the driver finished in time")
        .expect("the driver started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "sdk_browser.mjs {name} failed ({:?}):\n{stderr}\nserver:\n{}",
            output.status,
            server.output()
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "driver output is not JSON ({e}): {}\n{stderr}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        let token = api_token(&t.db).await;
        let stored = common::all_events(&server.url, &token).await;
        let run = Run {
            backend: t.backend().as_str(),
            report,
            stored,
        };
        assert_stored_as_sent(&run);
        check(&run);
        eprintln!(
            "{name} on {}: {} messages delivered and read back",
            run.backend,
            run.sent().len()
        );
    }
}

/// Every delivered message is stored exactly once, as sent, field by field;
/// nothing else is stored.
fn assert_stored_as_sent(run: &Run) {
    let b = run.backend;
    let mut ids = HashSet::new();
    for m in run.sent() {
        let id = m["messageId"]
            .as_str()
            .unwrap_or_else(|| panic!("{b}: a message without messageId: {m}"));
        assert!(ids.insert(id), "{b}: messageId {id} reported twice");
        let matching: Vec<&Value> = run
            .stored
            .iter()
            .filter(|e| e["message_id"] == id)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{b}: message {id} stored {} times",
            matching.len()
        );
        let e = matching[0];
        let stored = &e["message"];
        assert_eq!(e["type"], m["type"], "{b} {id}");
        assert_eq!(stored["messageId"], m["messageId"], "{b} {id}");
        for key in [
            "type",
            "userId",
            "anonymousId",
            "event",
            "name",
            "category",
            "groupId",
            "previousId",
            "properties",
            "traits",
            "sentAt",
        ] {
            assert_eq!(stored.get(key), m.get(key), "{b} {id} {key}");
        }
        let context = m["context"]
            .as_object()
            .unwrap_or_else(|| panic!("{b} {id}: no context"));
        for (k, v) in context {
            assert_eq!(&stored["context"][k], v, "{b} {id} context.{k}");
        }
        assert_eq!(
            stored["originalTimestamp"], m["timestamp"],
            "{b} {id}: the SDK's time is kept"
        );
        assert_eq!(e["user_id"].as_str(), m["userId"].as_str(), "{b} {id}");
        assert_eq!(
            e["anonymous_id"].as_str(),
            m["anonymousId"].as_str(),
            "{b} {id}"
        );
    }
    assert_eq!(
        run.stored.len(),
        run.sent().len(),
        "{b}: stored events are exactly the delivered messages"
    );
}

fn cookie<'a>(observation: &'a Value, name: &str) -> Option<&'a str> {
    observation["cookies"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)?["value"]
        .as_str()
}

/// The SDK's own cookies and localStorage entries in an observation.
fn sdk_traces(observation: &Value) -> Vec<String> {
    let mut out: Vec<String> = observation["cookies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| !n.starts_with("wp_consent_"))
        .map(|n| format!("cookie {n}"))
        .collect();
    if let Some(ls) = observation["storage"]["localStorage"].as_object() {
        out.extend(ls.keys().map(|k| format!("localStorage {k}")));
    }
    if let Some(ss) = observation["storage"]["sessionStorageKeys"].as_array() {
        out.extend(ss.iter().map(|k| format!("sessionStorage {k}")));
    }
    out
}

#[tokio::test]
async fn page_view_configured_user_and_calls_arrive_with_full_context_and_the_anonymous_id_survives_a_reload(
) {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    scenario("basics", |run| {
        let b = run.backend;
        let x = &run.report["expected"];
        let page_url = run.report["page"].as_str().unwrap();

        // The page view on load, twice (load and reload), with the page's context.
        let views = run.sent_where(|m| m["type"] == "page" && m.get("name").is_none());
        assert_eq!(views.len(), 2, "{b}: one page view per load");
        let view = views[0];
        let context = &view["context"];
        assert_eq!(context["page"]["url"], page_url, "{b}");
        assert_eq!(context["page"]["path"], "/shop/product.html", "{b}");
        assert_eq!(context["page"]["search"], format!("?{}", page_url.split_once('?').unwrap().1), "{b}");
        assert_eq!(context["page"]["title"], "Blue T-Shirt", "{b}");
        assert_eq!(context["page"]["referrer"], x["referrer"], "{b}");
        assert_eq!(view["properties"]["url"], page_url, "{b}: page properties default to the page");
        assert_eq!(view["properties"]["title"], "Blue T-Shirt", "{b}");
        assert_eq!(
            context["campaign"],
            json!({"source": "newsletter", "medium": "email", "name": "spring_sale", "content": "hero"}),
            "{b}: utm_* parameters"
        );
        assert_eq!(context["library"], json!({"name": "cohort.js", "version": VERSION}), "{b}");
        assert!(context["userAgent"].as_str().is_some_and(|ua| ua.contains("Chrome")), "{b}: {}", context["userAgent"]);
        assert!(context["locale"].as_str().is_some_and(|l| !l.is_empty()), "{b}: locale");
        assert!(context["timezone"].as_str().is_some_and(|t| !t.is_empty()), "{b}: timezone");
        assert_eq!(context["woocommerce"], x["woocommerce"], "{b}: the configured WooCommerce context, as given");

        // The configured user is identified once: not again after the reload.
        let user_id = x["user"]["id"].as_i64().unwrap().to_string();
        let configured: Vec<&Value> = run.sent_where(|m| m["type"] == "identify" && m["traits"].get("email").is_some());
        assert_eq!(configured.len(), 1, "{b}: the configured user is identified once");
        let identify = configured[0];
        assert_eq!(identify["userId"], user_id.as_str(), "{b}");
        assert_eq!(identify["traits"]["email"], x["user"]["email"], "{b}");
        assert_eq!(identify["traits"]["ef_transaction_id"], x["efId"], "{b}: the Everflow id reaches the profile");
        let traits_only = run.sent_where(|m| m["type"] == "identify" && m["traits"].get("email").is_none());
        assert_eq!(traits_only.len(), 1, "{b}");
        assert_eq!(traits_only[0]["userId"], user_id.as_str(), "{b}: traits alone update the current user");
        assert_eq!(traits_only[0]["traits"], json!({"plan": "pro", "ef_transaction_id": x["efId"]}), "{b}");

        // A call queued by the snippet before the SDK loaded, and calls after.
        let queued = run.track("Product Viewed");
        assert_eq!(queued.len(), 2, "{b}: queued by the page's script on each load");
        for m in queued {
            assert_eq!(m["properties"], x["productProps"], "{b}");
        }
        assert_eq!(run.one_track("Order Completed")["properties"], x["orderProps"], "{b}");
        let group = run.sent_where(|m| m["type"] == "group");
        assert_eq!(group.len(), 1, "{b}");
        assert_eq!(group[0]["groupId"], x["groupId"], "{b}");
        assert_eq!(group[0]["traits"], json!({"name": "Example Inc", "employees": 42}), "{b}");
        let named = run.sent_where(|m| m["type"] == "page" && m["name"] == "Thank You");
        assert_eq!(named.len(), 1, "{b}");
        assert_eq!(named[0]["category"], "Shop", "{b}");
        assert_eq!(named[0]["properties"]["order_id"], x["orderProps"]["order_id"], "{b}");
        let alias = run.sent_where(|m| m["type"] == "alias");
        assert_eq!(alias.len(), 1, "{b}");
        assert_eq!(alias[0]["userId"], x["aliasId"], "{b}");
        assert_eq!(alias[0]["previousId"], user_id.as_str(), "{b}");

        // One anonymous id, in the first-party cookie, on every message,
        // before and after the reload; Everflow and the user on every one.
        let cookie_before = cookie(run.obs("beforeReload"), "cohort_aid").unwrap_or_else(|| panic!("{b}: no cohort_aid cookie"));
        assert_eq!(cookie(run.obs("afterReload"), "cohort_aid"), Some(cookie_before), "{b}: the cookie survives the reload");
        assert_eq!(run.obs("beforeReload")["storage"]["localStorage"]["cohort_aid"], cookie_before, "{b}: mirrored in localStorage");
        assert_eq!(views[1]["anonymousId"], cookie_before, "{b}: the page view after the reload has the same anonymous id");
        let mut message_ids = HashSet::new();
        for m in run.sent() {
            assert_eq!(m["anonymousId"], cookie_before, "{b}: {m}");
            assert_eq!(m["context"]["referrer"], json!({"type": "everflow", "id": x["efId"]}), "{b}: {m}");
            if m["type"] != "alias" {
                assert_eq!(m["userId"], user_id.as_str(), "{b}: {m}");
            }
            assert!(m["sentAt"].is_string() && m["timestamp"].is_string(), "{b}: {m}");
            assert!(message_ids.insert(m["messageId"].as_str().unwrap().to_owned()), "{b}");
        }
        assert_eq!(run.sent().len(), 10, "{b}: identify, 2 page views, 3 tracks, identify, group, page, alias");
    })
    .await;
}

#[tokio::test]
async fn with_consent_required_nothing_is_stored_or_sent_before_grant_and_nothing_after_revoke() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    scenario("consent", |run| {
        let b = run.backend;
        let before = run.obs("beforeGrant");
        assert_eq!(
            before["requests"], 0,
            "{b}: no request to Cohort before consent"
        );
        assert_eq!(
            sdk_traces(before),
            Vec::<String>::new(),
            "{b}: nothing stored before consent"
        );
        assert_eq!(before["storage"]["documentCookie"], "", "{b}");

        // Granting delivers what was held, in memory, since the page loaded.
        let held: Vec<&Value> = ["Before Load", "Before Consent", "After Consent"]
            .iter()
            .map(|e| run.one_track(e))
            .collect();
        let identify = run.sent_where(|m| m["type"] == "identify");
        assert_eq!(
            identify.len(),
            1,
            "{b}: the configured user, held then sent"
        );
        assert_eq!(identify[0]["userId"], "4242", "{b}");
        let views = run.sent_where(|m| m["type"] == "page");
        assert_eq!(views.len(), 1, "{b}: the page view of the first load only");
        let after = run.obs("afterGrant");
        let aid = cookie(after, "cohort_aid")
            .unwrap_or_else(|| panic!("{b}: no cohort_aid cookie after grant: {after}"));
        for m in held.iter().chain(&identify).chain(&views) {
            assert_eq!(
                m["anonymousId"], aid,
                "{b}: held messages use the id stored on grant"
            );
            assert!(m.get("userId").is_none() || m["userId"] == "4242", "{b}");
        }
        assert!(
            after["storage"]["localStorage"]["cohort_consent"].is_string(),
            "{b}: the grant is remembered"
        );

        // Revoking: nothing sent, everything the SDK stored deleted.
        let revoked = run.obs("afterRevoke");
        assert_eq!(
            revoked["requestsSinceRevoke"], 0,
            "{b}: nothing sent after revoke"
        );
        assert_eq!(
            sdk_traces(revoked),
            Vec::<String>::new(),
            "{b}: nothing left in the browser after revoke"
        );
        assert!(run.track("After Revoke").is_empty(), "{b}");

        // Held calls dropped by a revoke stay dropped after a new grant.
        assert!(run.track("Dropped On Revoke").is_empty(), "{b}");
        let regrant = run.one_track("After Regrant");
        assert_ne!(
            regrant["anonymousId"], aid,
            "{b}: a revoke forgets the anonymous id"
        );
        assert_eq!(
            regrant["context"]["consent"],
            json!({"categoryPreferences": {"marketing": true, "statistics": true}}),
            "{b}: granted categories travel with the message"
        );
        assert_eq!(
            cookie(run.obs("afterRegrant"), "cohort_aid"),
            regrant["anonymousId"].as_str(),
            "{b}"
        );
        assert_eq!(
            run.sent().len(),
            6,
            "{b}: identify, page view, 3 held tracks and After Regrant; nothing else"
        );
    })
    .await;
}

#[tokio::test]
async fn the_wordpress_consent_api_drives_consent_without_extra_code() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    scenario("wp-consent", |run| {
        let b = run.backend;
        let before = run.obs("beforeAllow");
        assert_eq!(
            before["requests"], 0,
            "{b}: consent to statistics alone sends nothing"
        );
        assert_eq!(
            sdk_traces(before),
            Vec::<String>::new(),
            "{b}: and stores nothing"
        );

        let views = run.sent_where(|m| m["type"] == "page");
        assert_eq!(
            views.len(),
            2,
            "{b}: the held page view once marketing is allowed, and the next page's"
        );
        let aid = cookie(run.obs("afterAllow"), "cohort_aid")
            .unwrap_or_else(|| panic!("{b}: no cohort_aid cookie after allow"));
        assert_eq!(views[0]["anonymousId"], aid, "{b}");
        assert_eq!(
            views[1]["anonymousId"], aid,
            "{b}: the next page is granted by the Consent API alone"
        );
        assert_eq!(
            run.track("Before Load").len(),
            2,
            "{b}: the call the page queues on each load"
        );

        let denied = run.obs("afterDeny");
        assert_eq!(
            denied["requestsSinceDeny"], 0,
            "{b}: nothing sent after deny"
        );
        assert_eq!(
            sdk_traces(denied),
            Vec::<String>::new(),
            "{b}: nothing left in the browser after deny"
        );
        assert!(run.track("After Deny").is_empty(), "{b}");
        assert_eq!(run.sent().len(), 4, "{b}: nothing else");
    })
    .await;
}

#[tokio::test]
async fn events_tracked_offline_are_delivered_exactly_once_when_back_online_or_by_the_next_page() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    scenario("offline", |run| {
        let b = run.backend;
        let offline = run.obs("whileOffline");
        assert!(
            offline["failedAttempts"].as_u64().unwrap_or(0) >= 2,
            "{b}: sends failed and were retried while offline"
        );
        let queued: HashSet<&str> = offline["queued"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for e in ["Offline 1", "Offline 2", "Offline 3"] {
            assert!(
                queued.contains(e),
                "{b}: {e} kept in localStorage while offline: {queued:?}"
            );
            let m = run.one_track(e);
            assert_eq!(
                run.accepted_requests_with(&m["messageId"]),
                1,
                "{b}: {e} accepted in exactly one request"
            );
        }
        let n: Vec<&Value> = ["Offline 1", "Offline 2", "Offline 3"]
            .iter()
            .map(|e| &run.one_track(e)["properties"]["n"])
            .collect();
        assert_eq!(n, [&json!(1), &json!(2), &json!(3)], "{b}");

        let kept: HashSet<&str> = run.obs("beforeClose")["queued"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let requests = run.report["requests"].as_array().unwrap();
        for e in ["Next Page 1", "Next Page 2"] {
            assert!(
                kept.contains(e),
                "{b}: {e} kept in localStorage when the page closed: {kept:?}"
            );
            let m = run.one_track(e);
            let by_page: HashMap<i64, usize> = requests
                .iter()
                .filter(|r| {
                    r["status"] == 200
                        && r["messageIds"]
                            .as_array()
                            .is_some_and(|ids| ids.contains(&m["messageId"]))
                })
                .fold(HashMap::new(), |mut acc, r| {
                    *acc.entry(r["page"].as_i64().unwrap_or(-1)).or_default() += 1;
                    acc
                });
            assert_eq!(
                by_page,
                HashMap::from([(1, 1)]),
                "{b}: {e} delivered once, by the next page"
            );
            assert_eq!(
                m["context"]["page"]["url"], run.report["page"],
                "{b}: with the context of the page it was made on"
            );
        }
        assert_eq!(
            run.obs("afterNextPage")["queued"],
            json!([]),
            "{b}: nothing left to send"
        );
        assert_eq!(run.sent_where(|m| m["type"] == "page").len(), 2, "{b}");
        assert_eq!(
            run.sent().len(),
            7,
            "{b}: 2 page views, 3 offline tracks, 2 from the closed page"
        );
    })
    .await;
}
