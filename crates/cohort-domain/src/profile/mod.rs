//! Profiles: who the events are about. Identity resolution, traits, tags,
//! carts and orders are a projection of the event log, computed per
//! *cluster* (the events linked by shared identities) by a fold over the
//! cluster's events in their own time order. The rules are written down in
//! `docs/IDENTITY.md`.

mod derive;
mod fold;
pub mod identity;
pub mod interpret;
mod view;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use derive::{derived_events, derived_id, DerivedEvent};
pub use fold::{
    profile_id, Applied, ClusterState, MergeRecord, OrderState, ProfileState, Stamped, TagEntry,
    TraitEntry, TAG_IN_CART, TAG_IN_CHECKOUT,
};
pub use identity::{Identity, IdentityKind};
pub use view::{
    IdentityView, MergeView, Metrics, OrderView, ProfileView, StatusChange, TraitSource,
};

/// An event as the projection reads it from the log.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub seq: i64,
    pub source_id: String,
    pub message_id: String,
    pub message_type: String,
    pub timestamp_us: i64,
    pub message: Value,
}

impl LogEvent {
    pub fn key(&self) -> EventKey {
        EventKey {
            timestamp_us: self.timestamp_us,
            message_id: self.message_id.clone(),
        }
    }

    /// Cohort derived this event itself (an order's state change).
    pub fn is_derived(&self) -> bool {
        self.message
            .pointer("/context/cohort/derived")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The order of events for every "latest wins" rule: their (corrected)
/// `timestamp`, then `messageId` to break ties the same way everywhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventKey {
    pub timestamp_us: i64,
    pub message_id: String,
}

/// All the identities (person and link) an event names, for finding its
/// cluster.
pub fn cluster_identities(event: &LogEvent) -> Vec<Identity> {
    let it = interpret::interpret(event);
    let mut ids = it.identities;
    ids.extend(it.links);
    ids
}
