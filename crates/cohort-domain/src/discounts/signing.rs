//! The signature on Cohort's calls to a store (connect.md §5):
//!
//! ```text
//! X-Cohort-Timestamp: <unix seconds>
//! X-Cohort-Nonce:     <random, 16+ chars>
//! X-Cohort-Signature: v1=<hex HMAC-SHA256(signing_secret,
//!                       ts \n nonce \n METHOD \n REQUEST_URI \n hex(SHA256(body)))>
//! ```
//!
//! Cohort signs; the plugin verifies (in PHP). [`verify`] is the same check
//! in Rust, for tests and for anything that receives such calls.

use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const TIMESTAMP_HEADER: &str = "X-Cohort-Timestamp";
pub const NONCE_HEADER: &str = "X-Cohort-Nonce";
pub const SIGNATURE_HEADER: &str = "X-Cohort-Signature";
/// How far a timestamp may be from the receiver's clock, in seconds.
pub const TOLERANCE_S: i64 = 300;
pub const MIN_NONCE_LEN: usize = 16;
pub const MAX_NONCE_LEN: usize = 128;

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Lowercase hex HMAC-SHA256 of `message`.
pub fn hmac_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message);
    hex(&mac.finalize().into_bytes())
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The string that is signed: timestamp, nonce, upper-case method, request
/// URI (path and query exactly as sent) and the body's SHA-256, one a line.
pub fn canonical(
    timestamp: &str,
    nonce: &str,
    method: &str,
    request_uri: &str,
    body: &[u8],
) -> String {
    [
        timestamp,
        nonce,
        &method.to_ascii_uppercase(),
        request_uri,
        &sha256_hex(body),
    ]
    .join("\n")
}

/// The `X-Cohort-Signature` value.
pub fn signature(
    secret: &str,
    timestamp: &str,
    nonce: &str,
    method: &str,
    request_uri: &str,
    body: &[u8],
) -> String {
    format!(
        "v1={}",
        hmac_hex(
            secret.as_bytes(),
            canonical(timestamp, nonce, method, request_uri, body).as_bytes()
        )
    )
}

/// A fresh nonce: 32 random alphanumeric characters.
pub fn new_nonce() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The three headers of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

