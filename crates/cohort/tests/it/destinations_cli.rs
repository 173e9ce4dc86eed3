//! Destinations through the real binary on both databases: a receiver that
//! is down for a while then up gets every event; `kill -9` of `cohort
//! serve` mid-delivery, then a restart, delivers every event with exactly
//! one successful (2xx) answer per messageId; `cohort destination …`
//! manages destinations, shows the log, replays and sends tests, secrets
//! masked.

use crate::common;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use cohort_store::destinations::{DeliveryFilter, DeliveryStatus, SecretsKey};
use cohort_store::Db;
use cohort_testkit::{Answer, Received, Receiver};
use common::{api_token, databases, Server};
use serde_json::{json, Value};

/// How many requests `receiver` got per webhook-id, of those `counted` keeps.
fn per_webhook_id(
    receiver: &Receiver,
    counted: impl Fn(&Received) -> bool,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in receiver.requests().iter().filter(|r| counted(r)) {
        *counts.entry(webhook_id(request)).or_default() += 1;
    }
    counts
}

fn requests_per_id(receiver: &Receiver) -> BTreeMap<String, usize> {
    per_webhook_id(receiver, |_| true)
}

/// 2xx answers per webhook-id.
fn successes_per_id(receiver: &Receiver) -> BTreeMap<String, usize> {
    per_webhook_id(receiver, |r| {
        r.answered
            .is_some_and(|status| (200..300).contains(&status))
    })
}

fn webhook_id(request: &Received) -> String {
    request.header("webhook-id").unwrap_or("-").to_owned()
}

fn env(key: &SecretsKey) -> Vec<(&'static str, String)> {
    vec![
        ("COHORT_DESTINATIONS__KEY", key.to_base64()),
        (
            "COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES",
            "true".into(),
        ),
        ("COHORT_DESTINATIONS__POLL_INTERVAL_MS", "50".into()),
        // A request gives up after 8 s; a delivery claimed by a killed
        // process is sent again 9 s after its claim.
        ("COHORT_DESTINATIONS__TIMEOUT_SECONDS", "8".into()),
        ("COHORT_DESTINATIONS__LEASE_SECONDS", "9".into()),
        (
            "COHORT_DESTINATIONS__RETRY_SCHEDULE_SECONDS",
            format!("[{}]", ["1"; 30].join(",")),
        ),
    ]
}

async fn start(url: &str, key: &SecretsKey) -> Server {
    let env = env(key);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(url, &pairs).await
}

