use super::*;
use proptest::prelude::*;
use serde_json::json;

fn at(text: &str) -> DateTime<Utc> {
    parse_rfc3339(text).unwrap()
}

fn batch(body: Value, received: &str) -> Result<ParsedRequest, CollectError> {
    normalize_request(
        body.to_string().as_bytes(),
        Envelope::Batch,
        at(received),
        &Limits::default(),
    )
}

fn single(t: MessageType, body: Value) -> Result<ParsedRequest, CollectError> {
    normalize_request(
        body.to_string().as_bytes(),
        Envelope::Single(t),
        at("2024-05-01T12:00:00Z"),
        &Limits::default(),
    )
}

/// The derived cases in ../shared/fixtures/segment-everflow/derived.timestamp-correction.examples.json.
#[test]
fn timestamps_are_corrected_as_the_fixture_says() {
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../../../../shared/fixtures/segment-everflow/derived.timestamp-correction.examples.json"
    ))
    .unwrap();
    let mut checked = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let received = case["server_receivedAt"].as_str().unwrap();
        if let Some(input) = case.get("input") {
            let mut message = input.as_object().unwrap().clone();
            message.insert("userId".into(), json!("u1"));
            message.insert("event".into(), json!("E"));
            let parsed = normalize_request(
                Value::Object(message).to_string().as_bytes(),
                Envelope::Single(MessageType::Track),
                at(received),
                &Limits::default(),
            )
            .unwrap();
            let m = &parsed.messages[0].message;
            for (key, expected) in case["expected"].as_object().unwrap() {
                let got = m.get(key).and_then(Value::as_str).map(at);
                assert_eq!(
                    got,
                    Some(at(expected.as_str().unwrap())),
                    "{} {key}",
                    case["name"]
                );
            }
            checked += 1;
        } else {
            let mut input = case["input_batch"].clone();
            for message in input["batch"].as_array_mut().unwrap() {
                message["type"] = json!("track");
                message["event"] = json!("E");
                message["userId"] = json!("u1");
            }
            let parsed = batch(input, received).unwrap();
            let got: Vec<String> = parsed
                .messages
                .iter()
                .map(|m| format_rfc3339(m.timestamp))
                .collect();
            let expected: Vec<String> = case["expected_timestamps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(got, expected, "{}", case["name"]);
            checked += 1;
        }
    }
    assert_eq!(checked, 5);
}

