//! The generated store is what the projector makes of the same events: one
//! organisation gets the bulk rows, another the generator's messages
//! through ingestion's normalisation, the log and the real projector; every
//! table the segment SQL reads must hold the same, every benchmark and
//! preview rule must select the same profiles in both, and the same as the
//! domain's naive evaluator over the bulk log.

use std::collections::{BTreeMap, BTreeSet};

use cohort_domain::collect::{normalize_request, Envelope};
use cohort_domain::ids::OrgId;
use cohort_domain::profile::LogEvent;
use cohort_domain::segments::{evaluate, parse, profile_facts};
use cohort_store::bulk::Cell;
use cohort_store::events::NewEvent;
use cohort_store::projection::Projector;
use cohort_store::Db;
use cohort_testkit::{all_backends, seed};
use serde_json::{json, Value};
use sqlx::Row;

use super::{lookup, PREVIEW_RULES, RULES};
use crate::bench_segments_data::{self as data, person, Generator, Sink, NOW_US};

const SEED: u64 = 7;
const PROFILES: u32 = 1500;
const EVENTS: u64 = 15_000;

async fn rows(db: &Db, sql: &str, org: &OrgId) -> Vec<Vec<Value>> {
    sqlx::query(sql)
        .bind(org.as_str())
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get::<Option<i64>, _>(i)
                        .map(|v| json!(v))
                        .or_else(|_| r.try_get::<Option<String>, _>(i).map(|v| json!(v)))
                        .unwrap()
                })
                .collect()
        })
        .collect()
}

async fn log(db: &Db, org: &OrgId) -> Vec<LogEvent> {
    sqlx::query(
        "SELECT seq, source_id, message_id, type, timestamp_us, payload FROM events \
         WHERE org_id = $1 AND erased_at_us IS NULL ORDER BY seq",
    )
    .bind(org.as_str())
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| LogEvent {
        seq: r.get("seq"),
        source_id: r.get("source_id"),
        message_id: r.get("message_id"),
        message_type: r.get("type"),
        timestamp_us: r.get("timestamp_us"),
        message: serde_json::from_str(&r.get::<String, _>("payload")).unwrap(),
    })
    .collect()
}

