//! Installations (a store paired with the plugin, or connected through
//! WooCommerce's REST API), their heartbeats, and the commands Cohort
//! queues for them.

use cohort_domain::connect::{
    CommandKind, CommandStatus, InstallationMode, InstallationStatus, Platform,
};
use cohort_domain::ids::{new_id, random_token, OrgId, SourceId};
use sqlx::any::AnyRow;

use crate::issued::{verified_row, SecretLookup};
use crate::row::{map_rows, RowExt};
use crate::{now_micros, Db, StoreError};

/// The prefix of installation tokens (`cin_<id>_<secret>`).
pub const INSTALLATION_TOKEN_KIND: &str = "cin";

#[derive(Debug, Clone, serde::Serialize)]
pub struct Installation {
    pub id: String,
    pub org_id: OrgId,
    pub source_id: String,
    pub store_url: String,
    pub site_name: String,
    pub platform: Platform,
    pub mode: InstallationMode,
    pub plugin_version: String,
    pub wp_version: String,
    pub wc_version: Option<String>,
    pub php_version: String,
    pub currency: Option<String>,
    pub timezone: String,
    pub status: InstallationStatus,
    pub created_at: i64,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub reported_store_url: Option<String>,
    pub outbox_depth: Option<i64>,
    pub failures_24h: Option<i64>,
    pub last_error: Option<String>,
}

/// A validated heartbeat. `None` for `site_name`, `timezone` and `store_url`
/// keeps the stored value; the other optional fields are stored as sent.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub plugin_version: String,
    pub wp_version: String,
    pub wc_version: Option<String>,
    pub php_version: String,
    pub store_url: Option<String>,
    pub site_name: Option<String>,
    pub currency: Option<String>,
    pub timezone: Option<String>,
    pub outbox_depth: Option<i64>,
    pub failures_24h: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Command {
    pub id: String,
    pub kind: CommandKind,
    /// JSON object text.
    pub params: String,
    pub status: CommandStatus,
    pub requested_at: i64,
    pub delivered_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// JSON object text.
    pub counts: Option<String>,
    pub error: Option<String>,
}

/// A validated acknowledgement.
#[derive(Debug, Clone)]
pub struct Ack {
    /// `Done` or `Failed`.
    pub status: CommandStatus,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub counts: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InstallationSummary {
    pub installation: Installation,
    pub commands_pending: i64,
    pub last_command: Option<Command>,
}

const INSTALLATION_COLUMNS: &str = "id, org_id, source_id, store_url, site_name, platform, plugin_version, wp_version, \
     wc_version, php_version, currency, timezone, status, created_at, connected_at, disconnected_at, \
     last_heartbeat_at, reported_store_url, outbox_depth, failures_24h, last_error, mode";

const COMMAND_COLUMNS: &str =
    "id, kind, params, status, requested_at, delivered_at, acked_at, started_at, finished_at, counts, error";

fn installation_from_row(r: &AnyRow) -> Result<Installation, StoreError> {
    Ok(Installation {
        id: r.col("id")?,
        org_id: OrgId::from_stored(r.col::<String, _>("org_id")?),
        source_id: r.col("source_id")?,
        store_url: r.col("store_url")?,
        site_name: r.col("site_name")?,
        platform: r.col_parsed("platform")?,
        mode: r.col_parsed("mode")?,
        plugin_version: r.col("plugin_version")?,
        wp_version: r.col("wp_version")?,
        wc_version: r.col("wc_version")?,
        php_version: r.col("php_version")?,
        currency: r.col("currency")?,
        timezone: r.col("timezone")?,
        status: r.col_parsed("status")?,
        created_at: r.col("created_at")?,
        connected_at: r.col("connected_at")?,
        disconnected_at: r.col("disconnected_at")?,
        last_heartbeat_at: r.col("last_heartbeat_at")?,
        reported_store_url: r.col("reported_store_url")?,
        outbox_depth: r.col("outbox_depth")?,
        failures_24h: r.col("failures_24h")?,
        last_error: r.col("last_error")?,
    })
}

fn command_from_row(r: &AnyRow) -> Result<Command, StoreError> {
    Ok(Command {
        id: r.col("id")?,
        kind: r.col_parsed("kind")?,
        params: r.col("params")?,
        status: r.col_parsed("status")?,
        requested_at: r.col("requested_at")?,
        delivered_at: r.col("delivered_at")?,
        acked_at: r.col("acked_at")?,
        started_at: r.col("started_at")?,
        finished_at: r.col("finished_at")?,
        counts: r.col("counts")?,
        error: r.col("error")?,
    })
}

pub(crate) async fn queue_command(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    installation_id: &str,
    kind: CommandKind,
    now: i64,
) -> Result<String, StoreError> {
    let id = new_id("cmd");
    sqlx::query(
        "INSERT INTO connect_commands (id, org_id, installation_id, kind, params, status, requested_at) \
         VALUES ($1, $2, $3, $4, '{}', 'pending', $5)",
    )
    .bind(&id)
    .bind(org.as_str())
    .bind(installation_id)
    .bind(kind.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// The store's source: the one its previous installation (of either mode)
/// used, if it still exists in this organisation, else a new one named
/// `name`.
pub(crate) async fn store_source(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    store_url: &str,
    name: &str,
    now: i64,
) -> Result<String, StoreError> {
    let previous = sqlx::query(
        "SELECT s.id FROM connect_installations i JOIN sources s ON s.id = i.source_id AND s.org_id = i.org_id \
         WHERE i.org_id = $1 AND i.store_url = $2 ORDER BY i.created_at DESC, i.id DESC LIMIT 1",
    )
    .bind(org.as_str())
    .bind(store_url)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = previous {
        return r.col::<String, _>("id");
    }
    let source_id = SourceId::generate();
    sqlx::query(
        "INSERT INTO sources (id, org_id, name, write_key, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(source_id.as_str())
    .bind(org.as_str())
    .bind(name)
    .bind(format!("wk_{}", random_token(32)))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(source_id.as_str().to_owned())
}

/// Marks the earlier installations of `store_url` in `org` (either mode)
/// replaced by `installation_id` (their tokens stop working) and cancels
/// their pending commands.
pub(crate) async fn replace_store_installations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    store_url: &str,
    installation_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE connect_installations SET status = 'replaced', replaced_by = $1, disconnected_at = $2 \
         WHERE org_id = $3 AND store_url = $4 AND status IN ('awaiting_plugin', 'connected')",
    )
    .bind(installation_id)
    .bind(now)
    .bind(org.as_str())
    .bind(store_url)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE connect_commands SET status = 'cancelled' WHERE org_id = $1 AND status = 'pending' \
         AND installation_id IN (SELECT id FROM connect_installations WHERE org_id = $1 AND replaced_by = $2)",
    )
    .bind(org.as_str())
    .bind(installation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// The connected installation a presented token belongs to. Tokens of
    /// disconnected or replaced installations match nothing.
    pub async fn verify_installation_token(
        &self,
        presented: &str,
    ) -> Result<Option<Installation>, StoreError> {
        let sql = format!(
            "SELECT {INSTALLATION_COLUMNS}, token_digest AS secret_digest FROM connect_installations \
             WHERE token_id = $1 AND status = 'connected'"
        );
        let lookup = SecretLookup {
            kind: INSTALLATION_TOKEN_KIND,
            sql: &sql,
            live_at: None,
        };
        verified_row(self, lookup, presented)
            .await?
            .as_ref()
            .map(installation_from_row)
            .transpose()
    }

    /// The secret Cohort signs its requests to the store with (connect.md §5).
    pub async fn installation_signing_secret(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT signing_secret FROM connect_installations WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => r.col("signing_secret")?,
            None => None,
        })
    }

