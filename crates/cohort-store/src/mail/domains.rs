//! Sending domains: the domains an organisation sends from, each with the
//! DKIM key Cohort generated for it (sealed at rest) and the record to
//! publish.

use cohort_domain::ids::OrgId;
use cohort_domain::secrets::SecretsKey;

use crate::row::{map_rows, RowExt};
use crate::{now_micros, Db, StoreError};

/// A sending domain with its key opened.
#[derive(Clone, PartialEq, Eq)]
pub struct SendingDomain {
    pub domain: String,
    pub dkim_selector: String,
    /// PKCS#8 PEM.
    pub dkim_private_pem: String,
    /// The TXT value to publish (`v=DKIM1; k=rsa; p=…`).
    pub dkim_record: String,
    pub created_at_us: i64,
}

impl std::fmt::Debug for SendingDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendingDomain")
            .field("domain", &self.domain)
            .field("dkim_selector", &self.dkim_selector)
            .field("dkim_private_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn context(org: &str, domain: &str) -> String {
    format!("cohort-mail-domain:{org}:{domain}")
}

fn sending_domain(
    row: &sqlx::any::AnyRow,
    org: &OrgId,
    key: &SecretsKey,
) -> Result<SendingDomain, StoreError> {
    let domain: String = row.col("domain")?;
    let sealed: String = row.col("dkim_key_sealed")?;
    let pem = String::from_utf8(key.decrypt(&sealed, &context(org.as_str(), &domain))?)
        .map_err(|e| StoreError::decode("dkim_key_sealed", e))?;
    Ok(SendingDomain {
        dkim_selector: row.col("dkim_selector")?,
        dkim_record: row.col("dkim_record")?,
        created_at_us: row.col("created_at_us")?,
        dkim_private_pem: pem,
        domain,
    })
}

const COLUMNS: &str = "domain, dkim_selector, dkim_key_sealed, dkim_record, created_at_us";

impl Db {
    /// Adds a sending domain; `false` when the organisation has it already
    /// (its first key stands: a published record must keep verifying).
    pub async fn add_sending_domain(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        domain: &SendingDomain,
    ) -> Result<bool, StoreError> {
        let sealed = key.encrypt(
            domain.dkim_private_pem.as_bytes(),
            &context(org.as_str(), &domain.domain),
        )?;
        let added = sqlx::query(
            "INSERT INTO mail_domains (org_id, domain, dkim_selector, dkim_key_sealed, \
             dkim_record, created_at_us) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (org_id, domain) DO NOTHING",
        )
        .bind(org.as_str())
        .bind(&domain.domain)
        .bind(&domain.dkim_selector)
        .bind(sealed)
        .bind(&domain.dkim_record)
        .bind(now_micros())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    pub async fn sending_domains(
        &self,
        org: &OrgId,
        key: &SecretsKey,
    ) -> Result<Vec<SendingDomain>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_domains WHERE org_id = $1 ORDER BY domain"
        ))
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| sending_domain(r, org, key))
    }

    pub async fn sending_domain(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        domain: &str,
    ) -> Result<Option<SendingDomain>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_domains WHERE org_id = $1 AND domain = $2"
        ))
        .bind(org.as_str())
        .bind(domain)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(|r| sending_domain(r, org, key))
            .transpose()
    }
}
