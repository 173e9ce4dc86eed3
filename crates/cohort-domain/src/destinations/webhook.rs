//! Webhook signatures as the Standard Webhooks convention has them:
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature:
//! v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, one
//! signature per active secret separated by spaces, so a receiver keeps
//! verifying while a secret is rotated.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of Cohort's webhook secrets: `whsec_<base64 of 32 bytes>`.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new random signing secret.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The key bytes of a `whsec_…` secret (the base64 after the prefix).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|k| !k.is_empty())
}

fn sign_one(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // Any key length is valid for HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The `webhook-signature` header value for `body`, signed with every
/// secret in `secrets` (the current one first, then one being retired).
/// Secrets that are not `whsec_…` are skipped.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| secret_key(s))
        .map(|key| sign_one(&key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies a `webhook-signature` header against one secret, in constant
/// time, and the timestamp against `now` (± `tolerance_s`): what a receiver
/// does.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance_s: i64,
) -> bool {
    use subtle::ConstantTimeEq;
    let Some(key) = secret_key(secret) else {
        return false;
    };
    if (now - timestamp).abs() > tolerance_s {
        return false;
    }
    let expected = sign_one(&key, id, timestamp, body);
    header
        .split(' ')
        .any(|candidate| bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(&[secret], id, 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            secret, id, 1614265330, body, &header, 1614265330, 300
        ));
        assert!(!verify(
            secret, id, 1614265330, b"{}", &header, 1614265330, 300
        ));
        assert!(
            !verify(secret, id, 1614265330, body, &header, 1614265330 + 301, 300),
            "too old"
        );
    }

    #[test]
    fn both_secrets_sign_during_a_rotation() {
        let (old, new) = (new_secret(), new_secret());
        let header = signature_header(&[&new, &old], "msg_1", 100, b"body");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "msg_1", 100, b"body", &header, 100, 300));
        assert!(verify(&new, "msg_1", 100, b"body", &header, 100, 300));
        assert!(!verify(
            &new_secret(),
            "msg_1",
            100,
            b"body",
            &header,
            100,
            300
        ));
    }
}