    /// Stores a heartbeat; returns the number of pending commands.
    pub async fn record_heartbeat(
        &self,
        org: &OrgId,
        id: &str,
        beat: &Heartbeat,
    ) -> Result<i64, StoreError> {
        sqlx::query(
            "UPDATE connect_installations SET last_heartbeat_at = $1, plugin_version = $2, wp_version = $3, \
             wc_version = $4, php_version = $5, reported_store_url = COALESCE($6, reported_store_url), \
             site_name = COALESCE($7, site_name), currency = $8, timezone = COALESCE($9, timezone), \
             outbox_depth = $10, failures_24h = $11, last_error = $12 WHERE org_id = $13 AND id = $14",
        )
        .bind(now_micros())
        .bind(&beat.plugin_version)
        .bind(&beat.wp_version)
        .bind(beat.wc_version.as_deref())
        .bind(&beat.php_version)
        .bind(beat.store_url.as_deref())
        .bind(beat.site_name.as_deref())
        .bind(beat.currency.as_deref())
        .bind(beat.timezone.as_deref())
        .bind(beat.outbox_depth)
        .bind(beat.failures_24h)
        .bind(beat.last_error.as_deref())
        .bind(org.as_str())
        .bind(id)
        .execute(self.pool())
        .await?;
        self.count_pending_commands(org, id).await
    }

