//! Discounts in a connected store (connect.md §5): the admin API calls the
//! store's Cohort Connect plugin, signed with the installation's
//! `signing_secret`, and reports what the store answered — including
//! "plugin update required" when the plugin predates the endpoints
//! (`409 plugin_update_required`), which is not the same as a discount
//! that does not exist (`404 not_found`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use cohort_domain::discounts::wire::{Redemption, StoreDiscount};
use cohort_domain::discounts::{admin_field, NewDiscount};
use cohort_domain::ids::OrgId;
use cohort_domain::time::parse_rfc3339;
use cohort_engine::store_discounts::{
    target_for, StoreCallError, StoreClient, StoreTarget, TargetError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiCaller;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// What the store answered, as this API's refusal: the envelope with the
/// codes the store's answers need (`plugin_update_required`,
/// `store_unreachable`, …).
impl From<StoreCallError> for ApiError {
    fn from(e: StoreCallError) -> Self {
        match e {
        StoreCallError::PluginUpdateRequired(_) => ApiError::new(
            StatusCode::CONFLICT,
            "plugin_update_required",
            "plugin update required: the store's Cohort Connect plugin has no discount endpoints; update the plugin in WordPress",
        ),
        StoreCallError::NotFound => ApiError::not_found("discount"),
        StoreCallError::Conflict(message) => {
            ApiError::new(StatusCode::CONFLICT, "discount_exists", message).with_field("code")
        }
        StoreCallError::Invalid { field, message } => ApiError::invalid(&admin_field(&field), message),
        StoreCallError::WooCommerceInactive(message) => ApiError::new(
            StatusCode::CONFLICT,
            "woocommerce_inactive",
            format!("WooCommerce is not active on the store: {message}"),
        ),
        StoreCallError::SignatureRefused { code, message } => {
            tracing::warn!(%code, "a store refused Cohort's signature");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "store_refused_signature",
                format!("the store refused Cohort's signature ({code}: {message}); reconnect the store if this persists"),
            )
        }
        StoreCallError::Network(message) => {
            tracing::warn!(%message, "a store could not be reached");
            ApiError::new(StatusCode::BAD_GATEWAY, "store_unreachable", format!("the store could not be reached: {message}"))
        }
        StoreCallError::Unexpected { status, code, message } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "store_error",
            format!("the store answered {status} {code}: {message}"),
        ),
        StoreCallError::BadAnswer(message) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "store_bad_answer",
            format!("the store's answer could not be read: {message}"),
        ),
    }
    }
}

fn client(state: &AppState) -> Result<&StoreClient, ApiError> {
    state
        .inner
        .store_client
        .as_ref()
        .ok_or_else(ApiError::unavailable)
}

/// The store a connected installation of `org` is reached at, and its signing
/// secret. Another organisation's installation is not found.
pub async fn store_target(
    db: &cohort_store::Db,
    org: &OrgId,
    installation: &str,
) -> Result<StoreTarget, ApiError> {
    target_for(db, org, installation)
        .await
        .map_err(|e| match e {
            TargetError::NotFound(_) => ApiError::not_found("installation"),
            TargetError::NotConnected(_) => ApiError::new(
                StatusCode::CONFLICT,
                "installation_not_connected",
                e.to_string(),
            ),
            TargetError::Store(e) => e.into(),
        })
}

