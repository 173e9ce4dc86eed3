//! The suppression list: addresses an organisation must not mail, one row
//! per address and reason, and a log of every addition and removal that
//! outlives the rows. Addresses arrive normalised (lower-cased) by the
//! caller.

use cohort_domain::ids::OrgId;
use cohort_domain::suppression::{MailPurpose, SuppressionReason};

use crate::row::{map_rows, RowExt};
use crate::{now_micros, Db, StoreError};

/// One address suppressed for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub email: String,
    pub reason: SuppressionReason,
    pub detail: Option<String>,
    pub source: String,
    pub created_at_us: i64,
}

/// A page of the list: filters and the seek position.
#[derive(Debug, Clone, Default)]
pub struct SuppressionQuery<'a> {
    /// Part of the address, case-insensitive.
    pub search: Option<&'a str>,
    pub reason: Option<SuppressionReason>,
    /// The last (email, reason) of the previous page.
    pub after: Option<(&'a str, &'a str)>,
    pub limit: u32,
}

fn suppression(r: &sqlx::any::AnyRow) -> Result<Suppression, StoreError> {
    Ok(Suppression {
        email: r.col("email")?,
        reason: r.col_parsed("reason")?,
        detail: r.col("detail")?,
        source: r.col("source")?,
        created_at_us: r.col("created_at_us")?,
    })
}

impl Db {
    /// Suppresses `email` for `reason`; `false` when it already was (the
    /// first record stands).
    pub async fn suppress(
        &self,
        org: &OrgId,
        email: &str,
        reason: SuppressionReason,
        detail: Option<&str>,
        source: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let added = suppress_in(&mut tx, org, email, reason, detail, source, now_micros()).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Lifts every suppression of `email`, logging `why`; how many
    /// reasons were lifted (0: it was not suppressed).
    pub async fn unsuppress(
        &self,
        org: &OrgId,
        email: &str,
        why: &str,
        source: &str,
    ) -> Result<u64, StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT email, reason, detail, source, created_at_us FROM suppressions \
             WHERE org_id = $1 AND email = $2",
        )
        .bind(org.as_str())
        .bind(email)
        .fetch_all(&mut *tx)
        .await?;
        let lifted = map_rows(&rows, suppression)?;
        sqlx::query("DELETE FROM suppressions WHERE org_id = $1 AND email = $2")
            .bind(org.as_str())
            .bind(email)
            .execute(&mut *tx)
            .await?;
        for s in &lifted {
            log(
                &mut tx,
                org,
                email,
                "removed",
                s.reason.as_str(),
                Some(why),
                source,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(lifted.len() as u64)
    }

    /// The list in (email, reason) order, filtered.
    pub async fn suppressions_page(
        &self,
        org: &OrgId,
        query: &SuppressionQuery<'_>,
    ) -> Result<Vec<Suppression>, StoreError> {
        let pattern = query.search.map(|s| {
            let escaped = s
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let (after_email, after_reason) = match query.after {
            Some((e, r)) => (Some(e), Some(r)),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT email, reason, detail, source, created_at_us FROM suppressions \
             WHERE org_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR email LIKE $2 ESCAPE '\\') \
             AND (CAST($3 AS TEXT) IS NULL OR reason = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR email > $4 OR (email = $4 AND reason > $5)) \
             ORDER BY email, reason LIMIT $6",
        )
        .bind(org.as_str())
        .bind(pattern)
        .bind(query.reason.map(|r| r.as_str()))
        .bind(after_email)
        .bind(after_reason)
        .bind(i64::from(query.limit))
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, suppression)
    }

    /// Every reason `email` is suppressed for.
    pub async fn suppressions_of(
        &self,
        org: &OrgId,
        email: &str,
    ) -> Result<Vec<Suppression>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, reason, detail, source, created_at_us FROM suppressions \
             WHERE org_id = $1 AND email = $2 ORDER BY reason",
        )
        .bind(org.as_str())
        .bind(email)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, suppression)
    }

    /// The suppression that stops mail of `purpose` to `email`, if any:
    /// what every send checks, at send time.
    pub async fn blocking_suppression(
        &self,
        org: &OrgId,
        email: &str,
        purpose: MailPurpose,
    ) -> Result<Option<Suppression>, StoreError> {
        Ok(self
            .suppressions_of(org, email)
            .await?
            .into_iter()
            .find(|s| s.reason.blocks(purpose)))
    }

    /// The additions and removals of `email`, oldest first:
    /// (action, reason, detail, source, at).
    pub async fn suppression_history(
        &self,
        org: &OrgId,
        email: &str,
    ) -> Result<Vec<(String, String, Option<String>, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT action, reason, detail, source, at_us FROM suppression_log \
             WHERE org_id = $1 AND email = $2 ORDER BY at_us, action",
        )
        .bind(org.as_str())
        .bind(email)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| {
            Ok((
                r.col("action")?,
                r.col("reason")?,
                r.col("detail")?,
                r.col("source")?,
                r.col("at_us")?,
            ))
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn log(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    email: &str,
    action: &str,
    reason: &str,
    detail: Option<&str>,
    source: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO suppression_log (org_id, email, action, reason, detail, source, at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org.as_str())
    .bind(email)
    .bind(action)
    .bind(reason)
    .bind(detail)
    .bind(source)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// [`Db::suppress`] inside the caller's transaction (a hard bounce is
/// recorded with the attempt that got it).
pub(crate) async fn suppress_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    email: &str,
    reason: SuppressionReason,
    detail: Option<&str>,
    source: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let added = sqlx::query(
        "INSERT INTO suppressions (org_id, email, reason, detail, source, created_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, email, reason) DO NOTHING",
    )
    .bind(org.as_str())
    .bind(email)
    .bind(reason.as_str())
    .bind(detail)
    .bind(source)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if added {
        log(
            tx,
            org,
            email,
            "added",
            reason.as_str(),
            detail,
            source,
            now,
        )
        .await?;
    }
    Ok(added)
}
