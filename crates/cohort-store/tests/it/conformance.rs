//! The storage conformance suite: every case runs on SQLite and PostgreSQL.

use cohort_store::events::EventQuery;
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_store::Db;
use cohort_testkit::{all_backends, seed};

use crate::common::events_for;

#[tokio::test]
async fn appended_events_are_deduplicated_per_organisation() {
    for t in all_backends().await {
        let db: &Db = &t.db;
        let a = seed(db, "A").await;
        let b = seed(db, "B").await;
        let body = r#"{"batch":[{"type":"track","event":"X","userId":"u1","messageId":"m1"},
                                {"type":"track","event":"X","userId":"u1","messageId":"m1"},
                                {"type":"page","anonymousId":"a1","messageId":"m2"}]}"#;
        assert_eq!(
            db.append_events(&events_for(&a.org, &a.source, body))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            db.append_events(&events_for(&a.org, &a.source, body))
                .await
                .unwrap(),
            0
        );
        // The same messageId in another organisation is another event.
        assert_eq!(
            db.append_events(&events_for(&b.org, &b.source, body))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            db.count_events(&a.org).await.unwrap(),
            2,
            "{:?}",
            t.backend()
        );
        assert_eq!(db.count_events(&b.org).await.unwrap(), 2);
    }
}

