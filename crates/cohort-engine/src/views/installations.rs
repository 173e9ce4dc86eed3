//! A connected store (installation) with its health and last command.

use cohort_domain::connect::{Health, InstallationStatus};
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::connect::{Command, InstallationSummary};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct CommandStatus {
    pub id: String,
    pub kind: String,
    /// pending, done, failed or cancelled
    pub status: String,
    pub requested_at: String,
    pub delivered_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// `{products, customers, guests, orders}` as acknowledged
    #[schema(value_type = Option<Object>)]
    pub counts: Option<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationView {
    pub id: String,
    pub store_url: String,
    /// The URL the plugin's last heartbeat reported, when it differs
    pub reported_store_url: Option<String>,
    pub site_name: String,
    /// woocommerce or wordpress
    pub platform: String,
    /// plugin (the Cohort plugin) or rest (no plugin: WooCommerce's REST
    /// API keys and webhooks)
    pub mode: String,
    pub source_id: String,
    pub plugin_version: String,
    pub wp_version: String,
    pub wc_version: Option<String>,
    pub php_version: String,
    pub currency: Option<String>,
    pub timezone: String,
    /// awaiting_plugin, connected, disconnected or replaced
    pub status: String,
    /// For a connected installation: pending (never heard from), healthy
    /// (< 15 min since the last heartbeat), stale (< 1 h) or lost; null otherwise
    pub health: Option<String>,
    pub last_heartbeat_at: Option<String>,
    pub outbox_depth: Option<i64>,
    pub failures_24h: Option<i64>,
    pub last_error: Option<String>,
    pub commands_pending: i64,
    pub last_command: Option<CommandStatus>,
    pub created_at: String,
    pub connected_at: Option<String>,
    pub disconnected_at: Option<String>,
}

fn time(micros: Option<i64>) -> Option<String> {
    micros.map(|t| format_rfc3339(from_micros(t)))
}

fn command_status(c: Command) -> CommandStatus {
    CommandStatus {
        id: c.id,
        kind: c.kind.as_str().to_owned(),
        status: c.status.as_str().to_owned(),
        requested_at: format_rfc3339(from_micros(c.requested_at)),
        delivered_at: time(c.delivered_at),
        started_at: time(c.started_at),
        finished_at: time(c.finished_at),
        counts: c.counts.and_then(|text| serde_json::from_str(&text).ok()),
        error: c.error,
    }
}

impl InstallationView {
    pub fn from_summary(summary: InstallationSummary, now: i64) -> Self {
        let i = summary.installation;
        let health = (i.status == InstallationStatus::Connected)
            .then(|| Health::at(i.last_heartbeat_at, now).as_str().to_owned());
        Self {
            reported_store_url: i.reported_store_url.filter(|u| *u != i.store_url),
            id: i.id,
            store_url: i.store_url,
            site_name: i.site_name,
            platform: i.platform.as_str().to_owned(),
            mode: i.mode.as_str().to_owned(),
            source_id: i.source_id,
            plugin_version: i.plugin_version,
            wp_version: i.wp_version,
            wc_version: i.wc_version,
            php_version: i.php_version,
            currency: i.currency,
            timezone: i.timezone,
            status: i.status.as_str().to_owned(),
            health,
            last_heartbeat_at: time(i.last_heartbeat_at),
            outbox_depth: i.outbox_depth,
            failures_24h: i.failures_24h,
            last_error: i.last_error,
            commands_pending: summary.commands_pending,
            last_command: summary.last_command.map(command_status),
            created_at: format_rfc3339(from_micros(i.created_at)),
            connected_at: time(i.connected_at),
            disconnected_at: time(i.disconnected_at),
        }
    }
}
