use std::collections::BTreeMap;

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

pub fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        "(?s).{0,6}",
        Just("and".to_owned()),
        Just("properties".to_owned()),
    ]
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (-1_000_000_000i64..1_000_000_000, 0u32..5)
        .prop_map(|(m, s)| normalize_decimal(Decimal::new(m, s)))
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(CmpOp::ALL.to_vec())
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        text_strategy().prop_map(Literal::String),
        decimal().prop_map(Literal::Number),
        any::<bool>().prop_map(Literal::Bool),
    ]
}

fn value_test() -> impl Strategy<Value = ValueTest> {
    prop_oneof![
        (op(), literal()).prop_map(|(op, value)| {
            let op = if matches!(value, Literal::Bool(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                CmpOp::Eq
            } else {
                op
            };
            ValueTest::Compare { op, value }
        }),
        prop::collection::vec(literal(), 0..3).prop_map(|values| ValueTest::In { values }),
        text_strategy().prop_map(|text| ValueTest::Contains { text }),
        Just(ValueTest::Exists),
    ]
}

fn path() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text_strategy(), 1..3)
}

fn window() -> impl Strategy<Value = Window> {
    (
        any::<bool>(),
        0u32..1000,
        prop::sample::select(TimeUnit::ALL.to_vec()),
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

fn count() -> impl Strategy<Value = Count> {
    (op(), 0u32..20).prop_map(|(op, times)| Count { op, times })
}

fn filters() -> impl Strategy<Value = Vec<PropertyFilter>> {
    prop::collection::vec(
        (path(), value_test()).prop_map(|(path, test)| PropertyFilter { path, test }),
        0..3,
    )
}

pub fn leaf() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (path(), value_test()).prop_map(|(path, test)| Rule::Trait { path, test }),
        Just(Rule::EmailExists),
        Just(Rule::Subscribed),
        Just(Rule::Unsubscribed),
        Just(Rule::Bounced),
        text_strategy().prop_map(|tag| Rule::Tag { tag }),
        (
            prop::sample::select(Metric::ALL.to_vec()),
            op(),
            decimal(),
            window()
        )
            .prop_map(|(metric, op, value, window)| Rule::Metric {
                metric,
                test: if metric.is_time() {
                    MetricTest::Window { window }
                } else {
                    MetricTest::Compare {
                        op,
                        value: Num(value),
                    }
                },
            }),
        (
            text_strategy(),
            prop::option::of(count()),
            prop::option::of(window()),
            filters()
        )
            .prop_map(|(event, count, window, filters)| Rule::Performed {
                event,
                count,
                window,
                filters
            }),
        (text_strategy(), window(), filters()).prop_map(|(event, window, filters)| {
            Rule::LastPerformed {
                event,
                window,
                filters,
            }
        }),
        (
            prop::sample::select(EmailAction::ALL.to_vec()),
            prop::option::of(text_strategy()),
            prop::option::of(count()),
            prop::option::of(window())
        )
            .prop_map(|(action, campaign, count, window)| Rule::Email {
                action,
                campaign,
                count,
                window
            }),
        (any::<bool>(), text_strategy(), prop::option::of(window())).prop_map(
            |(product, value, window)| Rule::Bought {
                item: if product {
                    BoughtItem::Product
                } else {
                    BoughtItem::Category
                },
                value,
                window
            }
        ),
        text_strategy().prop_map(|segment| Rule::InSegment { segment }),
        (
            prop::sample::select(RfmField::ALL.to_vec()),
            op(),
            decimal(),
            text_strategy()
        )
            .prop_map(|(field, op, n, group)| match field {
                RfmField::Group => Rule::Rfm {
                    field,
                    op: if op == CmpOp::Ne {
                        CmpOp::Ne
                    } else {
                        CmpOp::Eq
                    },
                    value: Literal::String(group),
                },
                _ => Rule::Rfm {
                    field,
                    op,
                    value: Literal::Number(n),
                },
            }),
    ]
}

