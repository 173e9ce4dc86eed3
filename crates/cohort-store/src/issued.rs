//! The rows of secrets Cohort issues once and afterwards only verifies:
//! API tokens, setup links, browser sessions and installation tokens. A
//! presented `"{kind}_{id}_{secret}"` is split, its row found by the id,
//! and the secret checked in constant time against the stored SHA-256
//! digest (`cohort_domain::secrets`); only the digest is ever stored.
//! Each kind keeps its own table; this module is the one code path that
//! writes and checks them.

use cohort_domain::secrets::{self, IssuedSecret};
use sqlx::any::AnyRow;

use crate::row::RowExt;
use crate::{Db, StoreError};

/// A table of expiring secrets: `id`, an owner column, `secret_digest`,
/// `created_at` and `expires_at`.
pub(crate) struct ExpiringSecrets {
    /// The prefix of the presented secret (`ses`, `setup`).
    pub kind: &'static str,
    pub table: &'static str,
    /// The column naming whose secret it is (`user_id`, `org_id`).
    pub owner_column: &'static str,
}

impl ExpiringSecrets {
    /// Mints a secret for `owner`, valid from `now` for `lifetime_micros`;
    /// the returned secret is the only copy.
    pub async fn issue(
        &self,
        db: &Db,
        owner: &str,
        now: i64,
        lifetime_micros: i64,
    ) -> Result<IssuedSecret, StoreError> {
        let issued = IssuedSecret::issue(self.kind);
        sqlx::query(&format!(
            "INSERT INTO {} (id, {}, secret_digest, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            self.table, self.owner_column
        ))
        .bind(&issued.id)
        .bind(owner)
        .bind(&issued.digest)
        .bind(now)
        .bind(now + lifetime_micros)
        .execute(db.pool())
        .await?;
        Ok(issued)
    }
}

/// How to find the row of a presented secret: `sql` selects it by `$1`,
/// the secret's id, and returns its digest as `secret_digest` (NULL
/// matches nothing); with `live_at`, `$2` is that time, for an expiry.
pub(crate) struct SecretLookup<'a> {
    pub kind: &'a str,
    pub sql: &'a str,
    pub live_at: Option<i64>,
}

/// The row of `presented` when it is well formed, found, and its secret
/// matches the stored digest; `None` otherwise.
pub(crate) async fn verified_row(
    db: &Db,
    lookup: SecretLookup<'_>,
    presented: &str,
) -> Result<Option<AnyRow>, StoreError> {
    let Some((id, secret)) = secrets::split_presented(lookup.kind, presented) else {
        return Ok(None);
    };
    let mut query = sqlx::query(lookup.sql).bind(id);
    if let Some(now) = lookup.live_at {
        query = query.bind(now);
    }
    let Some(row) = query.fetch_optional(db.pool()).await? else {
        return Ok(None);
    };
    let digest: Option<String> = row.col("secret_digest")?;
    Ok(digest
        .is_some_and(|stored| secrets::verify(secret, &stored))
        .then_some(row))
}
