//! Sync runs (connect.md §2): `POST /connect/v1/sync/runs`, its `batches`
//! and `complete`. Items are WooCommerce REST v3 JSON, checked one by one by
//! the one WooCommerce parser; the accepted ones are durably in the log
//! before the answer, then the batch is counted once by (run, resource,
//! seq). A batch sent again is stored again as duplicates (changing nothing)
//! and not counted again; a run started again for the same command resumes
//! at the `next_seq` of each resource.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_domain::commerce::woocommerce::resource_message;
use cohort_domain::connect::SyncRunStatus;
use cohort_domain::ids::SourceId;
pub use cohort_engine::views::sync_runs::RunView;
use cohort_store::events::NewEvent;
use cohort_store::sync_runs::{BatchRecord, SYNC_RESOURCES};
use cohort_store::writer::AppendError;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::input::{count, Fields};
use super::{ApiError, InstallationCaller};
use crate::error::{ErrorBody, ErrorDetail};
use crate::AppState;

/// At most this many items per batch (connect.md §2).
pub const MAX_BATCH_ITEMS: usize = 100;

/// Starts (or resumes) a sync run.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StartRun {
    /// The `sync_store` (or `sync_…`) command this run carries out, or null
    command_id: Option<String>,
    /// Some of `products`, `customers`, `orders`, each once
    resources: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RunStarted {
    pub run_id: String,
    /// A run for the same command was still running: continue it
    pub resumed: bool,
    /// Per resource, the `seq` of the next batch to send
    #[schema(value_type = Object)]
    pub next_seq: BTreeMap<String, i64>,
}

