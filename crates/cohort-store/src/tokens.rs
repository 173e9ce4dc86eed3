//! API tokens for the admin JSON API: shown once, stored as a SHA-256
//! digest, verified in constant time.

use cohort_domain::ids::OrgId;
use cohort_domain::secrets::IssuedSecret;

use crate::issued::{verified_row, SecretLookup};
use crate::row::{map_rows, RowExt};
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
        let lookup = SecretLookup {
            kind: API_TOKEN_KIND,
            sql:
                "SELECT org_id, secret_digest FROM api_tokens WHERE id = $1 AND revoked_at IS NULL",
            live_at: None,
        };
        let Some(row) = verified_row(self, lookup, presented).await? else {
            return Ok(None);
        };
        Ok(Some(OrgId::from_stored(row.col::<String, _>("org_id")?)))
    }

    pub async fn list_api_tokens(&self, org: &OrgId) -> Result<Vec<ApiTokenInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| {
            Ok(ApiTokenInfo {
                id: r.col("id")?,
                name: r.col("name")?,
                created_at: r.col("created_at")?,
                last_used_at: r.col("last_used_at")?,
                revoked: r.col::<Option<i64>, _>("revoked_at")?.is_some(),
            })
        })
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
