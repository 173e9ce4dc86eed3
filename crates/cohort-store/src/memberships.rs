//! Who belongs to an organisation and with which role, passwords, and the
//! sign-in throttle of the admin UI.
//!
//! What roles may do, and that an organisation keeps an owner, are rules
//! of `cohort_domain::members`; the changes here check the owner rule with
//! the counts they read, inside the transaction that makes the change.

use cohort_domain::ids::{OrgId, UserId};
use cohort_domain::members::keeps_an_owner;
use cohort_domain::secrets;

use crate::orgs::Organisation;
use crate::row::{map_rows, RowExt};
use crate::users::{Role, User};
use crate::{now_micros, Db, StoreError};

/// How long failed sign-ins are remembered.
pub const SIGNIN_WINDOW_MICROS: i64 = 15 * 60 * 1_000_000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub created_at: i64,
}

impl Db {
    /// The organisations `user` belongs to, with their role, by name.
    pub async fn memberships_of(
        &self,
        user: &UserId,
    ) -> Result<Vec<(Organisation, Role)>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.created_at, m.role FROM memberships m JOIN organisations o ON o.id = m.org_id \
             WHERE m.user_id = $1 ORDER BY o.name, o.id",
        )
        .bind(user.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| {
            Ok((
                Organisation {
                    id: OrgId::from_stored(r.col::<String, _>("id")?),
                    name: r.col("name")?,
                    created_at: r.col("created_at")?,
                },
                r.col_parsed("role")?,
            ))
        })
    }

    /// The role of `user` in `org`, if a member.
    pub async fn role_in(&self, org: &OrgId, user: &UserId) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org.as_str())
            .bind(user.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.col_parsed(0)).transpose()
    }

    /// The members of `org`, by email.
    pub async fn list_members(&self, org: &OrgId) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 ORDER BY u.email",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| {
            Ok(Member {
                user_id: r.col(0)?,
                email: r.col(1)?,
                role: r.col_parsed(2)?,
                created_at: r.col(3)?,
            })
        })
    }

    /// Makes the user with `email` a member of `org`. A person without an
    /// account gets one with `password_hash`; `Invalid` when they have none
    /// and no password is given, or are a member already.
    pub async fn add_member(
        &self,
        org: &OrgId,
        email: &str,
        role: Role,
        password_hash: Option<&str>,
    ) -> Result<User, StoreError> {
        let email = email.trim().to_lowercase();
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT id, email FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(&mut *tx)
            .await?;
        let user = match existing {
            Some(r) => {
                let user = User {
                    id: UserId::from_stored(r.col::<String, _>(0)?),
                    email: r.col(1)?,
                };
                let member =
                    sqlx::query("SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org.as_str())
                        .bind(user.id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if member.is_some() {
                    return Err(StoreError::Invalid(format!(
                        "{} is already a member",
                        user.email
                    )));
                }
                sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(org.as_str())
                    .bind(user.id.as_str())
                    .bind(role.as_str())
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                user
            }
            None => {
                let hash = password_hash.ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "{email} has no account yet: give a first password"
                    ))
                })?;
                crate::users::create_user_in(&mut tx, org, &email, hash, role).await?
            }
        };
        tx.commit().await?;
        Ok(user)
    }

    /// Changes a member's role. `NotFound` when not a member; `Invalid`
    /// when it would leave the organisation without an owner.
    pub async fn set_member_role(
        &self,
        org: &OrgId,
        user: &str,
        role: Role,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let current = member_role_in(&mut tx, org, user).await?;
        keeps_an_owner(current, Some(role), owners_in(&mut tx, org).await?)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(org.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member (their account stays, with its other memberships).
    pub async fn remove_member(&self, org: &OrgId, user: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let current = member_role_in(&mut tx, org, user).await?;
        keeps_an_owner(current, None, owners_in(&mut tx, org).await?)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a user's password hash and ends their other sessions:
    /// every session but the one whose id is `keep_session`.
    pub async fn set_password(
        &self,
        user: &UserId,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND id <> $2")
            .bind(user.as_str())
            .bind(keep_session.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many failed sign-ins each key has had in the window, the
    /// largest count. Keys are given in clear and digested here.
    pub async fn signin_failures(&self, keys: &[&str]) -> Result<i64, StoreError> {
        let since = now_micros() - SIGNIN_WINDOW_MICROS;
        let mut most = 0;
        for key in keys {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM signin_failures WHERE key_digest = $1 AND at_us > $2",
            )
            .bind(secrets::digest(key))
            .bind(since)
            .fetch_one(self.pool())
            .await?
            .col(0)?;
            most = most.max(n);
        }
        Ok(most)
    }

    /// Records a failed sign-in under each key and forgets expired ones.
    pub async fn record_signin_failure(&self, keys: &[&str]) -> Result<(), StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM signin_failures WHERE at_us <= $1")
            .bind(now - SIGNIN_WINDOW_MICROS)
            .execute(&mut *tx)
            .await?;
        for key in keys {
            sqlx::query("INSERT INTO signin_failures (key_digest, at_us) VALUES ($1, $2)")
                .bind(secrets::digest(key))
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub async fn clear_signin_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signin_failures WHERE key_digest = $1")
            .bind(secrets::digest(key))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

async fn member_role_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    user: &str,
) -> Result<Role, StoreError> {
    let row = sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org.as_str())
        .bind(user)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| r.col_parsed(0))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("member {user:?}")))
}

async fn owners_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
) -> Result<i64, StoreError> {
    sqlx::query("SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner'")
        .bind(org.as_str())
        .fetch_one(&mut **tx)
        .await?
        .col(0)
}
