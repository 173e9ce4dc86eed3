//! `cohort store sync|runs` on both databases: a sync asked for from the
//! command line, and a run's progress as the plugin's batches are counted.

use crate::common;

use std::process::Output;

use cohort_domain::accounts::hash_password;
use cohort_store::connect::{DecisionOutcome, NewPairing};
use cohort_store::users::Role;
use common::databases;

fn cohort(database_url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(args)
        .current_dir(dir.path())
        .env("COHORT_DATABASE__URL", database_url)
        .output()
        .expect("run cohort")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_sync_is_asked_for_and_followed_from_the_command_line() {
    for t in databases().await {
        let db = &t.db;
        let org = db.create_organisation("Shop Co").await.unwrap();
        let user = db
            .create_user(
                &org.id,
                "ann@example.com",
                &hash_password("correct horse battery").unwrap(),
                Role::Owner,
            )
            .await
            .unwrap();
        let store = NewPairing {
            store_url: "https://shop.example".into(),
            site_name: "Shop".into(),
            platform: cohort_domain::connect::Platform::Woocommerce,
            plugin_version: "0.1.0".into(),
            wp_version: "6.6".into(),
            wc_version: Some("9.3.3".into()),
            php_version: "8.2".into(),
            currency: Some("USD".into()),
            timezone: "UTC".into(),
            return_url: "https://shop.example/wp-admin/".into(),
        };
        let (pairing, poll_secret) = db.create_pairing(&store).await.unwrap();
        let DecisionOutcome::Approved {
            installation_id, ..
        } = db
            .approve_pairing(&pairing.id, &org.id, &user.id)
            .await
            .unwrap()
        else {
            panic!("not approved")
        };
        db.poll_pairing(&pairing.id, &poll_secret).await.unwrap(); // the plugin claims its token

        // Approval queued the initial sync: asking again names the same command.
        let asked = stdout(&cohort(&t.url, &["store", "sync", &installation_id]));
        assert!(
            asked.starts_with("cmd_") && asked.contains("already waiting"),
            "{asked}"
        );
        let runs = cohort(&t.url, &["store", "runs", &installation_id]);
        assert_eq!(stdout(&runs), "");
        assert!(String::from_utf8_lossy(&runs.stderr).contains("no sync run yet"));

        let command = asked.split('\t').next().unwrap().to_owned();
        let resources = vec!["products".to_owned(), "orders".to_owned()];
        let (run, resumed) = db
            .start_sync_run(&org.id, &installation_id, Some(&command), &resources)
            .await
            .unwrap();
        assert!(!resumed);
        db.record_sync_batch(&run.id, "orders", 0, 3, 2, 1)
            .await
            .unwrap();
        db.record_sync_batch(&run.id, "orders", 0, 3, 2, 1)
            .await
            .unwrap();
        let listed = stdout(&cohort(&t.url, &["store", "runs", &installation_id]));
        assert!(listed.starts_with(&run.id), "{listed}");
        assert!(listed.contains("\trunning\t"), "{listed}");
        assert!(
            listed.contains("orders 2/3 rejected 1, products 0/0 rejected 0"),
            "the repeated batch counts once: {listed}"
        );

        // Unknown installations are refused clearly.
        let refused = cohort(&t.url, &["store", "sync", "ins_nope"]);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr)
            .contains("no connected WooCommerce installation ins_nope"));
        assert!(!cohort(&t.url, &["store", "runs", "ins_nope"])
            .status
            .success());
    }
}
