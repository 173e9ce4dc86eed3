use std::sync::Arc;

use cohort_destinations::Dispatcher;
use cohort_domain::collect::Limits;
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
}

impl AppState {
    pub fn new(db: Db, writer: EventWriter, settings: ApiSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                sources: SourceCache::new(db.clone()),
                rate_limiter: RateLimiter::new(settings.rate_limit_per_source),
                db,
                writer,
                settings,
                destinations: None,
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

    pub(crate) fn destinations(&self) -> Option<&Dispatcher> {
        self.inner.destinations.as_ref()
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }
}
