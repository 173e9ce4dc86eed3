//! People who sign in: argon2 password hashes, roles per organisation, and
//! the one-time link that creates the first admin of a fresh server.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use cohort_domain::ids::{OrgId, UserId};
use cohort_domain::secrets::{self, IssuedSecret};
use sqlx::Row;

use crate::{now_micros, Db, StoreError};

/// The prefix of setup links' secrets (`setup_<id>_<secret>`).
pub const SETUP_LINK_KIND: &str = "setup";
const SETUP_LINK_LIFETIME_MICROS: i64 = 7 * 24 * 3600 * 1_000_000;
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
}

/// Validates and hashes a password with argon2id (CPU-heavy: call it off
/// the async runtime's worker threads).
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::Invalid(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| StoreError::PasswordHash)
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
/// as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(crate::now_micros().to_string().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn normalise_email(email: &str) -> Result<String, StoreError> {
    let email = email.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(email),
        _ => Err(StoreError::Invalid(format!(
            "{email:?} is not an email address"
        ))),
    }
}

impl Db {
    /// Creates a user with an already hashed password and makes them a member
    /// of `org` with `role`, in one transaction.
    pub async fn create_user(
        &self,
        org: &OrgId,
        email: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin_write().await?;
        let user = create_user_in(&mut tx, org, email, password_hash, role).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user whose email and password these are, or `None`. The argon2
    /// check runs on a blocking thread; an unknown email costs the same.
    pub async fn authenticate_user(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let email = email.trim().to_lowercase();
        let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(self.pool())
            .await?;
        let (user, hash) = match row {
            Some(r) => (
                Some(User {
                    id: UserId::from_stored(r.get::<String, _>("id")),
                    email: r.get("email"),
                }),
                r.get::<String, _>("password_hash"),
            ),
            None => (None, decoy_hash().to_owned()),
        };
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|_| StoreError::PasswordHash)?;
        Ok(user.filter(|_| matches))
    }

    pub async fn count_members(&self, org: &OrgId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(row.get("n"))
    }

    /// Issues a one-time link that lets its holder create an owner of `org`.
    pub async fn create_setup_link(&self, org: &OrgId) -> Result<IssuedSecret, StoreError> {
        let issued = IssuedSecret::issue(SETUP_LINK_KIND);
        let now = now_micros();
        sqlx::query(
            "INSERT INTO setup_links (id, org_id, secret_digest, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&issued.id)
        .bind(org.as_str())
        .bind(&issued.digest)
        .bind(now)
        .bind(now + SETUP_LINK_LIFETIME_MICROS)
        .execute(self.pool())
        .await?;
        Ok(issued)
    }

    /// The organisation a setup link is for, while it is unused and fresh.
    pub async fn check_setup_link(&self, presented: &str) -> Result<Option<OrgId>, StoreError> {
        let Some((id, secret)) = secrets::split_presented(SETUP_LINK_KIND, presented) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT org_id, secret_digest FROM setup_links WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now_micros())
        .fetch_optional(self.pool())
        .await?;
        Ok(row
            .filter(|r| secrets::verify(secret, &r.get::<String, _>("secret_digest")))
            .map(|r| OrgId::from_stored(r.get::<String, _>("org_id"))))
    }

    /// Spends a setup link and creates the owner it was for, atomically: a
    /// link can create one account only, even when used twice at once.
    pub async fn redeem_setup_link(
        &self,
        presented: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let Some(org) = self.check_setup_link(presented).await? else {
            return Ok(None);
        };
        let Some((id, _)) = secrets::split_presented(SETUP_LINK_KIND, presented) else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        let spent =
            sqlx::query("UPDATE setup_links SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(now_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if spent.rows_affected() != 1 {
            return Ok(None);
        }
        let user = create_user_in(&mut tx, &org, email, password_hash, Role::Owner).await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}

pub(crate) async fn create_user_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    email: &str,
    password_hash: &str,
    role: Role,
) -> Result<User, StoreError> {
    let email = normalise_email(email)?;
    let now = now_micros();
    let existing = sqlx::query("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_optional(&mut **tx)
        .await?;
    if existing.is_some() {
        return Err(StoreError::Invalid(format!(
            "a user with email {email} already exists"
        )));
    }
    let user = User {
        id: UserId::generate(),
        email,
    };
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(password_hash)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(org.as_str())
    .bind(user.id.as_str())
    .bind(role.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(user)
}