async fn create_webhook(server: &Server, token: &str, url: &str) -> String {
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/destinations", server.url))
        .bearer_auth(token)
        .json(&json!({"type": "webhook", "name": "receiver", "settings": {"url": url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    answer.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn send_events(server: &Server, write_key: &str, ids: &[String]) {
    let batch: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "track", "event": "Paid", "userId": "u", "messageId": id}))
        .collect();
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/batch", server.url))
        .basic_auth(write_key, Some(""))
        .json(&json!({ "batch": batch }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

async fn deliveries(
    db: &Db,
    destination: &str,
    status: Option<DeliveryStatus>,
) -> Vec<cohort_store::destinations::Delivery> {
    let org = db.list_organisations().await.unwrap().remove(0).id;
    db.list_deliveries(
        &org,
        destination,
        &DeliveryFilter {
            status,
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Polls `check` every 50 ms; panics with `what` after two minutes (a
/// bound so a broken build fails instead of hanging, not a timing claim).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..2400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

#[tokio::test]
async fn a_receiver_down_for_a_while_then_up_gets_every_event_once() {
    for t in databases().await {
        let key = SecretsKey::generate();
        // A port with nothing listening: connections are refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = start(&t.url, &key).await;
        let write_key = server.printed_write_key();
        let token = api_token(&t.db).await;
        let dst = create_webhook(&server, &token, &format!("http://127.0.0.1:{port}/hook")).await;
        let ids: Vec<String> = (0..20).map(|i| format!("down-{i}")).collect();
        send_events(&server, &write_key, &ids).await;

        until("attempts against the closed port", || async {
            let rows = deliveries(&t.db, &dst, Some(DeliveryStatus::Retrying)).await;
            rows.len() == ids.len() && rows.iter().all(|d| d.attempts >= 2)
        })
        .await;
        let failed_once = deliveries(&t.db, &dst, None).await;
        assert!(
            failed_once
                .iter()
                .all(|d| d.reason.as_deref().is_some_and(|r| r.contains("error"))),
            "{failed_once:?}"
        );

        // The receiver comes up on that port.
        let receiver = Receiver::serve(
            tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap(),
            Answer::Status(200),
        );
        until("every event delivered", || async {
            deliveries(&t.db, &dst, Some(DeliveryStatus::Delivered))
                .await
                .len()
                == ids.len()
        })
        .await;
        let expected: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
        assert_eq!(
            successes_per_id(&receiver),
            expected,
            "{}: every event delivered, none twice",
            t.backend().as_str()
        );
        assert_eq!(requests_per_id(&receiver), expected);
        drop(server);
    }
}

#[tokio::test]
async fn kill_9_mid_delivery_then_restart_delivers_every_event_with_one_success_each() {
    for t in databases().await {
        let key = SecretsKey::generate();
        const ANSWERED: usize = 8;
        // ANSWERED requests are answered 200, every later one held unanswered.
        let (receiver, url) = Receiver::start_with(Answer::Hold).await;
        receiver.answer(&[200; ANSWERED]);
        let mut server = start(&t.url, &key).await;
        let write_key = server.printed_write_key();
        let token = api_token(&t.db).await;
        let dst = create_webhook(&server, &token, &format!("{url}/hook")).await;
        let ids: Vec<String> = (0..30).map(|i| format!("kill-{i}")).collect();
        send_events(&server, &write_key, &ids).await;

        // Kill while requests are in flight (held, unanswered), once every
        // answered one is recorded: the crash falls between send and answer.
        until(
            "requests held in flight and the answered ones recorded",
            || async {
                let held = receiver.held().len();
                held >= 1
                    && deliveries(&t.db, &dst, Some(DeliveryStatus::Delivered))
                        .await
                        .len()
                        == ANSWERED
            },
        )
        .await;
        server.kill9();
        server.wait().await;
        let held: Vec<String> = receiver.held().iter().map(webhook_id).collect();
        // Later requests are answered 200; the held ones 503, never a success.
        receiver.otherwise(Answer::Status(200));
        receiver.release_held(503);

        let _server = start(&t.url, &key).await;
        until("every event delivered after the restart", || async {
            deliveries(&t.db, &dst, Some(DeliveryStatus::Delivered))
                .await
                .len()
                == ids.len()
        })
        .await;
        let once: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
        let requests = requests_per_id(&receiver);
        assert_eq!(
            successes_per_id(&receiver),
            once,
            "{}: exactly one 2xx per messageId",
            t.backend().as_str()
        );
        // The deliveries in flight at the crash were sent again after their lease.
        assert!(!held.is_empty());
        for id in &held {
            assert_eq!(
                requests[id], 2,
                "{id} was in flight at the kill and sent again once"
            );
        }
        let total: usize = requests.values().sum();
        assert_eq!(
            total,
            ids.len() + held.len(),
            "no other request was repeated"
        );
        eprintln!(
            "{}: {} in flight at kill -9, each redelivered once after the lease",
            t.backend().as_str(),
            held.len()
        );
    }
}

#[tokio::test]
async fn sigterm_finishes_the_deliveries_in_flight_before_exiting() {
    for t in databases().await {
        let key = SecretsKey::generate();
        let (receiver, url) = Receiver::start_with(Answer::Hold).await;
        let mut env = env(&key);
        env.push(("COHORT_LOG__LEVEL", "info".into()));
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut server = Server::start(&t.url, &pairs).await;
        let write_key = server.printed_write_key();
        let token = api_token(&t.db).await;
        let dst = create_webhook(&server, &token, &format!("{url}/hook")).await;
        send_events(&server, &write_key, &["term-1".to_owned()]).await;
        until("the request in flight", || async {
            !receiver.held().is_empty()
        })
        .await;
        server.sigterm();
        // Answer only once the server is shutting down.
        until("the server shutting down", || async {
            server.output().contains("shutting down")
        })
        .await;
        receiver.release_held(200);
        assert!(server.wait().await.success(), "{}", server.output());
        let log = deliveries(&t.db, &dst, None).await;
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].status, log[0].attempts),
            (DeliveryStatus::Delivered, 1),
            "{}: recorded before exiting",
            t.backend().as_str()
        );
        assert_eq!(successes_per_id(&receiver).get("term-1"), Some(&1));
    }
}

fn cohort(database_url: &str, key: &SecretsKey, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(args)
        .current_dir(dir.path())
        .env("COHORT_DATABASE__URL", database_url)
        .env("COHORT_DESTINATIONS__KEY", key.to_base64())
        .env("COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES", "true")
        .env("COHORT_LOG__LEVEL", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cohort");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// The CLI runs as a blocking child process: a second worker thread keeps
// the receiver answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_destinations_with_secrets_masked() {
    for t in databases().await {
        let key = SecretsKey::generate();
        let org = t.db.create_organisation("Shop").await.unwrap();
        let source = t.db.create_source(&org.id, "web").await.unwrap();
        let (receiver, receiver_url) = Receiver::start().await;
        let url = &t.url;

        // Everflow, its secrets from standard input.
        let settings = json!({"tracking_domain": receiver_url, "network_id": "7", "event_mapping": {"Order Completed": 0}}).to_string();
        let out = cohort(
            url,
            &key,
            &[
                "destination",
                "create",
                "--type",
                "everflow",
                "--name",
                "EF",
                "--settings",
                &settings,
                "--secrets-stdin",
            ],
            Some(r#"{"verification_token": "cli-secret-token-42"}"#),
        );
        let created: Value = serde_json::from_str(&ok(&out, "create everflow")).unwrap();
        let ef = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["filters"]["events"], json!(["Order Completed"]));
        assert_eq!(created["secrets"]["verification_token"], "***n-42");
        // A webhook: the generated secret is printed once, on stderr.
        let hook_settings = json!({"url": format!("{receiver_url}/hook")}).to_string();
        let out = cohort(
            url,
            &key,
            &[
                "destination",
                "create",
                "--type",
                "webhook",
                "--settings",
                &hook_settings,
            ],
            None,
        );
        let hook: Value = serde_json::from_str(&ok(&out, "create webhook")).unwrap();
        let hook_id = hook["id"].as_str().unwrap().to_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let secret = stderr
            .lines()
            .find(|l| l.starts_with("whsec_"))
            .expect("the secret is printed once")
            .to_owned();
        assert!(!ok(&out, "create webhook").contains(&secret));

        // Validation names the field; nothing is written.
        let bad = cohort(
            url,
            &key,
            &[
                "destination",
                "create",
                "--type",
                "webhook",
                "--settings",
                r#"{"url": "ftp://x"}"#,
            ],
            None,
        );
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("settings.url"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );

        let list = ok(&cohort(url, &key, &["destination", "list"], None), "list");
        assert_eq!(list.lines().count(), 2, "{list}");
        assert!(
            list.contains(&format!("{ef}\teverflow\tenabled\tEF\tOrder Completed")),
            "{list}"
        );
        let shown = ok(
            &cohort(url, &key, &["destination", "show", &ef], None),
            "show",
        );
        assert!(
            !shown.contains("cli-secret-token-42") && shown.contains("***n-42"),
            "{shown}"
        );
        let hook_shown = ok(
            &cohort(url, &key, &["destination", "show", &hook_id], None),
            "show hook",
        );
        assert!(!hook_shown.contains(&secret[6..]), "{hook_shown}");
        let renamed: Value = serde_json::from_str(&ok(
            &cohort(
                url,
                &key,
                &["destination", "update", &ef, "--name", "Everflow"],
                None,
            ),
            "update",
        ))
        .unwrap();
        assert_eq!(renamed["name"], "Everflow");
        ok(
            &cohort(url, &key, &["destination", "pause", &ef], None),
            "pause",
        );
        assert!(
            ok(&cohort(url, &key, &["destination", "list"], None), "list")
                .contains(&format!("{ef}\teverflow\tpaused"))
        );
        ok(
            &cohort(url, &key, &["destination", "resume", &ef], None),
            "resume",
        );

        // A test conversion prints the exact request, the token masked.
        let order = json!({"type": "track", "event": "Order Completed", "messageId": "cli-order-1", "context": {"referrer": {"type": "everflow", "id": "tid-cli"}},
                           "properties": {"total": 12.5, "order_id": "o-1"}})
        .to_string();
        let tested: Value = serde_json::from_str(&ok(
            &cohort(
                url,
                &key,
                &["destination", "test", &ef, "--event", &order],
                None,
            ),
            "test",
        ))
        .unwrap();
        assert_eq!(tested["outcome"], "delivered", "{tested}");
        let shown_url = tested["request"]["url"].as_str().unwrap();
        assert!(
            shown_url.contains("transaction_id=tid-cli")
                && shown_url.contains("verification_token=***")
                && shown_url.contains("amount=12.5"),
            "{shown_url}"
        );
        assert!(!tested.to_string().contains("cli-secret-token-42"));
        assert_eq!(receiver.requests().len(), 1);

        // The delivery log and replays, with deliveries made by a worker.
        let receiver_refuses = json!({"url": "http://127.0.0.1:9/closed"}).to_string();
        ok(
            &cohort(
                url,
                &key,
                &[
                    "destination",
                    "update",
                    &hook_id,
                    "--settings",
                    &receiver_refuses,
                ],
                None,
            ),
            "point the hook at a closed port",
        );
        let now = cohort_store::now_micros();
        for id in ["cli-a", "cli-b"] {
            t.db.append_events(&[cohort_store::events::NewEvent {
                org_id: org.id.clone(),
                source_id: source.id.clone(),
                message_id: id.into(),
                message_type: "track",
                event: Some("Signed Up".into()),
                user_id: Some("u".into()),
                anonymous_id: None,
                email: None,
                timestamp_us: now,
                received_at_us: now,
                payload: json!({"type": "track", "event": "Signed Up", "messageId": id})
                    .to_string(),
                notes: None,
            }])
            .await
            .unwrap();
        }
        let worker = cohort_engine::destinations::Dispatcher::new(
            t.db.clone(),
            key.clone(),
            cohort_engine::destinations::DispatcherOptions {
                allow_private_addresses: true,
                schedule: vec![],
                ..Default::default()
            },
        )
        .unwrap();
        worker.run_until_idle().await.unwrap();
        let failed = ok(
            &cohort(
                url,
                &key,
                &["destination", "deliveries", &hook_id, "--status", "failed"],
                None,
            ),
            "deliveries",
        );
        let rows: Vec<&str> = failed.lines().collect();
        assert_eq!(rows.len(), 2, "{failed}");
        assert!(
            rows[0].starts_with("cli-b\tSigned Up\tfailed\t1\t-\t"),
            "{failed}"
        );
        assert!(
            rows[0].ends_with("POST http://127.0.0.1:9/closed"),
            "{failed}"
        );
        let searched = ok(
            &cohort(
                url,
                &key,
                &["destination", "deliveries", &hook_id, "--search", "CLI-A"],
                None,
            ),
            "search",
        );
        assert_eq!(searched.lines().count(), 1);
        let one = ok(
            &cohort(
                url,
                &key,
                &["destination", "replay", &hook_id, "cli-a"],
                None,
            ),
            "replay one",
        );
        assert!(one.contains("queued again"));
        let all = ok(
            &cohort(
                url,
                &key,
                &["destination", "replay", &hook_id, "--all-failed"],
                None,
            ),
            "replay all",
        );
        assert!(all.starts_with("1 failed deliveries queued again"), "{all}");
        let pending = ok(
            &cohort(
                url,
                &key,
                &["destination", "deliveries", &hook_id, "--status", "pending"],
                None,
            ),
            "pending",
        );
        assert_eq!(pending.lines().count(), 2, "{pending}");
        let again = cohort(
            url,
            &key,
            &["destination", "replay", &hook_id, "cli-a"],
            None,
        );
        assert!(
            !again.status.success(),
            "a pending delivery is not replayed"
        );

        ok(
            &cohort(url, &key, &["destination", "delete", &hook_id], None),
            "delete",
        );
        assert_eq!(
            ok(&cohort(url, &key, &["destination", "list"], None), "list")
                .lines()
                .count(),
            1
        );
        let gone = cohort(url, &key, &["destination", "show", &hook_id], None);
        assert!(!gone.status.success());
        // Another organisation's CLI view does not see it.
        let other = t.db.create_organisation("Other").await.unwrap();
        let hidden = cohort(
            url,
            &key,
            &["destination", "show", "--org", other.id.as_str(), &ef],
            None,
        );
        assert!(!hidden.status.success());
        assert!(String::from_utf8_lossy(&hidden.stderr).contains("not found"));
    }
}
