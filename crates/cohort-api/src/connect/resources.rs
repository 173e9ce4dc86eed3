//! `POST /connect/v1/resources` (connect.md §2): a store's real-time change
//! (an order created or changed, a customer, a product created, changed or
//! deleted) in the same topics and WooCommerce REST v3 shapes as WooCommerce
//! webhooks, so the plugin, webhooks and REST pulls share one parser. The
//! currency is the one the store reported (pairing, heartbeat).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cohort_domain::ids::SourceId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiError, InstallationCaller};
use crate::error::ErrorBody;
use crate::intake::ResourceAccepted;
use crate::AppState;
use cohort_engine::intake::store_resource;

#[derive(Debug, Deserialize, ToSchema)]
pub struct StoreResource {
    /// `order.created`, `order.updated`, `customer.created`,
    /// `customer.updated`, `product.created`, `product.updated`,
    /// `product.deleted`, …
    pub topic: String,
    /// The WooCommerce REST v3 JSON of the order, customer or product.
    #[schema(value_type = Object)]
    pub resource: serde_json::Value,
}

/// Stores one changed resource; the server derives the order events
/// (`Order Completed` and the others) from it, once each.
#[utoipa::path(
    post,
    path = "/connect/v1/resources",
    tag = "connect",
    request_body = StoreResource,
    responses(
        (status = 202, description = "Stored durably (or already stored: `duplicate`)", body = ResourceAccepted),
        (status = 400, description = "Invalid; `field` names it, e.g. `resource.line_items[1].total`", body = ErrorBody),
        (status = 401, description = "Unknown or revoked installation token", body = ErrorBody),
        (status = 429, description = "Cohort is overloaded; retry after Retry-After", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry after Retry-After", body = ErrorBody),
    ),
    security(("installationToken" = []))
)]
pub async fn store_changed_resource(
    State(state): State<AppState>,
    InstallationCaller(installation): InstallationCaller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ResourceAccepted>), ApiError> {
    let body: StoreResource =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let source = SourceId::from_stored(&installation.source_id);
    let currency = installation.currency.as_deref().filter(|c| !c.is_empty());
    match store_resource(
        &state.inner.writer,
        &installation.org_id,
        &source,
        &body.topic,
        &body.resource,
        currency,
    )
    .await
    {
        Ok(stored) => Ok((StatusCode::ACCEPTED, Json(stored.into()))),
        Err(refused) => Err(refused.into()),
    }
}
