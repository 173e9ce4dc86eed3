//! No-plugin mode (connect.md §6): a WooCommerce store connected through
//! WooCommerce's own REST API and webhooks.
//!
//! - `POST /api/v1/woocommerce/connections`: an operator starts a
//!   connection; the answer's `authorize_url` is WooCommerce's
//!   `/wc-auth/v1/authorize` with a one-time state as `user_id`;
//! - `POST /connect/v1/woocommerce/callback`: WooCommerce posts the keys
//!   there (public; the state is the credential, spent once);
//! - `POST /hooks/woocommerce/{installation_id}`: webhook deliveries,
//!   verified on the raw body, stored through the one resource intake.
//!
//! The history pull, webhook registration and periodic reconciliation run
//! in the background: `cohort_engine::woocommerce_rest`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine;
use cohort_domain::ids::SourceId;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_engine::intake::{store_resource, ResourceStored};
use cohort_engine::woocommerce_rest::authorize_url;
use cohort_store::destinations::SecretsKey;
use cohort_store::woocommerce_rest::{CallbackKeys, CallbackOutcome};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::input::{http_url, Fields, MAX_URL_CHARS};
use super::{base_url, ApiError};
use crate::admin::ApiCaller;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_connection))
        .routes(routes!(callback))
        .routes(routes!(receive_webhook))
}

/// The key REST secrets are encrypted with: the destinations key.
fn secrets_key(state: &AppState) -> Result<&SecretsKey, ApiError> {
    state
        .destinations()
        .map(|d| d.key())
        .ok_or_else(ApiError::unavailable)
}

/// Starts a no-plugin connection.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StartConnection {
    /// The store's home URL, `https://shop.example`
    store_url: String,
    /// Where WooCommerce sends the merchant after approving (default: Cohort's `/app`)
    return_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionStarted {
    /// The installation the store becomes once WooCommerce calls back
    pub installation_id: String,
    /// Open this in a browser signed in to the store's WordPress as an administrator
    pub authorize_url: String,
    /// Where WooCommerce posts the keys (it must be https for WooCommerce to accept it)
    pub callback_url: String,
    /// The one-time state stops working at this time (15 minutes)
    pub expires_at: String,
}

/// Starts connecting a WooCommerce store without the plugin: returns
/// WooCommerce's authorize URL carrying a one-time state.
#[utoipa::path(
    post,
    path = "/api/v1/woocommerce/connections",
    tag = "connect",
    request_body = StartConnection,
    responses(
        (status = 201, description = "Started: open authorize_url", body = ConnectionStarted),
        (status = 400, description = "A field is invalid; `field` names it", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = crate::error::ErrorBody),
        (status = 503, description = "No secrets key is configured", body = crate::error::ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn start_connection(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ConnectionStarted>), ApiError> {
    let fields = Fields::parse(&body)?;
    let store_url = fields.text("store_url", MAX_URL_CHARS)?;
    let store_url = normalize_store_url(&store_url).ok_or_else(|| {
        ApiError::invalid(
            "store_url",
            "store_url must be the store's http:// or https:// home URL, without ? or #",
        )
    })?;
    // The secrets key the callback will seal the keys with.
    secrets_key(&state)?;
    cohort_engine::outbound::check_url(&store_url, state.inner.settings.outbound)
        .await
        .map_err(|e| ApiError::invalid("store_url", e))?;
    let cohort_url = base_url(state.inner.settings.public_url.as_deref(), &headers);
    let return_url = match fields.opt_text("return_url", MAX_URL_CHARS)? {
        Some(text) => Some(http_url(&text).ok_or_else(|| {
            ApiError::invalid(
                "return_url",
                "return_url must be an http:// or https:// URL",
            )
        })?),
        None => None,
    };
    let started =
        begin_connection(state.db(), &caller.org, &store_url, &cohort_url, return_url).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// `store_url` normalised (scheme and host lower-cased, no trailing `/`),
/// if it is an http(s) home URL without query or fragment.
pub fn normalize_store_url(text: &str) -> Option<String> {
    http_url(text).filter(|url| !url.contains(['?', '#']))
}

/// Starts a connection of `store_url` (normalised) for `org` (the admin
/// API and `cohort store connect-rest`): the one-time state goes into
/// WooCommerce's authorize URL; `return_url` defaults to Cohort's `/app`.
pub async fn begin_connection(
    db: &cohort_store::Db,
    org: &cohort_domain::ids::OrgId,
    store_url: &str,
    cohort_url: &str,
    return_url: Option<String>,
) -> Result<ConnectionStarted, cohort_store::StoreError> {
    let cohort_url = cohort_url.trim_end_matches('/');
    let return_url = return_url.unwrap_or_else(|| format!("{cohort_url}/app"));
    let started = db
        .start_rest_connection(org, store_url, cohort_url, None)
        .await?;
    let callback_url = format!("{cohort_url}/connect/v1/woocommerce/callback");
    Ok(ConnectionStarted {
        authorize_url: authorize_url(store_url, &started.state, &return_url, &callback_url),
        installation_id: started.installation_id,
        callback_url,
        expires_at: format_rfc3339(from_micros(started.expires_at)),
    })
}

/// The keys WooCommerce posts after the merchant approved.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CallbackBody {
    key_id: i64,
    /// The one-time state Cohort put in the authorize URL
    user_id: String,
    consumer_key: String,
    consumer_secret: String,
    /// `read_write` (Cohort registers webhooks)
    key_permissions: String,
}

#[derive(Serialize, ToSchema)]
pub struct CallbackAccepted {
    pub installation_id: String,
}

fn key_text(fields: &Fields, field: &str, prefix: &str) -> Result<String, ApiError> {
    let value = fields.text(field, 200)?;
    if !value.starts_with(prefix)
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::invalid(
            field,
            format!("{field} must look like {prefix}…"),
        ));
    }
    Ok(value)
}

