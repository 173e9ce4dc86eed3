//! The projection on both databases: profiles from the log, the same
//! result whatever the arrival order or batching, a rebuild equal to the
//! live state, erasure.

use cohort_domain::commerce::woocommerce::resource_message;
use cohort_domain::ids::OrgId;
use cohort_domain::profile::Identity;
use cohort_store::events::NewEvent;
use cohort_store::orgs::Source;
use cohort_store::projection::{OrderFilter, ProductFilter, ProfileFilter, Projector};
use cohort_store::Db;
use cohort_testkit::{all_backends, seed};
use proptest::prelude::*;
use serde_json::{json, Value};
use sqlx::Row;

use crate::common::events_for;

fn segment(org: &OrgId, source: &Source, messages: &[Value]) -> Vec<NewEvent> {
    events_for(org, source, &json!({ "batch": messages }).to_string())
}

fn resource(org: &OrgId, source: &Source, topic: &str, body: &Value) -> NewEvent {
    let r = resource_message(source.id.as_str(), topic, body, Some("USD")).unwrap();
    NewEvent::from_resource(org, &source.id, &r, cohort_store::now_micros())
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "order" => {
            include_str!("../../../../../shared/fixtures/wc-rest-v3-order.docs-example.json")
        }
        "customer" => {
            include_str!("../../../../../shared/fixtures/wc-rest-v3-customer.docs-example.json")
        }
        _ => include_str!("../../../../../shared/fixtures/wc-rest-v3-product.docs-example.json"),
    };
    serde_json::from_str(text).unwrap()
}