/// Signs a call made at `now` (Unix seconds) with a fresh nonce.
pub fn sign(secret: &str, now: i64, method: &str, request_uri: &str, body: &[u8]) -> SignedHeaders {
    let timestamp = now.to_string();
    let nonce = new_nonce();
    let signature = signature(secret, &timestamp, &nonce, method, request_uri, body);
    SignedHeaders {
        timestamp,
        nonce,
        signature,
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the timestamp is not Unix seconds")]
    BadTimestamp,
    #[error("the timestamp is more than 300 s away")]
    Stale,
    #[error("the nonce must be 16 to 128 characters of A-Z a-z 0-9 _ . ~ -")]
    BadNonce,
    #[error("the signature header is not v1=<64 lowercase hex>")]
    BadHeader,
    #[error("signature mismatch")]
    Mismatch,
    #[error("the nonce was already used")]
    Replay,
}

/// Verifies one call in the plugin's order: header formats, timestamp window,
/// signature (constant time), then `claim_nonce(nonce, expires_at)` — which
/// returns `false` when the nonce was seen — so refused calls burn no nonce.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    secret: &str,
    headers: &SignedHeaders,
    method: &str,
    request_uri: &str,
    body: &[u8],
    now: i64,
    claim_nonce: impl FnOnce(&str, i64) -> bool,
) -> Result<(), Refusal> {
    let ts = &headers.timestamp;
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::BadTimestamp);
    }
    let ts_value: i64 = ts.parse().map_err(|_| Refusal::BadTimestamp)?;
    if (now - ts_value).abs() > TOLERANCE_S {
        return Err(Refusal::Stale);
    }
    let nonce = &headers.nonce;
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-'))
    {
        return Err(Refusal::BadNonce);
    }
    let sig = &headers.signature;
    let well_formed = sig.len() == 67
        && sig.starts_with("v1=")
        && sig
            .bytes()
            .skip(3)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(Refusal::BadHeader);
    }
    let expected = signature(secret, ts, nonce, method, request_uri, body);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return Err(Refusal::Mismatch);
    }
    if !claim_nonce(nonce, ts_value + TOLERANCE_S + 1) {
        return Err(Refusal::Replay);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fixture(path: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    fn s(v: &serde_json::Value, key: &str) -> String {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}"))
            .to_owned()
    }

    #[test]
    fn hmac_and_line_joining_match_the_segmentflow_vectors() {
        // Their scheme: no nonce, raw body; it checks the HMAC primitive and the joining.
        let f =
            fixture("../../../shared/fixtures/segmentflow-discount-hmac-vectors.synthesized.json");
        let secret = s(&f, "secret");
        let vectors = f["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 4);
        for v in vectors {
            let built = [
                s(v, "timestamp"),
                s(v, "method"),
                s(v, "path_with_query"),
                s(v, "raw_body"),
            ]
            .join("\n");
            assert_eq!(built, s(v, "signed_string"));
            assert_eq!(
                hmac_hex(secret.as_bytes(), built.as_bytes()),
                v["headers"]["X-Segmentflow-Signature"].as_str().unwrap()
            );
        }
    }

    fn ours() -> (String, Vec<serde_json::Value>) {
        let f = fixture("../../tests/fixtures/cohort-discount-signature-vectors.json");
        (s(&f, "secret"), f["vectors"].as_array().unwrap().clone())
    }

    fn headers_of(v: &serde_json::Value) -> SignedHeaders {
        SignedHeaders {
            timestamp: s(v, "timestamp"),
            nonce: s(v, "nonce"),
            signature: s(v, "signature"),
        }
    }

    #[test]
    fn our_vectors() {
        let (secret, vectors) = ours();
        assert!(vectors.len() >= 7);
        for v in &vectors {
            let body = s(v, "raw_body");
            assert_eq!(sha256_hex(body.as_bytes()), s(v, "body_sha256"));
            assert_eq!(
                canonical(
                    &s(v, "timestamp"),
                    &s(v, "nonce"),
                    &s(v, "method"),
                    &s(v, "request_uri"),
                    body.as_bytes()
                ),
                s(v, "signed_string")
            );
            assert_eq!(
                signature(
                    &secret,
                    &s(v, "timestamp"),
                    &s(v, "nonce"),
                    &s(v, "method"),
                    &s(v, "request_uri"),
                    body.as_bytes()
                ),
                s(v, "signature")
            );
            let now: i64 = s(v, "timestamp").parse().unwrap();
            assert_eq!(
                verify(
                    &secret,
                    &headers_of(v),
                    &s(v, "method"),
                    &s(v, "request_uri"),
                    body.as_bytes(),
                    now,
                    |_, _| true
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn negatives() {
        let (secret, vectors) = ours();
        let v = &vectors[0];
        let (method, uri, body) = (s(v, "method"), s(v, "request_uri"), s(v, "raw_body"));
        let t: i64 = s(v, "timestamp").parse().unwrap();
        let h = headers_of(v);
        let check =
            |secret: &str, h: &SignedHeaders, method: &str, uri: &str, body: &str, now: i64| {
                verify(secret, h, method, uri, body.as_bytes(), now, |_, _| true)
            };
        assert_eq!(
            check("wrong", &h, &method, &uri, &body, t),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(
                &secret,
                &h,
                &method,
                &uri,
                &body.replace("\"10\"", "\"100\""),
                t
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(&secret, &h, "PUT", &uri, &body, t),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(&secret, &h, &method, &format!("{uri}?x=1"), &body, t),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(
                &secret,
                &SignedHeaders {
                    timestamp: (t + 1).to_string(),
                    ..h.clone()
                },
                &method,
                &uri,
                &body,
                t
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(&secret, &h, &method, &uri, &body, t + 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            check(&secret, &h, &method, &uri, &body, t - 301),
            Err(Refusal::Stale)
        );
        assert_eq!(check(&secret, &h, &method, &uri, &body, t + 300), Ok(()));
        let short = "fifteen-chars-x";
        let signed_short = SignedHeaders {
            nonce: short.into(),
            signature: signature(&secret, &h.timestamp, short, &method, &uri, body.as_bytes()),
            ..h.clone()
        };
        assert_eq!(
            check(&secret, &signed_short, &method, &uri, &body, t),
            Err(Refusal::BadNonce)
        );
        assert_eq!(
            check(
                &secret,
                &SignedHeaders {
                    nonce: "has space 0123456789".into(),
                    ..h.clone()
                },
                &method,
                &uri,
                &body,
                t
            ),
            Err(Refusal::BadNonce)
        );
        let hex_part = h.signature[3..].to_owned();
        for bad in [
            hex_part.clone(),
            format!("v2={hex_part}"),
            format!("v1={}", hex_part.to_uppercase()),
            format!("v1={}", &hex_part[1..]),
        ] {
            assert_eq!(
                check(
                    &secret,
                    &SignedHeaders {
                        signature: bad,
                        ..h.clone()
                    },
                    &method,
                    &uri,
                    &body,
                    t
                ),
                Err(Refusal::BadHeader)
            );
        }
        for bad in ["", "-1", "2026-01-01T00:00:00Z", "1767225600.5"] {
            assert_eq!(
                check(
                    &secret,
                    &SignedHeaders {
                        timestamp: bad.into(),
                        ..h.clone()
                    },
                    &method,
                    &uri,
                    &body,
                    t
                ),
                Err(Refusal::BadTimestamp)
            );
        }
    }

    #[test]
    fn replays_are_refused_and_refusals_burn_no_nonce() {
        let (secret, vectors) = ours();
        let v = &vectors[1];
        let t: i64 = s(v, "timestamp").parse().unwrap();
        let mut seen = HashSet::new();
        let mut call = |secret: &str| {
            verify(
                secret,
                &headers_of(v),
                &s(v, "method"),
                &s(v, "request_uri"),
                s(v, "raw_body").as_bytes(),
                t,
                |n, _| seen.insert(n.to_owned()),
            )
        };
        assert_eq!(call("wrong"), Err(Refusal::Mismatch));
        assert_eq!(call(&secret), Ok(()));
        assert_eq!(call(&secret), Err(Refusal::Replay));
    }

    #[test]
    fn sign_makes_verifiable_headers_with_fresh_nonces() {
        let a = sign(
            "k",
            1_767_225_600,
            "get",
            "/wp-json/cohort/v1/discounts/1",
            b"",
        );
        let b = sign(
            "k",
            1_767_225_600,
            "GET",
            "/wp-json/cohort/v1/discounts/1",
            b"",
        );
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.nonce.len(), 32);
        assert_eq!(
            verify(
                "k",
                &a,
                "GET",
                "/wp-json/cohort/v1/discounts/1",
                b"",
                1_767_225_600,
                |_, _| true
            ),
            Ok(())
        );
    }
}
