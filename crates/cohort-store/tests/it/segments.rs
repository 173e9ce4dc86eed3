//! Segment rules compiled to SQL against the naive evaluator: random event
//! histories go through the real write path (the group-commit writer) and
//! the real projector; each random rule's members on SQLite and on
//! PostgreSQL must equal what `cohort_domain::segments::evaluate` finds
//! from the same log through the domain's own profile fold.

use std::collections::BTreeSet;

use cohort_domain::ids::OrgId;
use cohort_domain::profile::LogEvent;
use cohort_domain::segments::{
    evaluate, parse, print, profile_facts, BoughtItem, CmpOp, Count, EmailAction, Literal, Metric,
    MetricTest, Num, PropertyFilter, Relation, RfmField, Rule, TimeUnit, ValueTest, Window,
};
use cohort_store::projection::Projector;
use cohort_store::segments::{compile, CompileError, Scope, SegmentQueryError};
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_store::{Backend, Db};
use cohort_testkit::{all_backends, seed};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::Row;

use crate::common::events_for;

const DAY_US: i64 = 86_400_000_000;
/// The instant rules are evaluated at: 2026-06-01T00:00:00Z.
const NOW_US: i64 = 1_780_272_000_000_000;

fn rfc3339(us: i64) -> String {
    cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(us))
}

/// One generated message: who (person and which of their ids), what, when.
#[derive(Debug, Clone)]
struct Gen {
    person: u8,
    id_form: u8,
    days_ago: i64,
    seconds: i64,
    what: What,
}

#[derive(Debug, Clone)]
enum What {
    Identify {
        traits: Value,
    },
    Page,
    Order {
        total_cents: i64,
        lines: Vec<(u8, u8)>,
    },
    Cancel {
        order: u8,
    },
    Refund {
        order: u8,
        cents: i64,
    },
    Viewed {
        category: u8,
        price: i64,
    },
    Email {
        event: u8,
        campaign: u8,
    },
    Cart {
        lines: Vec<(u8, u8)>,
    },
    CartCleared,
}

const CATEGORIES: [&str; 2] = ["Shoes", "Hats"];
const CAMPAIGNS: [&str; 2] = ["Summer sale", "Winter"];
const EMAIL_EVENTS: [&str; 7] = [
    "Email Delivered",
    "Email Opened",
    "Email Link Clicked",
    "Email Bounced",
    "Unsubscribed",
    "Subscribed",
    "Email Marked as Spam",
];

fn traits() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::sample::select(vec!["DE", "FR", "NL"])),
        prop::option::of(prop_oneof![
            (18i64..70).prop_map(|a| json!(a)),
            Just(json!(45.5)),
            Just(json!("30"))
        ]),
        prop::option::of(prop::sample::select(vec!["gold", "silver", "bronze"])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["Berlin", "Paris"])),
        any::<bool>(),
    )
        .prop_map(|(country, age, plan, vip, city, email)| {
            let mut t = serde_json::Map::new();
            if let Some(c) = country {
                t.insert("country".into(), json!(c));
            }
            if let Some(a) = age {
                t.insert("age".into(), a);
            }
            if let Some(p) = plan {
                t.insert("plan".into(), json!(p));
            }
            if let Some(v) = vip {
                t.insert("vip".into(), json!(v));
            }
            if let Some(c) = city {
                t.insert("address".into(), json!({ "city": c }));
            }
            if email {
                t.insert("email".into(), json!("set-later"));
            }
            Value::Object(t)
        })
}

fn lines() -> impl Strategy<Value = Vec<(u8, u8)>> {
    prop::collection::vec((0u8..3, 0u8..2), 1..3)
}

fn what() -> impl Strategy<Value = What> {
    prop_oneof![
        3 => traits().prop_map(|traits| What::Identify { traits }),
        1 => Just(What::Page),
        4 => ((100i64..30_000), lines()).prop_map(|(total_cents, lines)| What::Order { total_cents, lines }),
        1 => (0u8..6).prop_map(|order| What::Cancel { order }),
        1 => ((0u8..6), (100i64..5000)).prop_map(|(order, cents)| What::Refund { order, cents }),
        3 => ((0u8..2), (5i64..80)).prop_map(|(category, price)| What::Viewed { category, price }),
        5 => ((0u8..7), (0u8..2)).prop_map(|(event, campaign)| What::Email { event, campaign }),
        1 => lines().prop_map(|lines| What::Cart { lines }),
        1 => Just(What::CartCleared),
    ]
}

