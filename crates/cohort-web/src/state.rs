use std::sync::Arc;

use cohort_engine::destinations::Dispatcher;
use cohort_engine::mail::Mail;
use cohort_engine::segments::model::RuleModel;
use cohort_engine::segments::Segments;
use cohort_store::Db;

/// What the pages need to know from the configuration.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// The URL browsers reach Cohort at (`https://cdp.example.com`); when
    /// empty, the `Host` of each request is used. An `https://` URL makes
    /// the cookies `Secure`.
    pub public_url: Option<String>,
}

/// Shared state of every page. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    db: Db,
    settings: WebSettings,
    /// The destinations key, outbound policy and HTTP client the pages
    /// manage destinations and send test conversions with. `None`: the
    /// destination pages say destinations are off.
    destinations: Option<Dispatcher>,
    /// Segment definitions, previews and membership reads.
    segments: Segments,
    /// Providers, sending domains, the outbox and bounce webhooks. `None`:
    /// the mail pages say mail is off.
    mail: Option<Mail>,
}

impl WebState {
    /// `destinations`: the server's dispatcher (the same key and outbound
    /// policy as the worker and the admin API), or `None` when off.
    pub fn new(db: Db, settings: WebSettings, destinations: Option<Dispatcher>) -> Self {
        Self::with_rule_model(db, settings, destinations, None)
    }

    /// As [`WebState::new`], reading natural-language segments with the
    /// operator's model too (`[nl]`).
    pub fn with_rule_model(
        db: Db,
        settings: WebSettings,
        destinations: Option<Dispatcher>,
        rule_model: Option<Arc<RuleModel>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                segments: Segments::new(db.clone()).with_model(rule_model),
                db,
                settings,
                destinations,
                mail: None,
            }),
        }
    }

    /// The same state with the server's mail service (the one its outbox
    /// worker and the admin API use).
    pub fn with_mail(self, mail: Mail) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.mail = Some(mail);
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn segments(&self) -> &Segments {
        &self.inner.segments
    }

    pub(crate) fn mail(&self) -> Option<&Mail> {
        self.inner.mail.as_ref()
    }

    pub(crate) fn destinations(&self) -> Option<&Dispatcher> {
        self.inner.destinations.as_ref()
    }

    pub(crate) fn public_url(&self) -> Option<&str> {
        self.inner.settings.public_url.as_deref()
    }
}
