//! Secrets that Cohort hands out once and afterwards only verifies: API
//! tokens and one-time setup links. Only a SHA-256 digest is stored; the
//! comparison runs in constant time.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

use crate::ids::random_token;

mod sealing;
pub use sealing::{SealError, SecretsKey};

/// Hex SHA-256 of a secret, the only form in which it is stored.
pub fn digest(secret: &str) -> String {
    let mut out = String::with_capacity(64);
    for byte in Sha256::digest(secret.as_bytes()) {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Whether `secret` hashes to `stored_digest`, compared in constant time.
pub fn verify(secret: &str, stored_digest: &str) -> bool {
    digest(secret)
        .as_bytes()
        .ct_eq(stored_digest.as_bytes())
        .into()
}

/// A freshly minted bearer secret `"{kind}_{id}_{secret}"`: the id part finds
/// the row, the secret part is verified against its digest.
pub struct IssuedSecret {
    pub id: String,
    pub digest: String,
    plaintext: String,
}

impl IssuedSecret {
    pub fn issue(kind: &str) -> Self {
        let id = random_token(12);
        let secret = random_token(32);
        Self {
            plaintext: format!("{kind}_{id}_{secret}"),
            digest: digest(&secret),
            id,
        }
    }

    /// The value to show the user, exactly once.
    pub fn reveal(&self) -> &str {
        &self.plaintext
    }
}

impl fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("id", &self.id)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// Splits a presented `"{kind}_{id}_{secret}"` into its id and secret parts.
pub fn split_presented<'a>(kind: &str, presented: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = presented.strip_prefix(kind)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_secret_verifies_and_a_wrong_one_does_not() {
        let issued = IssuedSecret::issue("cht");
        let (id, secret) = split_presented("cht", issued.reveal()).unwrap();
        assert_eq!(id, issued.id);
        assert!(verify(secret, &issued.digest));
        assert!(!verify("nope", &issued.digest));
        assert!(split_presented("cht", "cht_only").is_none());
        assert!(!format!("{issued:?}").contains(secret));
    }
}
