//! People who sign in: their password hashes (hashed and checked by
//! `cohort_domain::accounts`), roles per organisation, and the one-time
//! link that creates the first admin of a fresh server.

use cohort_domain::accounts::{decoy_hash, normalise_email, verify_password};
use cohort_domain::ids::{OrgId, UserId};
/// The role a membership row carries (defined with its rules in the domain).
pub use cohort_domain::members::Role;
use cohort_domain::secrets::{self, IssuedSecret};

use crate::issued::{verified_row, ExpiringSecrets, SecretLookup};
use crate::row::RowExt;
use crate::{now_micros, Db, StoreError};

/// The prefix of setup links' secrets (`setup_<id>_<secret>`).
pub const SETUP_LINK_KIND: &str = "setup";
const SETUP_LINK_LIFETIME_MICROS: i64 = 7 * 24 * 3600 * 1_000_000;
const SETUP_LINKS: ExpiringSecrets = ExpiringSecrets {
    kind: SETUP_LINK_KIND,
    table: "setup_links",
    owner_column: "org_id",
};

#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
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
                    id: UserId::from_stored(r.col::<String, _>("id")?),
                    email: r.col("email")?,
                }),
                r.col::<String, _>("password_hash")?,
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
        row.col("n")
    }

    /// Issues a one-time link that lets its holder create an owner of `org`.
    pub async fn create_setup_link(&self, org: &OrgId) -> Result<IssuedSecret, StoreError> {
        SETUP_LINKS
            .issue(self, org.as_str(), now_micros(), SETUP_LINK_LIFETIME_MICROS)
            .await
    }

    /// The organisation a setup link is for, while it is unused and fresh.
    pub async fn check_setup_link(&self, presented: &str) -> Result<Option<OrgId>, StoreError> {
        let lookup = SecretLookup {
            kind: SETUP_LINK_KIND,
            sql: "SELECT org_id, secret_digest FROM setup_links \
                  WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
            live_at: Some(now_micros()),
        };
        let Some(row) = verified_row(self, lookup, presented).await? else {
            return Ok(None);
        };
        Ok(Some(OrgId::from_stored(row.col::<String, _>("org_id")?)))
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

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?;
        row.col("n")
    }

    /// Creates the first account of a server that has none, as owner of
    /// every organisation (a "Default" one is created when there is none),
    /// and spends outstanding setup links. `None` when someone already has
    /// an account, including one created a moment earlier by a concurrent
    /// request.
    pub async fn create_first_admin(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&mut *tx)
            .await?
            .col("n")?;
        if users > 0 {
            return Ok(None);
        }
        let mut orgs: Vec<String> =
            sqlx::query("SELECT id FROM organisations ORDER BY created_at, id")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.col::<String, _>("id"))
                .collect::<Result<_, _>>()?;
        if orgs.is_empty() {
            let id = OrgId::generate();
            sqlx::query(
                "INSERT INTO organisations (id, name, created_at) VALUES ($1, 'Default', $2)",
            )
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            orgs.push(id.as_str().to_owned());
        }
        let first = OrgId::from_stored(orgs[0].clone());
        let user = crate::users::create_user_in(&mut tx, &first, email, password_hash, Role::Owner)
            .await?;
        let claim = sqlx::query(
            "INSERT INTO first_admin_claim (id, user_id, claimed_at) VALUES (1, $1, $2)",
        )
        .bind(user.id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match claim {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        for org in &orgs[1..] {
            sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
                .bind(org)
                .bind(user.id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE setup_links SET used_at = $1 WHERE used_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

pub(crate) async fn create_user_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    email: &str,
    password_hash: &str,
    role: Role,
) -> Result<User, StoreError> {
    let email = normalise_email(email).map_err(|e| StoreError::Invalid(e.to_string()))?;
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