/// `POST …/discounts` body (snake_case; camelCase is accepted too).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateDiscount {
    /// The coupon code (at most 50 characters)
    pub code: String,
    /// `percentage` (the only kind)
    pub kind: Option<String>,
    /// Percent off, greater than 0 and at most 100; a JSON number or decimal string
    #[schema(value_type = String, example = "20")]
    pub amount: Value,
    /// Minimum order subtotal, in the store's currency
    #[schema(value_type = Option<String>, example = "50.00")]
    pub min_purchase_amount: Option<Value>,
    /// RFC 3339; in the future
    pub expires_at: Option<String>,
    /// How many times the coupon may be used in all
    pub usage_limit: Option<u32>,
    /// Only these billing emails may use it
    pub email_restrictions: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscountCreated {
    /// The coupon's id in the store
    pub provider_id: u64,
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscountView {
    pub provider_id: u64,
    pub code: String,
    /// `percentage` for the discounts Cohort creates
    pub kind: String,
    /// Exact decimal
    pub amount: String,
    pub min_purchase_amount: Option<String>,
    pub expires_at: Option<String>,
    pub usage_limit: Option<u64>,
    pub usage_count: Option<u64>,
    pub email_restrictions: Vec<String>,
    /// The store's currency
    pub currency: Option<String>,
}

impl From<StoreDiscount> for DiscountView {
    fn from(d: StoreDiscount) -> Self {
        Self {
            provider_id: d.provider_id,
            code: d.code,
            kind: d.kind,
            amount: d.amount.normalize().to_string(),
            min_purchase_amount: d.min_purchase_amount.map(|m| m.normalize().to_string()),
            expires_at: d.expires_at,
            usage_limit: d.usage_limit,
            usage_count: d.usage_count,
            email_restrictions: d.email_restrictions,
            currency: d.currency,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscountDeleted {
    pub provider_id: u64,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedemptionView {
    /// The order's id in the store
    pub provider_order_id: String,
    pub code: String,
    /// The store's customer id; null for a guest
    pub customer_id: Option<String>,
    pub email: Option<String>,
    /// The discount the coupon gave on the order (exact decimal)
    pub amount: String,
    pub currency: String,
    pub created_at: String,
}

impl From<Redemption> for RedemptionView {
    fn from(r: Redemption) -> Self {
        Self {
            provider_order_id: r.provider_order_id,
            code: r.code,
            customer_id: r.customer_id,
            email: r.email,
            amount: r.amount.to_string(),
            currency: r.currency,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedemptionPageView {
    /// Oldest first
    pub data: Vec<RedemptionView>,
    /// Pass as `cursor` for the next page; null on the last page
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedemptionParams {
    /// RFC 3339: orders created at or after this time (required)
    pub since: Option<String>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
}

fn provider_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && !raw.starts_with('0'))
        .ok_or_else(|| {
            ApiError::invalid(
                "provider_id",
                "provider_id is the store's coupon id: a positive integer",
            )
        })
}

/// Creates a percentage coupon in the store. The store answers `409` when
/// the code exists; every field is checked here first (a 400 names it).
#[utoipa::path(
    post,
    path = "/api/v1/installations/{id}/discounts",
    tag = "discounts",
    params(("id" = String, Path, description = "The installation")),
    request_body = CreateDiscount,
    responses(
        (status = 201, description = "Created in the store", body = DiscountCreated),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such installation in the organisation", body = ErrorBody),
        (status = 409, description = "discount_exists, plugin_update_required, woocommerce_inactive or installation_not_connected", body = ErrorBody),
        (status = 502, description = "The store could not be reached or refused the call", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn create_discount(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<DiscountCreated>), ApiError> {
    let target = store_target(state.db(), &caller.org, &id).await?;
    let Json(body) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let discount = NewDiscount::from_json(&body, chrono::Utc::now())
        .map_err(|e| ApiError::invalid(&e.field, e.message))?;
    let created = client(&state)?.create(&target, &discount).await?;
    tracing::info!(installation = %id, provider_id = created.provider_id, "discount created in the store");
    Ok((
        StatusCode::CREATED,
        Json(DiscountCreated {
            provider_id: created.provider_id,
            code: created.code,
        }),
    ))
}

/// One coupon of the store, by its id there.
#[utoipa::path(
    get,
    path = "/api/v1/installations/{id}/discounts/{provider_id}",
    tag = "discounts",
    params(("id" = String, Path, description = "The installation"), ("provider_id" = String, Path, description = "The coupon's id in the store")),
    responses(
        (status = 200, description = "The coupon", body = DiscountView),
        (status = 400, description = "provider_id is not a positive integer", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such installation, or no such coupon in the store", body = ErrorBody),
        (status = 409, description = "plugin_update_required, woocommerce_inactive or installation_not_connected", body = ErrorBody),
        (status = 502, description = "The store could not be reached or refused the call", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_discount(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, raw_provider_id)): Path<(String, String)>,
) -> Result<Json<DiscountView>, ApiError> {
    let target = store_target(state.db(), &caller.org, &id).await?;
    let provider_id = provider_id(&raw_provider_id)?;
    Ok(Json(
        client(&state)?.get(&target, provider_id).await?.into(),
    ))
}

/// Deletes a coupon from the store for good.
#[utoipa::path(
    delete,
    path = "/api/v1/installations/{id}/discounts/{provider_id}",
    tag = "discounts",
    params(("id" = String, Path, description = "The installation"), ("provider_id" = String, Path, description = "The coupon's id in the store")),
    responses(
        (status = 200, description = "Deleted", body = DiscountDeleted),
        (status = 400, description = "provider_id is not a positive integer", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such installation, or no such coupon in the store", body = ErrorBody),
        (status = 409, description = "plugin_update_required, woocommerce_inactive or installation_not_connected", body = ErrorBody),
        (status = 502, description = "The store could not be reached or refused the call", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn delete_discount(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, raw_provider_id)): Path<(String, String)>,
) -> Result<Json<DiscountDeleted>, ApiError> {
    let target = store_target(state.db(), &caller.org, &id).await?;
    let provider_id = provider_id(&raw_provider_id)?;
    let deleted = client(&state)?.delete(&target, provider_id).await?;
    tracing::info!(installation = %id, provider_id, "discount deleted in the store");
    Ok(Json(DiscountDeleted {
        provider_id: deleted.provider_id,
        deleted: deleted.deleted,
    }))
}

/// One coupon of the store, by its code.
#[utoipa::path(
    get,
    path = "/api/v1/installations/{id}/discounts/by-code/{code}",
    tag = "discounts",
    params(("id" = String, Path, description = "The installation"), ("code" = String, Path, description = "The coupon code")),
    responses(
        (status = 200, description = "The coupon", body = DiscountView),
        (status = 400, description = "The code is empty or too long", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such installation, or no such coupon in the store", body = ErrorBody),
        (status = 409, description = "plugin_update_required, woocommerce_inactive or installation_not_connected", body = ErrorBody),
        (status = 502, description = "The store could not be reached or refused the call", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_discount_by_code(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, code)): Path<(String, String)>,
) -> Result<Json<DiscountView>, ApiError> {
    let target = store_target(state.db(), &caller.org, &id).await?;
    let code = code.trim();
    if code.is_empty() || code.chars().count() > cohort_domain::discounts::MAX_CODE_LEN {
        return Err(ApiError::invalid("code", "code must be 1 to 50 characters"));
    }
    Ok(Json(
        client(&state)?.get_by_code(&target, code).await?.into(),
    ))
}

/// Orders of the store that used a coupon (paid statuses), created at or
/// after `since`, oldest first, one page at a time: the cursor is the last
/// row's key in the store, so orders sharing a timestamp are neither lost
/// nor repeated.
#[utoipa::path(
    get,
    path = "/api/v1/installations/{id}/discounts/redemptions",
    tag = "discounts",
    params(("id" = String, Path, description = "The installation"), RedemptionParams),
    responses(
        (status = 200, description = "A page of redemptions", body = RedemptionPageView),
        (status = 400, description = "since or cursor is invalid", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such installation in the organisation", body = ErrorBody),
        (status = 409, description = "plugin_update_required, woocommerce_inactive or installation_not_connected", body = ErrorBody),
        (status = 502, description = "The store could not be reached or refused the call", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_redemptions(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    params: Result<Query<RedemptionParams>, QueryRejection>,
) -> Result<Json<RedemptionPageView>, ApiError> {
    let target = store_target(state.db(), &caller.org, &id).await?;
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let since = params
        .since
        .filter(|s| parse_rfc3339(s).is_some())
        .ok_or_else(|| {
            ApiError::invalid(
                "since",
                "since is required: an RFC 3339 time, e.g. 2026-01-01T00:00:00Z",
            )
        })?;
    let cursor = params.cursor.filter(|c| !c.is_empty());
    if let Some(c) = &cursor {
        if c.len() > 200
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(ApiError::invalid(
                "cursor",
                "cursor is not a cursor this API returned",
            ));
        }
    }
    let page = client(&state)?
        .redemptions(&target, &since, cursor.as_deref())
        .await?;
    Ok(Json(RedemptionPageView {
        data: page
            .redemptions
            .into_iter()
            .map(RedemptionView::from)
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The discount routes (merged into the admin API's route list).
pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(create_discount))
        .routes(routes!(list_redemptions))
        .routes(routes!(get_discount_by_code))
        .routes(routes!(get_discount, delete_discount))
}
