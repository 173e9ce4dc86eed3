//! The admin web UI in real headless Chromium against the real `cohort
//! serve`, on SQLite and PostgreSQL. `tests/clients/ui_browser.mjs` plays a
//! merchant's first hour (setup link, sign-in, a source and its snippet, a
//! real client's events in the live debugger, profile search, an API token,
//! a store paired and synced with its run followed live, an Everflow
//! destination made with the form sending a test conversion to a local
//! receiver, every page at 1280 and 360 px) and reports;
//! this test judges the report against what the server stored. Screenshots
//! of every page land in target/ui-screenshots/<backend>/.
//!
//! Without playwright-core or Chromium it skips loudly, unless
//! COHORT_TEST_REQUIRE_CLIENTS=1 (set by scripts/test.sh and CI).

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{all_events, api_token, databases, Server};
use serde_json::Value;

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
async fn a_merchant_runs_cohort_from_the_admin_ui_in_chromium() {
    let _turn = crate::common::one_heavy_test_at_a_time().await;
    let Some((dir, chromium)) = common::browser("the admin UI in Chromium") else {
        return;
    };
    for t in databases().await {
        let b = t.backend().as_str();
        // Destinations may reach the test's loopback receiver; the key lets
        // the test read the destination's secrets.
        let key = cohort_store::destinations::SecretsKey::generate();
        let encoded = key.to_base64();
        let env = [
            ("COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES", "true"),
            ("COHORT_DESTINATIONS__KEY", encoded.as_str()),
        ];
        let server = Server::start(&t.url, &env).await;
        let shots = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/ui-screenshots"
        ))
        .join(b);
        // One message in the outbox for the mail pages, queued as a
        // campaign would; the server's own worker sends it to its folder.
        let org = t.db.list_organisations().await.unwrap().remove(0);
        let queue = cohort_engine::mail::Mail::new(
            t.db.clone(),
            key.clone(),
            cohort_engine::mail::MailSettings::folder(
                std::env::temp_dir(),
                "Shop <news@shop.example>",
            ),
        )
        .unwrap();
        let queued = queue
            .enqueue(
                &org.id,
                &cohort_engine::mail::Outgoing {
                    send_key: "campaign:cmp_browser".into(),
                    to: "ada@example.com".into(),
                    from: None,
                    purpose: cohort_domain::suppression::MailPurpose::Transactional,
                    body: cohort_mail::MessageBody {
                        subject: "Your order is on its way".into(),
                        html: "<p>Your order is on its way.</p>".into(),
                        text: "Your order is on its way.\n".into(),
                    },
                    unsubscribe: None,
                    profile_id: None,
                    user_id: None,
                    campaign_id: Some("cmp_browser".into()),
                    flow_id: None,
                    provider_id: None,
                },
            )
            .await
            .unwrap();
        let output = tokio::time::timeout(
            Duration::from_secs(300),
            tokio::process::Command::new("node")
                .arg(dir.join("ui_browser.mjs"))
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
        assert!(
            output.status.success(),
            "{b}: ui_browser.mjs failed ({:?}):\n{stderr}\nserver:\n{}",
            output.status,
            server.output()
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{b}: driver output is not JSON ({e}): {}\n{stderr}",
                String::from_utf8_lossy(&output.stdout)
            )
        });

        // The snippet copied from the page names the new source's key and this server.
        let snippet = report["snippet"].as_str().expect("a copied snippet");
        let org = t.db.list_organisations().await.unwrap().remove(0);
        let sources = t.db.list_sources(&org.id).await.unwrap();
        let website = sources
            .iter()
            .find(|s| s.name == "Website")
            .expect("the source created in the UI");
        assert_eq!(report["sourceId"], website.id.as_str(), "{b}");
        assert!(
            snippet.contains(&format!("writeKey: '{}'", website.write_key)),
            "{b}: {snippet}"
        );
        assert!(
            snippet.contains(&format!("apiHost: '{}'", server.url)),
            "{b}: {snippet}"
        );
        assert!(
            snippet.starts_with("<script>") && snippet.contains("/sdk/v1/cohort.js"),
            "{b}: {snippet}"
        );

        // The event the shopper's browser sent is the one the debugger showed, as stored.
        let live: Value =
            serde_json::from_str(report["liveRaw"].as_str().expect("raw JSON opened"))
                .expect("the raw JSON parses");
        assert_eq!(live["event"], "UI Test Event", "{b}");
        assert_eq!(live["properties"]["product"], "Blue T-Shirt", "{b}");
        let token = api_token(&t.db).await;
        let stored = all_events(&server.url, &token).await;
        let same: Vec<&Value> = stored
            .iter()
            .filter(|e| e["message_id"] == live["messageId"])
            .collect();
        assert_eq!(same.len(), 1, "{b}: the debugger's event is stored once");
        assert_eq!(
            same[0]["source_id"],
            website.id.as_str(),
            "{b}: from the pasted snippet's source"
        );
        assert_eq!(
            same[0]["message"]["context"]["library"]["name"], "cohort.js",
            "{b}: sent by the real SDK"
        );
        eprintln!(
            "{b}: the event appeared in the live debugger {} ms after it was sent",
            report["liveLatencyMs"]
        );

        // Profile search and detail.
        let profile = report["profileText"].as_str().unwrap();
        assert!(
            profile.contains("Ada Shopper")
                && profile.contains("gold")
                && profile.contains("UI Test Event"),
            "{b}: {profile}"
        );
        assert!(
            profile.contains("Website"),
            "{b}: traits say which source set them"
        );

        // The token made in the UI imported an order and a product, shown exactly.
        assert_eq!(report["tokenShown"], true, "{b}");
        let orders = report["ordersText"].as_str().unwrap();
        assert!(
            orders.contains("#727") && orders.contains("$29.35"),
            "{b}: {orders}"
        );
        let products = report["productsText"].as_str().unwrap();
        assert!(
            products.contains("Premium Quality") && products.contains("€21.99"),
            "{b}: {products}"
        );

        // Sync store: the sync approval queued was already waiting, so the
        // first click queued nothing; the run it started showed its batch
        // live; once it was done, the button queued one new command.
        let before = report["commandsBefore"]
            .as_array()
            .expect("the command list before");
        assert_eq!(
            before.iter().filter(|c| c["kind"] == "sync_store").count(),
            1,
            "{b}: {before:?}"
        );
        assert_eq!(
            &report["alreadyQueued"], &report["commandsBefore"],
            "{b}: the first click queued nothing"
        );
        let live_run = report["liveRun"].as_str().unwrap();
        assert!(
            live_run.contains("running") && live_run.contains("1 batch"),
            "{b}: {live_run}"
        );
        let done = report["runDone"].as_str().unwrap();
        assert!(
            done.contains("completed") && !done.contains("running"),
            "{b}: {done}"
        );
        let before_ids: Vec<&Value> = before.iter().map(|c| &c["id"]).collect();
        let commands = report["commands"]
            .as_array()
            .expect("the plugin's command list");
        let new: Vec<&Value> = commands
            .iter()
            .filter(|c| !before_ids.contains(&&c["id"]))
            .collect();
        assert_eq!(
            new.len(),
            1,
            "{b}: one command queued by the button: {commands:?}"
        );
        assert_eq!(new[0]["kind"], "sync_store", "{b}");

        // The Everflow destination made with the form: its test conversion
        // reached the receiver, and the page showed that exact request, masked.
        let received = report["received"]
            .as_array()
            .expect("the receiver's requests");
        assert_eq!(received.len(), 1, "{b}: one test conversion: {received:?}");
        let sent = received[0].as_str().unwrap();
        assert!(
            sent.starts_with("GET /?nid=115&transaction_id=tid-browser-7")
                && sent.contains("verification_token=vt-browser-secret-0123456789"),
            "{b}: {sent}"
        );
        let shown = report["testRequest"].as_str().unwrap();
        let first_line = shown.lines().next().unwrap_or_default();
        let expected = sent.replacen("GET /?", "", 1).replace(
            "verification_token=vt-browser-secret-0123456789",
            "verification_token=***",
        );
        assert!(
            first_line.starts_with("GET http://127.0.0.1:")
                && first_line.ends_with(&format!("/?{expected}")),
            "{b}: the page shows the exact request: {first_line} vs {expected}"
        );
        let result = report["testResult"].as_str().unwrap();
        assert!(
            result.contains("HTTP 200")
                && result.contains("conversion_id")
                && !result.contains("vt-browser-secret"),
            "{b}: {result}"
        );
        let mapping = report["fieldMapping"].as_str().unwrap();
        assert!(
            mapping.contains("129.95")
                && mapping.contains("WELCOME10")
                && mapping.contains("TS-BLUE-M"),
            "{b}: the last order's values: {mapping}"
        );
        let org_id = t.db.list_organisations().await.unwrap().remove(0).id;
        let made = t.db.list_destinations(&org_id, &key).await.unwrap();
        assert_eq!(made.len(), 1, "{b}");
        assert_eq!(
            made[0].settings["event_mapping"],
            serde_json::json!({"Order Completed": 0, "Purchase": 24}),
            "{b}: the mapping editor's rows"
        );
        let delivery = report["deliveryText"].as_str().unwrap();
        assert!(
            delivery.contains("verification_token=***")
                && !delivery.contains("vt-browser-secret")
                && delivery.contains("HTTP 200"),
            "{b}: {delivery}"
        );

        // Mail: the message with its accepted attempt; the provider made in
        // the form with its password stored yet never shown, its failed
        // connection test; the domain's records; the suppression; the
        // webhook's URL shown once.
        let message = report["mailMessageText"].as_str().unwrap();
        assert!(
            message.contains("Your order is on its way")
                && message.contains("accepted")
                && message.contains(&queued.message_id),
            "{b}: {message}"
        );
        let providers = queue.providers(&org.id).await.unwrap();
        assert_eq!(providers.len(), 1, "{b}");
        assert_eq!(
            (providers[0].name.as_str(), providers[0].password.as_deref()),
            ("Postmark", Some("smtp-secret-0123456789")),
            "{b}"
        );
        let provider_page = report["providerText"].as_str().unwrap();
        assert!(
            provider_page.contains("Connection test failed")
                && !provider_page.contains("smtp-secret-0123456789"),
            "{b}: the test's answer, never the password"
        );
        let domain = report["domainText"].as_str().unwrap();
        assert!(
            domain.contains("._domainkey.shop.example") && domain.contains("v=DKIM1"),
            "{b}: {domain}"
        );
        assert_eq!(
            t.db.suppressions_of(&org.id, "gone@example.com")
                .await
                .unwrap()
                .len(),
            1,
            "{b}"
        );
        let hook = report["webhookUrl"].as_str().unwrap();
        assert!(
            hook.starts_with(&format!("{}/mail/webhooks/mwh_", server.url)),
            "{b}: {hook}"
        );
        assert_eq!(report["webhookShownAgain"], false, "{b}: shown once");

        // Every page: no script error, no CSP violation, nothing wider than 360 px.
        assert_eq!(report["consoleErrors"], serde_json::json!([]), "{b}");
        for (name, overflow) in report["overflow"].as_object().unwrap() {
            if name.starts_with("mobile-") {
                assert!(
                    overflow.as_i64().unwrap_or(1) <= 0,
                    "{b}: {name} scrolls sideways by {overflow} px at 360 px"
                );
            }
        }
        assert_eq!(
            report["firstFocus"], "Skip to content",
            "{b}: the keyboard starts at the skip link"
        );
        assert_eq!(report["signedOut"], true, "{b}");
        let screenshots = report["screenshots"].as_array().unwrap();
        assert!(screenshots.len() >= 29, "{b}: {screenshots:?}");
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
