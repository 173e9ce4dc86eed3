//! No-plugin mode (connect.md §6): a WooCommerce store connected through
//! WooCommerce's own REST API keys and webhooks.
//!
//! A connection starts with a one-time state (WooCommerce's `user_id`),
//! stored as its SHA-256 digest and found by it; the callback spends it once
//! and creates the installation (a `connect_installations` row with mode
//! `rest`, so Stores lists both modes), its source, and the initial
//! `sync_store` command the REST worker carries out. The consumer key and
//! secret and the webhook secret are encrypted with the destinations key
//! (ChaCha20-Poly1305), bound to their installation and field.
//!
//! Several Cohort nodes may share one PostgreSQL: a worker claims a
//! connection with a lease (a conditional update), extends it while it
//! works, and a connection whose worker died is claimed again once the
//! lease ends.

use cohort_domain::connect::CommandKind;
use cohort_domain::ids::{new_id, random_token, OrgId};
use cohort_domain::secrets;
use sqlx::any::AnyRow;

use crate::connect::{
    queue_command, replace_store_installations, store_source, PAIRING_LIFETIME_MICROS,
};
use crate::destinations::SecretsKey;
use crate::row::RowExt;
use crate::{now_micros, Db, StoreError};

/// The prefix of one-time states (`wcs_…`).
pub const STATE_KIND: &str = "wcs";
/// The resources pulled, in order; each has a high-water mark.
pub const REST_RESOURCES: [&str; 3] = ["products", "customers", "orders"];

/// A started connection, before WooCommerce calls back.
#[derive(Debug, Clone)]
pub struct StartedConnection {
    pub installation_id: String,
    /// The one-time state: the only copy (only its digest is stored).
    pub state: String,
    pub expires_at: i64,
}

/// The keys WooCommerce posts to the callback.
#[derive(Clone)]
pub struct CallbackKeys {
    pub key_id: i64,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub key_permissions: String,
}

impl std::fmt::Debug for CallbackKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackKeys")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What the callback did with a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    Connected {
        installation_id: String,
        org_id: OrgId,
    },
    Unknown,
    Expired,
    AlreadyUsed,
}

/// A connected REST installation, with its secrets decrypted. `Debug`
/// hides the secrets.
#[derive(Clone)]
pub struct RestConnection {
    pub installation_id: String,
    pub org_id: OrgId,
    pub source_id: String,
    pub store_url: String,
    pub cohort_url: String,
    pub currency: Option<String>,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub webhook_secret: String,
    pub webhooks_registered_at: Option<i64>,
    pub next_reconcile_at: Option<i64>,
    /// products, customers, orders → the latest `date_modified_gmt` seen.
    pub high_water: [Option<i64>; 3],
}

impl std::fmt::Debug for RestConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConnection")
            .field("installation_id", &self.installation_id)
            .field("store_url", &self.store_url)
            .finish_non_exhaustive()
    }
}

/// What a webhook delivery is checked against.
#[derive(Clone)]
pub struct WebhookTarget {
    pub org_id: OrgId,
    pub source_id: String,
    pub currency: Option<String>,
    pub webhook_secret: String,
}

/// Why a worker holds a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestWork {
    pub installation_id: String,
    /// The pending `sync_store` command to carry out (the history pull).
    pub sync_command: Option<String>,
}

fn context(installation_id: &str, field: &str) -> String {
    format!("woocommerce_rest:{installation_id}:{field}")
}

fn hwm_column(resource: &str) -> Result<&'static str, StoreError> {
    match resource {
        "products" => Ok("hwm_products"),
        "customers" => Ok("hwm_customers"),
        "orders" => Ok("hwm_orders"),
        other => Err(StoreError::Invalid(format!(
            "no high-water mark for {other:?}"
        ))),
    }
}

fn text(
    key: &SecretsKey,
    row: &AnyRow,
    installation_id: &str,
    field: &str,
) -> Result<String, StoreError> {
    let sealed: Option<String> = row.col(field)?;
    let sealed = sealed
        .ok_or_else(|| StoreError::Invalid(format!("{field} missing for {installation_id}")))?;
    let plain = key.decrypt(&sealed, &context(installation_id, field))?;
    String::from_utf8(plain).map_err(|_| StoreError::Invalid(format!("{field} is not text")))
}

