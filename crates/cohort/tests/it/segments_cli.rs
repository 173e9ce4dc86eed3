//! Segments through the real binary on both databases: a segment created
//! with `cohort segment create` gains a member when events sent over HTTP
//! to a running `cohort serve` reach its live membership; `members`,
//! `list`, `show`, `preview` and `recompute` see it; a rule that does not
//! parse is refused with its line and column.

use crate::common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{admin_call, api_token, databases, Server};
use serde_json::{json, Value};

fn cohort(database_url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(args)
        .current_dir(dir.path())
        .env("COHORT_DATABASE__URL", database_url)
        .output()
        .expect("run cohort")
}

/// Runs a command that must succeed; its stdout.
fn succeeds(database_url: &str, args: &[&str]) -> String {
    let output = cohort(database_url, args);
    assert!(
        output.status.success(),
        "cohort {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_segment_made_on_the_command_line_follows_events_sent_over_http() {
    for t in databases().await {
        let backend = t.backend();
        let server = Server::start(&t.url, &[]).await;
        let key = server.printed_write_key();
        let token = api_token(&t.db).await;

        let created = succeeds(
            &t.url,
            &[
                "segment",
                "create",
                "--name",
                "Buyers",
                "--rule",
                "performed \"Order Completed\" >= 1 times",
                "--json",
            ],
        );
        let created: Value = serde_json::from_str(&created).unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["count"], 0, "{backend:?}");
        assert_eq!(
            created["rule"], "performed \"Order Completed\" >= 1 time",
            "canonical"
        );

        // A rule that does not parse: non-zero exit, line, column, expected.
        let refused = cohort(
            &t.url,
            &[
                "segment",
                "create",
                "--name",
                "Bad",
                "--rule",
                "orders.count >=",
            ],
        );
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("line 1, column 16: expected a number"),
            "{stderr}"
        );
        assert!(
            stderr.contains("  orders.count >=\n                 ^"),
            "{stderr}"
        );
        let unknown = cohort(&t.url, &["segment", "show", "Nobody"]);
        assert!(!unknown.status.success());
        assert!(String::from_utf8_lossy(&unknown.stderr).contains("no segment has the id or name"));

        let sent = reqwest::Client::new()
            .post(format!("{}/v1/batch", server.url))
            .basic_auth(&key, Some(""))
            .json(&json!({"batch": [
                {"type": "identify", "userId": "shopper-1", "traits": {"email": "shopper@example.com"}},
                {"type": "track", "event": "Product Viewed", "userId": "browser-1"},
                {"type": "track", "event": "Order Completed", "userId": "shopper-1",
                 "properties": {"order_id": "o-1", "total": "42.00", "currency": "EUR"}},
            ]}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);

        // The running server's projection and membership worker bring the
        // shopper in; poll with a deadline.
        let deadline = Instant::now() + Duration::from_secs(60);
        let members = loop {
            let out = succeeds(&t.url, &["segment", "members", "Buyers"]);
            if !out.trim().is_empty() {
                break out;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: no member after 60 s\n{}",
                server.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let lines: Vec<&str> = members.lines().collect();
        assert_eq!(lines.len(), 1, "{members}");
        let fields: Vec<&str> = lines[0].split('\t').collect();
        assert!(fields[0].starts_with("prof_"), "{members}");
        assert_eq!(fields[1], "shopper@example.com");

        let (status, shown) = admin_call(
            reqwest::Method::GET,
            &format!("{}/api/v1/segments/{id}", server.url),
            &token,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(shown["count"], 1, "{backend:?}");
        let (_, page) = admin_call(
            reqwest::Method::GET,
            &format!("{}/api/v1/segments/{id}/members", server.url),
            &token,
            None,
        )
        .await;
        assert_eq!(page["data"][0]["profile_id"], fields[0]);

        let listed = succeeds(&t.url, &["segment", "list"]);
        assert_eq!(
            listed,
            format!("{id}\t1\tBuyers\tperformed \"Order Completed\" >= 1 time\n")
        );
        let show = succeeds(&t.url, &["segment", "show", &id]);
        assert!(show.starts_with(&format!("Buyers ({id})\n")), "{show}");
        assert!(show.contains("  members:     1\n"), "{show}");
        let preview: Value = serde_json::from_str(&succeeds(
            &t.url,
            &[
                "segment",
                "preview",
                "--ast",
                &created["ast"].to_string(),
                "--json",
            ],
        ))
        .unwrap();
        assert_eq!(preview["count"], 1);
        assert_eq!(preview["sample"][0]["email"], "shopper@example.com");
        let text_preview = succeeds(
            &t.url,
            &[
                "segment",
                "preview",
                "--rule",
                "performed \"Product Viewed\"",
            ],
        );
        assert!(
            text_preview.starts_with("1 profiles match: performed \"Product Viewed\"\n"),
            "{text_preview}"
        );
        let recomputed = succeeds(&t.url, &["segment", "recompute", "Buyers"]);
        assert!(
            recomputed.starts_with(&format!(
                "Buyers ({id}): 1 members; the recompute found 0 to enter and 0 to exit"
            )),
            "{backend:?}: live membership and a full recompute differ: {recomputed}"
        );

        // The ready-made segments, once; the shopper's one order makes them
        // a first-time buyer.
        let installed = succeeds(&t.url, &["segment", "install-defaults"]);
        assert!(installed.ends_with("18 created, 0 kept\n"), "{installed}");
        let again = succeeds(&t.url, &["segment", "install-defaults"]);
        assert!(again.ends_with("0 created, 18 kept\n"), "{again}");
        let first_timers = succeeds(&t.url, &["segment", "members", "First-Time Buyers"]);
        assert!(
            first_timers.contains("shopper@example.com"),
            "{first_timers}"
        );
        let rfm = succeeds(&t.url, &["segment", "rfm"]);
        assert!(rfm.starts_with("1 customers scored"), "{rfm}");
        server.sigterm();
    }
}
