//! The segment editor in real headless Chromium against the real `cohort
//! serve`, on SQLite and PostgreSQL. `tests/clients/segments_browser.mjs`
//! types a rule and watches the live count, places an error, adds a row
//! with the builder, saves, and visits the segment's page, the list and a
//! member's profile at 1280 and 360 px; this test judges its report against
//! what the server stored. Screenshots land in
//! target/ui-screenshots/segments-<backend>/.
//!
//! Without playwright-core or Chromium it skips loudly, unless
//! COHORT_TEST_REQUIRE_CLIENTS=1 (set by scripts/test.sh and CI).

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{databases, Server};
use serde_json::{json, Value};

fn setup_link(server: &Server) -> String {
    let output = server.output();
    output
        .lines()
        .find_map(|l| {
            l.split("Create the first admin account (one-time link): ")
                .nth(1)
        })
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| panic!("no setup link printed:\n{output}"))
}

#[tokio::test]
async fn a_merchant_builds_a_segment_in_the_editor_in_chromium() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    let Some((dir, chromium)) = common::browser("the segment editor in Chromium") else {
        return;
    };
    for t in databases().await {
        let b = t.backend().as_str();
        let server = Server::start(&t.url, &[]).await;
        let shots = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/ui-screenshots"
        ))
        .join(format!("segments-{b}"));
        let output = tokio::time::timeout(
            Duration::from_secs(240),
            tokio::process::Command::new("node")
                .arg(dir.join("segments_browser.mjs"))
                .args([
                    &server.url,
                    &setup_link(&server),
                    &shots.display().to_string(),
                ])
                .env("CHROMIUM", &chromium)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the driver finished in time")
        .expect("the driver started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{b}: driver output is not JSON ({e}): {}\n{stderr}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        assert!(
            output.status.success(),
            "{b}: segments_browser.mjs failed ({:?}): {}\n{stderr}\nserver:\n{}",
            output.status,
            report["error"],
            server.output()
        );

        // The live count followed the typing and the builder.
        assert_eq!(report["counts"], json!([2, 2, 1, 1]), "{b}: {report}");
        let sample = report["sample"].as_str().unwrap_or_default();
        assert!(
            sample.contains("ada@example.com")
                && sample.contains("bob@example.com")
                && !sample.contains("cy@example.com"),
            "{b}: {sample}"
        );
        let error = report["errorText"].as_str().unwrap_or_default();
        assert!(
            error.contains("line 1, col 40: expected a number"),
            "{b}: {error}"
        );
        assert_eq!(report["builderRowsBefore"], 2, "{b}");
        assert_eq!(report["builderRowsAfter"], 3, "{b}");
        let rule = r#"trait.plan = "gold" and orders.count >= 0 and performed "Product Viewed""#;
        assert_eq!(report["textAfterBuilder"], rule, "{b}");

        // What was saved is what the editor showed.
        let org = t.db.list_organisations().await.unwrap().remove(0);
        let saved = t.db.segments_of(&org.id).await.unwrap();
        assert_eq!(saved.len(), 1, "{b}");
        assert_eq!(saved[0].name, "Gold viewers", "{b}");
        assert_eq!(saved[0].rule_text, rule, "{b}");
        assert_eq!(saved[0].member_count, 1, "{b}");
        assert!(
            report["segmentUrl"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("/segments/{}", saved[0].segment_id)),
            "{b}: {}",
            report["segmentUrl"]
        );
        let page = report["segmentText"].as_str().unwrap_or_default();
        assert!(
            page.contains("Gold viewers")
                && page.contains("ada@example.com")
                && page.contains(rule),
            "{b}: {page}"
        );
        let changes = report["segmentChanges"].as_str().unwrap_or_default();
        assert!(
            changes.contains("entered")
                && changes.contains("ada@example.com")
                && changes.contains("segment created"),
            "{b}: {changes}"
        );
        let list = report["listText"].as_str().unwrap_or_default();
        assert!(
            list.contains("Gold viewers") && list.contains("Gold plan, viewed a product"),
            "{b}: {list}"
        );
        let profile = report["profileSegments"].as_str().unwrap_or_default();
        assert!(
            profile.contains("Gold viewers") && profile.contains("segment created"),
            "{b}: {profile}"
        );
        assert_eq!(
            report["focusOrder"],
            json!([
                "Name",
                "Description (optional)",
                "Text",
                "Builder",
                "Rule as text",
                "Save segment"
            ]),
            "{b}: the keyboard reaches the editor in order"
        );

        assert_eq!(report["consoleErrors"], json!([]), "{b}");
        assert!(
            report["previewRefusals"].as_i64().unwrap_or(0) >= 1,
            "{b}: the rule with an error was refused by the preview: {report}"
        );
        for (name, overflow) in report["overflow"].as_object().unwrap() {
            if name.starts_with("mobile-") {
                assert!(
                    overflow.as_i64().unwrap_or(1) <= 0,
                    "{b}: {name} scrolls sideways by {overflow} px at 360 px"
                );
            }
        }
        let screenshots = report["screenshots"].as_array().unwrap();
        assert!(screenshots.len() >= 11, "{b}: {screenshots:?}");
        for s in screenshots {
            assert!(
                std::path::Path::new(s.as_str().unwrap()).exists(),
                "{b}: {s}"
            );
        }
        eprintln!(
            "{b}: {} screenshots in {}",
            screenshots.len(),
            shots.display()
        );
    }
}
