//! The binary: first start, kill -9 mid-load, SIGTERM drain — on SQLite and
//! PostgreSQL.

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{api_token, databases, Server};
use serde_json::json;

#[tokio::test]
async fn first_start_prints_the_url_a_setup_link_and_a_working_write_key() {
    for t in databases().await {
        let server = Server::start(&t.url, &[]).await;
        let output = server.output();
        assert!(
            output.contains(&format!("is listening on {}", server.url)),
            "{output}"
        );
        let link = output
            .lines()
            .find_map(|l| l.split("(one-time link): ").nth(1))
            .expect("setup link printed")
            .to_owned();
        assert!(
            link.starts_with(&format!("{}/setup/setup_", server.url)),
            "{link}"
        );
        let write_key = server.printed_write_key();

        let client = reqwest::Client::new();
        let answer = client
            .post(format!("{}/v1/track", server.url))
            .basic_auth(&write_key, Some(""))
            .body(r#"{"userId":"user_1","event":"Hello"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), r#"{"success":true}"#);
        let form = client.get(&link).send().await.unwrap();
        assert_eq!(form.status(), 200);

        // A second start on the same database creates nothing new, but while
        // no admin exists it prints a fresh setup link.
        drop(server);
        let again = Server::start(&t.url, &[]).await;
        assert!(!again.output().contains("Write key of source"));
        assert!(again.output().contains("(one-time link)"));
        assert_eq!(t.db.list_organisations().await.unwrap().len(), 1);
    }
}

/// Sends batches of unique messages from several connections until told to
/// stop; returns the acknowledged and the unacknowledged message ids.
async fn drive_load(
    url: String,
    write_key: String,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, Vec<Vec<String>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let unacked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (url, write_key, stop, acked, unacked) = (
            url.clone(),
            write_key.clone(),
            stop.clone(),
            acked.clone(),
            unacked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<String> = (0..20).map(|i| format!("w{worker}-{n}-{i}")).collect();
                n += 1;
                let batch: Vec<_> = ids.iter().map(|id| json!({"type": "track", "event": "Load", "userId": "u", "messageId": id})).collect();
                let answer = client.post(format!("{url}/v1/batch")).basic_auth(&write_key, Some("")).json(&json!({"batch": batch})).send().await;
                match answer {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                    _ => {
                        unacked.lock().unwrap().push(ids);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let unacked = unacked.lock().unwrap().clone();
    (acked, unacked)
}

#[tokio::test]
async fn kill_9_mid_load_loses_no_acknowledged_event_and_stores_none_twice() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    for t in databases().await {
        let mut server = Server::start(&t.url, &[]).await;
        let write_key = server.printed_write_key();
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(drive_load(
            server.url.clone(),
            write_key.clone(),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill9();
        server.wait().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        let (acked, unacked) = load.await.unwrap();
        assert!(
            acked.len() >= 200,
            "the load reached the server ({} acked)",
            acked.len()
        );

        let server = Server::start(&t.url, &[]).await;
        let token = api_token(&t.db).await;
        let stored: Vec<String> = common::all_events(&server.url, &token)
            .await
            .into_iter()
            .filter(|e| e["event"] == "Load")
            .map(|e| e["message_id"].as_str().unwrap().to_owned())
            .collect();
        let stored_set: HashSet<&String> = stored.iter().collect();
        assert_eq!(
            stored_set.len(),
            stored.len(),
            "an event was stored twice ({})",
            t.backend().as_str()
        );
        let missing: Vec<&String> = acked.iter().filter(|id| !stored_set.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged events lost after kill -9 on {}",
            missing.len(),
            t.backend().as_str()
        );

        // Clients retry what was not acknowledged: afterwards every message is stored exactly once.
        let client = reqwest::Client::new();
        for ids in &unacked {
            let batch: Vec<_> = ids
                .iter()
                .map(|id| json!({"type": "track", "event": "Load", "userId": "u", "messageId": id}))
                .collect();
            let r = client
                .post(format!("{}/v1/batch", server.url))
                .basic_auth(&write_key, Some(""))
                .json(&json!({"batch": batch}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let after = common::all_events(&server.url, &token)
            .await
            .into_iter()
            .filter(|e| e["event"] == "Load")
            .count();
        let expected: HashSet<&String> = acked.iter().chain(unacked.iter().flatten()).collect();
        assert_eq!(after, expected.len(), "{}", t.backend().as_str());
        eprintln!(
            "{}: {} acknowledged before kill -9, {} retried after restart",
            t.backend().as_str(),
            acked.len(),
            unacked.len() * 20
        );
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_cleanly() {
    for t in databases().await {
        let mut server = Server::start(&t.url, &[("COHORT_LOG__LEVEL", "info")]).await;
        let write_key = server.printed_write_key();
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(drive_load(server.url.clone(), write_key, stop.clone()));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        server.sigterm();
        let status = server.wait().await;
        stop.store(true, Ordering::Relaxed);
        let (acked, _) = load.await.unwrap();
        assert!(
            status.success(),
            "exit status {status:?}:\n{}",
            server.output()
        );
        assert!(server.output().contains("stopped"), "{}", server.output());

        let server = Server::start(&t.url, &[]).await;
        let token = api_token(&t.db).await;
        let stored: HashSet<String> = common::all_events(&server.url, &token)
            .await
            .into_iter()
            .map(|e| e["message_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            acked.iter().all(|id| stored.contains(id)),
            "{}",
            t.backend().as_str()
        );
    }
}
