//! Prefixed random identifiers (`org_…`, `src_…`) and the identifier types
//! that carry an organisation scope through the code.

use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Lower-case alphanumeric characters, so ids survive URLs, shells and
/// case-insensitive file systems unchanged.
pub fn random_token(len: usize) -> String {
    Alphanumeric
        .sample_string(&mut rand::thread_rng(), len)
        .to_ascii_lowercase()
}

/// A new identifier such as `org_k3j9…` (prefix, underscore, 20 random chars).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_token(20))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            /// Wraps an id read back from storage or from a trusted caller.
            pub fn from_stored(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An organisation. Every row Cohort stores carries one, and every query
    /// is scoped by one taken from the authenticated caller.
    OrgId,
    "org"
);
id_type!(
    /// A source of events (a website, a store, a server) with its write key.
    SourceId,
    "src"
);
id_type!(
    /// A person who signs in to Cohort.
    UserId,
    "usr"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let a = OrgId::generate();
        let b = OrgId::generate();
        assert!(a.as_str().starts_with("org_"));
        assert_eq!(a.as_str().len(), 24);
        assert_ne!(a, b);
    }
}
