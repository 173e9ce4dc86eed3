//! Signed tracking tokens: what an open pixel's or a click redirect's URL
//! carries. A token names the message (and, for a click, the link's
//! target), so the tracking endpoint needs no lookup to redirect and
//! cannot be made an open redirect: a token is accepted only with a valid
//! HMAC-SHA256 tag under the organisation's tracking key, checked in
//! constant time.
//!
//! Form: `base64url(payload) "." base64url(tag[..16])`, payload the JSON
//! `{"m": message id, "u": url}` (`u` absent for an open). Truncating the
//! tag to 128 bits keeps links short; forging one still takes 2^128 tries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag kept in a token.
const TAG_BYTES: usize = 16;

/// The longest token accepted (a URL of about 3 KB).
pub const TOKEN_MAX_BYTES: usize = 4096;

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The outbox message the open or click belongs to.
    #[serde(rename = "m")]
    pub message_id: String,
    /// A click's target; `None` for the open pixel.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A secret tracking tokens are signed with (per organisation).
#[derive(Clone)]
pub struct TrackingKey(Vec<u8>);

impl std::fmt::Debug for TrackingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrackingKey([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match")]
    BadSignature,
}

impl TrackingKey {
    /// A key of at least 32 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < 32 {
            return Err(format!(
                "a tracking key needs at least 32 bytes, got {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    /// The token for `tracked`.
    pub fn sign(&self, tracked: &Tracked) -> String {
        let payload = serde_json::to_vec(tracked).unwrap_or_default();
        let encoded = URL_SAFE_NO_PAD.encode(&payload);
        let mut mac = self.mac();
        mac.update(encoded.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{encoded}.{}", URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES]))
    }

    /// What `token` stands for, if this key signed it.
    pub fn verify(&self, token: &str) -> Result<Tracked, TokenError> {
        if token.len() > TOKEN_MAX_BYTES {
            return Err(TokenError::Malformed);
        }
        let (encoded, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        if tag.len() != TAG_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut mac = self.mac();
        mac.update(encoded.as_bytes());
        mac.verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(byte: u8) -> TrackingKey {
        TrackingKey::new(vec![byte; 32]).unwrap()
    }

    #[test]
    fn a_token_names_its_message_and_link_and_nothing_else_verifies() {
        let click = Tracked {
            message_id: "msg_1".into(),
            url: Some("https://shop.example/p/blue-mug?utm_source=cohort".into()),
        };
        let token = key(1).sign(&click);
        assert_eq!(key(1).verify(&token), Ok(click.clone()));
        assert_eq!(key(2).verify(&token), Err(TokenError::BadSignature));
        let open = Tracked {
            message_id: "msg_1".into(),
            url: None,
        };
        let open_token = key(1).sign(&open);
        assert!(!open_token.contains('/') && !open_token.contains('+'));
        assert_eq!(key(1).verify(&open_token), Ok(open));
        // Another payload under the first token's tag.
        let (_, tag) = token.split_once('.').unwrap();
        let (payload, _) = open_token.split_once('.').unwrap();
        assert_eq!(
            key(1).verify(&format!("{payload}.{tag}")),
            Err(TokenError::BadSignature)
        );
        for bad in ["", ".", "abc", "abc.def", "a.b.c"] {
            assert!(key(1).verify(bad).is_err(), "{bad}");
        }
        assert!(TrackingKey::new(vec![0; 31]).is_err());
        assert_eq!(format!("{:?}", key(1)), "TrackingKey([redacted])");
    }

    proptest! {
        #[test]
        fn every_token_round_trips_and_any_change_is_refused(
            message in "[a-z0-9_]{1,30}",
            url in proptest::option::of("https://[a-z.]{1,20}/[ -~]{0,60}"),
            flip in any::<prop::sample::Index>(),
        ) {
            let tracked = Tracked { message_id: message, url };
            let token = key(7).sign(&tracked);
            prop_assert_eq!(key(7).verify(&token), Ok(tracked));
            // Change one character: never accepted.
            let mut bytes = token.clone().into_bytes();
            let i = flip.index(bytes.len());
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != token {
                prop_assert!(key(7).verify(&changed).is_err());
            }
        }
    }
}
