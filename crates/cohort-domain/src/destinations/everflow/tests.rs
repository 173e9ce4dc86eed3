use serde_json::{json, Value};

use super::*;

fn settings(mapping: &[(&str, u64)]) -> EverflowSettings {
    EverflowSettings {
        tracking_domain: "https://www.abc123trk.com".into(),
        network_id: "115".into(),
        verification_token: Some("tok-secret".into()),
        advertiser_id: Some("7".into()),
        event_mapping: mapping.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        source_kind: SourceKind::All,
        attribution_window_days: DEFAULT_ATTRIBUTION_WINDOW_DAYS,
    }
}

/// The `Order Completed` that the real analytics-next 1.84.3 sent.
fn captured_order() -> Value {
    let text = include_str!("../../../../../../shared/fixtures/segment-everflow/browser-analytics-next-1.84.3.track-order-completed.body.json");
    serde_json::from_str(text).unwrap()
}

fn param<'a>(p: &'a Postback, name: &str) -> Option<&'a str> {
    p.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_base_conversion_has_no_adv_event_id_and_exact_amounts() {
    let p = build_postback(
        &settings(&[("Order Completed", 0)]),
        &captured_order(),
        None,
    )
    .unwrap();
    assert_eq!(param(&p, "nid"), Some("115"));
    assert_eq!(param(&p, "transaction_id"), Some("a1b2c3d4e5f6"));
    assert_eq!(param(&p, "adv_event_id"), None);
    assert_eq!(p.adv_event_id, None);
    assert_eq!(param(&p, "amount"), Some("27.5"));
    assert_eq!(param(&p, "order_id"), Some("ord_1001"));
    assert_eq!(param(&p, "coupon_code"), Some("SPRING10"));
    assert_eq!(
        param(&p, "http_user_agent"),
        captured_order()["context"]["userAgent"].as_str()
    );
    assert_eq!(
        param(&p, "order"),
        Some(r#"{"items":[{"name":"Blue T-Shirt","quantity":1,"sku":"SKU-1"}]}"#)
    );
    // The order of Everflow's documented postback.
    assert!(
        p.url.starts_with("https://www.abc123trk.com/?nid=115&transaction_id=a1b2c3d4e5f6&amount=27.5&order_id=ord_1001&coupon_code=SPRING10&"),
        "{}",
        p.url
    );
    assert!(p.url.contains("verification_token=tok-secret"));
    assert!(
        p.masked_url.contains("verification_token=***") && !p.masked_url.contains("tok-secret")
    );
}

#[test]
fn a_mapped_event_sends_its_adv_event_id() {
    let mut event = captured_order();
    event["event"] = json!("Purchase");
    let p = build_postback(
        &settings(&[("Order Completed", 0), ("Purchase", 24)]),
        &event,
        None,
    )
    .unwrap();
    assert_eq!(param(&p, "adv_event_id"), Some("24"));
    assert!(p.url.starts_with("https://www.abc123trk.com/?nid=115&transaction_id=a1b2c3d4e5f6&adv_event_id=24&amount=27.5&order_id=ord_1001"));
    event["event"] = json!("Product Viewed");
    assert_eq!(
        build_postback(&settings(&[("Order Completed", 0)]), &event, None),
        Err(Skip::NotMapped)
    );
}

#[test]
fn every_row_of_the_all_sources_table() {
    let mut e = captured_order();
    e["context"]["ip"] = json!("23.123.123.123");
    e["context"]["traits"] = json!({"email": "jane@example.com"});
    e["properties"]["adv1"] = json!("adv1test");
    e["properties"]["adv2"] = json!(42);
    e["properties"]["adv3"] = json!(true);
    e["properties"]["adv4"] = json!("x y");
    e["properties"]["adv5"] = json!(1.25);
    e["properties"]["affiliateId"] = json!(31);
    e["properties"]["coupon"] = json!(1234);
    e["properties"]["orderId"] = json!(123456789);
    e["properties"]["total"] = json!(76.0);
    e["properties"]["products"] = json!([{"sku": "A", "name": "One", "quantity": 2}, {"sku": "B", "name": "Two", "quantity": 1}]);
    let p = build_postback(&settings(&[("Order Completed", 0)]), &e, None).unwrap();
    for (name, value) in [
        ("conversion_user_ip", "23.123.123.123"),
        ("email", "jane@example.com"),
        ("adv1", "adv1test"),
        ("adv2", "42"),
        ("adv3", "true"),
        ("adv4", "x y"),
        ("adv5", "1.25"),
        ("coupon_code", "1234"),
        ("order_id", "123456789"),
        ("affiliate_id", "31"),
        ("amount", "76"),
    ] {
        assert_eq!(param(&p, name), Some(value), "{name}");
    }
    assert_eq!(
        param(&p, "order"),
        Some(
            r#"{"items":[{"name":"One","quantity":2,"sku":"A"},{"name":"Two","quantity":1,"sku":"B"}]}"#
        )
    );
    assert!(p.url.contains("email=jane%40example.com"), "{}", p.url);
    assert!(p.url.contains("adv4=x+y"));
}

#[test]
fn the_segment_docs_example_maps() {
    let text = include_str!("../../../../../../shared/fixtures/segment-everflow/segment-docs.everflow-destination.track.example.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    let p = build_postback(&settings(&[("Order Completed", 0)]), &doc["example"], None).unwrap();
    assert_eq!(
        param(&p, "transaction_id"),
        Some("<EF.getAdvertiserTransactionId(7)>")
    );
    assert_eq!(param(&p, "adv1"), Some("adv1test"));
    assert_eq!(param(&p, "adv3"), Some("adv3test"));
    assert_eq!(param(&p, "amount"), Some("76"));
    assert_eq!(param(&p, "order_id"), Some("123456789"));
    assert_eq!(param(&p, "conversion_user_ip"), Some("23.123.123.123"));
}

#[test]
fn the_transaction_id_falls_back_in_order() {
    let mut e = captured_order();
    e["context"]["referrer"] = json!({"type": "other", "id": "nope"});
    assert_eq!(
        transaction_id(&e, Some("from-profile")).as_deref(),
        Some("from-profile")
    );
    e["integrations"]["Everflow"] = json!({"transaction_id": "from-integrations"});
    assert_eq!(
        transaction_id(&e, Some("from-profile")).as_deref(),
        Some("from-integrations")
    );
    e["properties"]["transactionId"] = json!("camel");
    assert_eq!(transaction_id(&e, None).as_deref(), Some("camel"));
    e["properties"]["transaction_id"] = json!("snake");
    assert_eq!(transaction_id(&e, None).as_deref(), Some("snake"));
    e["context"]["referrer"] = json!({"type": "everflow", "id": "ref"});
    assert_eq!(transaction_id(&e, None).as_deref(), Some("ref"));

    let mut none = captured_order();
    none["context"].as_object_mut().unwrap().remove("referrer");
    assert_eq!(
        build_postback(&settings(&[("Order Completed", 0)]), &none, None),
        Err(Skip::NoTransactionId)
    );
    assert_eq!(Skip::NoTransactionId.to_string(), "no transaction id");
}

#[test]
fn wrong_types_are_reported_not_coerced() {
    for (path, value, field) in [
        (
            &["properties", "total"][..],
            json!("27.50"),
            "properties.total",
        ),
        (
            &["properties", "affiliateId"][..],
            json!("x"),
            "properties.affiliateId",
        ),
        (
            &["properties", "coupon"][..],
            json!(true),
            "properties.coupon",
        ),
        (&["context", "ip"][..], json!(12), "context.ip"),
        (
            &["properties", "adv2"][..],
            json!({"a": 1}),
            "properties.adv2",
        ),
    ] {
        let mut e = captured_order();
        let mut slot = &mut e;
        for key in &path[..path.len() - 1] {
            slot = &mut slot[*key];
        }
        slot[path[path.len() - 1]] = value;
        match build_postback(&settings(&[("Order Completed", 0)]), &e, None) {
            Err(Skip::WrongType { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let mut e = captured_order();
    e["properties"]["products"][0]["quantity"] = json!("one");
    let skip = build_postback(&settings(&[("Order Completed", 0)]), &e, None).unwrap_err();
    assert_eq!(
        skip.to_string(),
        "properties.products[0].quantity must be a number"
    );
}

#[test]
fn mobile_sources_map_every_row_and_require_ip_and_app_id() {
    let mut e = captured_order();
    e["context"]["ip"] = json!("10.1.2.3");
    e["context"]["app"] = json!({"namespace": "com.shop.app", "name": "Shop", "version": "3.2"});
    e["context"]["device"] =
        json!({"adTrackingEnabled": true, "manufacturer": "Apple", "model": "iPhone15,2"});
    e["context"]["network"] = json!({"carrier": "T-Mobile", "wifi": true});
    e["context"]["os"] = json!({"name": "iOS", "version": 17});
    e["context"]["location"] = json!({"latitude": 40.7128, "longitude": -74.006});
    let p = build_postback(&settings(&[("Order Completed", 0)]), &e, None).unwrap();
    for (name, value) in [
        ("conversion_user_ip", "10.1.2.3"),
        ("app_id", "com.shop.app"),
        ("app_name", "Shop"),
        ("app_version", "3.2"),
        ("limit_ad_tracking", "false"),
        ("device_make", "Apple"),
        ("device_model", "iPhone15,2"),
        ("carrier", "T-Mobile"),
        ("os", "iOS"),
        ("os_version", "17"),
        ("connection_type", "wifi"),
        ("latitude", "40.7128"),
        ("longitude", "-74.006"),
    ] {
        assert_eq!(param(&p, name), Some(value), "{name}");
    }

    let mut no_ip = e.clone();
    no_ip["context"].as_object_mut().unwrap().remove("ip");
    assert_eq!(
        build_postback(&settings(&[("Order Completed", 0)]), &no_ip, None),
        Err(Skip::Missing("context.ip"))
    );
    let mut no_app_id = e.clone();
    no_app_id["context"]["app"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    assert_eq!(
        build_postback(&settings(&[("Order Completed", 0)]), &no_app_id, None),
        Err(Skip::Missing("context.app.namespace"))
    );
    // A mobile-only destination applies the rules to web events too.
    let mut mobile = settings(&[("Order Completed", 0)]);
    mobile.source_kind = SourceKind::Mobile;
    assert_eq!(
        build_postback(&mobile, &captured_order(), None),
        Err(Skip::Missing("context.ip"))
    );
}

#[test]
fn settings_are_validated_with_the_field_named() {
    let mut s = settings(&[("Order Completed", 0)]);
    assert!(s.validate().is_ok());
    s.tracking_domain = "abc123trk".into();
    assert_eq!(s.validate().unwrap_err().0, "tracking_domain");
    s = settings(&[("Order Completed", 0)]);
    s.network_id = "n1".into();
    assert_eq!(s.validate().unwrap_err().0, "network_id");
    s = settings(&[]);
    assert_eq!(s.validate().unwrap_err().0, "event_mapping");
}

#[test]
fn the_profile_transaction_id_counts_only_within_the_window() {
    let day = 86_400_000_000_i64;
    let event = 100 * day;
    let id = json!("ef-profile-1");
    assert_eq!(
        profile_transaction_id(Some(&id), Some(event - 29 * day), event, 30).as_deref(),
        Some("ef-profile-1")
    );
    assert_eq!(
        profile_transaction_id(Some(&id), Some(event - 31 * day), event, 30),
        None,
        "older than the window"
    );
    assert_eq!(
        profile_transaction_id(Some(&id), Some(event + 60_000_000), event, 30).as_deref(),
        Some("ef-profile-1"),
        "clock skew"
    );
    assert_eq!(
        profile_transaction_id(Some(&id), Some(event + day), event, 30),
        None,
        "a click after the conversion"
    );
    assert_eq!(
        profile_transaction_id(Some(&json!("  ")), Some(event), event, 30),
        None
    );
    assert_eq!(profile_transaction_id(Some(&id), None, event, 30), None);
    // The event's own id wins over the profile's.
    let mut order = captured_order();
    let own = build_postback(
        &settings(&[("Order Completed", 0)]),
        &order,
        Some("ef-profile-1"),
    )
    .unwrap();
    assert_eq!(param(&own, "transaction_id"), Some("a1b2c3d4e5f6"));
    order["context"].as_object_mut().unwrap().remove("referrer");
    let fallback = build_postback(
        &settings(&[("Order Completed", 0)]),
        &order,
        Some("ef-profile-1"),
    )
    .unwrap();
    assert_eq!(param(&fallback, "transaction_id"), Some("ef-profile-1"));
}

#[test]
fn the_field_preview_shows_what_the_postback_sends() {
    let s = settings(&[("Order Completed", 0)]);
    let mut order = captured_order();
    order["properties"]["adv1"] = json!(["not", "scalar"]);
    let rows = preview_fields(&s, &order);
    let adv1 = rows.iter().find(|r| r.parameter == "adv1").unwrap();
    assert!(matches!(&adv1.value, FieldValue::WrongType(_)), "{adv1:?}");
    order["properties"].as_object_mut().unwrap().remove("adv1");
    let p = build_postback(&s, &order, None).unwrap();
    let rows = preview_fields(&s, &order);
    assert_eq!(
        rows.iter().filter(|r| !r.mobile).count(),
        15,
        "the seed's All Sources table has 15 rows"
    );
    assert_eq!(
        rows.iter().filter(|r| r.mobile).count(),
        13,
        "and its Mobile Sources table 13"
    );
    for r in rows
        .iter()
        .filter(|r| !r.mobile && !r.parameter.starts_with("order_line_items"))
    {
        match &r.value {
            FieldValue::Sends(v) => {
                assert_eq!(param(&p, &r.parameter), Some(v.as_str()), "{}", r.parameter)
            }
            FieldValue::Missing => assert_eq!(param(&p, &r.parameter), None, "{}", r.parameter),
            other => panic!("{}: {other:?}", r.parameter),
        }
    }
    assert!(
        rows.iter()
            .filter(|r| r.mobile)
            .all(|r| r.value == FieldValue::NotMobile),
        "a web event sends no mobile field"
    );
    let sku = rows
        .iter()
        .find(|r| r.parameter == "order_line_items[i].sku")
        .unwrap();
    let order_param: Value = serde_json::from_str(param(&p, "order").unwrap()).unwrap();
    let skus: Vec<&str> = order_param["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["sku"].as_str())
        .collect();
    assert_eq!(sku.value, FieldValue::Sends(skus.join(", ")));
}
