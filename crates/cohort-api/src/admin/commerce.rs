//! Orders and products, and the intake of WooCommerce resources (REST v3
//! JSON) for a store's source: the same parser serves this route, the
//! plugin's sync and webhooks.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_domain::ids::SourceId;
use cohort_domain::profile::OrderView;
use cohort_store::projection::{OrderFilter, ProductFilter, ProductRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::profiles::parse_limit;
use super::ApiCaller;
use crate::error::ErrorBody;
use crate::intake::ResourceAccepted;
use crate::{ApiError, AppState};
use cohort_engine::intake::store_resource;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListParams {
    pub profile_id: Option<String>,
    /// WooCommerce status: pending, processing, completed, cancelled, …
    pub status: Option<String>,
    /// The store's source id
    pub store: Option<String>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// Orders, newest first: line items, amounts (exact decimals with
    /// their currency), coupons, refunds, status history.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<OrderView>,
    pub next_cursor: Option<String>,
}

/// Orders of the organisation, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "commerce",
    params(OrderListParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_orders(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<OrderListParams>, QueryRejection>,
) -> Result<Json<OrderPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let before = p
        .cursor
        .as_deref()
        .map(|c| {
            c.split_once('_')
                .and_then(|(ts, key)| Some((ts.parse::<i64>().ok()?, key.to_owned())))
                .ok_or_else(|| ApiError::invalid("cursor", "cursor must be a next_cursor value"))
        })
        .transpose()?;
    let filter = OrderFilter {
        profile_id: p.profile_id,
        status: p.status,
        store: p.store,
        before,
        limit: parse_limit(p.limit.as_deref())?,
    };
    let orders = state.db().list_orders(&caller.org, &filter).await?;
    let next_cursor = (orders.len() == filter.limit as usize)
        .then(|| {
            orders
                .last()
                .map(|(created, o)| format!("{created}_{}", o.key))
        })
        .flatten();
    Ok(Json(OrderPage {
        data: orders.into_iter().map(|(_, o)| o).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListParams {
    /// The store's source id
    pub store: Option<String>,
    /// `true` to include deleted products
    pub include_deleted: Option<bool>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    /// Products: id, sku, name, price (exact, with currency), images,
    /// categories, url, stock status.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<ProductRecord>,
    pub next_cursor: Option<String>,
}

/// The catalogue, by store and product id.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "commerce",
    params(ProductListParams),
    responses(
        (status = 200, description = "A page of products", body = ProductPage),
        (status = 400, description = "A filter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_products(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<ProductListParams>, QueryRejection>,
) -> Result<Json<ProductPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            c.split_once('/')
                .map(|(s, id)| (s.to_owned(), id.to_owned()))
                .ok_or_else(|| ApiError::invalid("cursor", "cursor must be a next_cursor value"))
        })
        .transpose()?;
    let filter = ProductFilter {
        store: p.store,
        include_deleted: p.include_deleted.unwrap_or(false),
        after,
        limit: parse_limit(p.limit.as_deref())?,
    };
    let products = state.db().list_products(&caller.org, &filter).await?;
    let next_cursor = (products.len() == filter.limit as usize)
        .then(|| {
            products
                .last()
                .map(|p| format!("{}/{}", p.product.store, p.product.product_id))
        })
        .flatten();
    Ok(Json(ProductPage {
        data: products,
        next_cursor,
    }))
}

/// A WooCommerce resource, as a webhook delivers it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResourceBody {
    /// `order.created`, `order.updated`, `order.deleted`, `customer.updated`,
    /// `product.updated`, `product.deleted`, …
    pub topic: String,
    /// The WooCommerce REST v3 JSON of the order, customer or product.
    #[schema(value_type = Object)]
    pub resource: serde_json::Value,
    /// The store's currency (ISO 4217); required for priced products.
    pub currency: Option<String>,
}

/// Takes a WooCommerce order, customer or product for one of the
/// organisation's sources (the store). It is stored in the event log and
/// projected: orders and customers onto profiles, products into the
/// catalogue, order state changes into `Order …` events.
#[utoipa::path(
    post,
    path = "/api/v1/sources/{source_id}/woocommerce",
    tag = "commerce",
    params(("source_id" = String, Path, description = "The store's source")),
    request_body = ResourceBody,
    responses(
        (status = 202, description = "Stored durably", body = ResourceAccepted),
        (status = 400, description = "The resource does not parse; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such source in this organisation", body = ErrorBody),
        (status = 429, description = "Cohort is overloaded; retry after Retry-After", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn ingest_resource(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(source_id): Path<String>,
    body: Result<Json<ResourceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ResourceAccepted>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let sources = state.db().list_sources(&caller.org).await?;
    let source = sources
        .iter()
        .find(|s| s.id.as_str() == source_id)
        .ok_or_else(|| ApiError::not_found("source"))?;
    let source = SourceId::from_stored(source.id.as_str());
    match store_resource(
        &state.inner.writer,
        &caller.org,
        &source,
        &body.topic,
        &body.resource,
        body.currency.as_deref(),
    )
    .await
    {
        Ok(stored) => Ok((StatusCode::ACCEPTED, Json(stored.into()))),
        Err(refused) => Err(refused.into()),
    }
}
