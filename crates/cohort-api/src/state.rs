use std::sync::Arc;

use cohort_domain::collect::Limits;
use cohort_engine::destinations::Dispatcher;
use cohort_engine::mail::Mail;
use cohort_engine::outbound::OutboundPolicy;
use cohort_engine::segments::model::RuleModel;
use cohort_engine::store_discounts::{StoreClient, STORE_TIMEOUT};
use cohort_store::writer::EventWriter;
use cohort_store::Db;

use crate::collect::rate_limit::RateLimiter;
use crate::collect::sources::SourceCache;

/// What the HTTP edge needs to know from the configuration.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    /// The URL browsers reach Cohort at (`https://cdp.example.com`); when
    /// empty, the `Host` of each request is used.
    pub public_url: Option<String>,
    pub limits: Limits,
    /// Events per second one source may send; 0 means no limit.
    pub rate_limit_per_source: u32,
    /// What the stores called from a request (discounts) and the store URLs
    /// operators give may be: the server's one outbound policy.
    pub outbound: OutboundPolicy,
}

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: Db,
    pub writer: EventWriter,
    pub sources: SourceCache,
    pub rate_limiter: RateLimiter,
    pub settings: ApiSettings,
    /// Destinations: the secrets key, the outbound-address policy and the
    /// HTTP client test conversions are sent with. `None`: the destination
    /// routes answer 503.
    pub destinations: Option<Dispatcher>,
    /// Calls a connected store's discount endpoints; `None` (the client
    /// could not be built, logged): the discount routes answer 503.
    pub store_client: Option<StoreClient>,
    /// The operator's model for natural-language segments (`[nl]`).
    pub rule_model: Option<Arc<RuleModel>>,
    /// The outbox, providers and sending domains; `None`: the mail routes
    /// answer 503.
    pub mail: Option<Mail>,
}

impl AppState {
    pub fn new(db: Db, writer: EventWriter, settings: ApiSettings) -> Self {
        let store_client = StoreClient::new(settings.outbound, STORE_TIMEOUT)
            .inspect_err(
                |error| tracing::error!(%error, "the store HTTP client could not be built"),
            )
            .ok();
        Self {
            inner: Arc::new(Inner {
                sources: SourceCache::new(db.clone()),
                rate_limiter: RateLimiter::new(settings.rate_limit_per_source),
                db,
                writer,
                settings,
                destinations: None,
                store_client,
                rule_model: None,
                mail: None,
            }),
        }
    }

    /// Enables the destination routes with the server's dispatcher (the
    /// same key and outbound policy as the worker). Call before cloning.
    pub fn with_destinations(mut self, dispatcher: Dispatcher) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.destinations = Some(dispatcher),
            None => tracing::error!(
                "AppState::with_destinations called on a shared state; destinations stay off"
            ),
        }
        self
    }

    /// Reads natural-language segments with `model` too. Call before
    /// cloning.
    pub fn with_rule_model(mut self, model: Option<Arc<RuleModel>>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.rule_model = model,
            None => tracing::error!(
                "AppState::with_rule_model called on a shared state; the model stays off"
            ),
        }
        self
    }

    /// Enables the mail routes with the server's mail service (the same
    /// secrets key and transport as the outbox worker). Call before cloning.
    pub fn with_mail(mut self, mail: Mail) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.mail = Some(mail),
            None => tracing::error!("AppState::with_mail called on a shared state; mail stays off"),
        }
        self
    }

    pub(crate) fn mail(&self) -> Option<&Mail> {
        self.inner.mail.as_ref()
    }

    pub(crate) fn rule_model(&self) -> Option<Arc<RuleModel>> {
        self.inner.rule_model.clone()
    }

    pub(crate) fn destinations(&self) -> Option<&Dispatcher> {
        self.inner.destinations.as_ref()
    }

    pub(crate) fn public_url(&self) -> Option<&str> {
        self.inner.settings.public_url.as_deref()
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The event writer the routes append with (background work started
    /// beside the router shares it).
    pub fn writer(&self) -> &EventWriter {
        &self.inner.writer
    }
}