/// WooCommerce's callback with the new REST keys. Answers exactly 200 when
/// the keys are stored (WooCommerce treats anything else as a failure).
#[utoipa::path(
    post,
    path = "/connect/v1/woocommerce/callback",
    tag = "connect",
    request_body = CallbackBody,
    responses(
        (status = 200, description = "Keys stored encrypted; the history pull starts in the background", body = CallbackAccepted),
        (status = 400, description = "A field is invalid, or the state (`user_id`) is unknown, expired or already used; nothing stored", body = crate::error::ErrorBody),
        (status = 503, description = "No secrets key is configured", body = crate::error::ErrorBody),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<CallbackAccepted>, ApiError> {
    let fields = Fields::parse(&body)?;
    let key_id = fields
        .value("key_id")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid("key_id", "key_id must be a positive integer"))?;
    let user_id = fields.text("user_id", 200)?;
    let consumer_key = key_text(&fields, "consumer_key", "ck_")?;
    let consumer_secret = key_text(&fields, "consumer_secret", "cs_")?;
    let key_permissions = fields.text("key_permissions", 32)?;
    if key_permissions != "read_write" {
        return Err(ApiError::invalid(
            "key_permissions",
            "Cohort needs read_write keys (it registers webhooks)",
        ));
    }
    let key = secrets_key(&state)?;
    let keys = CallbackKeys {
        key_id,
        consumer_key,
        consumer_secret,
        key_permissions,
    };
    match state
        .db()
        .complete_rest_connection(key, &user_id, &keys)
        .await?
    {
        CallbackOutcome::Connected {
            installation_id, ..
        } => {
            tracing::info!(installation = %installation_id, "WooCommerce store connected without the plugin");
            Ok(Json(CallbackAccepted { installation_id }))
        }
        CallbackOutcome::Unknown => Err(ApiError::invalid(
            "user_id",
            "unknown state: start the connection again",
        )),
        CallbackOutcome::Expired => Err(ApiError::invalid(
            "user_id",
            "this state has expired: start the connection again",
        )),
        CallbackOutcome::AlreadyUsed => {
            Err(ApiError::invalid("user_id", "this state was already used"))
        }
    }
}

/// Whether `signature` (the header's base64) is HMAC-SHA256(secret, body),
/// compared in constant time.
pub fn signature_matches(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(presented) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&presented).is_ok()
}