fn history() -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec(
        (0u8..6, 0u8..5, 0i64..400, 0i64..86_400, what()).prop_map(
            |(person, id_form, days_ago, seconds, what)| Gen {
                person,
                id_form,
                days_ago,
                seconds,
                what,
            },
        ),
        1..40,
    )
}

fn products(lines: &[(u8, u8)]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|(p, c)| {
                json!({"product_id": format!("P{p}"), "sku": format!("SKU-{p}"), "category": CATEGORIES[*c as usize],
                       "price": 10 + i64::from(*p), "quantity": 1})
            })
            .collect(),
    )
}

/// The Segment message of a generated event (the `i`th).
fn message(i: usize, g: &Gen) -> Value {
    let k = g.person;
    let mut m = serde_json::Map::new();
    m.insert("messageId".into(), json!(format!("m{i:03}")));
    m.insert(
        "timestamp".into(),
        json!(rfc3339(
            NOW_US - g.days_ago * DAY_US - g.seconds * 1_000_000
        )),
    );
    match g.id_form {
        0 => {
            m.insert("userId".into(), json!(format!("u{k}")));
        }
        1 => {
            m.insert("anonymousId".into(), json!(format!("a{k}")));
        }
        2 => {
            m.insert("userId".into(), json!(format!("u{k}")));
            m.insert("anonymousId".into(), json!(format!("a{k}")));
        }
        3 => {
            m.insert("anonymousId".into(), json!(format!("a{k}b")));
            m.insert(
                "context".into(),
                json!({"traits": {"email": format!("p{k}@example.com")}}),
            );
        }
        _ => {
            m.insert("anonymousId".into(), json!(format!("a{k}b")));
        }
    }
    let track = |m: &mut serde_json::Map<String, Value>, event: &str, props: Value| {
        m.insert("type".into(), json!("track"));
        m.insert("event".into(), json!(event));
        m.insert("properties".into(), props);
    };
    match &g.what {
        What::Identify { traits } => {
            let mut traits = traits.clone();
            if traits.get("email").is_some() {
                traits["email"] = json!(format!("P{k}@Example.com"));
            }
            m.insert("type".into(), json!("identify"));
            m.insert("traits".into(), traits);
        }
        What::Page => {
            m.insert("type".into(), json!("page"));
            m.insert("name".into(), json!("Home"));
        }
        What::Order { total_cents, lines } => track(
            &mut m,
            "Order Completed",
            json!({"order_id": format!("o{i}"), "total": *total_cents as f64 / 100.0, "currency": "EUR",
                   "products": products(lines)}),
        ),
        What::Cancel { order } => track(
            &mut m,
            "Order Cancelled",
            json!({"order_id": format!("o{order}"), "total": 1}),
        ),
        What::Refund { order, cents } => track(
            &mut m,
            "Order Refunded",
            json!({"order_id": format!("o{order}"), "total": *cents as f64 / 100.0}),
        ),
        What::Viewed { category, price } => track(
            &mut m,
            "Product Viewed",
            json!({"category": CATEGORIES[*category as usize], "price": price}),
        ),
        What::Email { event, campaign } => track(
            &mut m,
            EMAIL_EVENTS[*event as usize],
            json!({"campaign_name": CAMPAIGNS[*campaign as usize], "email_subject": "Hello"}),
        ),
        What::Cart { lines } => track(
            &mut m,
            "Cart Started",
            json!({"cart_id": format!("c{k}"), "products": products(lines)}),
        ),
        What::CartCleared => track(&mut m, "Cart Cleared", json!({})),
    }
    Value::Object(m)
}

fn window() -> impl Strategy<Value = Window> {
    (
        any::<bool>(),
        prop::sample::select(vec![1u32, 7, 30, 90, 365]),
        prop::sample::select(vec![
            TimeUnit::Days,
            TimeUnit::Weeks,
            TimeUnit::Months,
            TimeUnit::Hours,
        ]),
    )
        .prop_map(|(within, amount, unit)| Window {
            relation: if within {
                Relation::Within
            } else {
                Relation::Before
            },
            amount,
            unit,
        })
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(CmpOp::ALL.to_vec())
}

