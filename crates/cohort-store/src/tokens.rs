//! API tokens for the admin JSON API: shown once, stored as a SHA-256
//! digest, verified in constant time.

use cohort_domain::ids::OrgId;
use cohort_domain::secrets::{self, IssuedSecret};
use sqlx::Row;

use crate::{now_micros, Db, StoreError};

/// The prefix of every API token Cohort issues (`cht_<id>_<secret>`).
pub const API_TOKEN_KIND: &str = "cht";

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiTokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
}

impl Db {
    /// Creates a token for `org`; the returned secret is the only copy.
    pub async fn create_api_token(
        &self,
        org: &OrgId,
        name: &str,
    ) -> Result<(ApiTokenInfo, IssuedSecret), StoreError> {
        let issued = IssuedSecret::issue(API_TOKEN_KIND);
        let info = ApiTokenInfo {
            id: issued.id.clone(),
            name: name.trim().to_owned(),
            created_at: now_micros(),
            last_used_at: None,
            revoked: false,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, org_id, name, secret_digest, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&info.id)
        .bind(org.as_str())
        .bind(&info.name)
        .bind(&issued.digest)
        .bind(info.created_at)
        .execute(self.pool())
        .await?;
        Ok((info, issued))
    }

    /// The organisation a presented token belongs to, if it is valid and
    /// not revoked.
    pub async fn verify_api_token(&self, presented: &str) -> Result<Option<OrgId>, StoreError> {
        let Some((id, secret)) = secrets::split_presented(API_TOKEN_KIND, presented) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT org_id, secret_digest FROM api_tokens WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if !secrets::verify(secret, &row.get::<String, _>("secret_digest")) {
            return Ok(None);
        }
        Ok(Some(OrgId::from_stored(row.get::<String, _>("org_id"))))
    }

    pub async fn list_api_tokens(&self, org: &OrgId) -> Result<Vec<ApiTokenInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiTokenInfo {
                id: r.get("id"),
                name: r.get("name"),
                created_at: r.get("created_at"),
                last_used_at: r.get("last_used_at"),
                revoked: r.get::<Option<i64>, _>("revoked_at").is_some(),
            })
            .collect())
    }

    pub async fn revoke_api_token(&self, org: &OrgId, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(org.as_str())
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("active token {id:?}")));
        }
        Ok(())
    }
}