/// WooCommerce's activation ping: `webhook_id=N`, form-encoded, unsigned.
fn is_ping(headers: &HeaderMap, body: &[u8]) -> bool {
    !headers.contains_key("x-wc-webhook-topic")
        && std::str::from_utf8(body)
            .ok()
            .and_then(|b| b.trim().strip_prefix("webhook_id="))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The answer to a delivery.
#[derive(Serialize, ToSchema)]
pub struct DeliveryAnswer {
    /// `stored`, `duplicate`, `ping` or `ignored` (a deleted order or
    /// customer: WooCommerce sends only its id, which Cohort cannot apply)
    pub status: String,
    pub message_id: Option<String>,
}

/// Receives a WooCommerce webhook delivery for a no-plugin installation.
#[utoipa::path(
    post,
    path = "/hooks/woocommerce/{installation_id}",
    tag = "connect",
    params(
        ("installation_id" = String, Path, description = "The installation"),
        ("X-WC-Webhook-Signature" = Option<String>, Header, description = "base64(HMAC-SHA256(webhook secret, raw body))"),
        ("X-WC-Webhook-Topic" = Option<String>, Header, description = "order.updated, product.deleted, …"),
    ),
    request_body(content = Object, description = "A WooCommerce REST v3 resource (or the activation ping `webhook_id=N`)"),
    responses(
        (status = 200, description = "Stored durably (or a duplicate, or the ping)", body = DeliveryAnswer),
        (status = 400, description = "Signed, but the topic or resource is invalid; `field` names it; nothing stored", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or wrong signature; nothing stored", body = crate::error::ErrorBody),
        (status = 404, description = "No connected no-plugin installation with this id", body = crate::error::ErrorBody),
        (status = 429, description = "Cohort is overloaded", body = crate::error::ErrorBody),
    )
)]
pub async fn receive_webhook(
    State(state): State<AppState>,
    Path(installation_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DeliveryAnswer>, ApiError> {
    let key = secrets_key(&state)?;
    let target = state
        .db()
        .rest_webhook_target(key, &installation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no-plugin WooCommerce installation"))?;
    let signature = headers
        .get("x-wc-webhook-signature")
        .and_then(|v| v.to_str().ok());
    let Some(signature) = signature else {
        if is_ping(&headers, &body) {
            return Ok(Json(DeliveryAnswer {
                status: "ping".into(),
                message_id: None,
            }));
        }
        return Err(ApiError::unauthorized_because(
            "X-WC-Webhook-Signature is required",
        ));
    };
    if !signature_matches(&target.webhook_secret, &body, signature) {
        return Err(ApiError::unauthorized_because(
            "X-WC-Webhook-Signature does not match the body",
        ));
    }
    let topic = headers
        .get("x-wc-webhook-topic")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::invalid("X-WC-Webhook-Topic", "the topic header is required"))?;
    let mut resource: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::invalid("body", "the body is not valid JSON"))?;
    if topic.ends_with(".deleted") && resource.get("date_modified_gmt").is_none() {
        // WooCommerce sends only the id of a deleted resource. A product
        // deletion is a catalogue fact of its own: stamped with the
        // delivery's second, so a repeat within it is a duplicate.
        if topic == "product.deleted" {
            if let Some(map) = resource.as_object_mut() {
                let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
                map.insert("date_modified_gmt".into(), json!(now));
            }
        } else {
            tracing::info!(installation = %installation_id, topic, "ignored a deletion WooCommerce sent without its resource");
            return Ok(Json(DeliveryAnswer {
                status: "ignored".into(),
                message_id: None,
            }));
        }
    }
    let source = SourceId::from_stored(&target.source_id);
    match store_resource(
        &state.inner.writer,
        &target.org_id,
        &source,
        topic,
        &resource,
        target.currency.as_deref(),
    )
    .await
    {
        Ok(ResourceStored {
            message_id,
            duplicate,
        }) => Ok(Json(DeliveryAnswer {
            status: if duplicate { "duplicate" } else { "stored" }.into(),
            message_id: Some(message_id),
        })),
        Err(refused) => Err(refused.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_are_recognised_only_without_a_topic() {
        let empty = HeaderMap::new();
        assert!(is_ping(&empty, b"webhook_id=142"));
        assert!(!is_ping(&empty, b"webhook_id="));
        assert!(!is_ping(&empty, b"{\"id\":1}"));
        let mut topic = HeaderMap::new();
        topic.insert("x-wc-webhook-topic", "order.updated".parse().unwrap());
        assert!(!is_ping(&topic, b"webhook_id=142"));
    }
}
