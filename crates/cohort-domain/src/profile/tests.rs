use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

fn ev(seq: i64, ts: i64, message: Value) -> LogEvent {
    LogEvent {
        seq,
        source_id: "src_shop".into(),
        message_id: message["messageId"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("m{seq}")),
        message_type: message["type"].as_str().unwrap_or("track").to_owned(),
        timestamp_us: ts,
        message,
    }
}

fn fold(events: &[LogEvent]) -> ClusterState {
    let mut events = events.to_vec();
    ClusterState::fold(&mut events).0
}

fn profile_with<'a>(state: &'a ClusterState, id: &Identity) -> &'a ProfileState {
    &state.profiles[&state.owners[id]]
}

#[test]
fn identify_links_the_anonymous_visitor_to_the_user() {
    let s = fold(&[
        ev(1, 10, json!({"type": "page", "anonymousId": "a1"})),
        ev(
            2,
            20,
            json!({"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"email": " Ann@Example.com "}}),
        ),
    ]);
    assert_eq!(s.profiles.len(), 1);
    let p = profile_with(&s, &Identity::anonymous("a1"));
    assert_eq!(p.user_id.as_deref(), Some("u1"));
    assert!(p.identities.contains(&Identity::email("ann@example.com")));
    assert_eq!(p.traits["email"].value, "ann@example.com");
}

#[test]
fn two_profiles_merge_and_the_merge_is_recorded() {
    let s = fold(&[
        ev(1, 10, json!({"type": "page", "anonymousId": "a1"})),
        ev(
            2,
            20,
            json!({"type": "identify", "userId": "u1", "traits": {"plan": "gold"}}),
        ),
        ev(
            3,
            30,
            json!({"type": "identify", "anonymousId": "a1", "userId": "u1", "messageId": "link"}),
        ),
    ]);
    assert_eq!(s.profiles.len(), 1);
    assert_eq!(s.merges.len(), 1);
    let m = &s.merges[0];
    assert_eq!(m.message_id, "link");
    assert!(m.identities.contains(&Identity::anonymous("a1")));
    // The older profile (the visitor's) survives.
    assert_eq!(s.owners[&Identity::user("u1")], m.into);
    assert_eq!(s.view(&m.into).unwrap().merged_from.len(), 1);
    assert_eq!(s.survivor(&m.from), m.into);
}

#[test]
fn alias_links_previous_id_to_user_id() {
    let s = fold(&[
        ev(
            1,
            10,
            json!({"type": "track", "event": "Viewed", "anonymousId": "a9"}),
        ),
        ev(
            2,
            20,
            json!({"type": "alias", "previousId": "a9", "userId": "u9"}),
        ),
    ]);
    assert_eq!(s.profiles.len(), 1);
    assert_eq!(
        profile_with(&s, &Identity::anonymous("a9"))
            .user_id
            .as_deref(),
        Some("u9")
    );
}

#[test]
fn the_shared_device_does_not_merge_two_known_users() {
    let s = fold(&[
        ev(
            1,
            10,
            json!({"type": "identify", "anonymousId": "device", "userId": "alice"}),
        ),
        ev(
            2,
            20,
            json!({"type": "identify", "anonymousId": "device", "userId": "bob", "traits": {"name": "Bob"}}),
        ),
        ev(
            3,
            30,
            json!({"type": "track", "event": "Bob buys", "userId": "bob", "anonymousId": "device"}),
        ),
    ]);
    assert_eq!(s.profiles.len(), 2, "{s:#?}");
    let alice = &s.owners[&Identity::user("alice")];
    let bob = &s.owners[&Identity::user("bob")];
    assert_ne!(alice, bob);
    assert_eq!(
        &s.owners[&Identity::anonymous("device")],
        alice,
        "the device stays with its first user"
    );
    assert!(
        !s.profiles[alice].traits.contains_key("name"),
        "Bob's traits stay off Alice"
    );
    assert!(s.merges.is_empty());
}

#[test]
fn an_email_in_traits_links_profiles() {
    let s = fold(&[
        ev(
            1,
            10,
            json!({"type": "identify", "anonymousId": "phone", "traits": {"email": "x@y.z"}}),
        ),
        ev(
            2,
            20,
            json!({"type": "identify", "anonymousId": "laptop", "traits": {"email": "X@Y.Z"}}),
        ),
    ]);
    assert_eq!(s.profiles.len(), 1);
}

#[test]
fn the_latest_trait_by_timestamp_wins_not_the_latest_arrival() {
    let newer = ev(
        1,
        200,
        json!({"type": "identify", "userId": "u", "traits": {"plan": "gold"}}),
    );
    let older = ev(
        2,
        100,
        json!({"type": "identify", "userId": "u", "traits": {"plan": "free", "city": "Oslo"}}),
    );
    for order in [
        [newer.clone(), older.clone()],
        [older.clone(), newer.clone()],
    ] {
        let s = fold(&order);
        let p = profile_with(&s, &Identity::user("u"));
        assert_eq!(p.traits["plan"].value, "gold");
        assert_eq!(p.traits["plan"].at.timestamp_us, 200);
        assert_eq!(p.traits["city"].value, "Oslo");
        assert_eq!(p.traits["plan"].source_id, "src_shop");
    }
}

fn order_resource(id: u64, status: &str, modified: &str, refunds: Value) -> Value {
    let mut order: Value = serde_json::from_str(include_str!(
        "../../../../../shared/fixtures/wc-rest-v3-order.docs-example.json"
    ))
    .unwrap();
    order["id"] = json!(id);
    order["status"] = json!(status);
    order["date_modified_gmt"] = json!(modified);
    order["refunds"] = refunds;
    order
}

fn snapshot(seq: i64, ts: i64, order: Value) -> LogEvent {
    ev(
        seq,
        ts,
        json!({"type": "resource", "topic": "order.updated", "messageId": format!("snap{seq}"), "resource": order}),
    )
}

#[test]
fn order_states_derive_each_event_once_and_clear_the_cart() {
    let cart = ev(
        1,
        1_000,
        json!({"type": "track", "event": "Cart Started", "userId": "u", "context": {"traits": {"email": "john.doe@example.com"}},
        "properties": {"cart_id": "c", "products": [{"product_id": "93", "price": 3, "quantity": 2}]}}),
    );
    let checkout = ev(
        2,
        2_000,
        json!({"type": "track", "event": "Checkout Started", "userId": "u", "properties": {"products": []}}),
    );
    let s = fold(&[cart.clone(), checkout.clone()]);
    let p = profile_with(&s, &Identity::user("u"));
    assert_eq!(
        p.active_tags().collect::<Vec<_>>(),
        vec![TAG_IN_CART, TAG_IN_CHECKOUT]
    );

    let pending = snapshot(
        3,
        1_490_210_882_000_000,
        order_resource(727, "pending", "2017-03-22T19:28:02", json!([])),
    );
    let paid = snapshot(
        4,
        1_490_210_888_000_000,
        order_resource(727, "processing", "2017-03-22T19:28:08", json!([])),
    );
    let done = snapshot(
        5,
        1_490_300_000_000_000,
        order_resource(
            727,
            "completed",
            "2017-03-23T20:13:20",
            json!([{"id": 9, "total": "-5.00", "reason": "dent"}]),
        ),
    );
    let s = fold(&[cart, checkout, pending, paid, done.clone(), done]);
    assert_eq!(
        s.profiles.len(),
        1,
        "the guest order joins the shopper by email"
    );
    let p = profile_with(&s, &Identity::user("u"));
    assert_eq!(p.active_tags().count(), 0, "the order clears both tags");
    let order = &s.orders["src_shop/727"];
    let names: Vec<String> = derived_events(order).into_iter().map(|d| d.event).collect();
    assert_eq!(
        names,
        [
            "Order Created",
            "Order Completed",
            "Order Fulfilled",
            "Order Refunded"
        ]
    );
    let view = s.view(&s.owners[&Identity::user("u")]).unwrap();
    assert_eq!(view.metrics.order_count, 1);
    assert_eq!(view.metrics.total_spent[0].amount.to_string(), "24.35");
    assert_eq!(view.metrics.total_spent[0].currency, "USD");
}

fn arbitrary_event() -> impl Strategy<Value = (i64, Value)> {
    let anon = prop::sample::select(vec!["a1", "a2", "a3"]);
    let user = prop::option::of(prop::sample::select(vec!["u1", "u2"]));
    let email = prop::option::of(prop::sample::select(vec!["p@x.io", "q@x.io"]));
    let kind = prop::sample::select(vec![
        "identify", "track", "page", "alias", "cart", "clear", "checkout", "order",
    ]);
    let ts = 0i64..6;
    let value = 0u8..4;
    (anon, user, email, kind, ts, value).prop_map(|(anon, user, email, kind, ts, value)| {
        let mut m = json!({"type": "track", "anonymousId": anon, "event": "Viewed"});
        if let Some(u) = user {
            m["userId"] = json!(u);
        }
        match kind {
            "identify" => {
                m["type"] = json!("identify");
                m["traits"] = json!({"plan": value, "email": email});
            }
            "page" => m["type"] = json!("page"),
            "alias" => {
                m = json!({"type": "alias", "previousId": anon, "userId": user.unwrap_or("u1")});
            }
            "cart" => {
                m["event"] = json!("Cart Started");
                m["properties"] = json!({"products": [{"product_id": value, "price": 1}]});
            }
            "clear" => m["event"] = json!("Cart Cleared"),
            "checkout" => m["event"] = json!("Checkout Started"),
            "order" => {
                m["event"] = json!("Order Completed");
                m["properties"] = json!({"order_id": value, "total": "9.99", "currency": "EUR"});
                m["context"] = json!({"traits": {"email": email}});
            }
            _ => {}
        }
        (ts * 1_000, m)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Folding from nothing is the same whatever order the events came in,
    /// and applying them one by one, refolding whenever one arrives out of
    /// order, ends in the same state.
    #[test]
    fn arrival_order_does_not_matter(events in prop::collection::vec(arbitrary_event(), 1..14), seed in any::<u64>()) {
        let events: Vec<LogEvent> = events.into_iter().enumerate().map(|(i, (ts, mut m))| {
            m["messageId"] = json!(format!("m{i:02}"));
            ev(i as i64 + 1, ts, m)
        }).collect();
        let expected = fold(&events);

        let mut shuffled = events.clone();
        let mut rng = seed;
        for i in (1..shuffled.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (rng >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(&fold(&shuffled), &expected);

        let mut state = ClusterState::default();
        let mut seen: Vec<LogEvent> = Vec::new();
        for e in &shuffled {
            seen.push(e.clone());
            if state.accepts_next(e) {
                state.apply(e);
            } else {
                state = fold(&seen);
            }
            // Applying an event twice changes nothing.
            let again = { let mut s = state.clone(); if s.accepts_next(e) { s.apply(e); } else { s = fold(&seen); } s };
            prop_assert_eq!(&again, &state);
        }
        prop_assert_eq!(&state, &expected);
    }
}