#[test]
fn captured_python_batch_is_accepted_with_null_ids_dropped() {
    let body = include_str!(
        "../../../../../../shared/fixtures/segment-everflow/python-analytics-python-2.4.0.batch.body.json"
    );
    let parsed = normalize_request(
        body.as_bytes(),
        Envelope::Batch,
        at("2026-11-23T00:10:52.240Z"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(parsed.messages.len(), 4);
    let identify = &parsed.messages[0];
    assert_eq!(identify.message_type, MessageType::Identify);
    assert_eq!(identify.user_id.as_deref(), Some("user_123"));
    assert_eq!(identify.anonymous_id, None);
    assert!(!identify.message.contains_key("anonymousId"));
    assert_eq!(identify.email.as_deref(), Some("jane@example.com"));
    assert_eq!(parsed.messages[1].event.as_deref(), Some("Order Completed"));
}

#[test]
fn captured_browser_messages_drop_write_key_and_metadata() {
    let body = include_str!(
        "../../../../../../shared/fixtures/segment-everflow/browser-analytics-next-1.84.3.track-order-completed.body.json"
    );
    let parsed = normalize_request(
        body.as_bytes(),
        Envelope::Single(MessageType::Track),
        at("2026-11-23T00:11:11.900Z"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(parsed.write_key_in_body.as_deref(), Some("WK_BROWSER_TEST"));
    let m = &parsed.messages[0];
    assert!(!m.message.contains_key("writeKey"));
    assert!(!m.message.contains_key("_metadata"));
    assert_eq!(
        m.message_id,
        "ajs-next-1795392671777-27128ec7-aad7-4ba5-83e6-563ba9333cdc"
    );
    // sent 4 ms after the event, received at .900: the event happened at .896
    assert_eq!(format_rfc3339(m.timestamp), "2026-11-23T00:11:11.896Z");
    assert_eq!(
        m.message["originalTimestamp"],
        json!("2026-11-23T00:11:11.777Z")
    );
}

#[test]
fn batch_context_and_sent_at_apply_to_messages_that_lack_them() {
    let parsed = batch(
        json!({
            "context": {"library": {"name": "x", "version": "1"}, "ip": "1.2.3.4"},
            "integrations": {"All": true},
            "sentAt": "2024-05-01T12:00:10Z",
            "batch": [
                {"type": "track", "event": "A", "userId": "u", "timestamp": "2024-05-01T12:00:00Z",
                 "context": {"ip": "9.9.9.9", "library": {"name": "own"}}},
                {"type": "identify", "anonymousId": 42, "traits": {"email": " Jane@Example.COM "}}
            ]
        }),
        "2024-05-01T12:00:10Z",
    )
    .unwrap();
    let first = &parsed.messages[0].message;
    assert_eq!(first["context"]["ip"], json!("9.9.9.9"));
    assert_eq!(
        first["context"]["library"],
        json!({"name": "own", "version": "1"})
    );
    assert_eq!(first["integrations"], json!({"All": true}));
    assert_eq!(first["sentAt"], json!("2024-05-01T12:00:10Z"));
    let second = &parsed.messages[1];
    assert_eq!(second.anonymous_id.as_deref(), Some("42"));
    assert_eq!(second.email.as_deref(), Some("jane@example.com"));
    assert_eq!(second.message["context"]["ip"], json!("1.2.3.4"));
}

#[test]
fn errors_name_the_exact_field() {
    let cases = [
        (
            json!({"batch": [{"type": "track", "userId": "u", "event": "A"}, {"type": "track", "userId": "u"}]}),
            "batch[1].event",
        ),
        (
            json!({"batch": [{"type": "nope", "userId": "u"}]}),
            "batch[0].type",
        ),
        (json!({"batch": [{"type": "page"}]}), "batch[0].userId"),
        (
            json!({"batch": [{"type": "page", "userId": true}]}),
            "batch[0].userId",
        ),
        (
            json!({"batch": [{"type": "group", "userId": "u"}]}),
            "batch[0].groupId",
        ),
        (
            json!({"batch": [{"type": "alias", "userId": "u"}]}),
            "batch[0].previousId",
        ),
        (
            json!({"batch": [{"type": "alias", "anonymousId": "a", "previousId": "p"}]}),
            "batch[0].userId",
        ),
        (
            json!({"batch": [{"type": "track", "userId": "u", "event": "A", "properties": [1]}]}),
            "batch[0].properties",
        ),
        (
            json!({"batch": [{"type": "identify", "userId": "u", "messageId": "x".repeat(101)}]}),
            "batch[0].messageId",
        ),
        (json!({"batch": ["nope"]}), "batch[0]"),
        (json!({"batch": {}}), "batch"),
        (json!({}), "batch"),
        (json!({"batch": [], "context": 3}), "context"),
    ];
    for (body, field) in cases {
        let err = batch(body.clone(), "2024-05-01T12:00:00Z").unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field), "{body}: {err:?}");
    }
}

#[test]
fn limits_are_enforced_with_the_index() {
    let big = "x".repeat(33 * 1024);
    let err = batch(
        json!({"batch": [{"type": "identify", "userId": "u"}, {"type": "identify", "userId": "u", "traits": {"big": big}}]}),
        "2024-05-01T12:00:00Z",
    )
    .unwrap_err();
    assert_eq!(err.code, super::super::CollectErrorCode::PayloadTooLarge);
    assert_eq!(err.field.as_deref(), Some("batch[1]"));

    let many: Vec<Value> = (0..2501)
        .map(|_| json!({"type": "page", "userId": "u"}))
        .collect();
    let err = batch(json!({ "batch": many }), "2024-05-01T12:00:00Z").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("batch"));
    assert_eq!(err.code, super::super::CollectErrorCode::PayloadTooLarge);
}

#[test]
fn unparseable_times_fall_back_with_a_note() {
    let parsed = single(
        MessageType::Track,
        json!({"userId": "u", "event": "A", "timestamp": "2015-2-02T00:30:08.276Z"}),
    )
    .unwrap();
    let m = &parsed.messages[0];
    assert_eq!(m.timestamp, at("2024-05-01T12:00:00Z"));
    assert_eq!(m.notes.len(), 1);
    assert!(m.notes[0].contains("timestamp"));
}

#[test]
fn a_missing_message_id_is_assigned_and_the_path_type_wins() {
    let parsed = single(
        MessageType::Page,
        json!({"anonymousId": "a", "type": "track"}),
    )
    .unwrap();
    let m = &parsed.messages[0];
    assert_eq!(m.message_type, MessageType::Page);
    assert!(m.message_id.starts_with("cohort-"));
    assert_eq!(m.message["messageId"], json!(m.message_id));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for envelope in [Envelope::Batch, Envelope::Single(MessageType::Track)] {
            let _ = normalize_request(&bytes, envelope, at("2024-05-01T12:00:00Z"), &Limits::default());
        }
    }

    #[test]
    fn accepted_messages_always_carry_an_id_and_a_time(
        user in proptest::option::of("[a-z0-9]{0,8}"),
        anon in proptest::option::of("[a-z0-9]{0,8}"),
        ts in proptest::option::of("[0-9T:.Z+-]{0,30}"),
    ) {
        let body = json!({"userId": user, "anonymousId": anon, "timestamp": ts, "event": "E"});
        if let Ok(parsed) = single(MessageType::Track, body) {
            let m = &parsed.messages[0];
            prop_assert!(m.user_id.is_some() || m.anonymous_id.is_some());
            prop_assert!(!m.message_id.is_empty());
            prop_assert!(m.message.contains_key("timestamp"));
        }
    }
}
