//! A `TestApp`: the real router (the API and the pages, as `cohort serve`
//! serves them) over a real database (one per backend). cohort-web's tests
//! share this file.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine;
use cohort_api::{ApiSettings, AppState};
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_testkit::{Seeded, TestDb};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The model client as the state holds it.
pub type RuleModel = std::sync::Arc<cohort_engine::segments::model::RuleModel>;

pub struct TestApp {
    pub t: TestDb,
    pub router: Router,
    pub a: Seeded,
    pub b: Seeded,
    /// The router's state (background workers under test share it).
    pub state: AppState,
    /// The mail service the routes use: its outbox folder is `mail_dir`.
    pub mail: cohort_engine::mail::Mail,
    pub mail_dir: tempfile::TempDir,
    /// The writer tasks: dropping a JoinSet aborts them.
    _writer: tokio::task::JoinSet<()>,
    _projector: AbortOnDrop,
}

/// The projector task, stopped with the app.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TestApp {
    pub async fn on(t: TestDb) -> Self {
        Self::with_settings(t, ApiSettings::default()).await
    }

    pub async fn with_settings(t: TestDb, settings: ApiSettings) -> Self {
        Self::with_writer(t, settings, WriterOptions::default()).await
    }

    pub async fn with_writer(t: TestDb, settings: ApiSettings, writer: WriterOptions) -> Self {
        Self::build(t, settings, writer, None, None).await
    }

    /// With the operator's model for natural-language segments (`[nl]`).
    pub async fn with_rule_model(t: TestDb, model: RuleModel) -> Self {
        Self::build(
            t,
            ApiSettings::default(),
            WriterOptions::default(),
            None,
            Some(model),
        )
        .await
    }

    /// With the destinations dispatcher, and so the secrets key `key`, enabled;
    /// the app's outbound policy is the dispatcher's, as in `cohort serve`.
    pub async fn with_destinations(
        t: TestDb,
        key: cohort_store::destinations::SecretsKey,
        options: cohort_engine::destinations::DispatcherOptions,
    ) -> Self {
        let settings = ApiSettings {
            outbound: cohort_engine::outbound::OutboundPolicy {
                allow_private_addresses: options.allow_private_addresses,
            },
            ..ApiSettings::default()
        };
        Self::build(
            t,
            settings,
            WriterOptions::default(),
            Some((key, options)),
            None,
        )
        .await
    }

    async fn build(
        t: TestDb,
        settings: ApiSettings,
        writer: WriterOptions,
        destinations: Option<(
            cohort_store::destinations::SecretsKey,
            cohort_engine::destinations::DispatcherOptions,
        )>,
        rule_model: Option<RuleModel>,
    ) -> Self {
        let a = cohort_testkit::seed(&t.db, "Org A").await;
        let b = cohort_testkit::seed(&t.db, "Org B").await;
        let (writer, tasks) = EventWriter::start(t.db.clone(), writer);
        let dispatcher = destinations.map(|(key, options)| {
            cohort_engine::destinations::Dispatcher::new(t.db.clone(), key, options)
                .expect("dispatcher")
        });
        let (mail, mail_dir) = test_mail(&t.db, dispatcher.as_ref());
        let (state, router) = whole_app(&t.db, writer, settings, dispatcher, rule_model, &mail);
        let projector = cohort_store::projection::Projector::new(t.db.clone())
            .spawn(std::time::Duration::from_millis(20));
        Self {
            t,
            router,
            a,
            b,
            state,
            mail,
            mail_dir,
            _writer: tasks,
            _projector: AbortOnDrop(projector),
        }
    }

    /// With destinations on: `dispatcher` (its key and outbound policy)
    /// serves the destination routes and pages.
    pub async fn with_dispatcher(
        t: TestDb,
        dispatcher: impl FnOnce(&cohort_store::Db) -> cohort_engine::destinations::Dispatcher,
    ) -> Self {
        let a = cohort_testkit::seed(&t.db, "Org A").await;
        let b = cohort_testkit::seed(&t.db, "Org B").await;
        let (writer, tasks) = EventWriter::start(t.db.clone(), WriterOptions::default());
        let dispatcher = Some(dispatcher(&t.db));
        let (mail, mail_dir) = test_mail(&t.db, dispatcher.as_ref());
        let (state, router) = whole_app(
            &t.db,
            writer,
            ApiSettings::default(),
            dispatcher,
            None,
            &mail,
        );
        let projector = cohort_store::projection::Projector::new(t.db.clone())
            .spawn(std::time::Duration::from_millis(20));
        Self {
            t,
            router,
            a,
            b,
            state,
            mail,
            mail_dir,
            _writer: tasks,
            _projector: AbortOnDrop(projector),
        }
    }

    pub fn backend(&self) -> &'static str {
        self.t.backend().as_str()
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// POSTs `body` to `path` with the write key of org A in Basic auth.
    pub async fn post(&self, path: &str, body: impl Into<Body>) -> Answer {
        self.send(
            Request::post(path)
                .header("authorization", basic(&self.a.source.write_key))
                .header("content-type", "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    /// GET on the admin API with org `who`'s token.
    pub async fn get_api(&self, who: &Seeded, path_and_query: &str) -> Answer {
        self.send(
            Request::get(path_and_query)
                .header("authorization", format!("Bearer {}", who.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Sends a request with org `who`'s API token.
    /// The status and JSON body (`null` when empty) of an admin API call.
    pub async fn api_json(
        &self,
        who: &Seeded,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let answer = self.api(who, method, path, body).await;
        let json = if answer.body.is_empty() {
            Value::Null
        } else {
            answer.json()
        };
        (answer.status, json)
    }

    pub async fn api(&self, who: &Seeded, method: &str, path: &str, body: Option<Value>) -> Answer {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", who.token))
            .header("content-type", "application/json");
        let body = body
            .map(|b| Body::from(b.to_string()))
            .unwrap_or_else(Body::empty);
        self.send(builder.body(body).unwrap()).await
    }

    /// Waits until the projection has read every event in the log.
    pub async fn projected(&self) {
        for _ in 0..1000 {
            let (cursor, last) = self.t.db.projection_position().await.unwrap();
            if cursor >= last {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the projection did not catch up within 10 s");
    }

    pub async fn count(&self, who: &Seeded) -> i64 {
        self.t.db.count_events(&who.org).await.unwrap()
    }

    /// All events of org `who`, oldest first, through the admin API.
    pub async fn events(&self, who: &Seeded) -> Vec<Value> {
        let answer = self.get_api(who, "/api/v1/events?limit=1000").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()["data"].as_array().unwrap().clone()
    }
}

/// The app as `cohort serve` wires it: the API with the pages
/// (`cohort-web`) beside it, sharing the database and the dispatcher.
fn whole_app(
    db: &cohort_store::Db,
    writer: EventWriter,
    settings: ApiSettings,
    dispatcher: Option<cohort_engine::destinations::Dispatcher>,
    rule_model: Option<RuleModel>,
    mail: &cohort_engine::mail::Mail,
) -> (AppState, Router) {
    let pages = cohort_web::router(
        cohort_web::WebState::with_rule_model(
            db.clone(),
            cohort_web::WebSettings {
                public_url: settings.public_url.clone(),
            },
            dispatcher.clone(),
            rule_model.clone(),
        )
        .with_mail(mail.clone()),
    );
    let mut state = AppState::new(db.clone(), writer, settings)
        .with_rule_model(rule_model)
        .with_mail(mail.clone());
    if let Some(dispatcher) = dispatcher {
        state = state.with_destinations(dispatcher);
    }
    (state.clone(), cohort_api::router_with_pages(state, pages))
}

/// The mail service of a test app: the outbox folder in a fresh temporary
/// directory, the destinations' key when there is one (as `cohort serve`).
fn test_mail(
    db: &cohort_store::Db,
    dispatcher: Option<&cohort_engine::destinations::Dispatcher>,
) -> (cohort_engine::mail::Mail, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("mail dir");
    let key = dispatcher
        .map(|d| d.key().clone())
        .unwrap_or_else(cohort_store::destinations::SecretsKey::generate);
    let mail = cohort_engine::mail::Mail::new(
        db.clone(),
        key,
        cohort_engine::mail::MailSettings::folder(dir.path(), "Blue Mugs <news@bluemugs.example>"),
    )
    .expect("mail service");
    (mail, dir)
}

/// A page with the escapes of `/` and `'` undone (minijinja escapes
/// both); `<`, `>`, `&` and `"` stay escaped.
pub fn readable(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&#x27;", "'")
}

pub fn basic(write_key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"))
    )
}

pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/segment-everflow/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub async fn apps() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for t in cohort_testkit::all_backends().await {
        apps.push(TestApp::on(t).await);
    }
    apps
}

/// Settings whose outbound policy reaches the stand-ins on 127.0.0.1.
pub fn allowing_private_addresses() -> ApiSettings {
    ApiSettings {
        outbound: cohort_engine::outbound::OutboundPolicy::ALLOW_PRIVATE,
        ..ApiSettings::default()
    }
}

/// [`apps`] that may call stores on private addresses (the stand-ins).
pub async fn apps_allowing_private_addresses() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for t in cohort_testkit::all_backends().await {
        apps.push(TestApp::with_settings(t, allowing_private_addresses()).await);
    }
    apps
}