/// Everything the projection holds for an organisation, comparable.
async fn dump(db: &Db, org: &OrgId) -> Value {
    let profiles: Vec<Value> = db
        .list_profiles(
            org,
            &ProfileFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| json!({"profile": r.profile, "previously_erased": r.previously_erased}))
        .collect();
    let orders: Vec<Value> = db
        .list_orders(
            org,
            &OrderFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|(_, o)| json!(o))
        .collect();
    let products = db
        .list_products(
            org,
            &ProductFilter {
                limit: 1000,
                include_deleted: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let rows = |sql: &'static str| async move {
        sqlx::query(sql)
            .bind(org.as_str())
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}={}",
                    r.get::<String, _>(0),
                    r.get::<Option<String>, _>(1).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    let identities =
        rows("SELECT identity, profile_id FROM identities WHERE org_id = $1 ORDER BY identity")
            .await;
    let tags =
        rows("SELECT tag, profile_id FROM profile_tags WHERE org_id = $1 ORDER BY tag, profile_id")
            .await;
    let merges = rows("SELECT from_profile, into_profile FROM profile_merges WHERE org_id = $1 ORDER BY from_profile").await;
    let placed = rows(
        "SELECT e.message_id, ce.profile_id FROM cluster_events ce JOIN events e ON e.org_id = ce.org_id AND e.seq = ce.seq \
         WHERE ce.org_id = $1 ORDER BY e.message_id",
    )
    .await;
    let derived = rows("SELECT message_id, event FROM events WHERE org_id = $1 AND message_id LIKE 'cohort-order-%' ORDER BY message_id").await;
    json!({"profiles": profiles, "orders": orders, "products": products, "identities": identities, "tags": tags,
           "merges": merges, "placed": placed, "derived": derived})
}

#[tokio::test]
async fn a_store_and_its_visitors_become_profiles_orders_and_products() {
    for t in all_backends().await {
        let db = &t.db;
        let s = seed(db, "Shop").await;
        let projector = Projector::new(db.clone());
        let mut events = segment(
            &s.org,
            &s.source,
            &[
                json!({"type": "page", "anonymousId": "visitor-1", "timestamp": "2017-03-20T10:00:00Z"}),
                json!({"type": "track", "event": "Cart Started", "anonymousId": "visitor-1", "userId": "25",
                   "context": {"traits": {"email": "John.Doe@example.com"}},
                   "properties": {"cart_id": "c1", "products": [{"product_id": "93", "price": 3, "quantity": 2}]},
                   "timestamp": "2017-03-21T10:00:00Z"}),
            ],
        );
        events.push(resource(
            &s.org,
            &s.source,
            "customer.updated",
            &fixture("customer"),
        ));
        events.push(resource(
            &s.org,
            &s.source,
            "product.updated",
            &fixture("product"),
        ));
        events.push(resource(
            &s.org,
            &s.source,
            "order.updated",
            &fixture("order"),
        ));
        db.append_events(&events).await.unwrap();
        projector.catch_up().await.unwrap();

        let id = db
            .profile_id_of(&s.org, &Identity::email("john.doe@example.com"))
            .await
            .unwrap()
            .expect("a profile by email");
        assert_eq!(
            db.profile_id_of(&s.org, &Identity::anonymous("visitor-1"))
                .await
                .unwrap()
                .as_deref(),
            Some(id.as_str())
        );
        let record = db.profile(&s.org, &id).await.unwrap().unwrap();
        let p = &record.profile;
        assert_eq!(p.user_id.as_deref(), Some("25"));
        assert_eq!(p.traits["first_name"], "John", "{:?}", t.backend());
        assert_eq!(p.metrics.order_count, 1);
        assert_eq!(p.metrics.total_spent[0].amount.to_string(), "29.35");
        assert!(
            p.tags.is_empty(),
            "the paid order cleared the cart tag: {:?}",
            p.tags
        );
        assert!(
            p.identities.iter().any(|i| i.kind == "store_customer"),
            "{:?}",
            p.identities
        );

        let orders = db
            .list_orders(
                &s.org,
                &OrderFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].1.profile_id, id);
        assert_eq!(orders[0].1.total.amount.to_string(), "29.35");
        let products = db
            .list_products(
                &s.org,
                &ProductFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            products[0]
                .product
                .price
                .as_ref()
                .unwrap()
                .amount
                .to_string(),
            "21.99"
        );

        // The derived events are in the log once, and land on the profile.
        projector.catch_up().await.unwrap();
        let derived = db.profile_timeline(&s.org, &id, None, 100).await.unwrap();
        let names: Vec<String> = derived
            .iter()
            .filter(|e| e.message_id.starts_with("cohort-order-"))
            .filter_map(|e| e.event.clone())
            .collect();
        assert_eq!(
            names.iter().filter(|n| *n == "Order Completed").count(),
            1,
            "{names:?}"
        );
        assert!(names.contains(&"Order Created".to_owned()));

        // The same webhook again changes nothing.
        db.append_events(&[resource(
            &s.org,
            &s.source,
            "order.updated",
            &fixture("order"),
        )])
        .await
        .unwrap();
        let before = dump(db, &s.org).await;
        projector.catch_up().await.unwrap();
        assert_eq!(dump(db, &s.org).await, before);

        // A rebuild from the log equals the live projection.
        projector.reset().await.unwrap();
        projector.catch_up().await.unwrap();
        assert_eq!(dump(db, &s.org).await, before, "{:?}", t.backend());
    }
}