/// One batch of a run.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Batch {
    /// `products`, `customers` or `orders` (one of the run's)
    resource: String,
    /// 0, 1, 2, … per resource
    seq: u64,
    /// At most 100 WooCommerce REST v3 objects
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct RejectedItem {
    pub index: usize,
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct BatchAnswer {
    pub accepted: i64,
    pub rejected: Vec<RejectedItem>,
    /// This (resource, seq) had been counted before: nothing was counted again
    pub already_counted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RunCompleted {
    pub run_id: String,
    pub status: String,
}

fn resources(fields: &Fields) -> Result<Vec<String>, ApiError> {
    let list = fields
        .value("resources")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::invalid(
                "resources",
                "resources must be a list such as [\"products\", \"orders\"]",
            )
        })?;
    if list.is_empty() {
        return Err(ApiError::invalid(
            "resources",
            "resources must not be empty",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let field = format!("resources[{i}]");
        let name = item
            .as_str()
            .ok_or_else(|| ApiError::invalid(&field, "must be a string"))?;
        if name == "guests" {
            // Guest buyers' profiles come from their orders (the billing email), so
            // orders carry them; a separate guests resource is not read yet.
            return Err(ApiError::invalid(
                &field,
                "guests are not accepted as a resource yet: send the guests' orders, whose billing email makes their profiles",
            ));
        }
        if !SYNC_RESOURCES.contains(&name) {
            return Err(ApiError::invalid(
                &field,
                format!("{name:?} is not one of products, customers, orders"),
            ));
        }
        if out.iter().any(|r| r == name) {
            return Err(ApiError::invalid(&field, format!("{name} is listed twice")));
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// Starts a sync run, or resumes the running one of the same command.
#[utoipa::path(
    post,
    path = "/connect/v1/sync/runs",
    tag = "connect",
    request_body = StartRun,
    responses(
        (status = 201, description = "Started", body = RunStarted),
        (status = 200, description = "A run for this command was still running: resumed", body = RunStarted),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
        (status = 404, description = "No such pending command for this installation", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn start_run(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    body: Bytes,
) -> Result<(StatusCode, Json<RunStarted>), ApiError> {
    let fields = Fields::parse(&body)?;
    let command_id = fields.opt_text("command_id", 64)?;
    let resources = resources(&fields)?;
    if let Some(command) = &command_id {
        let pending = state
            .db()
            .pending_commands(&installation.org_id, &installation.id)
            .await?;
        if !pending.iter().any(|c| &c.id == command) {
            return Err(ApiError::not_found("pending command"));
        }
    }
    let (run, resumed) = state
        .db()
        .start_sync_run(
            &installation.org_id,
            &installation.id,
            command_id.as_deref(),
            &resources,
        )
        .await?;
    let next_seq = run
        .progress
        .iter()
        .map(|(r, p)| (r.clone(), p.next_seq))
        .collect();
    let status = if resumed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(RunStarted {
            run_id: run.id,
            resumed,
            next_seq,
        }),
    ))
}

/// `resource.line_items[0].total` of item 3 → `items[3].line_items[0].total`.
fn item_field(index: usize, field: &str) -> String {
    match field.strip_prefix("resource") {
        Some(rest) => format!("items[{index}]{rest}"),
        None => format!("items[{index}].{field}"),
    }
}

/// Stores one batch of a run.
#[utoipa::path(
    post,
    path = "/connect/v1/sync/runs/{run_id}/batches",
    tag = "connect",
    params(("run_id" = String, Path, description = "The run")),
    request_body = Batch,
    responses(
        (status = 200, description = "Accepted items stored durably; rejected ones listed with the field at fault", body = BatchAnswer),
        (status = 400, description = "The batch is invalid; `field` names it", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
        (status = 404, description = "No such run for this installation", body = ErrorBody),
        (status = 409, description = "The run is completed", body = ErrorBody),
        (status = 429, description = "Cohort is overloaded; retry after Retry-After", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn store_batch(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    Path(run_id): Path<String>,
    body: Bytes,
) -> Result<Json<BatchAnswer>, ApiError> {
    let fields = Fields::parse(&body)?;
    let run = state
        .db()
        .get_sync_run(&installation.org_id, &installation.id, &run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("sync run"))?;
    let resource = fields.text("resource", 32)?;
    if !run.resources.contains(&resource) {
        return Err(ApiError::invalid(
            "resource",
            format!("this run carries {}", run.resources.join(", ")),
        ));
    }
    let seq = fields
        .value("seq")
        .and_then(count)
        .ok_or_else(|| ApiError::invalid("seq", "seq must be a whole number ≥ 0"))?;
    let items = fields
        .value("items")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("items", "items must be a list"))?;
    if items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!(
                "at most {MAX_BATCH_ITEMS} items per batch, not {}",
                items.len()
            ),
        ));
    }
    if run.status != SyncRunStatus::Running {
        return Err(ApiError::conflict("the run is completed; start a new one"));
    }
    let topic = match resource.as_str() {
        "products" => "product.updated",
        "customers" => "customer.updated",
        _ => "order.updated",
    };
    let source = SourceId::from_stored(&installation.source_id);
    let currency = installation.currency.as_deref().filter(|c| !c.is_empty());
    let now = cohort_store::now_micros();
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match resource_message(source.as_str(), topic, item, currency) {
            Ok(message) => events.push(NewEvent::from_resource(
                &installation.org_id,
                &source,
                &message,
                now,
            )),
            Err(e) => rejected.push(RejectedItem {
                index,
                error: ErrorDetail {
                    code: "invalid_request".into(),
                    message: e.message.clone(),
                    field: Some(item_field(index, &e.field)),
                    line: None,
                    column: None,
                    expected: None,
                },
            }),
        }
    }
    let accepted = events.len() as i64;
    if !events.is_empty() {
        state
            .inner
            .writer
            .append(events)
            .await
            .map_err(|e| match e {
                AppendError::Overloaded => ApiError::overloaded(),
                AppendError::Unavailable(_) | AppendError::ShuttingDown => ApiError::unavailable(),
            })?;
    }
    let record = state
        .db()
        .record_sync_batch(
            &run.id,
            &resource,
            seq,
            items.len() as i64,
            accepted,
            rejected.len() as i64,
        )
        .await?;
    Ok(Json(BatchAnswer {
        accepted,
        rejected,
        already_counted: matches!(record, BatchRecord::AlreadyCounted { .. }),
    }))
}

/// Completes a run with the plugin's counts.
#[utoipa::path(
    post,
    path = "/connect/v1/sync/runs/{run_id}/complete",
    tag = "connect",
    params(("run_id" = String, Path, description = "The run")),
    request_body(content = Object, description = "`{counts: {products, customers, guests, orders}}`"),
    responses(
        (status = 200, description = "Completed (again: unchanged)", body = RunCompleted),
        (status = 400, description = "A field is invalid; `field` names it", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
        (status = 404, description = "No such run for this installation", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn complete_run(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    Path(run_id): Path<String>,
    body: Bytes,
) -> Result<Json<RunCompleted>, ApiError> {
    let fields = Fields::parse(&body)?;
    let mut counts = serde_json::Map::new();
    if let Some(map) = fields.object("counts")? {
        for (key, value) in map {
            if !SYNC_RESOURCES.contains(&key.as_str()) {
                return Err(ApiError::invalid(
                    &format!("counts.{key}"),
                    "not one of products, customers, guests, orders",
                ));
            }
            let n = count(value).ok_or_else(|| {
                ApiError::invalid(&format!("counts.{key}"), "must be a whole number ≥ 0")
            })?;
            counts.insert(key.clone(), json!(n));
        }
    }
    let db = state.db();
    if db
        .get_sync_run(&installation.org_id, &installation.id, &run_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("sync run"));
    }
    db.complete_sync_run(
        &installation.org_id,
        &installation.id,
        &run_id,
        &Value::Object(counts).to_string(),
    )
    .await?;
    Ok(Json(RunCompleted {
        run_id,
        status: "completed".into(),
    }))
}