fn count() -> impl Strategy<Value = Option<Count>> {
    prop::option::of((op(), 0u32..4).prop_map(|(op, times)| Count { op, times }))
}

fn value_test() -> impl Strategy<Value = ValueTest> {
    let literal = prop::sample::select(vec![
        Literal::String("DE".into()),
        Literal::String("FR".into()),
        Literal::String("gold".into()),
        Literal::String("Shoes".into()),
        Literal::String("Summer sale".into()),
        Literal::String("Berlin".into()),
        Literal::Number(Decimal::from(30)),
        Literal::Number(Decimal::new(455, 1)),
        Literal::Number(Decimal::from(20)),
    ]);
    prop_oneof![
        4 => (op(), literal.clone()).prop_map(|(op, value)| ValueTest::Compare { op, value }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(eq, b)| ValueTest::Compare {
            op: if eq { CmpOp::Eq } else { CmpOp::Ne },
            value: Literal::Bool(b)
        }),
        1 => prop::collection::vec(literal, 0..3).prop_map(|values| ValueTest::In { values }),
        1 => prop::sample::select(vec!["e", "Sho", "R"]).prop_map(|t| ValueTest::Contains { text: t.into() }),
        1 => Just(ValueTest::Exists),
    ]
}

fn path(keys: Vec<Vec<&'static str>>) -> impl Strategy<Value = Vec<String>> {
    prop::sample::select(keys).prop_map(|p| p.into_iter().map(str::to_owned).collect())
}

fn filters() -> impl Strategy<Value = Vec<PropertyFilter>> {
    prop::collection::vec(
        (
            path(vec![
                vec!["category"],
                vec!["total"],
                vec!["price"],
                vec!["campaign_name"],
                vec!["products"],
            ]),
            value_test(),
        )
            .prop_map(|(path, test)| PropertyFilter { path, test }),
        0..2,
    )
}

fn event_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Order Completed",
        "Product Viewed",
        "Email Opened",
        "Cart Started",
        "Order Refunded",
        "Never Sent",
    ])
    .prop_map(str::to_owned)
}

fn amount() -> impl Strategy<Value = Num> {
    prop::sample::select(vec![
        Num(Decimal::ZERO),
        Num(Decimal::from(1)),
        Num(Decimal::from(2)),
        Num(Decimal::from(50)),
        Num(Decimal::new(10050, 2)),
        Num(Decimal::from(200)),
        Num(Decimal::new(12345, 3)),
    ])
}

fn leaf() -> impl Strategy<Value = Rule> {
    prop_oneof![
        3 => (path(vec![vec!["country"], vec!["age"], vec!["plan"], vec!["vip"], vec!["address", "city"], vec!["missing"], vec!["address"]]), value_test())
            .prop_map(|(path, test)| Rule::Trait { path, test }),
        1 => prop::sample::select(vec![Rule::EmailExists, Rule::Subscribed, Rule::Unsubscribed, Rule::Bounced]),
        1 => prop::sample::select(vec!["ecommerce.in_cart", "ecommerce.in_checkout", "vip"]).prop_map(|t| Rule::Tag { tag: t.into() }),
        3 => (prop::sample::select(Metric::ALL.to_vec()), op(), amount(), window()).prop_map(|(metric, op, value, window)| Rule::Metric {
            metric,
            test: if metric.is_time() { MetricTest::Window { window } } else { MetricTest::Compare { op, value } },
        }),
        4 => (event_name(), count(), prop::option::of(window()), filters()).prop_map(|(event, count, window, filters)| Rule::Performed { event, count, window, filters }),
        1 => (event_name(), window(), filters()).prop_map(|(event, window, filters)| Rule::LastPerformed { event, window, filters }),
        3 => (prop::sample::select(EmailAction::ALL.to_vec()), prop::option::of(prop::sample::select(CAMPAIGNS.to_vec())), count(), prop::option::of(window()))
            .prop_map(|(action, campaign, count, window)| Rule::Email { action, campaign: campaign.map(str::to_owned), count, window }),
        2 => (any::<bool>(), any::<bool>(), prop::option::of(window())).prop_map(|(product, first, window)| Rule::Bought {
            item: if product { BoughtItem::Product } else { BoughtItem::Category },
            value: match (product, first) {
                (true, true) => "P1",
                (true, false) => "SKU-2",
                (false, true) => "Shoes",
                (false, false) => "Hats",
            }
            .into(),
            window,
        }),
        1 => prop::sample::select(vec!["Buyers", "Engaged"]).prop_map(|s| Rule::InSegment { segment: s.into() }),
        1 => Just(Rule::Rfm { field: RfmField::Recency, op: CmpOp::Ge, value: Literal::Number(Decimal::from(2)) }),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    leaf().prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::And { rules }),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::Or { rules }),
            inner.prop_map(|r| Rule::Not { rule: Box::new(r) }),
        ]
    })
}

