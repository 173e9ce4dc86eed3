//! Stores (connected WordPress / WooCommerce installations): health,
//! versions, last heartbeat, the plugin's diagnostics, the last command;
//! *Sync store* and *Disconnect*.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use cohort_store::now_micros;
use serde::Deserialize;
use utoipa::ToSchema;

use super::sources::DoneParams;
use super::{html, redirect, templates, Member, UiError, UiResult};
use crate::admin::installations::InstallationView;
use crate::AppState;

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "sync" => "Sync queued. The store picks it up on its next heartbeat (within 5 minutes) and reports progress here.",
        "disconnected" => "Store disconnected. Its token no longer works; reconnect it from WordPress.",
        _ => return None,
    })
}

/// The organisation's stores.
#[utoipa::path(
    get,
    operation_id = "ui_list_stores",
    path = "/app/o/{org}/stores",
    tag = "ui",
    params(("org" = String, Path, description = "Organisation id"), DoneParams),
    responses(
        (status = 200, description = "The stores page", content_type = "text/html", body = String),
        (status = 404, description = "Not an organisation of the user", content_type = "text/html", body = String),
    ),
    security(("session" = []))
)]
pub(crate) async fn list_stores(State(state): State<AppState>, member: Member, Query(params): Query<DoneParams>) -> UiResult {
    let now = now_micros();
    let stores: Vec<InstallationView> = state
        .db()
        .list_installations(&member.org.id)
        .await?
        .into_iter()
        .filter(|s| s.installation.status != "replaced")
        .map(|s| InstallationView::from_summary(s, now))
        .collect();
    let body = templates::render(
        "stores.html",
        &member.layout("stores", "Stores"),
        minijinja::context! { stores, notice => notice(params.done.as_deref()) },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct StoreActionForm {
    pub csrf: Option<String>,
    /// `sync` (queue a `sync_store` command) or `disconnect`
    pub action: Option<String>,
}

/// Queues a full sync of a connected store, or disconnects it.
#[utoipa::path(
    post,
    operation_id = "ui_store_action",
    path = "/app/o/{org}/stores/{store}",
    tag = "ui",
    params(("org" = String, Path, description = "Organisation id"), ("store" = String, Path, description = "Installation id")),
    request_body(content = StoreActionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: back to the stores page"),
        (status = 400, description = "Unknown action", content_type = "text/html", body = String),
        (status = 403, description = "Wrong CSRF token, or a viewer", content_type = "text/html", body = String),
        (status = 404, description = "No such connected store in an organisation of the user", content_type = "text/html", body = String),
    ),
    security(("session" = []))
)]
pub(crate) async fn store_action(
    State(state): State<AppState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    form: Result<Form<StoreActionForm>, FormRejection>,
) -> UiResult {
    let store = ids.1;
    let Ok(Form(form)) = form else { return Err(UiError::bad_form()) };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let db = state.db();
    let org = &member.org.id;
    let done = match form.action.as_deref() {
        Some("sync") => {
            let command = db.request_store_sync(org, &store).await?.ok_or_else(UiError::not_found)?;
            tracing::info!(installation = %store, command = %command, "sync_store queued from the admin UI");
            "sync"
        }
        Some("disconnect") => {
            let connected = db.list_installations(org).await?.into_iter().any(|s| s.installation.id == store && s.installation.status == "connected");
            if !connected {
                return Err(UiError::not_found());
            }
            db.disconnect_installation(org, &store).await?;
            tracing::info!(installation = %store, "store disconnected from the admin UI");
            "disconnected"
        }
        _ => return Err(UiError::bad_form()),
    };
    Ok(redirect(&member.path(&format!("/stores?done={done}"))))
}
