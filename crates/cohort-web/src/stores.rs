//! Stores (connected WordPress / WooCommerce installations): health,
//! versions, last heartbeat, the plugin's diagnostics, the last command;
//! a store's sync runs with their progress per resource, kept live while
//! one runs (the page's script reloads the runs fragment); *Sync store*
//! (one pending sync at most: a second click finds it queued) and
//! *Disconnect*.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use cohort_domain::connect::InstallationStatus;
use cohort_store::now_micros;
use serde::Deserialize;

use crate::sources::DoneParams;
use crate::WebState;
use crate::{html, redirect, templates, Member, UiError, UiResult};
use cohort_engine::views::installations::InstallationView;
use cohort_engine::views::sync_runs::RunView;

/// Sync runs shown on a store's page.
const RUNS: i64 = 20;

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "sync" => "Sync queued. The store picks it up on its next heartbeat (within 5 minutes) and reports progress here.",
        "already" => "A sync is already queued: the store picks it up on its next heartbeat (within 5 minutes). Nothing more was queued.",
        "disconnected" => "Store disconnected. Its token no longer works; reconnect it from WordPress.",
        _ => return None,
    })
}

/// The organisation's stores.
pub(crate) async fn list_stores(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let now = now_micros();
    let stores: Vec<InstallationView> = state
        .db()
        .list_installations(&member.org.id)
        .await?
        .into_iter()
        .filter(|s| s.installation.status != InstallationStatus::Replaced)
        .map(|s| InstallationView::from_summary(s, now))
        .collect();
    let body = templates::render(
        "stores.html",
        &member.layout("stores", "Stores"),
        minijinja::context! { stores, notice => notice(params.done.as_deref()) },
    )?;
    Ok(html(StatusCode::OK, body))
}

async fn store_view(
    state: &WebState,
    member: &Member,
    store: &str,
) -> Result<InstallationView, UiError> {
    let now = now_micros();
    state
        .db()
        .list_installations(&member.org.id)
        .await?
        .into_iter()
        .find(|s| {
            s.installation.id == store && s.installation.status != InstallationStatus::Replaced
        })
        .map(|s| InstallationView::from_summary(s, now))
        .ok_or_else(UiError::not_found)
}

/// The store's runs, and whether the page should keep watching them (a
/// run is running, or a sync is queued and not yet picked up).
async fn runs(
    state: &WebState,
    member: &Member,
    store: &InstallationView,
) -> Result<(Vec<RunView>, bool), UiError> {
    let runs: Vec<RunView> = state
        .db()
        .list_sync_runs(&member.org.id, &store.id, RUNS)
        .await?
        .into_iter()
        .map(RunView::from)
        .collect();
    let queued = store
        .last_command
        .as_ref()
        .is_some_and(|c| c.kind == "sync_store" && c.status == "pending");
    let live =
        store.status == "connected" && (queued || runs.iter().any(|r| r.status == "running"));
    Ok((runs, live))
}

/// A connected store: versions, heartbeat, the plugin's diagnostics, and
/// its sync runs with their progress (live while one runs).
pub(crate) async fn show_store(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let store = store_view(&state, &member, &ids.1).await?;
    let (runs, live) = runs(&state, &member, &store).await?;
    let title = if store.site_name.is_empty() {
        store.store_url.clone()
    } else {
        store.site_name.clone()
    };
    let body = templates::render(
        "store.html",
        &member.layout("stores", title),
        minijinja::context! { s => store, runs, live, notice => notice(params.done.as_deref()) },
    )?;
    Ok(html(StatusCode::OK, body))
}

/// The sync runs of a store as an HTML fragment: what the store page's
/// script loads every few seconds while a run is running.
pub(crate) async fn store_runs(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
) -> UiResult {
    let store = store_view(&state, &member, &ids.1).await?;
    let (runs, live) = runs(&state, &member, &store).await?;
    let body = templates::render(
        "store_runs.html",
        &member.layout("stores", "Sync runs"),
        minijinja::context! { s => store, runs, live },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StoreActionForm {
    pub csrf: Option<String>,
    /// `sync` (queue a `sync_store` command) or `disconnect`
    pub action: Option<String>,
}

/// Queues a full sync of a connected store, or disconnects it.
pub(crate) async fn store_action(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    form: Result<Form<StoreActionForm>, FormRejection>,
) -> UiResult {
    let store = ids.1;
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let db = state.db();
    let org = &member.org.id;
    let done = match form.action.as_deref() {
        Some("sync") => {
            let (command, queued) = db
                .request_sync(org, &store)
                .await?
                .ok_or_else(UiError::not_found)?;
            tracing::info!(installation = %store, command = %command, queued, "sync_store requested from the admin UI");
            let done = if queued { "sync" } else { "already" };
            return Ok(redirect(
                &member.path(&format!("/stores/{store}?done={done}")),
            ));
        }
        Some("disconnect") => {
            let connected = db.list_installations(org).await?.into_iter().any(|s| {
                s.installation.id == store && s.installation.status == InstallationStatus::Connected
            });
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