/// The named segments random rules may reference.
fn lookup(name: &str) -> Option<Rule> {
    match name {
        "Buyers" => Some(parse("orders.count >= 1").unwrap()),
        "Engaged" => Some(parse("opened email within 30 days or clicked email").unwrap()),
        "Loop" => Some(parse("in segment \"Loop\"").unwrap()),
        _ => None,
    }
}

/// The organisation's log, as the projection reads it.
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

#[test]
fn compiled_rules_select_what_the_naive_evaluator_selects_on_both_databases() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backends = runtime.block_on(all_backends());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(24),
        ..ProptestConfig::default()
    });
    let strategy = (history(), prop::collection::vec(rule(), 8), 0i64..3);
    runner
        .run(&strategy, |(history, rules, later_days)| {
            let now = NOW_US + later_days * DAY_US;
            let mut answers: Vec<(Backend, Vec<Vec<String>>)> = Vec::new();
            let mut expected: Option<Vec<Vec<String>>> = None;
            for t in &backends {
                runtime.block_on(async {
                    let db = &t.db;
                    let s = seed(db, "Shop").await;
                    let messages: Vec<Value> = history
                        .iter()
                        .enumerate()
                        .map(|(i, g)| message(i, g))
                        .collect();
                    let events =
                        events_for(&s.org, &s.source, &json!({ "batch": messages }).to_string());
                    let (writer, tasks) = EventWriter::start(db.clone(), WriterOptions::default());
                    writer.append(events).await.unwrap();
                    drop(writer);
                    tasks.join_all().await;
                    Projector::new(db.clone()).catch_up().await.unwrap();

                    let facts = profile_facts(&log(db, &s.org).await);
                    let mut mine = Vec::new();
                    let mut naive = Vec::new();
                    for rule in &rules {
                        let members = db
                            .segment_members(&s.org, rule, now, &lookup)
                            .await
                            .unwrap();
                        let want: Vec<String> = facts
                            .iter()
                            .filter(|f| evaluate(rule, f, now, &lookup).unwrap())
                            .map(|f| f.profile_id.clone())
                            .collect();
                        // One profile at a time, as live membership asks.
                        if let Some(f) = facts.first() {
                            let one = db
                                .segment_contains(&s.org, rule, &f.profile_id, now, &lookup)
                                .await
                                .unwrap();
                            assert_eq!(
                                one,
                                want.contains(&f.profile_id),
                                "{:?} one profile: {}",
                                t.backend(),
                                print(rule)
                            );
                        }
                        mine.push(members);
                        naive.push(want);
                    }
                    let ids: BTreeSet<String> =
                        facts.iter().map(|f| f.profile_id.clone()).collect();
                    let projected: BTreeSet<String> = db
                        .segment_members(
                            &s.org,
                            &parse("not email exists or email exists").unwrap(),
                            now,
                            &lookup,
                        )
                        .await
                        .unwrap()
                        .into_iter()
                        .collect();
                    assert_eq!(
                        projected, ids,
                        "the fold and the projector see the same profiles"
                    );
                    expected.get_or_insert(naive.clone());
                    for (i, rule) in rules.iter().enumerate() {
                        assert_eq!(
                            mine[i],
                            naive[i],
                            "{:?}: `{}` selected {:?}, the evaluator {:?}",
                            t.backend(),
                            print(rule),
                            mine[i],
                            naive[i]
                        );
                    }
                    if std::env::var("SEGMENTS_DEBUG").is_ok() {
                        for (i, rule) in rules.iter().enumerate() {
                            eprintln!("{}/{} {}", mine[i].len(), ids.len(), print(rule));
                        }
                    }
                    answers.push((t.backend(), mine));
                });
            }
            if let Some(expected) = expected {
                for (backend, got) in &answers {
                    prop_assert_eq!(got, &expected, "{:?}", backend);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn a_rule_is_one_query_with_every_value_bound() {
    for t in all_backends().await {
        let org = OrgId::from_stored("org_x");
        let rule = parse(
            "trait.\"country'; DROP TABLE profiles; --\" = \"x' OR 1=1\" and performed \"Evil' --\" >= 2 times within 30 days \
             where properties.\"a\\\"b\" = \"c\" and tag \"tag'x\" and bought category \"cat'y\" and in segment \"Buyers\"",
        )
        .unwrap();
        let compiled = compile(t.backend(), &org, &rule, NOW_US, Scope::All, &lookup).unwrap();
        let sql = compiled.sql();
        for value in ["DROP", "x'", "Evil", "a\\\"b", "tag'x", "cat'y", "org_x"] {
            assert!(!sql.contains(value), "{value} spliced into {sql}");
        }
        assert_eq!(sql.matches("SELECT p.profile_id").count(), 1);
        // And it runs: nothing matches in an empty organisation.
        let s = seed(&t.db, "Empty").await;
        assert!(t
            .db
            .segment_members(&s.org, &rule, NOW_US, &lookup)
            .await
            .unwrap()
            .is_empty());

        let err =
            t.db.segment_members(
                &s.org,
                &parse("in segment \"Loop\"").unwrap(),
                NOW_US,
                &lookup,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SegmentQueryError::Rule(CompileError::Cycle(names)) if names == &["Loop", "Loop"]),
            "{err}"
        );
        let err = compile(
            t.backend(),
            &org,
            &parse("in segment \"Nope\"").unwrap(),
            NOW_US,
            Scope::All,
            &lookup,
        )
        .unwrap_err();
        assert_eq!(err, CompileError::UnknownSegment("Nope".into()));
    }
}

/// Every saved segment's stored members equal a full evaluation at `now`
/// on the same backend, and the naive evaluator's answer.
async fn assert_live_equals_full(
    db: &Db,
    org: &OrgId,
    names: &[(String, Rule)],
    now: i64,
    when: &str,
) {
    let facts = profile_facts(&log(db, org).await);
    for (name, rule) in names {
        let record = db
            .segments_of(org)
            .await
            .unwrap()
            .into_iter()
            .find(|r| &r.name == name)
            .unwrap();
        let mut stored = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = db
                .segment_member_page(org, &record.segment_id, after.as_deref(), 1000)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.profile_id.clone());
            stored.extend(page.into_iter().map(|m| m.profile_id));
        }
        let full = db.segment_members(org, rule, now, &lookup).await.unwrap();
        let naive: Vec<String> = facts
            .iter()
            .filter(|f| evaluate(rule, f, now, &lookup).unwrap())
            .map(|f| f.profile_id.clone())
            .collect();
        assert_eq!(
            stored,
            full,
            "{:?} {when}: `{name}` = `{}`: live members differ from a full recompute",
            db.backend(),
            print(rule)
        );
        assert_eq!(full, naive, "{:?} {when}: `{}`", db.backend(), print(rule));
        assert_eq!(
            record.member_count,
            stored.len() as i64,
            "{name}: kept count"
        );
    }
}

/// Live membership: random histories arrive in three parts while an
/// injected clock moves on (past window edges, with no event in between);
/// after every worker catch-up, each saved segment's members equal a full
/// recompute and the naive evaluator, on both backends. Every entry and
/// exit in the feed alternates per profile and segment, and replaying the
/// feed gives the members.
#[test]
fn live_membership_equals_full_recompute_as_events_arrive_and_time_passes() {
    use cohort_engine::segments::{membership, RuleSource, SegmentDraft, Segments};
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backends = runtime.block_on(all_backends());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(|n: u32| n.div_ceil(3))
            .unwrap_or(8),
        ..ProptestConfig::default()
    });
    let strategy = (
        history(),
        prop::collection::vec(rule(), 4),
        1usize..4,
        0i64..20,
        20i64..60,
    );
    runner
        .run(
            &strategy,
            |(history, rules, split, first_wait, second_wait)| {
                for t in &backends {
                    runtime.block_on(async {
                        let db = &t.db;
                        let s = seed(db, "Shop").await;
                        // Time starts 30 days before the history's "now".
                        let clock = Arc::new(AtomicI64::new(NOW_US - 30 * DAY_US));
                        let c = clock.clone();
                        let segments = Segments::with_clock(
                            db.clone(),
                            Arc::new(move || c.load(Ordering::SeqCst)),
                        );
                        let mut named: Vec<(String, Rule)> = ["Buyers", "Engaged"]
                            .iter()
                            .map(|n| (n.to_string(), lookup(n).unwrap()))
                            .collect();
                        named.extend(
                            rules
                                .iter()
                                .enumerate()
                                .map(|(i, r)| (format!("R{i}"), r.clone())),
                        );
                        for (name, rule) in &named {
                            segments
                                .create(
                                    &s.org,
                                    SegmentDraft {
                                        name: name.clone(),
                                        description: None,
                                        rule: RuleSource::Ast(rule.clone()),
                                    },
                                )
                                .await
                                .unwrap();
                        }
                        let messages: Vec<Value> = history
                            .iter()
                            .enumerate()
                            .map(|(i, g)| message(i, g))
                            .collect();
                        let cut = messages.len() * split / 4;
                        let parts = [&messages[..cut], &messages[cut..]];
                        let waits = [first_wait, second_wait];
                        for (part, wait) in parts.iter().zip(waits) {
                            if !part.is_empty() {
                                write_and_project(db, &s, part).await;
                            }
                            let now = clock.load(Ordering::SeqCst);
                            membership::drain(db, now).await.unwrap();
                            assert_live_equals_full(db, &s.org, &named, now, "after events").await;
                            // Time passes with no event: windows expire.
                            let later =
                                clock.fetch_add(wait * DAY_US, Ordering::SeqCst) + wait * DAY_US;
                            membership::drain(db, later).await.unwrap();
                            assert_live_equals_full(db, &s.org, &named, later, "after time passed")
                                .await;
                        }
                        // The feed: per (segment, profile) entries and exits
                        // alternate, starting with an entry, and end where the
                        // members are.
                        let feed = db.segment_changes_after(0, 10_000).await.unwrap();
                        let mut state: std::collections::BTreeMap<(String, String), bool> =
                            Default::default();
                        for ch in feed.iter().filter(|c| c.org_id == s.org.as_str()) {
                            let was = state
                                .insert((ch.segment_id.clone(), ch.profile_id.clone()), ch.entered);
                            assert_ne!(was.unwrap_or(false), ch.entered, "feed alternates: {ch:?}");
                        }
                        let from_feed: usize = state.values().filter(|in_| **in_).count();
                        let counted: i64 = db
                            .segments_of(&s.org)
                            .await
                            .unwrap()
                            .iter()
                            .map(|r| r.member_count)
                            .sum();
                        assert_eq!(
                            from_feed as i64, counted,
                            "replaying the feed gives the members"
                        );
                    });
                }
                Ok(())
            },
        )
        .unwrap();
}

