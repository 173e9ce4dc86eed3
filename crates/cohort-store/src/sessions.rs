//! Browser sessions: a signed-in person's cookie is an issued secret
//! (`ses_<id>_<secret>`, stored as its digest) with an expiry. The admin UI
//! and the authorize page of Connect share them.

use cohort_domain::ids::UserId;
use cohort_domain::secrets::{self, IssuedSecret};

use crate::issued::{verified_row, ExpiringSecrets, SecretLookup};
use crate::row::RowExt;
use crate::users::User;
use crate::{now_micros, Db, StoreError};

/// The prefix of browser session secrets (`ses_<id>_<secret>`).
pub const SESSION_KIND: &str = "ses";
const SESSIONS: ExpiringSecrets = ExpiringSecrets {
    kind: SESSION_KIND,
    table: "web_sessions",
    owner_column: "user_id",
};

impl Db {
    /// Starts a browser session for `user`; the secret is the cookie value.
    pub async fn create_session(
        &self,
        user: &UserId,
        lifetime_micros: i64,
    ) -> Result<IssuedSecret, StoreError> {
        let now = now_micros();
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        SESSIONS
            .issue(self, user.as_str(), now, lifetime_micros)
            .await
    }

    /// The user of a live session, from the presented cookie value.
    pub async fn find_session(&self, presented: &str) -> Result<Option<User>, StoreError> {
        let lookup = SecretLookup {
            kind: SESSION_KIND,
            sql: "SELECT s.secret_digest, u.id AS user_id, u.email FROM web_sessions s \
                  JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.expires_at > $2",
            live_at: Some(now_micros()),
        };
        let Some(row) = verified_row(self, lookup, presented).await? else {
            return Ok(None);
        };
        Ok(Some(User {
            id: UserId::from_stored(row.col::<String, _>("user_id")?),
            email: row.col("email")?,
        }))
    }

    /// Ends a session (signing out).
    pub async fn delete_session(&self, presented: &str) -> Result<(), StoreError> {
        if let Some((id, _)) = secrets::split_presented(SESSION_KIND, presented) {
            sqlx::query("DELETE FROM web_sessions WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}