pub fn rule_from(leaf: impl Strategy<Value = Rule> + 'static) -> impl Strategy<Value = Rule> {
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::And { rules }),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::Or { rules }),
            inner.prop_map(|r| Rule::Not { rule: Box::new(r) }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_text_form_round_trips(rule in rule_from(leaf())) {
        let text = print(&rule);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e} in {text}")))?;
        prop_assert_eq!(&parsed, &rule, "{}", text);
        prop_assert!(rule.validate().is_ok());
    }

    #[test]
    fn the_json_form_round_trips(rule in rule_from(leaf())) {
        let json = serde_json::to_string(&rule).unwrap();
        let back: Rule = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, rule, "{}", json);
    }

    #[test]
    fn any_text_parses_or_names_a_position(text in "(?s).{0,40}") {
        if let Err(e) = parse(&text) {
            prop_assert!(e.line >= 1 && e.column >= 1);
            prop_assert!(e.message.starts_with(&format!("line {}, col {}: expected ", e.line, e.column)), "{}", e.message);
        }
    }
}

#[test]
fn the_spec_examples_parse() {
    for text in [
        "orders.count >= 2\nand not performed \"Email Opened\" within 30 days\nand trait.country = \"DE\"",
        "trait.plan in [\"gold\",\"silver\"]",
        "trait.age >= 30 and trait.phone exists and trait.name contains \"van\"",
        "email exists or subscribed or unsubscribed or bounced",
        "tag \"vip\" and tag \"ecommerce.in_cart\"",
        "orders.total_spent > 200 and last_seen within 90 days and orders.last_at before 90 days ago",
        "performed \"Order Completed\" >= 2 times within 90 days where properties.total > 50",
        "performed \"Product Viewed\" where properties.category = \"Shoes\"",
        "last performed \"Order Completed\" before 90 days ago",
        "received email >= 10 times within 365 days",
        "opened email within 30 days and clicked email \"Summer sale\"",
        "bought product \"SKU-123\" or bought category \"Shoes\" within 1 year",
        "in segment \"VIP\" and rfm.group = \"At Risk\" and rfm.recency >= 2",
        "performed \"Order Completed\" = 2 times and not performed \"Email Opened\" within 30 days",
        "performed \"Product Viewed\" >= 3 times within 7 days where properties.category = \"Shoes\" and not performed \"Order Completed\" within 7 days",
        "trait.country = \"DE\" or (tag \"vip\" and orders.count >= 3)",
        "in segment \"Repeat Customers\" and not opened email within 60 days",
    ] {
        let rule = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parse(&print(&rule)).unwrap(), rule, "{text}");
    }
    // The filter's `and` stops where `properties.` does.
    let rule = parse("performed \"Product Viewed\" >= 3 times within 7 days where properties.category = \"Shoes\" and not performed \"Order Completed\" within 7 days").unwrap();
    let Rule::And { rules } = rule else {
        panic!("an and")
    };
    assert!(matches!(&rules[0], Rule::Performed { filters, .. } if filters.len() == 1));
    assert!(matches!(&rules[1], Rule::Not { .. }));
}

#[test]
fn errors_name_line_column_and_what_was_expected() {
    let e = parse("orders.count >= 2\nand orders.count >= abc").unwrap_err();
    assert_eq!(e.message, "line 2, col 21: expected a number after \">=\"");
    assert_eq!((e.line, e.column), (2, 21));
    assert_eq!(e.expected, "a number");
    assert_eq!(e.found, "\"abc\"");

    let e = parse("performed \"X\" >= 2").unwrap_err();
    assert_eq!(e.message, "line 1, col 19: expected `times` after \"2\"");
    assert_eq!(e.found, "the end of the rule");

    let e = parse("(tag \"a\" or tag \"b\"").unwrap_err();
    assert!(
        e.message.starts_with("line 1, col 20: expected \")\""),
        "{}",
        e.message
    );

    let e = parse("tag vip").unwrap_err();
    assert_eq!(
        e.message,
        "line 1, col 5: expected a tag in quotes after \"tag\""
    );

    let e = parse("trait.x = \"open").unwrap_err();
    assert_eq!((e.line, e.column), (1, 16));

    let e = parse("last_seen > 3").unwrap_err();
    assert_eq!(e.expected, "`within` or `before`");
}

