//! `GET /api/v1/installations`: the caller's organisation's connected
//! stores, with versions, health and the status of their last command.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_domain::connect::{Health, InstallationStatus};
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::connect::{Command, InstallationSummary};
use cohort_store::now_micros;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::ApiCaller;
use crate::connect::sync::RunView;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

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

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationList {
    pub data: Vec<InstallationView>,
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

/// The installations (connected stores) of the caller's organisation,
/// newest first.
#[utoipa::path(
    get,
    path = "/api/v1/installations",
    tag = "connect",
    responses(
        (status = 200, description = "Installations", body = InstallationList),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_installations(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<InstallationList>, ApiError> {
    let now = now_micros();
    let data = state
        .db()
        .list_installations(&caller.org)
        .await?
        .into_iter()
        .map(|s| InstallationView::from_summary(s, now))
        .collect();
    Ok(Json(InstallationList { data }))
}

#[derive(Serialize, ToSchema)]
pub struct SyncRequested {
    pub command_id: String,
    /// `false`: a sync was already waiting for the store; that one stands
    pub queued: bool,
}

/// Asks a connected WooCommerce store to sync (a `sync_store` command the
/// plugin picks up after its next heartbeat).
#[utoipa::path(
    post,
    path = "/api/v1/installations/{id}/sync",
    tag = "connect",
    params(("id" = String, Path, description = "The installation")),
    responses(
        (status = 202, description = "Queued (or already waiting)", body = SyncRequested),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No connected WooCommerce installation with this id in the organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn request_sync(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SyncRequested>), ApiError> {
    match state.db().request_sync(&caller.org, &id).await? {
        Some((command_id, queued)) => Ok((
            StatusCode::ACCEPTED,
            Json(SyncRequested { command_id, queued }),
        )),
        None => Err(ApiError::not_found("connected WooCommerce installation")),
    }
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunList {
    pub data: Vec<RunView>,
}

/// An installation's sync runs, newest first (at most 50), with progress
/// per resource.
#[utoipa::path(
    get,
    path = "/api/v1/installations/{id}/sync-runs",
    tag = "connect",
    params(("id" = String, Path, description = "The installation")),
    responses(
        (status = 200, description = "Runs", body = SyncRunList),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such installation in the organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_sync_runs(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<SyncRunList>, ApiError> {
    let db = state.db();
    if !db
        .list_installations(&caller.org)
        .await?
        .iter()
        .any(|s| s.installation.id == id)
    {
        return Err(ApiError::not_found("installation"));
    }
    let data = db
        .list_sync_runs(&caller.org, &id, 50)
        .await?
        .into_iter()
        .map(RunView::from)
        .collect();
    Ok(Json(SyncRunList { data }))
}