impl Db {
    /// Starts a REST connection of `store_url` for `org`: a one-time state
    /// valid for 15 minutes, and the installation id the store will have.
    pub async fn start_rest_connection(
        &self,
        org: &OrgId,
        store_url: &str,
        cohort_url: &str,
        requested_by: Option<&str>,
    ) -> Result<StartedConnection, StoreError> {
        let now = now_micros();
        let installation_id = new_id("ins");
        let state = format!("{STATE_KIND}_{}", random_token(40));
        let expires_at = now + PAIRING_LIFETIME_MICROS;
        sqlx::query(
            "INSERT INTO woocommerce_rest_connections (installation_id, org_id, store_url, cohort_url, state_digest, \
             state_expires_at, requested_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&installation_id)
        .bind(org.as_str())
        .bind(store_url)
        .bind(cohort_url)
        .bind(secrets::digest(&state))
        .bind(expires_at)
        .bind(requested_by)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(StartedConnection {
            installation_id,
            state,
            expires_at,
        })
    }

    /// Spends a one-time state: stores the keys encrypted with a fresh
    /// webhook secret, creates the installation (replacing earlier ones of
    /// the same store in the organisation) and queues the initial sync.
    /// Nothing is written unless the state is live and unused.
    pub async fn complete_rest_connection(
        &self,
        key: &SecretsKey,
        state: &str,
        keys: &CallbackKeys,
    ) -> Result<CallbackOutcome, StoreError> {
        let now = now_micros();
        let digest = secrets::digest(state);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT installation_id, org_id, store_url, state_expires_at, state_used_at FROM woocommerce_rest_connections \
             WHERE state_digest = $1",
        )
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(CallbackOutcome::Unknown);
        };
        if row.col::<Option<i64>, _>("state_used_at")?.is_some() {
            tx.rollback().await?;
            return Ok(CallbackOutcome::AlreadyUsed);
        }
        if row.col::<i64, _>("state_expires_at")? <= now {
            tx.rollback().await?;
            return Ok(CallbackOutcome::Expired);
        }
        let installation_id: String = row.col("installation_id")?;
        let org = OrgId::from_stored(row.col::<String, _>("org_id")?);
        let store_url: String = row.col("store_url")?;
        let webhook_secret = random_token(48);
        let spent = sqlx::query(
            "UPDATE woocommerce_rest_connections SET state_used_at = $1, key_id = $2, key_permissions = $3, \
             consumer_key = $4, consumer_secret = $5, webhook_secret = $6, connected_at = $1 \
             WHERE installation_id = $7 AND state_used_at IS NULL",
        )
        .bind(now)
        .bind(keys.key_id.to_string())
        .bind(&keys.key_permissions)
        .bind(key.encrypt(keys.consumer_key.as_bytes(), &context(&installation_id, "consumer_key"))?)
        .bind(key.encrypt(keys.consumer_secret.as_bytes(), &context(&installation_id, "consumer_secret"))?)
        .bind(key.encrypt(webhook_secret.as_bytes(), &context(&installation_id, "webhook_secret"))?)
        .bind(&installation_id)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(CallbackOutcome::AlreadyUsed);
        }
        let host = store_url
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(&store_url)
            .to_owned();
        let source_id = store_source(
            &mut tx,
            &org,
            &store_url,
            &format!("{host} (woocommerce)"),
            now,
        )
        .await?;
        replace_store_installations(&mut tx, &org, &store_url, &installation_id, now).await?;
        sqlx::query(
            "INSERT INTO connect_installations (id, org_id, pairing_id, source_id, store_url, site_name, platform, mode, \
             plugin_version, wp_version, php_version, timezone, status, created_at, connected_at) \
             VALUES ($1, $2, $1, $3, $4, $5, 'woocommerce', 'rest', '', '', '', 'UTC', 'connected', $6, $6)",
        )
        .bind(&installation_id)
        .bind(org.as_str())
        .bind(&source_id)
        .bind(&store_url)
        .bind(&host)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        queue_command(&mut tx, &org, &installation_id, CommandKind::SyncStore, now).await?;
        tx.commit().await?;
        Ok(CallbackOutcome::Connected {
            installation_id,
            org_id: org,
        })
    }

    /// The connected REST installation `id`, secrets decrypted.
    pub async fn rest_connection(
        &self,
        key: &SecretsKey,
        id: &str,
    ) -> Result<Option<RestConnection>, StoreError> {
        let row = sqlx::query(
            "SELECT c.installation_id, c.org_id, c.store_url, c.cohort_url, c.consumer_key, c.consumer_secret, \
             c.webhook_secret, c.webhooks_registered_at, c.next_reconcile_at, c.hwm_products, c.hwm_customers, \
             c.hwm_orders, i.source_id, i.currency FROM woocommerce_rest_connections c \
             JOIN connect_installations i ON i.id = c.installation_id AND i.org_id = c.org_id \
             WHERE c.installation_id = $1 AND i.status = 'connected' AND i.mode = 'rest'",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RestConnection {
            installation_id: row.col("installation_id")?,
            org_id: OrgId::from_stored(row.col::<String, _>("org_id")?),
            source_id: row.col("source_id")?,
            store_url: row.col("store_url")?,
            cohort_url: row.col("cohort_url")?,
            currency: row
                .col::<Option<String>, _>("currency")?
                .filter(|c| !c.is_empty()),
            consumer_key: text(key, &row, id, "consumer_key")?,
            consumer_secret: text(key, &row, id, "consumer_secret")?,
            webhook_secret: text(key, &row, id, "webhook_secret")?,
            webhooks_registered_at: row.col("webhooks_registered_at")?,
            next_reconcile_at: row.col("next_reconcile_at")?,
            high_water: [
                row.col("hwm_products")?,
                row.col("hwm_customers")?,
                row.col("hwm_orders")?,
            ],
        }))
    }

    /// What a webhook delivery to installation `id` is verified with; `None`
    /// for an unknown, disconnected or replaced installation.
    pub async fn rest_webhook_target(
        &self,
        key: &SecretsKey,
        id: &str,
    ) -> Result<Option<WebhookTarget>, StoreError> {
        let row = sqlx::query(
            "SELECT c.org_id, c.webhook_secret, i.source_id, i.currency FROM woocommerce_rest_connections c \
             JOIN connect_installations i ON i.id = c.installation_id AND i.org_id = c.org_id \
             WHERE c.installation_id = $1 AND i.status = 'connected' AND i.mode = 'rest'",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(WebhookTarget {
            org_id: OrgId::from_stored(row.col::<String, _>("org_id")?),
            source_id: row.col("source_id")?,
            currency: row
                .col::<Option<String>, _>("currency")?
                .filter(|c| !c.is_empty()),
            webhook_secret: text(key, &row, id, "webhook_secret")?,
        }))
    }

    /// Claims one connected REST installation that has work (a pending
    /// `sync_store`, webhooks not registered yet, or a reconciliation due)
    /// and no live lease. `None`: nothing to do now.
    pub async fn claim_rest_work(
        &self,
        owner: &str,
        now: i64,
        lease_us: i64,
    ) -> Result<Option<RestWork>, StoreError> {
        let candidates = sqlx::query(
            "SELECT c.installation_id, \
             (SELECT MIN(m.id) FROM connect_commands m WHERE m.org_id = c.org_id AND m.installation_id = c.installation_id \
              AND m.kind = 'sync_store' AND m.status = 'pending') AS sync_command \
             FROM woocommerce_rest_connections c JOIN connect_installations i ON i.id = c.installation_id AND i.org_id = c.org_id \
             WHERE i.status = 'connected' AND i.mode = 'rest' AND (c.lease_until IS NULL OR c.lease_until <= $1) \
             AND (c.webhooks_registered_at IS NULL OR c.next_reconcile_at IS NULL OR c.next_reconcile_at <= $1 \
              OR EXISTS (SELECT 1 FROM connect_commands m WHERE m.org_id = c.org_id AND m.installation_id = c.installation_id \
              AND m.kind = 'sync_store' AND m.status = 'pending')) \
             ORDER BY c.created_at LIMIT 50",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        for row in candidates {
            let id: String = row.col("installation_id")?;
            let sync_command: Option<String> = row.col("sync_command")?;
            let claimed = sqlx::query(
                "UPDATE woocommerce_rest_connections SET lease_owner = $1, lease_until = $2 WHERE installation_id = $3 \
                 AND (lease_until IS NULL OR lease_until <= $4) \
                 AND ($5 = 1 OR webhooks_registered_at IS NULL OR next_reconcile_at IS NULL OR next_reconcile_at <= $4)",
            )
            .bind(owner)
            .bind(now.saturating_add(lease_us))
            .bind(&id)
            .bind(now)
            .bind(i64::from(sync_command.is_some()))
            .execute(self.pool())
            .await?;
            if claimed.rows_affected() == 1 {
                return Ok(Some(RestWork {
                    installation_id: id,
                    sync_command,
                }));
            }
        }
        Ok(None)
    }

    /// Extends a held lease; `false` when another worker holds it now.
    pub async fn extend_rest_lease(
        &self,
        id: &str,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE woocommerce_rest_connections SET lease_until = $1 WHERE installation_id = $2 AND lease_owner = $3",
        )
        .bind(until)
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a lease: the connection may be claimed again from `free_at`
    /// (now, or later after an error), and `last_error` is recorded.
    pub async fn release_rest_lease(
        &self,
        id: &str,
        owner: &str,
        free_at: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE woocommerce_rest_connections SET lease_owner = NULL, lease_until = $1, last_error = $2 \
             WHERE installation_id = $3 AND lease_owner = $4",
        )
        .bind(free_at)
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the webhooks registered with the store (topic → id, JSON).
    pub async fn set_rest_webhooks(&self, id: &str, webhook_ids: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE woocommerce_rest_connections SET webhook_ids = $1, webhooks_registered_at = $2 WHERE installation_id = $3",
        )
        .bind(webhook_ids)
        .bind(now_micros())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The store's currency, read from its settings.
    pub async fn set_rest_currency(&self, id: &str, currency: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE connect_installations SET currency = $1 WHERE id = $2 AND mode = 'rest'",
        )
        .bind(currency)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Raises a resource's high-water mark to `modified` (never lowers it).
    pub async fn raise_rest_high_water(
        &self,
        id: &str,
        resource: &str,
        modified: i64,
    ) -> Result<(), StoreError> {
        let column = hwm_column(resource)?;
        sqlx::query(&format!(
            "UPDATE woocommerce_rest_connections SET {column} = $1 WHERE installation_id = $2 \
             AND ({column} IS NULL OR {column} < $1)"
        ))
        .bind(modified)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A pull finished: the next reconciliation is due at `next_at`.
    pub async fn finish_rest_pull(&self, id: &str, next_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE woocommerce_rest_connections SET last_pull_at = $1, next_reconcile_at = $2, last_error = NULL \
             WHERE installation_id = $3",
        )
        .bind(now_micros())
        .bind(next_at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces a connection's webhook secret (the receiver checks the new
    /// one at once; the store's webhooks must be given it too).
    pub async fn set_rest_webhook_secret(
        &self,
        key: &SecretsKey,
        id: &str,
        secret: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE woocommerce_rest_connections SET webhook_secret = $1 WHERE installation_id = $2")
            .bind(key.encrypt(secret.as_bytes(), &context(id, "webhook_secret"))?)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// WooCommerce resources (`resource` messages) in `org`'s log, derived
    /// events excluded (benchmarks count acknowledged deliveries back).
    pub async fn count_resource_messages(&self, org: &OrgId) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM events WHERE org_id = $1 AND type = 'resource'")
                .bind(org.as_str())
                .fetch_one(self.pool())
                .await?;
        row.col("n")
    }

    /// Makes a connection's reconciliation due now (tests, `cohort store`).
    pub async fn reconcile_rest_now(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE woocommerce_rest_connections SET next_reconcile_at = $1 WHERE installation_id = $2")
            .bind(now_micros())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_bound_to_their_installation_and_field() {
        let key = SecretsKey::generate();
        let sealed = key
            .encrypt(b"ck_123", &context("ins_a", "consumer_key"))
            .unwrap();
        assert_eq!(
            key.decrypt(&sealed, &context("ins_a", "consumer_key"))
                .unwrap(),
            b"ck_123"
        );
        assert!(key
            .decrypt(&sealed, &context("ins_b", "consumer_key"))
            .is_err());
        assert!(key
            .decrypt(&sealed, &context("ins_a", "consumer_secret"))
            .is_err());
    }
}
