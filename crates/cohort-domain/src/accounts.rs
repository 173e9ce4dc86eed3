//! The rules of accounts: what an e-mail address must look like and how
//! passwords are checked and hashed. Moved here from the store: they decide
//! what is accepted, and argon2 is pure CPU work, so nothing here needs the
//! database (the store keeps the hashes it is given).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("password must have at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("could not hash the password")]
    PasswordHash,
    #[error("{0:?} is not an email address")]
    NotAnEmail(String),
}

/// An e-mail address as accounts are keyed by: trimmed and lower-cased,
/// with a local part and a dotted domain. Deliverability is not checked.
pub fn normalise_email(email: &str) -> Result<String, AccountError> {
    let email = email.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(email),
        _ => Err(AccountError::NotAnEmail(email)),
    }
}

/// Validates and hashes a password with argon2id (CPU-heavy: call it off
/// the async runtime's worker threads).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AccountError::PasswordHash)
}

/// Whether `password` matches an argon2 `stored_hash` (CPU-heavy: call it
/// off the async runtime's worker threads). A malformed hash matches nothing.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid argon2id hash of a password nobody knows: verified against when
/// the email is unknown, so that an unknown email takes as long to refuse
/// as a wrong password. Empty (matching nothing, at once) only if argon2
/// cannot hash at all, when no password verifies either.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let unguessable = crate::ids::random_token(32);
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(unguessable.as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ann@Example.COM "),
            Ok("ann@example.com".into())
        );
        assert!(normalise_email("ann@localhost").is_err());
        assert!(normalise_email("@example.com").is_err());
        assert!(normalise_email("ann").is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        assert_eq!(hash_password("short"), Err(AccountError::PasswordTooShort));
        let hash = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(!verify_password("", decoy_hash()));
    }
}
