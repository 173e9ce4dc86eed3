//! Profiles and orders as the API shows them, computed from a cluster's
//! state: traits with where they came from, identities, tags, metrics.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::commerce::{Cart, LineItem, Money, Refund};
use crate::time::{format_rfc3339, from_micros};

use super::fold::{ClusterState, MergeRecord, OrderState};

fn time(us: i64) -> String {
    format_rfc3339(from_micros(us))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityView {
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitSource {
    pub updated_at: String,
    pub source_id: String,
    pub message_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub order_count: u64,
    pub total_spent: Vec<Money>,
    pub average_order_value: Vec<Money>,
    pub first_order_at: Option<String>,
    pub last_order_at: Option<String>,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub last_email_open_at: Option<String>,
    pub last_email_click_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeView {
    pub profile_id: String,
    pub identities: Vec<String>,
    pub message_id: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileView {
    pub id: String,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub identities: Vec<IdentityView>,
    pub traits: Map<String, Value>,
    pub trait_sources: BTreeMap<String, TraitSource>,
    pub tags: Vec<String>,
    pub metrics: Metrics,
    pub cart: Option<Cart>,
    pub checkout: Option<Cart>,
    /// Profiles merged into this one: which ids showed they were one person,
    /// and in which event.
    pub merged_from: Vec<MergeView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub key: String,
    pub store: String,
    pub order_id: String,
    pub number: Option<String>,
    pub profile_id: String,
    pub status: String,
    pub currency: String,
    pub email: Option<String>,
    pub customer_id: Option<String>,
    pub line_items: Vec<LineItem>,
    pub subtotal: Money,
    pub discount_total: Money,
    pub shipping_total: Money,
    pub tax_total: Money,
    pub total: Money,
    pub refunded_total: Money,
    pub coupons: Vec<String>,
    pub refunds: Vec<Refund>,
    pub status_history: Vec<StatusChange>,
    pub paid: bool,
    pub created_at: String,
    pub paid_at: Option<String>,
    pub updated_at: String,
}

impl OrderView {
    pub fn from_state(key: &str, s: &OrderState) -> Self {
        let o = &s.order;
        let mut history: Vec<StatusChange> = s
            .statuses
            .iter()
            .map(|(status, at)| (at, status))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|(at, status)| StatusChange {
                status: status.clone(),
                at: time(*at),
            })
            .collect();
        history.dedup();
        OrderView {
            key: key.to_owned(),
            store: o.store.clone(),
            order_id: o.order_id.clone(),
            number: o.number.clone(),
            profile_id: s.profile.clone(),
            status: o.status.clone(),
            currency: o.currency.clone(),
            email: o.email.clone(),
            customer_id: o.customer_id.clone(),
            line_items: o.line_items.clone(),
            subtotal: o.money(o.subtotal),
            discount_total: o.money(o.discount_total),
            shipping_total: o.money(o.shipping_total),
            tax_total: o.money(o.tax_total),
            total: o.money(o.total),
            refunded_total: o.money(s.refunded_total()),
            coupons: o.coupons.clone(),
            refunds: s.refunds.values().cloned().collect(),
            status_history: history,
            paid: s.is_paid(),
            created_at: time(o.created_at_us),
            paid_at: s.paid_at_us().map(time),
            updated_at: time(o.modified_at_us),
        }
    }
}

/// Rounds an average to the currency's usual two decimals, half to even.
fn average(total: Decimal, count: u64) -> Decimal {
    if count == 0 {
        return Decimal::ZERO;
    }
    (total / Decimal::from(count))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
        .normalize()
}

impl ClusterState {
    /// The profile as the API shows it; `None` if the cluster has no such profile.
    pub fn view(&self, profile_id: &str) -> Option<ProfileView> {
        let p = self.profiles.get(profile_id)?;
        let mut traits = Map::new();
        let mut sources = BTreeMap::new();
        for (name, entry) in &p.traits {
            traits.insert(name.clone(), entry.value.clone());
            sources.insert(
                name.clone(),
                TraitSource {
                    updated_at: time(entry.at.timestamp_us),
                    source_id: entry.source_id.clone(),
                    message_id: entry.at.message_id.clone(),
                },
            );
        }
        let email = traits
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                p.identities
                    .iter()
                    .find(|i| i.kind() == super::identity::IdentityKind::Email)
                    .map(|i| i.value().to_owned())
            });

        // Purchases: paid orders not since cancelled, net of refunds.
        let mut spent: BTreeMap<String, (Decimal, u64)> = BTreeMap::new();
        let mut count = 0;
        let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
        for order in self
            .orders
            .values()
            .filter(|o| o.profile == profile_id && o.counts_as_purchase())
        {
            count += 1;
            let entry = spent.entry(order.order.currency.clone()).or_default();
            entry.0 += order.order.total - order.refunded_total();
            entry.1 += 1;
            let at = order.paid_at_us().unwrap_or(order.order.created_at_us);
            first = Some(first.map_or(at, |f| f.min(at)));
            last = Some(last.map_or(at, |l| l.max(at)));
        }
        let metrics = Metrics {
            order_count: count,
            total_spent: spent.iter().map(|(c, (t, _))| Money::new(*t, c)).collect(),
            average_order_value: spent
                .iter()
                .map(|(c, (t, n))| Money::new(average(*t, *n), c))
                .collect(),
            first_order_at: first.map(time),
            last_order_at: last.map(time),
            first_seen_at: time(p.first_seen_us),
            last_seen_at: time(p.last_seen_us),
            last_email_open_at: p.last_email_open_us.map(time),
            last_email_click_at: p.last_email_click_us.map(time),
        };
        Some(ProfileView {
            id: profile_id.to_owned(),
            user_id: p.user_id.clone(),
            email,
            identities: p
                .identities
                .iter()
                .map(|i| IdentityView {
                    kind: i.kind().as_str().to_owned(),
                    value: i.value().to_owned(),
                })
                .collect(),
            traits,
            trait_sources: sources,
            tags: p.active_tags().map(str::to_owned).collect(),
            metrics,
            cart: p.cart.as_ref().and_then(|c| c.value.clone()),
            checkout: p.checkout.as_ref().and_then(|c| c.value.clone()),
            merged_from: self.merges_into(profile_id),
        })
    }

    /// Every merge whose survivor is (now) this profile.
    fn merges_into(&self, profile_id: &str) -> Vec<MergeView> {
        let view = |m: &MergeRecord| MergeView {
            profile_id: m.from.clone(),
            identities: m.identities.iter().map(|i| i.key().to_owned()).collect(),
            message_id: m.message_id.clone(),
            at: time(m.at_us),
        };
        self.merges
            .iter()
            .filter(|m| self.survivor(&m.into) == profile_id)
            .map(view)
            .collect()
    }

    /// Follows merges from a profile id to the profile that holds it now.
    pub fn survivor<'a>(&'a self, mut profile_id: &'a str) -> &'a str {
        for _ in 0..=self.merges.len() {
            match self.merges.iter().find(|m| m.from == profile_id) {
                Some(m) => profile_id = &m.into,
                None => break,
            }
        }
        profile_id
    }
}