#[tokio::test]
async fn erasure_removes_the_person_and_later_events_start_a_flagged_profile() {
    for t in all_backends().await {
        let db = &t.db;
        let s = seed(db, "Shop").await;
        let projector = Projector::new(db.clone());
        let mut events = segment(
            &s.org,
            &s.source,
            &[
                json!({"type": "identify", "userId": "erin", "anonymousId": "dev-1", "traits": {"email": "erin@example.com", "name": "Erin"}}),
                json!({"type": "track", "event": "Viewed", "userId": "erin", "messageId": "keep-me-deduped"}),
                json!({"type": "track", "event": "Viewed", "userId": "other"}),
            ],
        );
        let mut order = fixture("order");
        order["billing"]["email"] = json!("erin@example.com");
        events.push(resource(&s.org, &s.source, "order.updated", &order));
        db.append_events(&events).await.unwrap();
        projector.catch_up().await.unwrap();
        projector.catch_up().await.unwrap();
        let id = db
            .profile_id_of(&s.org, &Identity::user("erin"))
            .await
            .unwrap()
            .unwrap();

        let report = db
            .erase_profile(&s.org, &id)
            .await
            .unwrap()
            .expect("erased");
        assert!(report.events >= 3, "{report:?}");
        assert!(db.profile(&s.org, &id).await.unwrap().is_none());
        assert!(db
            .profile_id_of(&s.org, &Identity::email("erin@example.com"))
            .await
            .unwrap()
            .is_none());
        assert!(db
            .list_orders(
                &s.org,
                &OrderFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .unwrap()
            .is_empty());
        let leftover = sqlx::query("SELECT COUNT(*) FROM events WHERE org_id = $1 AND (payload LIKE '%erin%' OR user_id = 'erin')")
            .bind(s.org.as_str())
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get::<i64, _>(0);
        assert_eq!(leftover, 0, "no personal data left in the raw events");
        assert!(
            db.profile_id_of(&s.org, &Identity::user("other"))
                .await
                .unwrap()
                .is_some(),
            "others are untouched"
        );

        // A retried delivery of an erased message is still a duplicate.
        let again = segment(
            &s.org,
            &s.source,
            &[
                json!({"type": "track", "event": "Viewed", "userId": "erin", "messageId": "keep-me-deduped"}),
            ],
        );
        assert_eq!(db.append_events(&again).await.unwrap(), 0);
        // A new event with the same identifier starts a fresh, flagged profile.
        let fresh = segment(
            &s.org,
            &s.source,
            &[json!({"type": "track", "event": "Back", "userId": "erin"})],
        );
        db.append_events(&fresh).await.unwrap();
        projector.catch_up().await.unwrap();
        let new_id = db
            .profile_id_of(&s.org, &Identity::user("erin"))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(new_id, id);
        let record = db.profile(&s.org, &new_id).await.unwrap().unwrap();
        assert!(record.previously_erased);
        assert!(
            record.profile.traits.get("name").is_none(),
            "erased traits are not resurrected"
        );

        // A rebuild keeps the erasure.
        let before = dump(db, &s.org).await;
        projector.reset().await.unwrap();
        projector.catch_up().await.unwrap();
        assert_eq!(dump(db, &s.org).await, before, "{:?}", t.backend());
    }
}

fn arbitrary_message() -> impl Strategy<Value = Value> {
    let anon = prop::sample::select(vec!["a1", "a2", "a3", "a4"]);
    let user = prop::option::of(prop::sample::select(vec!["u1", "u2", "u3"]));
    let email = prop::option::of(prop::sample::select(vec!["p@x.io", "q@x.io"]));
    let kind = prop::sample::select(vec![
        "identify", "track", "page", "alias", "cart", "clear", "checkout", "order", "wc",
    ]);
    (anon, user, email, kind, 0i64..8, 0u8..3).prop_map(|(anon, user, email, kind, second, value)| {
        let timestamp = format!("2024-05-01T00:00:{second:02}Z");
        let mut m = json!({"type": "track", "anonymousId": anon, "event": "Viewed", "timestamp": timestamp});
        if let Some(u) = user {
            m["userId"] = json!(u);
        }
        match kind {
            "identify" => {
                m["type"] = json!("identify");
                m["traits"] = json!({"plan": value, "email": email});
            }
            "page" => m["type"] = json!("page"),
            "alias" => m = json!({"type": "alias", "previousId": anon, "userId": user.unwrap_or("u1"), "timestamp": timestamp}),
            "cart" => {
                m["event"] = json!("Cart Started");
                m["properties"] = json!({"products": [{"product_id": value, "price": "1.10"}]});
            }
            "clear" => m["event"] = json!("Cart Cleared"),
            "checkout" => m["event"] = json!("Checkout Started"),
            "order" => {
                m["event"] = json!("Order Completed");
                m["properties"] = json!({"order_id": value, "total": 9.99, "currency": "EUR"});
                m["context"] = json!({"traits": {"email": email}});
            }
            _ => {
                // A WooCommerce order snapshot, marked for `resource` below.
                // WooCommerce never has two states of an order at the same
                // `date_modified_gmt`, so the status follows from the time.
                let status = ["pending", "processing", "completed", "cancelled"][second as usize % 4];
                let email = ["p@x.io", "q@x.io"][second as usize / 4];
                m = json!({"wc": true, "status": status, "email": email, "second": second});
            }
        }
        m
    })
}

fn to_events(org: &OrgId, source: &Source, messages: &[Value]) -> Vec<NewEvent> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if m.get("wc").is_some() {
                let mut order = fixture("order");
                order["status"] = m["status"].clone();
                order["billing"]["email"] = m["email"].clone();
                order["date_modified_gmt"] = json!(format!(
                    "2024-05-01T00:00:{:02}",
                    m["second"].as_i64().unwrap()
                ));
                resource(org, source, "order.updated", &order)
            } else {
                let mut m = m.clone();
                m["messageId"] = json!(format!("m{i:03}"));
                segment(org, source, &[m]).remove(0)
            }
        })
        .collect()
}