#[tokio::test]
async fn the_generated_store_is_what_the_projector_makes_of_its_events() {
    for t in all_backends().await {
        let db = &t.db;
        let backend = t.backend();
        let bulk = seed(db, "Bulk").await;
        let real = seed(db, "Projected").await;

        let mut sink = Sink {
            loader: db.bulk_loader().unwrap(),
            org: bulk.org.as_str().to_owned(),
            source: bulk.source.id.as_str().to_owned(),
            csv: None,
        };
        let written = data::generate(&mut sink, SEED, PROFILES, EVENTS)
            .await
            .unwrap();
        sink.loader.finish().await.unwrap();
        let (cursor, _) = db.projection_position().await.unwrap();
        assert_eq!(cursor, EVENTS as i64, "the bulk log counts as projected");
        assert_eq!(written.events, EVENTS);
        assert_eq!(written.profiles, u64::from(PROFILES));

        // The same events through normalisation, the log and the projector.
        let mut generator = Generator::new(SEED, PROFILES, EVENTS);
        while let Some(day) = generator.next_day() {
            for chunk in day.chunks(500) {
                let batch: Vec<Value> = chunk.iter().map(|e| e.message(SEED)).collect();
                let parsed = normalize_request(
                    json!({ "batch": batch }).to_string().as_bytes(),
                    Envelope::Batch,
                    chrono::Utc::now(),
                    &cohort_domain::collect::Limits {
                        max_request_bytes: 64 << 20,
                        max_batch_messages: 10_000,
                        ..Default::default()
                    },
                )
                .unwrap();
                let events: Vec<NewEvent> = parsed
                    .messages
                    .iter()
                    .map(|m| NewEvent::from_message(&real.org, &real.source.id, m))
                    .collect();
                db.append_events(&events).await.unwrap();
            }
        }
        Projector::new(db.clone()).catch_up().await.unwrap();
        // The merchant's tag, which no event sets: on the projected side
        // found through the projector's own user ids.
        let users: BTreeMap<String, String> = rows(
            db,
            "SELECT user_id, profile_id FROM profiles WHERE org_id = $1",
            &real.org,
        )
        .await
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
        let vip: BTreeSet<String> = (0..PROFILES)
            .filter(|p| person(SEED, *p).vip)
            .map(|p| users[&format!("u{p}")].clone())
            .collect();
        assert!(!vip.is_empty());
        db.bulk_loader()
            .unwrap()
            .insert(
                "profile_tags",
                &["org_id", "tag", "profile_id"],
                vip.iter()
                    .map(|id| {
                        vec![
                            Cell::from(real.org.as_str()),
                            "vip".into(),
                            id.as_str().into(),
                        ]
                    })
                    .collect(),
            )
            .await
            .unwrap();

        // Every table the compiled SQL reads.
        for (what, sql) in [
            ("profiles", "SELECT profile_id, user_id, email, first_seen_us, last_seen_us, order_count, last_order_us, previously_erased \
                          FROM profiles WHERE org_id = $1 ORDER BY profile_id"),
            ("tags", "SELECT tag, profile_id FROM profile_tags WHERE org_id = $1 ORDER BY tag, profile_id"),
            ("orders", "SELECT order_id, profile_id, status, currency, total, created_at_us, purchased, purchased_at_us, net_total_e4 \
                        FROM orders WHERE org_id = $1 ORDER BY order_id"),
            ("lines", "SELECT o.order_id, l.line_no, l.profile_id, l.product_id, l.sku, l.category, l.purchased_at_us \
                       FROM order_lines l JOIN orders o ON o.org_id = l.org_id AND o.order_key = l.order_key \
                       WHERE l.org_id = $1 ORDER BY o.order_id, l.line_no"),
            ("events", "SELECT e.message_id, e.type, e.event, e.user_id, e.timestamp_us, e.erased_at_us, ce.profile_id \
                        FROM events e JOIN cluster_events ce ON ce.org_id = e.org_id AND ce.seq = e.seq \
                        WHERE e.org_id = $1 ORDER BY e.message_id"),
        ] {
            let a = rows(db, sql, &bulk.org).await;
            let b = rows(db, sql, &real.org).await;
            assert!(!a.is_empty(), "{backend:?} {what}: nothing generated");
            if a.len() != b.len() {
                let sa: BTreeSet<_> = a.iter().map(|r| format!("{r:?}")).collect();
                let sb: BTreeSet<_> = b.iter().map(|r| format!("{r:?}")).collect();
                eprintln!("only bulk: {:?}", sa.difference(&sb).take(5).collect::<Vec<_>>());
                eprintln!("only projected: {:?}", sb.difference(&sa).take(5).collect::<Vec<_>>());
            }
            assert_eq!(a.len(), b.len(), "{backend:?} {what}: row counts");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x, y, "{backend:?} {what}");
            }
        }
        // Documents: the traits, tags and keys of each profile; the
        // properties and traits of each event.
        let docs = |org: OrgId| async move {
            rows(
                db,
                "SELECT profile_id, doc FROM profiles WHERE org_id = $1 ORDER BY profile_id",
                &org,
            )
            .await
            .into_iter()
            .map(|r| {
                let doc: Value = serde_json::from_str(r[1].as_str().unwrap()).unwrap();
                let keys: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
                (
                    r[0].clone(),
                    doc["traits"].clone(),
                    doc["tags"].clone(),
                    keys,
                    doc["metrics"]["order_count"].clone(),
                )
            })
            .collect::<Vec<_>>()
        };
        let (a, b) = (docs(bulk.org.clone()).await, docs(real.org.clone()).await);
        for (x, y) in a.iter().zip(&b) {
            // The projected documents lack the tag no event sets.
            let mut y = y.clone();
            if let Some(tags) = y.2.as_array_mut() {
                if vip.contains(y.0.as_str().unwrap()) {
                    tags.push(json!("vip"));
                    tags.sort_by(|p, q| p.as_str().cmp(&q.as_str()));
                }
            }
            assert_eq!(x, &y, "{backend:?} profile documents");
        }
        let payloads = |org: OrgId| async move {
            rows(
                db,
                "SELECT message_id, payload FROM events WHERE org_id = $1 ORDER BY message_id",
                &org,
            )
            .await
            .into_iter()
            .map(|r| {
                let m: Value = serde_json::from_str(r[1].as_str().unwrap()).unwrap();
                (
                    r[0].clone(),
                    m["properties"].clone(),
                    m["traits"].clone(),
                    m["event"].clone(),
                    m["timestamp"].clone(),
                )
            })
            .collect::<Vec<_>>()
        };
        assert_eq!(
            payloads(bulk.org.clone()).await,
            payloads(real.org.clone()).await,
            "{backend:?} payloads"
        );

        // Every rule selects the same profiles in both, and what the naive
        // evaluator finds from the bulk log.
        let mut facts = profile_facts(&log(db, &bulk.org).await);
        for f in &mut facts {
            if vip.contains(&f.profile_id) {
                f.tags.insert("vip".into());
            }
        }
        let mut nonempty = 0;
        for text in RULES.iter().chain(PREVIEW_RULES.iter()) {
            let rule = parse(text).unwrap();
            let a = db
                .segment_members(&bulk.org, &rule, NOW_US, &lookup)
                .await
                .unwrap();
            let b = db
                .segment_members(&real.org, &rule, NOW_US, &lookup)
                .await
                .unwrap();
            let naive: Vec<String> = facts
                .iter()
                .filter(|f| evaluate(&rule, f, NOW_US, &lookup).unwrap())
                .map(|f| f.profile_id.clone())
                .collect();
            assert_eq!(a, b, "{backend:?} bulk vs projected: {text}");
            assert_eq!(a, naive, "{backend:?} bulk vs naive evaluator: {text}");
            eprintln!("{backend:?}: {} of {PROFILES}: {text}", a.len());
            nonempty += usize::from(!a.is_empty() && a.len() < PROFILES as usize);
        }
        assert!(
            nonempty >= RULES.len() + PREVIEW_RULES.len() - 1,
            "the store makes (nearly) every rule select some but not all profiles"
        );
    }
}
