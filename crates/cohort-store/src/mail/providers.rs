//! The SMTP providers of an organisation: connection settings, the
//! password sealed at rest, limits, and which one is the default. At most
//! one default per organisation (a partial unique index).

use cohort_domain::ids::{new_id, OrgId};
use cohort_domain::mail::{ProviderTls, RateLimits};
use cohort_domain::secrets::SecretsKey;

use crate::row::{map_rows, RowExt};
use crate::{now_micros, Db, StoreError};

/// A provider as stored, its password opened.
#[derive(Clone, PartialEq, Eq)]
pub struct MailProvider {
    pub id: String,
    pub org_id: OrgId,
    pub name: String,
    /// `smtp`, the one kind so far.
    pub kind: String,
    pub host: String,
    pub port: u16,
    pub tls: ProviderTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub max_connections: u32,
    pub limits: RateLimits,
    pub is_default: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

impl std::fmt::Debug for MailProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailProvider")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("is_default", &self.is_default)
            .finish_non_exhaustive()
    }
}

/// A provider's settings as the merchant gives them (checked by the
/// engine).
#[derive(Clone)]
pub struct ProviderFields {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: ProviderTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub max_connections: u32,
    pub limits: RateLimits,
    pub is_default: bool,
}

const COLUMNS: &str = "id, org_id, name, kind, host, port, tls, username, password_sealed, \
     max_connections, rate_per_second, rate_per_hour, is_default, created_at_us, updated_at_us";

/// The associated data a provider's password is sealed under.
fn context(org: &str, id: &str) -> String {
    format!("cohort-mail-provider:{org}:{id}")
}

fn small(value: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| StoreError::decode(column, e))
}

fn provider(row: &sqlx::any::AnyRow, key: &SecretsKey) -> Result<MailProvider, StoreError> {
    let org_id: String = row.col("org_id")?;
    let id: String = row.col("id")?;
    let sealed: Option<String> = row.col("password_sealed")?;
    let password = match sealed {
        Some(text) => Some(
            String::from_utf8(key.decrypt(&text, &context(&org_id, &id))?)
                .map_err(|e| StoreError::decode("password_sealed", e))?,
        ),
        None => None,
    };
    let port: i64 = row.col("port")?;
    let per_second: Option<i64> = row.col("rate_per_second")?;
    let per_hour: Option<i64> = row.col("rate_per_hour")?;
    Ok(MailProvider {
        org_id: OrgId::from_stored(org_id),
        name: row.col("name")?,
        kind: row.col("kind")?,
        host: row.col("host")?,
        port: u16::try_from(port).map_err(|e| StoreError::decode("port", e))?,
        tls: row.col_parsed("tls")?,
        username: row.col("username")?,
        password,
        max_connections: small(row.col("max_connections")?, "max_connections")?,
        limits: RateLimits {
            per_second: per_second
                .map(|v| small(v, "rate_per_second"))
                .transpose()?,
            per_hour: per_hour.map(|v| small(v, "rate_per_hour")).transpose()?,
        },
        is_default: row.col::<i64, _>("is_default")? != 0,
        created_at_us: row.col("created_at_us")?,
        updated_at_us: row.col("updated_at_us")?,
        id,
    })
}

fn name_taken(error: &sqlx::Error, name: &str) -> Option<StoreError> {
    match error {
        sqlx::Error::Database(e) if e.is_unique_violation() => Some(StoreError::Invalid(format!(
            "a provider named {name:?} exists"
        ))),
        _ => None,
    }
}

impl Db {
    /// Creates a provider. The organisation's first provider is its
    /// default; a new default takes the mark from the old one.
    pub async fn create_mail_provider(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        fields: &ProviderFields,
    ) -> Result<MailProvider, StoreError> {
        let id = new_id("mpr");
        let now = now_micros();
        let sealed = fields
            .password
            .as_deref()
            .map(|p| key.encrypt(p.as_bytes(), &context(org.as_str(), &id)))
            .transpose()?;
        let mut tx = self.begin_write().await?;
        let existing: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM mail_providers WHERE org_id = $1")
                .bind(org.as_str())
                .fetch_one(&mut *tx)
                .await?
                .col("n")?;
        let is_default = fields.is_default || existing == 0;
        if is_default {
            clear_default(&mut tx, org).await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO mail_providers (id, org_id, name, kind, host, port, tls, username, \
             password_sealed, max_connections, rate_per_second, rate_per_hour, is_default, \
             created_at_us, updated_at_us) \
             VALUES ($1, $2, $3, 'smtp', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(&id)
        .bind(org.as_str())
        .bind(&fields.name)
        .bind(&fields.host)
        .bind(i64::from(fields.port))
        .bind(fields.tls.as_str())
        .bind(fields.username.as_deref())
        .bind(sealed)
        .bind(i64::from(fields.max_connections))
        .bind(fields.limits.per_second.map(i64::from))
        .bind(fields.limits.per_hour.map(i64::from))
        .bind(i64::from(is_default))
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            return Err(name_taken(&e, &fields.name).unwrap_or(e.into()));
        }
        tx.commit().await?;
        self.mail_provider(org, key, &id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("provider {id}")))
    }

