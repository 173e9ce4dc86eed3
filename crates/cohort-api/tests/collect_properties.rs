//! Property tests: arbitrary JSON and arbitrary bytes on every collect
//! endpoint get `200` or a `4xx` with a JSON body — never a 5xx or a panic —
//! and a refused request stores nothing. Run on each backend.

mod common;

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use common::{basic, TestApp};
use proptest::prelude::*;
use serde_json::{Map, Value};

const PATHS: [&str; 16] = [
    "/v1/identify",
    "/v1/track",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/i",
    "/v1/t",
    "/v1/p",
    "/v1/s",
    "/v1/g",
    "/v1/a",
    "/v1/batch",
    "/v1/b",
    "/v1/import",
    "/v1/m",
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    apps: Vec<TestApp>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let apps = runtime.block_on(common::apps());
        Fixture { runtime, apps }
    })
}

/// JSON that looks like Segment messages often enough to reach deep
/// validation: known keys with arbitrary values.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 :.TZ+-]{0,24}".prop_map(Value::String),
        prop_oneof![
            Just("track"),
            Just("identify"),
            Just("page"),
            Just("screen"),
            Just("group"),
            Just("alias"),
            Just("2026-11-23T00:00:00Z"),
            Just("2026-11-23T00:00:00.123456+00:00")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type"),
        Just("userId"),
        Just("anonymousId"),
        Just("event"),
        Just("messageId"),
        Just("properties"),
        Just("traits"),
        Just("context"),
        Just("integrations"),
        Just("timestamp"),
        Just("sentAt"),
        Just("batch"),
        Just("groupId"),
        Just("previousId"),
        Just("writeKey"),
        Just("name"),
        Just("x"),
    ]
    .prop_map(str::to_owned)
}

fn check(path: &str, body: Vec<u8>, gzip_header: bool) -> Result<(), TestCaseError> {
    // The three properties run on parallel test threads against the same
    // organisation: one at a time, so that "stored nothing" is measurable.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let f = fixture();
    for app in &f.apps {
        f.runtime.block_on(async {
            let before = app.count(&app.a).await;
            let mut request =
                Request::post(path).header("authorization", basic(&app.a.source.write_key));
            if gzip_header {
                request = request.header("content-encoding", "gzip");
            }
            let answer = app
                .send(request.body(Body::from(body.clone())).unwrap())
                .await;
            let status = answer.status.as_u16();
            prop_assert!(
                status == 200 || (400..500).contains(&status),
                "{path}: {status} {}",
                answer.text()
            );
            let parsed: Result<Value, _> = serde_json::from_slice(&answer.body);
            prop_assert!(
                parsed.is_ok(),
                "{path}: body is not JSON: {}",
                answer.text()
            );
            if status != 200 {
                prop_assert_eq!(
                    app.count(&app.a).await,
                    before,
                    "{}: a refused request stored something",
                    path
                );
                prop_assert!(parsed.unwrap()["code"].is_string());
            }
            Ok(())
        })?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_on_every_endpoint(path in proptest::sample::select(PATHS.to_vec()), value in json_value()) {
        check(path, value.to_string().into_bytes(), false)?;
    }

    #[test]
    fn arbitrary_batches_of_arbitrary_messages(path in proptest::sample::select(vec!["/v1/batch", "/v1/b", "/v1/import"]),
                                               messages in proptest::collection::vec(json_value(), 0..6)) {
        let body = serde_json::json!({"batch": messages});
        check(path, body.to_string().into_bytes(), false)?;
    }

    #[test]
    fn arbitrary_bytes_on_every_endpoint(path in proptest::sample::select(PATHS.to_vec()),
                                         bytes in proptest::collection::vec(any::<u8>(), 0..256),
                                         gzip in any::<bool>()) {
        check(path, bytes, gzip)?;
    }
}
