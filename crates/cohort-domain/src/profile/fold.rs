//! The projection of one identity cluster: a left fold over its events in
//! `(timestamp, messageId)` order. Because the order is the events' own,
//! not their arrival, the same set of events always folds to the same
//! profiles, whatever order they arrived in. Appending an event later than
//! every folded one is the fold's next step; anything else refolds.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::commerce::{Cart, Order, Product, Refund, PAID_STATUSES};

use super::derive::{derived_events, DerivedEvent};
use super::identity::Identity;
use super::interpret::{interpret, Commerce, Interpretation};
use super::{EventKey, LogEvent};

/// Tags Cohort maintains from cart, checkout and order events.
pub const TAG_IN_CART: &str = "ecommerce.in_cart";
pub const TAG_IN_CHECKOUT: &str = "ecommerce.in_checkout";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The latest event folded (derived events excepted).
    pub last_key: Option<EventKey>,
    /// Which profile owns each person identity.
    pub owners: BTreeMap<Identity, String>,
    pub profiles: BTreeMap<String, ProfileState>,
    /// Orders by `store/order_id`.
    pub orders: BTreeMap<String, OrderState>,
    pub merges: Vec<MergeRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    /// The event that created the profile; the profile id derives from it.
    pub created: EventKey,
    pub user_id: Option<String>,
    pub identities: BTreeSet<Identity>,
    pub traits: BTreeMap<String, TraitEntry>,
    pub tags: BTreeMap<String, TagEntry>,
    pub cart: Option<Stamped<Cart>>,
    pub checkout: Option<Stamped<Cart>>,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    pub last_email_open_us: Option<i64>,
    pub last_email_click_us: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitEntry {
    pub value: Value,
    pub at: EventKey,
    pub source_id: String,
}

/// A tag's last change: set or cleared, and by which event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEntry {
    pub on: bool,
    pub at: EventKey,
}

/// A value with the event that last set it (`None` value: cleared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub value: Option<T>,
    pub at: EventKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// The latest snapshot, by `(modified_at, key)`.
    pub order: Order,
    pub at: EventKey,
    pub profile: String,
    /// When each status was first reached (µs).
    pub statuses: BTreeMap<String, i64>,
    /// Every refund ever listed, by id.
    pub refunds: BTreeMap<String, Refund>,
    /// When each refund was first seen (µs; WooCommerce's order JSON does
    /// not date its refunds).
    #[serde(default)]
    pub refunds_seen_us: BTreeMap<String, i64>,
    /// From WooCommerce resources (Cohort derives its order events) rather
    /// than from the store's own Segment order events.
    pub from_resource: bool,
}

impl OrderState {
    pub fn is_paid(&self) -> bool {
        PAID_STATUSES.iter().any(|s| self.statuses.contains_key(*s))
    }

    /// Counts as a purchase: paid, and not since cancelled or failed.
    pub fn counts_as_purchase(&self) -> bool {
        self.is_paid() && !matches!(self.order.status.as_str(), "cancelled" | "failed" | "trash")
    }

    pub fn refunded_total(&self) -> Decimal {
        self.refunds.values().map(|r| r.amount).sum()
    }

