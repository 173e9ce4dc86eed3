//! Secrets Cohort must read back (destination signing secrets, Everflow
//! tokens, WooCommerce REST keys) are sealed at rest with ChaCha20-Poly1305
//! under one 32-byte key (`data/secret.key` or `COHORT_DESTINATIONS__KEY`).
//! Each sealed value is bound to its row by the associated data, so a value
//! copied to another row does not open.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Bytes of the random nonce stored in front of each sealed value.
const NONCE_BYTES: usize = 12;

/// Why a key could not be read or a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the destinations key is not base64")]
    KeyNotBase64,
    #[error("the destinations key must be 32 bytes")]
    KeyLength,
    #[error("could not encrypt secrets")]
    Seal,
    #[error("stored secrets cannot be decrypted: wrong destinations key?")]
    Open,
}

/// The 32-byte key secrets are sealed with. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretsKey([u8; 32]);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(…)")
    }
}

impl SecretsKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from its base64 text (32 bytes once decoded).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::KeyNotBase64)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SealError::KeyLength)?;
        Ok(Self(bytes))
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    pub fn generate() -> Self {
        Self(rand::random())
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    /// `base64(nonce || ciphertext)`; `context` is authenticated, not stored.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> Result<String, SealError> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The plaintext of what [`SecretsKey::encrypt`] sealed with `context`.
    pub fn decrypt(&self, stored: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(stored)
            .map_err(|_| SealError::Open)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_are_bound_to_their_row() {
        let key = SecretsKey::generate();
        let sealed = key.encrypt(b"whsec_abc", "org_a:dst_1").unwrap();
        assert!(!sealed.contains("whsec"));
        assert_eq!(key.decrypt(&sealed, "org_a:dst_1").unwrap(), b"whsec_abc");
        assert!(key.decrypt(&sealed, "org_b:dst_1").is_err());
        assert!(SecretsKey::generate()
            .decrypt(&sealed, "org_a:dst_1")
            .is_err());
        assert_eq!(SecretsKey::from_base64(&key.to_base64()).unwrap(), key);
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    #[test]
    fn keys_that_are_not_32_bytes_of_base64_are_refused() {
        assert_eq!(
            SecretsKey::from_base64("not base64!"),
            Err(SealError::KeyNotBase64)
        );
        assert_eq!(
            SecretsKey::from_base64("c2hvcnQ="),
            Err(SealError::KeyLength)
        );
        assert_eq!(
            SecretsKey::generate().decrypt("c2hvcnQ=", "ctx"),
            Err(SealError::Open)
        );
    }
}