    /// Every provider of `org`, the default first, then by name.
    pub async fn mail_providers(
        &self,
        org: &OrgId,
        key: &SecretsKey,
    ) -> Result<Vec<MailProvider>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_providers WHERE org_id = $1 ORDER BY is_default DESC, name"
        ))
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| provider(r, key))
    }

    pub async fn mail_provider(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        id: &str,
    ) -> Result<Option<MailProvider>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_providers WHERE org_id = $1 AND id = $2"
        ))
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(|r| provider(r, key)).transpose()
    }

    /// The provider mail of `org` goes through unless a message names one.
    pub async fn default_mail_provider(
        &self,
        org: &OrgId,
        key: &SecretsKey,
    ) -> Result<Option<MailProvider>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_providers WHERE org_id = $1 AND is_default = 1"
        ))
        .bind(org.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(|r| provider(r, key)).transpose()
    }

    /// Replaces a provider's settings; `None` when it does not exist. A
    /// provider cannot stop being the default by itself (another must take
    /// the mark), so `is_default: false` on the default keeps it.
    pub async fn update_mail_provider(
        &self,
        org: &OrgId,
        key: &SecretsKey,
        id: &str,
        fields: &ProviderFields,
    ) -> Result<Option<MailProvider>, StoreError> {
        let sealed = fields
            .password
            .as_deref()
            .map(|p| key.encrypt(p.as_bytes(), &context(org.as_str(), id)))
            .transpose()?;
        let mut tx = self.begin_write().await?;
        if fields.is_default {
            clear_default(&mut tx, org).await?;
        }
        let updated = sqlx::query(
            "UPDATE mail_providers SET name = $3, host = $4, port = $5, tls = $6, username = $7, \
             password_sealed = $8, max_connections = $9, rate_per_second = $10, \
             rate_per_hour = $11, is_default = CASE WHEN $12 = 1 THEN 1 ELSE is_default END, \
             updated_at_us = $13 WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(id)
        .bind(&fields.name)
        .bind(&fields.host)
        .bind(i64::from(fields.port))
        .bind(fields.tls.as_str())
        .bind(fields.username.as_deref())
        .bind(sealed)
        .bind(i64::from(fields.max_connections))
        .bind(fields.limits.per_second.map(i64::from))
        .bind(fields.limits.per_hour.map(i64::from))
        .bind(i64::from(fields.is_default))
        .bind(now_micros())
        .execute(&mut *tx)
        .await;
        let updated = match updated {
            Ok(done) => done.rows_affected(),
            Err(e) => return Err(name_taken(&e, &fields.name).unwrap_or(e.into())),
        };
        if updated == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        self.mail_provider(org, key, id).await
    }

    /// Deletes a provider; when it was the default, the oldest remaining
    /// one becomes the default. Messages queued for it go through the
    /// default instead. `false`: there was no such provider.
    pub async fn delete_mail_provider(&self, org: &OrgId, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM mail_providers WHERE org_id = $1 AND id = $2")
            .bind(org.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE mail_providers SET is_default = 1 WHERE org_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM mail_providers WHERE org_id = $1 AND is_default = 1) \
             AND id = (SELECT id FROM mail_providers WHERE org_id = $1 \
                       ORDER BY created_at_us, id LIMIT 1)",
        )
        .bind(org.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE mail_messages SET provider_id = NULL WHERE org_id = $1 AND provider_id = $2 \
             AND state IN ('queued', 'dead')",
        )
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

async fn clear_default(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE mail_providers SET is_default = 0 WHERE org_id = $1 AND is_default = 1")
        .bind(org.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