    /// When it was paid: WooCommerce's `date_paid`, else when a paid
    /// status was first seen.
    pub fn paid_at_us(&self) -> Option<i64> {
        if !self.is_paid() {
            return None;
        }
        self.order.paid_at_us.or_else(|| {
            PAID_STATUSES
                .iter()
                .filter_map(|s| self.statuses.get(*s).copied())
                .min()
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRecord {
    pub from: String,
    pub into: String,
    /// The identities of the event that showed the two were one person.
    pub identities: Vec<Identity>,
    pub message_id: String,
    pub at_us: i64,
}

/// What folding one event did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The profile the event landed on (none for catalogue events).
    pub profile: Option<String>,
    pub merges: Vec<MergeRecord>,
    /// Order events Cohort derives, to append to the log.
    pub derived: Vec<DerivedEvent>,
    /// A catalogue change (not a person's event).
    pub product: Option<(Product, bool)>,
    /// An order moved to another profile: events derived from it earlier
    /// must move too, which only a refold of the cluster does.
    pub order_moved: bool,
}

/// A profile id: the same for the same creating event, so a rebuild gives
/// every profile its id again. Unique within an organisation because
/// message ids are; every read is scoped to one.
pub fn profile_id(created: &EventKey, identity: &Identity) -> String {
    let digest = Sha256::digest(format!("{}\0{}", created.message_id, identity.key()).as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("prof_{hex}")
}

impl ClusterState {
    /// Folds `events` from nothing, in key order. Returns the state and
    /// where each event (by seq) landed.
    pub fn fold(events: &mut [LogEvent]) -> (ClusterState, Vec<(i64, String)>, Vec<DerivedEvent>) {
        events.sort_by(|a, b| a.key().cmp(&b.key()).then(a.seq.cmp(&b.seq)));
        let mut state = ClusterState::default();
        let mut placed = Vec::with_capacity(events.len());
        let mut derived_later = Vec::new();
        let mut derived = BTreeMap::new();
        for e in events.iter() {
            let it = interpret(e);
            if it.derived {
                derived_later.push((e.seq, it));
                continue;
            }
            let applied = state.apply_interpreted(e, &it);
            if let Some(p) = applied.profile {
                placed.push((e.seq, p));
            }
            for d in applied.derived {
                derived.insert(d.message_id.clone(), d);
            }
        }
        for (seq, it) in derived_later {
            if let Some(p) = state.owner_of(&it) {
                placed.push((seq, p));
            }
        }
        (state, placed, derived.into_values().collect())
    }

    /// Whether `event` can be folded onto this state as its next step.
    pub fn accepts_next(&self, event: &LogEvent) -> bool {
        self.last_key
            .as_ref()
            .is_none_or(|last| event.key() > *last)
    }

    /// Folds one event that comes after every folded one (see
    /// [`ClusterState::accepts_next`]); Cohort's own derived events may come
    /// at any time, since they change nothing but the timeline.
    pub fn apply(&mut self, event: &LogEvent) -> Applied {
        let it = interpret(event);
        if it.derived {
            return Applied {
                profile: self.owner_of(&it),
                ..Applied::default()
            };
        }
        self.apply_interpreted(event, &it)
    }

    /// The profile a derived event belongs to: its order's (whichever
    /// snapshot it was derived from), else the owner of its strongest identity.
    fn owner_of(&self, it: &Interpretation) -> Option<String> {
        it.links
            .iter()
            .filter(|id| id.kind() == super::identity::IdentityKind::Order)
            .find_map(|id| {
                self.orders
                    .get(id.value())
                    .map(|o| self.survivor(&o.profile).to_owned())
            })
            .or_else(|| {
                it.identities
                    .iter()
                    .find_map(|id| self.owners.get(id).cloned())
            })
    }

    fn apply_interpreted(&mut self, e: &LogEvent, it: &Interpretation) -> Applied {
        let key = e.key();
        let mut applied = Applied::default();
        if let Commerce::Product { product, deleted } = &it.commerce {
            applied.product = Some((product.clone(), *deleted));
            return applied;
        }
        self.last_key = Some(key.clone());

        let target = self.resolve(e, it, &mut applied);
        applied.profile = Some(target.clone());
        self.absorb(&target, e, it, &mut applied);
        applied
    }

    /// Finds (or creates) the profile the event lands on, attaching its
    /// new identities and merging profiles it shows to be one person.
    fn resolve(&mut self, e: &LogEvent, it: &Interpretation, applied: &mut Applied) -> String {
        let key = e.key();
        let mut ids: Vec<Identity> = it.identities.clone();
        if ids.is_empty() {
            // An order without any person identity still lands somewhere:
            // on a profile of its own, found again by the order id.
            ids = it.links.clone();
        }

        // `alias` is an explicit statement that two ids are one person:
        // it merges even two known users.
        if let (Some(previous), Some(user)) = (&it.previous_id, &it.user_id) {
            let prev_id = if self.owners.contains_key(&Identity::user(previous)) {
                Identity::user(previous)
            } else {
                Identity::anonymous(previous)
            };
            let target = self.owner_or_create(&key, &Identity::user(user));
            if let Some(other) = self.owners.get(&prev_id).cloned() {
                if other != target {
                    let into = self.merge(
                        &target,
                        &other,
                        &key,
                        vec![prev_id.clone(), Identity::user(user)],
                        applied,
                    );
                    self.set_user(&into, user);
                    return into;
                }
            } else {
                self.attach(&target, &prev_id);
            }
            self.set_user(&target, user);
            return target;
        }

        let user = it.user_id.as_deref();
        // The strongest owned identity decides the target.
        let mut target: Option<String> = match user {
            Some(u) => self.owners.get(&Identity::user(u)).cloned(),
            None => None,
        };
        if target.is_none() {
            target = ids.iter().find_map(|id| {
                let owner = self.owners.get(id)?;
                // A known user's event never lands on another known user's profile.
                let compatible = match (user, &self.profiles[owner].user_id) {
                    (Some(u), Some(other)) => u == other,
                    _ => true,
                };
                compatible.then(|| owner.clone())
            });
        }
        let target = match target {
            Some(t) => t,
            None => {
                let strongest = ids
                    .iter()
                    .min()
                    .cloned()
                    .unwrap_or_else(|| Identity::anonymous(&e.message_id));
                let id = profile_id(&key, &strongest);
                self.profiles
                    .insert(id.clone(), ProfileState::new(key.clone()));
                id
            }
        };
        if let Some(u) = user {
            self.set_user(&target, u);
        }

        let mut target = target;
        for id in &ids {
            match self.owners.get(id).cloned() {
                None => self.attach(&target, id),
                Some(owner) if owner == target => {}
                Some(owner) => {
                    // The shared-device guard: two different known users
                    // never merge through an anonymous id or an email.
                    let conflict = matches!(
                        (&self.profiles[&owner].user_id, &self.profiles[&target].user_id),
                        (Some(a), Some(b)) if a != b
                    );
                    if !conflict {
                        target = self.merge(&target, &owner, &key, ids.clone(), applied);
                    }
                }
            }
        }
        target
    }

    fn owner_or_create(&mut self, key: &EventKey, id: &Identity) -> String {
        if let Some(owner) = self.owners.get(id) {
            return owner.clone();
        }
        let profile = profile_id(key, id);
        self.profiles
            .insert(profile.clone(), ProfileState::new(key.clone()));
        self.attach(&profile, id);
        profile
    }

    fn attach(&mut self, profile: &str, id: &Identity) {
        if let Some(p) = self.profiles.get_mut(profile) {
            p.identities.insert(id.clone());
            self.owners.insert(id.clone(), profile.to_owned());
        }
    }

    fn set_user(&mut self, profile: &str, user: &str) {
        self.attach(profile, &Identity::user(user));
        if let Some(p) = self.profiles.get_mut(profile) {
            p.user_id = Some(user.to_owned());
        }
    }

    /// Merges two profiles into the older one; returns the survivor.
    fn merge(
        &mut self,
        a: &str,
        b: &str,
        key: &EventKey,
        identities: Vec<Identity>,
        applied: &mut Applied,
    ) -> String {
        let (into, from) = if (&self.profiles[a].created, a) <= (&self.profiles[b].created, b) {
            (a, b)
        } else {
            (b, a)
        };
        let (into, from) = (into.to_owned(), from.to_owned());
        let Some(gone) = self.profiles.remove(&from) else {
            return into;
        };
        for id in &gone.identities {
            self.owners.insert(id.clone(), into.clone());
        }
        for order in self.orders.values_mut() {
            if order.profile == from {
                order.profile = into.clone();
            }
        }
        if let Some(survivor) = self.profiles.get_mut(&into) {
            survivor.absorb_profile(gone);
        }
        let record = MergeRecord {
            from,
            into: into.clone(),
            identities,
            message_id: key.message_id.clone(),
            at_us: key.timestamp_us,
        };
        self.merges.push(record.clone());
        applied.merges.push(record);
        into
    }

    /// Applies the event's facts to its profile.
    fn absorb(
        &mut self,
        profile_id: &str,
        e: &LogEvent,
        it: &Interpretation,
        applied: &mut Applied,
    ) {
        let key = e.key();
        let Some(profile) = self.profiles.get_mut(profile_id) else {
            return;
        };
        profile.first_seen_us = profile.first_seen_us.min(e.timestamp_us);
        profile.last_seen_us = profile.last_seen_us.max(e.timestamp_us);
        for (name, value) in &it.traits {
            profile.set_trait(name, value.clone(), &key, &e.source_id);
        }
        match it.event.as_deref() {
            Some("Email Opened") => {
                profile.last_email_open_us = profile.last_email_open_us.max(Some(e.timestamp_us))
            }
            Some("Email Link Clicked") => {
                profile.last_email_click_us = profile.last_email_click_us.max(Some(e.timestamp_us))
            }
            _ => {}
        }

        match &it.commerce {
            Commerce::Cart(cart) => {
                let non_empty =
                    !cart.products.is_empty() || it.event.as_deref() == Some("Cart Started");
                let cart = merge_cart_event(
                    profile.cart.as_ref().and_then(|c| c.value.as_ref()),
                    cart,
                    it.event.as_deref(),
                );
                profile.cart = Some(Stamped {
                    value: Some(cart),
                    at: key.clone(),
                });
                if non_empty {
                    profile.set_tag(TAG_IN_CART, true, &key);
                }
            }
            Commerce::CheckoutStarted(cart) => {
                profile.checkout = Some(Stamped {
                    value: Some(cart.clone()),
                    at: key.clone(),
                });
                profile.set_tag(TAG_IN_CHECKOUT, true, &key);
            }
            Commerce::CartCleared => {
                profile.clear_cart(&key);
            }
            Commerce::OrderEvent {
                order,
                event,
                refund,
            } => {
                if event == "Order Completed" {
                    profile.clear_cart(&key);
                }
                let order_key = format!("{}/{}", order.store, order.order_id);
                let state = self.orders.entry(order_key).or_insert_with(|| OrderState {
                    order: order.clone(),
                    at: key.clone(),
                    profile: profile_id.to_owned(),
                    statuses: BTreeMap::new(),
                    refunds: BTreeMap::new(),
                    refunds_seen_us: BTreeMap::new(),
                    from_resource: false,
                });
                state.profile = profile_id.to_owned();
                state
                    .statuses
                    .entry(order.status.clone())
                    .or_insert(e.timestamp_us);
                if event == "Order Completed" && !state.from_resource {
                    state.order = order.clone();
                    state.at = key.clone();
                } else if !state.from_resource {
                    state.order.status = order.status.clone();
                }
                if let Some(amount) = refund {
                    state.refunds.insert(
                        e.message_id.clone(),
                        Refund {
                            refund_id: e.message_id.clone(),
                            amount: *amount,
                            reason: None,
                        },
                    );
                    state
                        .refunds_seen_us
                        .insert(e.message_id.clone(), e.timestamp_us);
                }
            }
            Commerce::OrderSnapshot(order) => {
                let order_key = format!("{}/{}", order.store, order.order_id);
                let state = self.orders.entry(order_key).or_insert_with(|| OrderState {
                    order: order.clone(),
                    at: key.clone(),
                    profile: profile_id.to_owned(),
                    statuses: BTreeMap::new(),
                    refunds: BTreeMap::new(),
                    refunds_seen_us: BTreeMap::new(),
                    from_resource: true,
                });
                state.from_resource = true;
                if (order.modified_at_us, &key) >= (state.order.modified_at_us, &state.at) {
                    state.order = order.clone();
                    state.at = key.clone();
                    if state.profile != profile_id {
                        applied.order_moved = true;
                        state.profile = profile_id.to_owned();
                    }
                }
                let reached = state
                    .statuses
                    .entry(order.status.clone())
                    .or_insert(order.modified_at_us);
                *reached = (*reached).min(order.modified_at_us);
                for refund in &order.refunds {
                    state
                        .refunds
                        .insert(refund.refund_id.clone(), refund.clone());
                    let seen = state
                        .refunds_seen_us
                        .entry(refund.refund_id.clone())
                        .or_insert(order.modified_at_us);
                    *seen = (*seen).min(order.modified_at_us);
                }
                if state.is_paid() {
                    // The derived `Order Completed` clears the cart tags at
                    // the time of payment.
                    let paid = state.paid_at_us().unwrap_or(order.modified_at_us);
                    let derived_key = EventKey {
                        timestamp_us: paid,
                        message_id: super::derive::derived_id(&state.order, "completed", None),
                    };
                    if let Some(p) = self.profiles.get_mut(profile_id) {
                        p.clear_cart(&derived_key);
                    }
                }
                applied.derived =
                    derived_events(&self.orders[&format!("{}/{}", order.store, order.order_id)]);
            }
            Commerce::Customer(_) | Commerce::None | Commerce::Product { .. } => {}
        }
    }
}

/// The cart after a cart event: a full description (`products[]`) replaces
/// it; `Product Added` / `Product Removed` of one product edit it.
fn merge_cart_event(current: Option<&Cart>, described: &Cart, event: Option<&str>) -> Cart {
    let single = described.products.len() == 1;
    match (event, current) {
        (Some("Product Added"), Some(cart)) if single => {
            let mut cart = cart.clone();
            let line = &described.products[0];
            match cart
                .products
                .iter_mut()
                .find(|l| l.product_id == line.product_id && l.sku == line.sku)
            {
                Some(existing) => existing.quantity += line.quantity,
                None => cart.products.push(line.clone()),
            }
            cart.updated_at_us = described.updated_at_us;
            cart.cart_id = described.cart_id.clone().or(cart.cart_id);
            cart.recover_url = described.recover_url.clone().or(cart.recover_url);
            cart
        }
        (Some("Product Removed"), Some(cart)) if single => {
            let mut cart = cart.clone();
            let line = &described.products[0];
            cart.products
                .retain(|l| !(l.product_id == line.product_id && l.sku == line.sku));
            cart.updated_at_us = described.updated_at_us;
            cart
        }
        _ => described.clone(),
    }
}

impl ProfileState {
    fn new(created: EventKey) -> Self {
        Self {
            first_seen_us: created.timestamp_us,
            last_seen_us: created.timestamp_us,
            created,
            user_id: None,
            identities: BTreeSet::new(),
            traits: BTreeMap::new(),
            tags: BTreeMap::new(),
            cart: None,
            checkout: None,
            last_email_open_us: None,
            last_email_click_us: None,
        }
    }

    /// Latest by event key wins, whatever order events are folded in.
    fn set_trait(&mut self, name: &str, value: Value, at: &EventKey, source: &str) {
        if self.traits.get(name).is_some_and(|t| t.at >= *at) {
            return;
        }
        self.traits.insert(
            name.to_owned(),
            TraitEntry {
                value,
                at: at.clone(),
                source_id: source.to_owned(),
            },
        );
    }

    fn set_tag(&mut self, tag: &str, on: bool, at: &EventKey) {
        if self.tags.get(tag).is_some_and(|t| t.at >= *at) {
            return;
        }
        self.tags
            .insert(tag.to_owned(), TagEntry { on, at: at.clone() });
    }

    /// The cart is gone (cleared, or it became an order).
    fn clear_cart(&mut self, at: &EventKey) {
        self.set_tag(TAG_IN_CART, false, at);
        self.set_tag(TAG_IN_CHECKOUT, false, at);
        for slot in [&mut self.cart, &mut self.checkout] {
            if slot.as_ref().is_none_or(|c| c.at < *at) {
                *slot = Some(Stamped {
                    value: None,
                    at: at.clone(),
                });
            }
        }
    }

    fn absorb_profile(&mut self, other: ProfileState) {
        self.identities.extend(other.identities);
        if self.user_id.is_none() {
            self.user_id = other.user_id;
        }
        for (name, entry) in other.traits {
            if self.traits.get(&name).is_none_or(|t| t.at < entry.at) {
                self.traits.insert(name, entry);
            }
        }
        for (name, entry) in other.tags {
            if self.tags.get(&name).is_none_or(|t| t.at < entry.at) {
                self.tags.insert(name, entry);
            }
        }
        for (mine, theirs) in [
            (&mut self.cart, other.cart),
            (&mut self.checkout, other.checkout),
        ] {
            if let Some(theirs) = theirs {
                if mine.as_ref().is_none_or(|m| m.at < theirs.at) {
                    *mine = Some(theirs);
                }
            }
        }
        self.first_seen_us = self.first_seen_us.min(other.first_seen_us);
        self.last_seen_us = self.last_seen_us.max(other.last_seen_us);
        self.last_email_open_us = self.last_email_open_us.max(other.last_email_open_us);
        self.last_email_click_us = self.last_email_click_us.max(other.last_email_click_us);
    }

    pub fn active_tags(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .filter(|(_, t)| t.on)
            .map(|(name, _)| name.as_str())
    }
}