#[tokio::test]
async fn queries_filter_and_seek_within_the_organisation() {
    for t in all_backends().await {
        let db = &t.db;
        let a = seed(db, "A").await;
        let b = seed(db, "B").await;
        let mut batch = Vec::new();
        for i in 0..25 {
            batch.push(format!(
                r#"{{"type":"track","event":"E{}","userId":"u{}","messageId":"a{i}","timestamp":"2024-01-01T00:00:{:02}Z"}}"#,
                i % 2, i % 3, i
            ));
        }
        let body = format!(r#"{{"batch":[{}]}}"#, batch.join(","));
        db.append_events(&events_for(&a.org, &a.source, &body))
            .await
            .unwrap();
        db.append_events(&events_for(
            &b.org,
            &b.source,
            r#"{"batch":[{"type":"track","event":"E0","userId":"u0"}]}"#,
        ))
        .await
        .unwrap();

        let page = |after_seq, limit| EventQuery {
            event: Some("E0".into()),
            after_seq,
            limit,
            ..Default::default()
        };
        let first = db.query_events(&a.org, &page(None, 5)).await.unwrap();
        assert_eq!(first.len(), 5);
        let rest = db
            .query_events(&a.org, &page(Some(first[4].seq), 100))
            .await
            .unwrap();
        assert_eq!(rest.len(), 8, "{:?}", t.backend());
        assert!(first
            .iter()
            .chain(&rest)
            .all(|e| e.event.as_deref() == Some("E0")));

        let by_user = EventQuery {
            user_id: Some("u1".into()),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(db.query_events(&a.org, &by_user).await.unwrap().len(), 8);
        let since = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:20Z")
            .unwrap()
            .timestamp_micros();
        let by_time = EventQuery {
            since_us: Some(since),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(db.query_events(&a.org, &by_time).await.unwrap().len(), 5);
        let newest = EventQuery {
            newest_first: true,
            limit: 1,
            ..Default::default()
        };
        assert_eq!(
            db.query_events(&a.org, &newest).await.unwrap()[0].message_id,
            "a24"
        );
        assert_eq!(
            db.query_events(
                &b.org,
                &EventQuery {
                    limit: 100,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .len(),
            1
        );
    }
}

#[tokio::test]
async fn the_writer_commits_concurrent_requests_together() {
    for t in all_backends().await {
        let s = seed(&t.db, "A").await;
        let (writer, mut tasks) = EventWriter::start(t.db.clone(), WriterOptions::default());
        let mut handles = Vec::new();
        for i in 0..50 {
            let writer = writer.clone();
            let events = events_for(
                &s.org,
                &s.source,
                &format!(
                    r#"{{"batch":[{{"type":"track","event":"E","userId":"u","messageId":"w{i}"}},{{"type":"page","userId":"u","messageId":"p{i}"}}]}}"#
                ),
            );
            handles.push(tokio::spawn(
                async move { writer.append(events).await.unwrap() },
            ));
        }
        for h in handles {
            assert_eq!(h.await.unwrap(), 2);
        }
        drop(writer);
        while tasks.join_next().await.is_some() {}
        assert_eq!(t.db.count_events(&s.org).await.unwrap(), 100);
    }
}

#[tokio::test]
async fn tokens_verify_until_revoked_and_only_for_their_organisation() {
    for t in all_backends().await {
        let s = seed(&t.db, "A").await;
        assert_eq!(
            t.db.verify_api_token(&s.token).await.unwrap(),
            Some(s.org.clone())
        );
        assert_eq!(
            t.db.verify_api_token(&format!("{}x", s.token))
                .await
                .unwrap(),
            None
        );
        assert_eq!(t.db.verify_api_token("garbage").await.unwrap(), None);
        let id = t.db.list_api_tokens(&s.org).await.unwrap()[0].id.clone();
        let other = seed(&t.db, "B").await;
        assert!(
            t.db.revoke_api_token(&other.org, &id).await.is_err(),
            "another org cannot revoke it"
        );
        t.db.revoke_api_token(&s.org, &id).await.unwrap();
        assert_eq!(t.db.verify_api_token(&s.token).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_setup_link_creates_one_owner_once() {
    for t in all_backends().await {
        let s = seed(&t.db, "A").await;
        let link = t.db.create_setup_link(&s.org).await.unwrap();
        let hash = cohort_domain::accounts::hash_password("correct horse battery").unwrap();
        assert_eq!(
            t.db.check_setup_link(link.reveal()).await.unwrap(),
            Some(s.org.clone())
        );
        let user =
            t.db.redeem_setup_link(link.reveal(), "Owner@Example.com", &hash)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(user.email, "owner@example.com");
        assert!(t
            .db
            .redeem_setup_link(link.reveal(), "two@example.com", &hash)
            .await
            .unwrap()
            .is_none());
        assert_eq!(t.db.count_members(&s.org).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn disabled_sources_are_reported_as_disabled() {
    for t in all_backends().await {
        let s = seed(&t.db, "A").await;
        t.db.set_source_enabled(&s.org, s.source.id.as_str(), false)
            .await
            .unwrap();
        let found =
            t.db.find_source_by_write_key(&s.source.write_key)
                .await
                .unwrap()
                .unwrap();
        assert!(!found.enabled);
        let other = seed(&t.db, "B").await;
        assert!(t
            .db
            .set_source_enabled(&other.org, s.source.id.as_str(), true)
            .await
            .is_err());
    }
}

/// A schema or data drift (a column of another type, a value this version
/// never writes, JSON that does not parse) is a `Decode` error naming the
/// column, not a panic of the reading task.
#[tokio::test]
async fn a_schema_drift_is_a_decode_error_not_a_panic() {
    use cohort_store::users::Role;
    use cohort_store::{Backend, StoreError};

    fn decode_column<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
        match result {
            Err(StoreError::Decode { column, .. }) => column,
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    for t in all_backends().await {
        let b = t.backend();
        let db: &Db = &t.db;
        let s = seed(db, "A").await;
        let hash = cohort_domain::accounts::hash_password("correct horse battery").unwrap();
        db.create_user(&s.org, "ann@example.com", &hash, Role::Admin)
            .await
            .unwrap();

        // A role this version does not know: refused, not dropped.
        sqlx::query("UPDATE memberships SET role = 'superuser'")
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(
            decode_column(db.list_members(&s.org).await),
            "role",
            "{b:?}"
        );

        // A column whose type changed under the code.
        let retype = match b {
            Backend::Sqlite => "UPDATE api_tokens SET created_at = 'yesterday'",
            Backend::Postgres => {
                "ALTER TABLE api_tokens ALTER COLUMN created_at TYPE TEXT USING 'yesterday'"
            }
        };
        sqlx::query(retype).execute(db.pool()).await.unwrap();
        assert_eq!(
            decode_column(db.list_api_tokens(&s.org).await),
            "created_at",
            "{b:?}"
        );

        // A dropped column a read still names: a database error, no panic.
        sqlx::query("ALTER TABLE sources DROP COLUMN disabled_at")
            .execute(db.pool())
            .await
            .unwrap();
        assert!(
            matches!(db.list_sources(&s.org).await, Err(StoreError::Database(_))),
            "{b:?}"
        );
    }
}