/// Six customers: the n-th placed n orders of n × 10 EUR, the latest
/// 10 × (6 − n) days before `NOW_US`.
async fn six_customers(db: &Db) -> cohort_testkit::Seeded {
    let s = seed(db, "Shop").await;
    let mut messages = Vec::new();
    for person in 1..=6u8 {
        for n in 0..person {
            let g = Gen {
                person,
                id_form: 0,
                days_ago: 10 * (6 - i64::from(person)) + 5 * i64::from(n),
                seconds: 0,
                what: What::Order {
                    total_cents: 1000 * i64::from(person),
                    lines: vec![],
                },
            };
            messages.push(message(messages.len(), &g));
        }
    }
    write_and_project(db, &s, &messages).await;
    s
}

/// The messages through the real writer, then projected.
async fn write_and_project(db: &Db, s: &cohort_testkit::Seeded, messages: &[Value]) {
    let events = events_for(&s.org, &s.source, &json!({ "batch": messages }).to_string());
    let (writer, tasks) = EventWriter::start(db.clone(), WriterOptions::default());
    writer.append(events).await.unwrap();
    drop(writer);
    tasks.join_all().await;
    Projector::new(db.clone()).catch_up().await.unwrap();
}

/// The ready-made segments: created with the store's amounts, live at
/// once, installed again without touching what exists.
#[tokio::test]
async fn ready_made_segments_are_installed_with_the_stores_amounts_once() {
    use cohort_engine::segments::{RuleSource, SegmentDraft, Segments};
    use std::sync::Arc;

    for t in all_backends().await {
        let db = &t.db;
        let s = six_customers(db).await;
        let segments = Segments::with_clock(db.clone(), Arc::new(|| NOW_US));
        // The merchant already has a "VIP" of their own.
        segments
            .create(
                &s.org,
                SegmentDraft {
                    name: "VIP".into(),
                    description: None,
                    rule: RuleSource::Text("tag \"vip\"".into()),
                },
            )
            .await
            .unwrap();
        let report = segments.install_defaults(&s.org).await.unwrap();
        assert_eq!(report.created.len(), 17, "{:?}", report);
        assert_eq!(report.kept, ["VIP"]);
        let all = db.segments_of(&s.org).await.unwrap();
        let by = |n: &str| all.iter().find(|r| r.name == n).unwrap().clone();
        assert_eq!(
            by("VIP").rule_text,
            "tag \"vip\"",
            "the merchant's VIP is untouched"
        );
        // 21 orders, 910 EUR: average order 43.33 → 3 × = 130.
        assert_eq!(by("High Spenders").rule_text, "orders.total_spent >= 130");
        assert!(by("High Spenders")
            .description
            .as_deref()
            .unwrap()
            .contains("EUR"));
        assert_eq!(by("Repeat Customers").member_count, 5);
        assert_eq!(by("First-Time Buyers").member_count, 1);
        // Orders of 40, 50 and 60 EUR × count: 160, 250, 360 ≥ 130.
        assert_eq!(by("High Spenders").member_count, 3, "{:?}", t.backend());
        let again = segments.install_defaults(&s.org).await.unwrap();
        assert!(again.created.is_empty());
        assert_eq!(again.kept.len(), 18);
        assert_eq!(db.segments_of(&s.org).await.unwrap().len(), 18);

        // A rebuild of the projection (`cohort reproject`) ends where it
        // started: every member evaluated again, none lost or doubled.
        let before: Vec<(String, i64)> = db
            .segments_of(&s.org)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.name.clone(), r.member_count))
            .collect();
        let projector = Projector::new(db.clone());
        projector.reset().await.unwrap();
        projector.catch_up().await.unwrap();
        cohort_engine::segments::membership::drain(db, NOW_US)
            .await
            .unwrap();
        let after: Vec<(String, i64)> = db
            .segments_of(&s.org)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.name.clone(), r.member_count))
            .collect();
        assert_eq!(before, after, "{:?}", t.backend());
    }
}