    pub async fn count_pending_commands(
        &self,
        org: &OrgId,
        installation_id: &str,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM connect_commands WHERE org_id = $1 AND installation_id = $2 AND status = 'pending'",
        )
        .bind(org.as_str())
        .bind(installation_id)
        .fetch_one(self.pool())
        .await?;
        row.col("n")
    }

    /// The installation's pending commands, oldest first; marks them
    /// delivered (the first time). They stay pending until acknowledged.
    pub async fn pending_commands(
        &self,
        org: &OrgId,
        installation_id: &str,
    ) -> Result<Vec<Command>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COMMAND_COLUMNS} FROM connect_commands WHERE org_id = $1 AND installation_id = $2 \
             AND status = 'pending' ORDER BY requested_at, id"
        ))
        .bind(org.as_str())
        .bind(installation_id)
        .fetch_all(self.pool())
        .await?;
        sqlx::query(
            "UPDATE connect_commands SET delivered_at = $1 WHERE org_id = $2 AND installation_id = $3 \
             AND status = 'pending' AND delivered_at IS NULL",
        )
        .bind(now_micros())
        .bind(org.as_str())
        .bind(installation_id)
        .execute(self.pool())
        .await?;
        map_rows(&rows, command_from_row)
    }

    /// Records the outcome of a command. A command already acknowledged is
    /// left as it is (a retried ack is harmless); `None` when the
    /// installation has no such command.
    pub async fn ack_command(
        &self,
        org: &OrgId,
        installation_id: &str,
        command_id: &str,
        ack: &Ack,
    ) -> Result<Option<Command>, StoreError> {
        sqlx::query(
            "UPDATE connect_commands SET status = $1, acked_at = $2, started_at = $3, finished_at = $4, counts = $5, \
             error = $6 WHERE org_id = $7 AND installation_id = $8 AND id = $9 AND status = 'pending'",
        )
        .bind(ack.status.as_str())
        .bind(now_micros())
        .bind(ack.started_at)
        .bind(ack.finished_at)
        .bind(ack.counts.as_deref())
        .bind(ack.error.as_deref())
        .bind(org.as_str())
        .bind(installation_id)
        .bind(command_id)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {COMMAND_COLUMNS} FROM connect_commands WHERE org_id = $1 AND installation_id = $2 AND id = $3"
        ))
        .bind(org.as_str())
        .bind(installation_id)
        .bind(command_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(command_from_row).transpose()
    }

    /// Disconnects an installation: its token stops working and its pending
    /// commands are cancelled.
    pub async fn disconnect_installation(&self, org: &OrgId, id: &str) -> Result<(), StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE connect_installations SET status = 'disconnected', disconnected_at = $1 \
             WHERE org_id = $2 AND id = $3 AND status = 'connected'",
        )
        .bind(now)
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE connect_commands SET status = 'cancelled' WHERE org_id = $1 AND installation_id = $2 AND status = 'pending'",
        )
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A plain-WordPress installation gains WooCommerce: the platform
    /// changes and an initial `sync_store` is queued. Returns the queued
    /// command's id (`None` when it already was a WooCommerce store).
    pub async fn upgrade_installation(
        &self,
        org: &OrgId,
        id: &str,
        wc_version: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let upgraded = sqlx::query(
            "UPDATE connect_installations SET platform = 'woocommerce', wc_version = $1 \
             WHERE org_id = $2 AND id = $3 AND platform <> 'woocommerce'",
        )
        .bind(wc_version)
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let command = if upgraded.rows_affected() == 1 {
            Some(queue_command(&mut tx, org, id, CommandKind::SyncStore, now).await?)
        } else {
            sqlx::query(
                "UPDATE connect_installations SET wc_version = $1 WHERE org_id = $2 AND id = $3",
            )
            .bind(wc_version)
            .bind(org.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            None
        };
        tx.commit().await?;
        Ok(command)
    }

    /// Asks a connected WooCommerce installation to sync its store: queues a
    /// `sync_store` command, unless one is already pending (then that one is
    /// returned, `false`). `None`: no such connected WooCommerce installation.
    pub async fn request_sync(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<(String, bool)>, StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let platform: Option<String> = sqlx::query_scalar(
            "SELECT platform FROM connect_installations WHERE org_id = $1 AND id = $2 AND status = 'connected'",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if platform.as_deref() != Some(Platform::Woocommerce.as_str()) {
            tx.commit().await?;
            return Ok(None);
        }
        let pending: Option<String> = sqlx::query_scalar(
            "SELECT id FROM connect_commands WHERE org_id = $1 AND installation_id = $2 AND kind = 'sync_store' \
             AND status = 'pending' ORDER BY requested_at LIMIT 1",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let answer = match pending {
            Some(existing) => (existing, false),
            None => (
                queue_command(&mut tx, org, id, CommandKind::SyncStore, now).await?,
                true,
            ),
        };
        tx.commit().await?;
        Ok(Some(answer))
    }

    /// Every installation of `org`, newest first, with its command status.
    pub async fn list_installations(
        &self,
        org: &OrgId,
    ) -> Result<Vec<InstallationSummary>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTALLATION_COLUMNS} FROM connect_installations WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let installation = installation_from_row(row)?;
            let last = sqlx::query(&format!(
                "SELECT {COMMAND_COLUMNS} FROM connect_commands WHERE org_id = $1 AND installation_id = $2 \
                 ORDER BY requested_at DESC, id DESC LIMIT 1"
            ))
            .bind(org.as_str())
            .bind(&installation.id)
            .fetch_optional(self.pool())
            .await?;
            let commands_pending = self.count_pending_commands(org, &installation.id).await?;
            out.push(InstallationSummary {
                installation,
                commands_pending,
                last_command: last.as_ref().map(command_from_row).transpose()?,
            });
        }
        Ok(out)
    }
}
