//! Calls a connected plugin makes with its installation token
//! (connect.md §2): heartbeat, commands and their acknowledgement,
//! disconnect, and the upgrade of a plain WordPress site to WooCommerce.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_domain::connect::CommandStatus;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::connect::{Ack, Heartbeat};
use cohort_store::now_micros;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::input::{count, Fields, MAX_ERROR_CHARS, MAX_NAME_CHARS, MAX_VERSION_CHARS};
use super::{ApiError, InstallationCaller};
use crate::error::ErrorBody;
use crate::AppState;

/// What a plugin reports every 5 minutes.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HeartbeatRequest {
    plugin_version: String,
    wp_version: String,
    wc_version: Option<String>,
    php_version: String,
    /// Kept as `reported_store_url`; the paired URL does not change
    store_url: Option<String>,
    site_name: Option<String>,
    currency: Option<String>,
    timezone: Option<String>,
    /// Calls waiting in the plugin's outbox
    outbox_depth: Option<u64>,
    failures_24h: Option<u64>,
    /// Cut to 2,000 characters
    last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatAnswer {
    pub server_time: String,
    pub commands_pending: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CommandView {
    pub id: String,
    /// `sync_store`, `sync_products`, `sync_customers` or `sync_orders`
    pub kind: String,
    #[schema(value_type = Object)]
    pub params: Value,
    pub requested_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct CommandList {
    pub commands: Vec<CommandView>,
}

/// The outcome of a command.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AckRequest {
    /// `done` or `failed`
    status: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    /// `{products, customers, guests, orders}`, whole numbers ≥ 0
    #[schema(value_type = Option<Object>)]
    counts: Option<Value>,
    /// Cut to 2,000 characters
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AckAnswer {
    pub id: String,
    /// The stored status: a repeated ack does not change it
    pub status: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpgradeRequest {
    /// `woocommerce`
    platform: String,
    wc_version: String,
}

#[derive(Serialize, ToSchema)]
pub struct UpgradeAnswer {
    pub platform: String,
    pub wc_version: String,
    /// The initial `sync_store` queued by this upgrade, if any
    pub command_id: Option<String>,
}

/// Records a heartbeat.
#[utoipa::path(
    post,
    path = "/connect/v1/heartbeat",
    tag = "connect",
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Recorded", body = HeartbeatAnswer),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    body: Bytes,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let fields = Fields::parse(&body)?;
    let beat = Heartbeat {
        plugin_version: fields.text("plugin_version", MAX_VERSION_CHARS)?,
        wp_version: fields.text("wp_version", MAX_VERSION_CHARS)?,
        wc_version: fields.opt_text("wc_version", MAX_VERSION_CHARS)?,
        php_version: fields.text("php_version", MAX_VERSION_CHARS)?,
        store_url: fields.opt_url("store_url")?,
        site_name: fields.opt_text("site_name", MAX_NAME_CHARS)?,
        currency: fields.opt_text("currency", 16)?,
        timezone: fields.opt_text("timezone", MAX_VERSION_CHARS)?,
        outbox_depth: fields.opt_count("outbox_depth")?,
        failures_24h: fields.opt_count("failures_24h")?,
        last_error: fields.opt_text_cut("last_error", MAX_ERROR_CHARS)?,
    };
    let pending = state
        .db()
        .record_heartbeat(&installation.org_id, &installation.id, &beat)
        .await?;
    Ok(Json(HeartbeatAnswer {
        server_time: format_rfc3339(from_micros(now_micros())),
        commands_pending: pending,
    }))
}

/// The installation's pending commands, oldest first. A command stays
/// pending (and is listed again) until it is acknowledged.
#[utoipa::path(
    get,
    path = "/connect/v1/commands",
    tag = "connect",
    responses(
        (status = 200, description = "Pending commands", body = CommandList),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn list_commands(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
) -> Result<Json<CommandList>, ApiError> {
    let commands = state
        .db()
        .pending_commands(&installation.org_id, &installation.id)
        .await?;
    Ok(Json(CommandList {
        commands: commands
            .into_iter()
            .map(|c| CommandView {
                params: serde_json::from_str(&c.params)
                    .unwrap_or_else(|_| Value::Object(Map::new())),
                id: c.id,
                kind: c.kind.as_str().to_owned(),
                requested_at: format_rfc3339(from_micros(c.requested_at)),
            })
            .collect(),
    }))
}

const COUNT_KEYS: [&str; 4] = ["products", "customers", "guests", "orders"];

/// Acknowledges a command: done or failed, with times, counts and error.
#[utoipa::path(
    post,
    path = "/connect/v1/commands/{id}/ack",
    tag = "connect",
    params(("id" = String, Path, description = "The command's id")),
    request_body = AckRequest,
    responses(
        (status = 200, description = "Recorded (a repeated ack is accepted and changes nothing)", body = AckAnswer),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
        (status = 404, description = "No such command for this installation", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn ack_command(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AckAnswer>, ApiError> {
    let fields = Fields::parse(&body)?;
    let status = match CommandStatus::parse(&fields.text("status", 16)?) {
        Some(status @ (CommandStatus::Done | CommandStatus::Failed)) => status,
        _ => return Err(ApiError::invalid("status", "status must be done or failed")),
    };
    let started_at = fields.opt_time("started_at")?;
    let finished_at = fields.opt_time("finished_at")?;
    if let (Some(start), Some(end)) = (started_at, finished_at) {
        if end < start {
            return Err(ApiError::invalid(
                "finished_at",
                "finished_at must not be before started_at",
            ));
        }
    }
    let counts = match fields.object("counts")? {
        None => None,
        Some(map) => {
            let mut out = Map::new();
            for key in COUNT_KEYS {
                match map.get(key).filter(|v| !v.is_null()) {
                    None => {}
                    Some(v) => match count(v) {
                        Some(n) => {
                            out.insert(key.to_owned(), Value::from(n));
                        }
                        None => {
                            return Err(ApiError::invalid(
                                &format!("counts.{key}"),
                                format!("counts.{key} must be a whole number of at least 0"),
                            ))
                        }
                    },
                }
            }
            Some(Value::Object(out).to_string())
        }
    };
    let ack = Ack {
        status,
        started_at,
        finished_at,
        counts,
        error: fields.opt_text_cut("error", MAX_ERROR_CHARS)?,
    };
    match state
        .db()
        .ack_command(&installation.org_id, &installation.id, &id, &ack)
        .await?
    {
        Some(command) => Ok(Json(AckAnswer {
            id: command.id,
            status: command.status.as_str().to_owned(),
        })),
        None => Err(ApiError::not_found("command")),
    }
}

/// Disconnects this installation (the plugin's Disconnect button and
/// uninstall): its token is revoked, pending commands are cancelled.
#[utoipa::path(
    delete,
    path = "/connect/v1/installation",
    tag = "connect",
    responses(
        (status = 204, description = "Disconnected; the token now gets 401"),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn disconnect(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
) -> Result<StatusCode, ApiError> {
    state
        .db()
        .disconnect_installation(&installation.org_id, &installation.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A plain WordPress site gained WooCommerce: commerce features on and an
/// initial `sync_store` queued (once; repeating it only updates `wc_version`).
#[utoipa::path(
    post,
    path = "/connect/v1/installation/upgrade",
    tag = "connect",
    request_body = UpgradeRequest,
    responses(
        (status = 200, description = "Upgraded", body = UpgradeAnswer),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn upgrade(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    body: Bytes,
) -> Result<Json<UpgradeAnswer>, ApiError> {
    let fields = Fields::parse(&body)?;
    let platform = fields.text("platform", 32)?;
    if platform != "woocommerce" {
        return Err(ApiError::invalid(
            "platform",
            "platform must be woocommerce",
        ));
    }
    let wc_version = fields.text("wc_version", MAX_VERSION_CHARS)?;
    let command_id = state
        .db()
        .upgrade_installation(&installation.org_id, &installation.id, &wc_version)
        .await?;
    Ok(Json(UpgradeAnswer {
        platform,
        wc_version,
        command_id,
    }))
}
