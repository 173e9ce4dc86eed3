//! What a rule is evaluated on: one profile's facts, computed here from
//! the log's events through the domain's own profile fold (not from the
//! projection's tables), so that the naive evaluator is an independent
//! check of the SQL the store compiles.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::profile::{cluster_identities, ClusterState, Identity, LogEvent};

#[derive(Debug, Clone, PartialEq)]
pub struct ProfileFacts {
    pub profile_id: String,
    pub email: Option<String>,
    pub traits: Map<String, Value>,
    /// Tags currently set.
    pub tags: BTreeSet<String>,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    /// Orders that count as purchases (paid, not since cancelled/failed).
    pub purchases: Vec<PurchaseFact>,
    /// The profile's `track` events.
    pub events: Vec<EventFact>,
    pub rfm: Option<RfmFacts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseFact {
    /// When it was paid (else created).
    pub at_us: i64,
    /// Total net of refunds, in the order's currency.
    pub net_total: Decimal,
    pub lines: Vec<LineFact>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFact {
    pub product_id: Option<String>,
    pub sku: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventFact {
    pub name: String,
    pub at_us: i64,
    /// The event's `properties` (null when absent).
    pub properties: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmFacts {
    pub recency: i64,
    pub frequency: i64,
    pub monetary: i64,
    pub group: String,
}

/// The facts of every profile the events make: clusters found by shared
/// identities, each folded by [`ClusterState::fold`], events attributed to
/// the profile that holds them after every merge.
pub fn profile_facts(events: &[LogEvent]) -> Vec<ProfileFacts> {
    let mut out = Vec::new();
    for mut cluster in clusters(events) {
        let (state, placed, _) = ClusterState::fold(&mut cluster);
        let by_seq: BTreeMap<i64, &LogEvent> = cluster.iter().map(|e| (e.seq, e)).collect();
        let mut events_of: BTreeMap<String, Vec<EventFact>> = BTreeMap::new();
        for (seq, profile) in placed {
            let Some(e) = by_seq.get(&seq) else { continue };
            if e.message_type != "track" {
                continue;
            }
            let Some(name) = e.message.get("event").and_then(Value::as_str) else {
                continue;
            };
            events_of
                .entry(state.survivor(&profile).to_owned())
                .or_default()
                .push(EventFact {
                    name: name.to_owned(),
                    at_us: e.timestamp_us,
                    properties: e.message.get("properties").cloned().unwrap_or(Value::Null),
                });
        }
        for (id, p) in &state.profiles {
            let Some(view) = state.view(id) else { continue };
            let purchases = state
                .orders
                .values()
                .filter(|o| state.survivor(&o.profile) == id && o.counts_as_purchase())
                .map(|o| PurchaseFact {
                    at_us: o.paid_at_us().unwrap_or(o.order.created_at_us),
                    net_total: o.order.total - o.refunded_total(),
                    lines: o
                        .order
                        .line_items
                        .iter()
                        .map(|l| LineFact {
                            product_id: l.product_id.clone(),
                            sku: l.sku.clone(),
                            category: l.category.clone(),
                        })
                        .collect(),
                })
                .collect();
            out.push(ProfileFacts {
                profile_id: id.clone(),
                email: view.email,
                traits: view.traits,
                tags: view.tags.into_iter().collect(),
                first_seen_us: p.first_seen_us,
                last_seen_us: p.last_seen_us,
                purchases,
                events: events_of.remove(id).unwrap_or_default(),
                rfm: None,
            });
        }
    }
    out.sort_by(|a, b| a.profile_id.cmp(&b.profile_id));
    out
}

/// Events grouped by shared identities (union–find over the identities
/// each event names). Events naming none (catalogue) are left out.
fn clusters(events: &[LogEvent]) -> Vec<Vec<LogEvent>> {
    let mut parent: Vec<usize> = (0..events.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_with: BTreeMap<Identity, usize> = BTreeMap::new();
    let mut named = vec![false; events.len()];
    for (i, e) in events.iter().enumerate() {
        for id in cluster_identities(e) {
            named[i] = true;
            match first_with.get(&id) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    first_with.insert(id, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<LogEvent>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if named[i] {
            let r = root(&mut parent, i);
            groups.entry(r).or_default().push(e.clone());
        }
    }
    groups.into_values().collect()
}
