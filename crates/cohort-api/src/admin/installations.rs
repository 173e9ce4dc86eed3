//! `GET /api/v1/installations`: the caller's organisation's connected
//! stores, with versions, health and the status of their last command.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_store::now_micros;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiCaller;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};
pub use cohort_engine::views::installations::{CommandStatus, InstallationView};
use cohort_engine::views::sync_runs::RunView;

#[derive(Debug, Serialize, ToSchema)]
pub struct InstallationList {
    pub data: Vec<InstallationView>,
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
