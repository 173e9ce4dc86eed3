//! The webhook endpoints an organisation gives its mail providers for
//! bounce and complaint reports. Each has a random secret in its URL, of
//! which only a digest is kept; Mailgun's signing key, which Cohort must
//! use to check every request, is sealed.

use cohort_domain::ids::{new_id, OrgId};
use cohort_domain::secrets::SecretsKey;
use cohort_domain::text_enum;

use crate::row::{map_rows, RowExt};
use crate::{now_micros, Db, StoreError};

text_enum! {
    /// Whose payloads an endpoint reads.
    pub enum WebhookKind {
        /// Amazon SES notifications through SNS.
        Ses = "ses",
        SendGrid = "sendgrid",
        Postmark = "postmark",
        Mailgun = "mailgun",
    }
}

/// An endpoint as stored, its signing key opened.
#[derive(Clone, PartialEq, Eq)]
pub struct MailWebhook {
    pub id: String,
    pub org_id: OrgId,
    pub kind: WebhookKind,
    pub name: String,
    pub token_hash: String,
    pub signing_key: Option<String>,
    /// An SNS subscription waiting to be confirmed.
    pub subscribe_url: Option<String>,
    pub reports_received: i64,
    pub last_received_at_us: Option<i64>,
    pub created_at_us: i64,
}

impl std::fmt::Debug for MailWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailWebhook")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, org_id, kind, name, token_hash, signing_key_sealed, subscribe_url, \
     reports_received, last_received_at_us, created_at_us";

/// The associated data a signing key is sealed under.
fn context(org: &str, id: &str) -> String {
    format!("cohort-mail-webhook:{org}:{id}")
}

fn webhook(row: &sqlx::any::AnyRow, key: &SecretsKey) -> Result<MailWebhook, StoreError> {
    let org_id: String = row.col("org_id")?;
    let id: String = row.col("id")?;
    let sealed: Option<String> = row.col("signing_key_sealed")?;
    let signing_key = match sealed {
        Some(text) => Some(
            String::from_utf8(key.decrypt(&text, &context(&org_id, &id))?)
                .map_err(|e| StoreError::decode("signing_key_sealed", e))?,
        ),
        None => None,
    };
    Ok(MailWebhook {
        kind: row.col_parsed("kind")?,
        name: row.col("name")?,
        token_hash: row.col("token_hash")?,
        signing_key,
        subscribe_url: row.col("subscribe_url")?,
        reports_received: row.col("reports_received")?,
        last_received_at_us: row.col("last_received_at_us")?,
        created_at_us: row.col("created_at_us")?,
        org_id: OrgId::from_stored(org_id),
        id,
    })
}

impl Db {
    /// Adds an endpoint; `Ok(None)` when the name is taken.
    pub async fn create_mail_webhook(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        kind: WebhookKind,
        name: &str,
        token_hash: &str,
        signing_key: Option<&str>,
    ) -> Result<Option<MailWebhook>, StoreError> {
        let id = new_id("mwh");
        let sealed = signing_key
            .map(|k| key.encrypt(k.as_bytes(), &context(org.as_str(), &id)))
            .transpose()?;
        let now = now_micros();
        let inserted = sqlx::query(
            "INSERT INTO mail_webhooks (id, org_id, kind, name, token_hash, signing_key_sealed, \
             created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, name) DO NOTHING",
        )
        .bind(&id)
        .bind(org.as_str())
        .bind(kind.as_str())
        .bind(name)
        .bind(token_hash)
        .bind(sealed)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        self.mail_webhook_anywhere(key, &id).await
    }

    /// The endpoints of `org`, by name.
    pub async fn mail_webhooks(
        &self,
        org: &OrgId,
        key: &SecretsKey,
    ) -> Result<Vec<MailWebhook>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_webhooks WHERE org_id = $1 ORDER BY name"
        ))
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| webhook(r, key))
    }

    /// An endpoint by id alone: what a provider's request names.
    pub async fn mail_webhook_anywhere(
        &self,
        key: &SecretsKey,
        id: &str,
    ) -> Result<Option<MailWebhook>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(|r| webhook(r, key)).transpose()
    }

    /// `false`: `org` has no such endpoint.
    pub async fn delete_mail_webhook(&self, org: &OrgId, id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("DELETE FROM mail_webhooks WHERE org_id = $1 AND id = $2")
                .bind(org.as_str())
                .bind(id)
                .execute(self.pool())
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// A request reached the endpoint with `reports` reports; an SNS
    /// subscription confirmation leaves its URL for the merchant to open.
    pub async fn mail_webhook_received(
        &self,
        id: &str,
        reports: u64,
        subscribe_url: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_webhooks SET reports_received = reports_received + $1, \
             last_received_at_us = $2, subscribe_url = COALESCE($3, subscribe_url) WHERE id = $4",
        )
        .bind(i64::try_from(reports).unwrap_or(i64::MAX))
        .bind(now_micros())
        .bind(subscribe_url)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
