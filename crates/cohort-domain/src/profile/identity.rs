//! Identities: the ids by which events name a person, written as
//! `kind:value` keys so that one column indexes them all.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    UserId,
    Email,
    /// A store's customer id, qualified by the store's source: `src_…/25`.
    StoreCustomer,
    AnonymousId,
    /// An order (`src_…/727`): groups an order's snapshots, never a person.
    Order,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::UserId => "user_id",
            IdentityKind::Email => "email",
            IdentityKind::StoreCustomer => "store_customer",
            IdentityKind::AnonymousId => "anonymous_id",
            IdentityKind::Order => "order",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "user_id" => IdentityKind::UserId,
            "email" => IdentityKind::Email,
            "store_customer" => IdentityKind::StoreCustomer,
            "anonymous_id" => IdentityKind::AnonymousId,
            "order" => IdentityKind::Order,
            _ => return None,
        })
    }
}

/// A `kind:value` key. Ordered by kind first, so the strongest identity of
/// a set is its smallest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Identity(String);

impl Identity {
    fn of(kind: IdentityKind, value: &str) -> Self {
        Identity(format!("{}:{value}", kind.as_str()))
    }
    pub fn user(value: &str) -> Self {
        Self::of(IdentityKind::UserId, value)
    }
    pub fn email(value: &str) -> Self {
        Self::of(IdentityKind::Email, value)
    }
    pub fn store_customer(value: &str) -> Self {
        Self::of(IdentityKind::StoreCustomer, value)
    }
    pub fn anonymous(value: &str) -> Self {
        Self::of(IdentityKind::AnonymousId, value)
    }
    pub fn order(value: &str) -> Self {
        Self::of(IdentityKind::Order, value)
    }

    /// From a stored key; `None` unless it has a known kind.
    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, _) = key.split_once(':')?;
        IdentityKind::parse(kind).map(|_| Identity(key.to_owned()))
    }

    pub fn key(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> IdentityKind {
        self.0
            .split_once(':')
            .and_then(|(k, _)| IdentityKind::parse(k))
            .unwrap_or(IdentityKind::AnonymousId)
    }

    pub fn value(&self) -> &str {
        self.0.split_once(':').map(|(_, v)| v).unwrap_or_default()
    }

    /// Strength for choosing where an event lands: lower is stronger.
    pub fn rank(&self) -> u8 {
        match self.kind() {
            IdentityKind::UserId => 0,
            IdentityKind::Email => 1,
            IdentityKind::StoreCustomer => 2,
            IdentityKind::AnonymousId => 3,
            IdentityKind::Order => 4,
        }
    }
}