/// The same events, arriving in two different orders and in different
/// chunks (each chunk projected before the next arrives), with some
/// delivered twice, project to the same profiles, orders and tags.
#[test]
fn arrival_order_and_duplicates_do_not_change_the_projection() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backends = runtime.block_on(all_backends());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(24),
        ..ProptestConfig::default()
    });
    let strategy = (
        prop::collection::vec(arbitrary_message(), 1..16),
        any::<u64>(),
        1usize..5,
    );
    runner
        .run(&strategy, |(messages, seed, chunk)| {
            for t in &backends {
                runtime.block_on(async {
                    let db = &t.db;
                    let (org, source) = seed_org(db, "A").await;
                    let projector = Projector::new(db.clone());
                    db.append_events(&to_events(&org, &source, &messages))
                        .await
                        .unwrap();
                    projector.catch_up().await.unwrap();
                    projector.catch_up().await.unwrap();
                    let left = dump(db, &org).await;

                    // Again from an empty log, in another order, in chunks.
                    sqlx::query("DELETE FROM events WHERE org_id = $1")
                        .bind(org.as_str())
                        .execute(db.pool())
                        .await
                        .unwrap();
                    projector.reset().await.unwrap();
                    let mut shuffled = to_events(&org, &source, &messages);
                    let mut rng = seed;
                    for i in (1..shuffled.len()).rev() {
                        rng = rng
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        shuffled.swap(i, (rng >> 33) as usize % (i + 1));
                    }
                    let duplicates: Vec<NewEvent> = shuffled.iter().step_by(3).cloned().collect();
                    shuffled.extend(duplicates);
                    for part in shuffled.chunks(chunk) {
                        db.append_events(part).await.unwrap();
                        projector.catch_up().await.unwrap();
                    }
                    projector.catch_up().await.unwrap();
                    let right = dump(db, &org).await;
                    if left != right {
                        let differing: Vec<String> = left
                            .as_object()
                            .unwrap()
                            .keys()
                            .filter(|k| left[k.as_str()] != right[k.as_str()])
                            .map(|k| {
                                format!(
                                    "{k}:\n  in order: {}\n  shuffled: {}",
                                    left[k.as_str()],
                                    right[k.as_str()]
                                )
                            })
                            .collect();
                        panic!(
                            "{:?}: arrival order changed the projection\n{}",
                            t.backend(),
                            differing.join("\n")
                        );
                    }
                });
            }
            Ok(())
        })
        .unwrap();
}

async fn seed_org(db: &Db, name: &str) -> (OrgId, Source) {
    let s = seed(db, name).await;
    (s.org, s.source)
}