/// RFM over real orders: six customers, the n-th with n orders, the
/// latest n × 10 days ago reversed; scores by tertiles, groups, and a
/// segment on `rfm.group` recomputed with the scores.
#[tokio::test]
async fn rfm_scores_customers_by_the_stores_tertiles_and_segments_follow() {
    use cohort_engine::segments::{RuleSource, SegmentDraft, Segments};
    use std::sync::Arc;

    for t in all_backends().await {
        let db = &t.db;
        let s = six_customers(db).await;

        let segments = Segments::with_clock(db.clone(), Arc::new(|| NOW_US));
        let champions = segments
            .create(
                &s.org,
                SegmentDraft {
                    name: "Champions".into(),
                    description: None,
                    rule: RuleSource::Text(r#"rfm.group = "Champions""#.into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            champions.member_count, 0,
            "no scores yet: rfm tests are false"
        );

        let report = segments.recompute_rfm(&s.org).await.unwrap();
        assert_eq!((report.customers, report.segments), (6, 1));
        let profile_of = |k: u8| {
            let db = db.clone();
            let org = s.org.clone();
            async move {
                db.list_profiles(
                    &org,
                    &cohort_store::projection::ProfileFilter {
                        user_id: Some(format!("u{k}")),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap()[0]
                    .profile
                    .id
                    .clone()
            }
        };
        let mut scores = Vec::new();
        for k in 1..=6u8 {
            let rfm = db
                .profile_rfm(&s.org, &profile_of(k).await)
                .await
                .unwrap()
                .unwrap();
            scores.push((rfm.recency, rfm.frequency, rfm.monetary, rfm.group));
        }
        // Sorted figures 1..6: cuts at the 2nd and 4th value.
        assert_eq!(
            scores.iter().map(|s| s.1).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3],
            "{:?}",
            t.backend()
        );
        assert_eq!(
            scores.iter().map(|s| s.2).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3]
        );
        assert_eq!(
            scores.iter().map(|s| s.0).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3]
        );
        assert_eq!(scores[5].3, "Champions");
        assert_eq!(scores[0].3, "Inactive");

        let members = db
            .segment_member_page(&s.org, &champions.segment_id, None, 100)
            .await
            .unwrap();
        let champion_ids: Vec<String> = members.iter().map(|m| m.profile_id.clone()).collect();
        let mut want = vec![profile_of(5).await, profile_of(6).await];
        want.sort();
        assert_eq!(
            champion_ids,
            want,
            "{:?}: R3 F3 are the champions",
            t.backend()
        );
        let changes = db
            .profile_segment_changes(&s.org, &want[0], 10)
            .await
            .unwrap();
        assert_eq!(changes[0].reason, "RFM recomputed");
        let groups = db.rfm_groups(&s.org).await.unwrap();
        let total: i64 = groups.iter().map(|g| g.customers).sum();
        assert_eq!(total, 6);
        // Nothing left to score today.
        assert!(db
            .orgs_due_for_rfm(NOW_US - 3_600_000_000)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn a_segment_count_is_the_number_of_its_members_on_both_databases() {
    let history: Vec<Gen> = (0..60)
        .map(|i| Gen {
            person: (i % 6) as u8,
            id_form: (i % 3) as u8,
            days_ago: (i * 7 % 120) as i64,
            seconds: i as i64,
            what: match i % 5 {
                0 => What::Order {
                    total_cents: 1000 + i as i64 * 350,
                    lines: vec![((i % 3) as u8, (i % 2) as u8)],
                },
                1 => What::Viewed {
                    category: (i % 2) as u8,
                    price: 20,
                },
                2 => What::Email {
                    event: (i % 3) as u8,
                    campaign: 0,
                },
                3 => What::Identify {
                    traits: json!({"country": if i % 2 == 0 { "DE" } else { "FR" }, "email": "x"}),
                },
                _ => What::Page,
            },
        })
        .collect();
    let rules = [
        "orders.count >= 2",
        "not performed \"Email Opened\" within 30 days",
        "trait.country = \"DE\" or bought category \"Shoes\"",
        "performed \"Product Viewed\" >= 2 times where properties.category = \"Shoes\"",
        "in segment \"Buyers\" and orders.total_spent > 50",
        "tag \"vip\"",
    ];
    for t in all_backends().await {
        let db = &t.db;
        let s = seed(db, "Shop").await;
        let messages: Vec<Value> = history
            .iter()
            .enumerate()
            .map(|(i, g)| message(i, g))
            .collect();
        let events = events_for(&s.org, &s.source, &json!({ "batch": messages }).to_string());
        let (writer, tasks) = EventWriter::start(db.clone(), WriterOptions::default());
        writer.append(events).await.unwrap();
        drop(writer);
        tasks.join_all().await;
        Projector::new(db.clone()).catch_up().await.unwrap();
        let other = seed(db, "Other").await;
        let mut nonzero = 0;
        for text in rules {
            let rule = parse(text).unwrap();
            let members = db
                .segment_members(&s.org, &rule, NOW_US, &lookup)
                .await
                .unwrap();
            let count = db
                .segment_count(&s.org, &rule, NOW_US, &lookup)
                .await
                .unwrap();
            assert_eq!(count, members.len() as u64, "{:?}: {text}", t.backend());
            nonzero += usize::from(count > 0);
            // Another organisation counts none of them.
            assert_eq!(
                db.segment_count(&other.org, &rule, NOW_US, &lookup)
                    .await
                    .unwrap(),
                0
            );
        }
        assert!(nonzero >= 4, "the history makes most rules non-empty");
        let plan = db
            .segment_plan(&s.org, &parse(rules[3]).unwrap(), NOW_US, &lookup, false)
            .await
            .unwrap();
        assert!(!plan.is_empty());
    }
}