#[test]
fn a_cycle_of_segments_is_named() {
    let mut segments = BTreeMap::new();
    segments.insert(
        "A".to_owned(),
        parse("in segment \"B\" and tag \"x\"").unwrap(),
    );
    segments.insert("B".to_owned(), parse("not in segment \"C\"").unwrap());
    segments.insert(
        "C".to_owned(),
        parse("orders.count > 1 or in segment \"A\"").unwrap(),
    );
    segments.insert("D".to_owned(), parse("in segment \"A\"").unwrap());
    let err = find_cycle(&segments).unwrap_err();
    assert_eq!(err.names, ["A", "B", "C", "A"]);
    assert_eq!(err.to_string(), "segments form a cycle: A → B → C → A");

    segments.insert("C".to_owned(), parse("in segment \"Missing\"").unwrap());
    assert!(find_cycle(&segments).is_ok());
    let mut own = BTreeMap::new();
    own.insert("Self".to_owned(), parse("in segment \"Self\"").unwrap());
    assert_eq!(find_cycle(&own).unwrap_err().names, ["Self", "Self"]);
}

fn facts_with(events: &[(&str, i64)]) -> ProfileFacts {
    ProfileFacts {
        profile_id: "p".into(),
        email: Some("a@b.c".into()),
        traits: serde_json::json!({"country": "DE", "age": 31, "vip": true, "address": {"city": "Berlin"}})
            .as_object()
            .unwrap()
            .clone(),
        tags: ["vip".to_owned()].into_iter().collect(),
        first_seen_us: 0,
        last_seen_us: events.iter().map(|e| e.1).max().unwrap_or(0),
        purchases: Vec::new(),
        events: events
            .iter()
            .map(|(name, at)| EventFact {
                name: (*name).to_owned(),
                at_us: *at,
                properties: serde_json::json!({"campaign_name": "Summer sale"}),
            })
            .collect(),
        rfm: None,
    }
}

const DAY: i64 = 86_400_000_000;

#[test]
fn the_evaluator_reads_the_definitions() {
    let now = 100 * DAY;
    let f = facts_with(&[
        ("Email Opened", 80 * DAY),
        ("Unsubscribed", 50 * DAY),
        ("Subscribed", 60 * DAY),
    ]);
    let none = |_: &str| None;
    let check = |text: &str| evaluate(&parse(text).unwrap(), &f, now, &none).unwrap();
    assert!(check(
        "trait.country = \"DE\" and trait.age >= 30 and trait.address.city = \"Berlin\""
    ));
    assert!(!check("trait.age = \"31\""), "a number is not a string");
    assert!(
        !check("trait.missing != \"x\""),
        "a missing trait passes nothing"
    );
    assert!(check("not trait.missing = \"x\""));
    assert!(check("trait.vip = true and tag \"vip\" and email exists"));
    assert!(check(
        "opened email within 30 days and not opened email within 19 days"
    ));
    assert!(check(
        "clicked email \"Summer sale\" = 0 times and opened email \"Summer sale\""
    ));
    assert!(check("subscribed and not unsubscribed and not bounced"));
    assert!(check("last_seen within 20 days"));
    assert!(check(
        "orders.count = 0 and orders.total_spent = 0 and not orders.average_value = 0"
    ));
    let err = evaluate(&parse("in segment \"Nope\"").unwrap(), &f, now, &none).unwrap_err();
    assert_eq!(err, EvalError::UnknownSegment("Nope".into()));
}

#[test]
fn the_next_change_is_when_a_fact_crosses_a_window() {
    let now = 100 * DAY;
    let f = facts_with(&[("Email Opened", 80 * DAY), ("Email Opened", 95 * DAY)]);
    let none = |_: &str| None;
    let rule = parse("opened email >= 2 times within 30 days").unwrap();
    assert_eq!(next_change_us(&rule, &f, now, &none), Some(110 * DAY + 1));
    let at_edge = 110 * DAY + 1;
    assert!(evaluate(&rule, &f, at_edge - 1, &none).unwrap());
    assert!(!evaluate(&rule, &f, at_edge, &none).unwrap());
    assert_eq!(
        next_change_us(&parse("tag \"x\"").unwrap(), &f, now, &none),
        None
    );
    let deps = dependencies(
        &parse("opened email within 3 days and in segment \"VIP\" and tag \"x\"").unwrap(),
    );
    assert!(deps.events.contains("Email Opened") && deps.windowed && deps.tags);
    assert!(deps.segments.contains("VIP"));
    assert!(deps.affected_by("track", Some("Cart Started")));
    assert!(
        !dependencies(&parse("opened email").unwrap()).affected_by("track", Some("Page Viewed"))
    );
}
