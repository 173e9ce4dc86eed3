//! Pairing (connect.md §1): the plugin asks, the merchant decides on the
//! authorize page, the plugin polls and collects its secrets once.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cohort_domain::connect::Platform;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::connect::{NewPairing, PollOutcome};
use serde::Serialize;
use utoipa::ToSchema;

use super::input::{http_url, Fields, MAX_NAME_CHARS, MAX_URL_CHARS, MAX_VERSION_CHARS};
use super::{base_url, bearer, ApiError};
use crate::error::ErrorBody;
use crate::AppState;

/// How often the plugin should poll, in seconds.
pub const POLL_INTERVAL_S: u32 = 3;

/// What the plugin sends to start pairing.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PairingRequest {
    /// The site's home URL, `http(s)://…`
    store_url: String,
    /// The site's title (may be empty)
    site_name: String,
    /// `woocommerce` or `wordpress`
    platform: String,
    plugin_version: String,
    wp_version: String,
    /// Required when `platform` is `woocommerce`
    wc_version: Option<String>,
    php_version: String,
    currency: Option<String>,
    /// The site's time zone, e.g. `Europe/Paris` or `+02:00`
    timezone: String,
    /// Where the merchant's browser returns after deciding, `http(s)://…`
    return_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct PairingCreated {
    pub pairing_id: String,
    /// Bearer secret for polling; shown this once, stored hashed
    pub poll_secret: String,
    /// Show it in WordPress; the authorize page shows the same
    #[schema(example = "WDJB-MJHT")]
    pub user_code: String,
    /// Send the merchant's browser here
    pub authorize_url: String,
    pub expires_at: String,
    pub poll_interval_s: u32,
}

#[derive(Serialize, ToSchema)]
pub struct PollStatus {
    /// `pending` (200), or `claimed`, `expired`, `denied` (410)
    #[schema(example = "pending")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct OrganisationRef {
    pub id: String,
    pub name: String,
}

/// The one answer that carries the installation's secrets.
#[derive(Serialize, ToSchema)]
pub struct PollApproved {
    #[schema(example = "approved")]
    pub status: &'static str,
    pub installation_id: String,
    pub installation_token: String,
    /// Cohort signs its requests to the store with it (connect.md §5)
    pub signing_secret: String,
    /// The write key of the store's source, for the browser SDK
    pub write_key: String,
    pub organization: OrganisationRef,
}

fn validate(fields: &Fields) -> Result<NewPairing, ApiError> {
    let store_url = fields.url("store_url")?;
    let site_name = fields.text_or_empty("site_name", MAX_NAME_CHARS)?;
    let Some(platform) = Platform::parse(&fields.text("platform", 32)?) else {
        return Err(ApiError::invalid(
            "platform",
            "platform must be woocommerce or wordpress",
        ));
    };
    let plugin_version = fields.text("plugin_version", MAX_VERSION_CHARS)?;
    let wp_version = fields.text("wp_version", MAX_VERSION_CHARS)?;
    let wc_version = fields.opt_text("wc_version", MAX_VERSION_CHARS)?;
    if platform == Platform::Woocommerce && wc_version.is_none() {
        return Err(ApiError::invalid(
            "wc_version",
            "wc_version is required when platform is woocommerce",
        ));
    }
    let php_version = fields.text("php_version", MAX_VERSION_CHARS)?;
    let currency = fields.opt_text("currency", 16)?;
    let timezone = fields.text("timezone", MAX_VERSION_CHARS)?;
    // Kept as sent (only checked): it is where the browser goes back to.
    let return_url = fields.text("return_url", MAX_URL_CHARS)?;
    if http_url(&return_url).is_none() {
        return Err(ApiError::invalid(
            "return_url",
            "return_url must be an http:// or https:// URL",
        ));
    }
    Ok(NewPairing {
        store_url,
        site_name,
        platform,
        plugin_version,
        wp_version,
        wc_version,
        php_version,
        currency,
        timezone,
        return_url,
    })
}

/// Starts pairing a store (server to server, no authentication).
#[utoipa::path(
    post,
    path = "/connect/v1/pairings",
    tag = "connect",
    request_body = PairingRequest,
    responses(
        (status = 201, description = "Pairing started; expires in 15 minutes", body = PairingCreated),
        (status = 400, description = "A field is missing or invalid; `field` names it", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn create_pairing(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new = validate(&Fields::parse(&body)?)?;
    let (pairing, poll_secret) = state.db().create_pairing(&new).await?;
    let base = base_url(state.inner.settings.public_url.as_deref(), &headers);
    let created = PairingCreated {
        authorize_url: format!("{base}/setup/woocommerce?pairing={}", pairing.id),
        pairing_id: pairing.id,
        poll_secret,
        user_code: pairing.user_code,
        expires_at: format_rfc3339(from_micros(pairing.expires_at)),
        poll_interval_s: POLL_INTERVAL_S,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(created),
    )
        .into_response())
}

/// The plugin's poll: pending, then the installation's secrets exactly
/// once, then `410 claimed`.
#[utoipa::path(
    post,
    path = "/connect/v1/pairings/{pairing_id}/poll",
    tag = "connect",
    params(("pairing_id" = String, Path, description = "From the pairing's creation")),
    responses(
        (status = 200, description = "`{\"status\":\"pending\"}` while waiting, or the approved installation (once)", body = PollApproved),
        (status = 401, description = "Missing or wrong poll secret", body = ErrorBody),
        (status = 404, description = "Unknown pairing", body = ErrorBody),
        (status = 410, description = "Claimed, expired or denied", body = PollStatus),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ),
    security(("pollSecret" = []))
)]
pub async fn poll_pairing(
    State(state): State<AppState>,
    Path(pairing_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    const BAD_SECRET: &str = "the pairing's poll secret is required: Authorization: Bearer cps_…";
    let secret = bearer(&headers).ok_or_else(|| ApiError::unauthorized_because(BAD_SECRET))?;
    let gone = |status| (StatusCode::GONE, Json(PollStatus { status })).into_response();
    Ok(match state.db().poll_pairing(&pairing_id, secret).await? {
        PollOutcome::NotFound => return Err(ApiError::not_found("pairing")),
        PollOutcome::Unauthorized => return Err(ApiError::unauthorized_because(BAD_SECRET)),
        PollOutcome::Pending => Json(PollStatus { status: "pending" }).into_response(),
        PollOutcome::Approved(claimed) => {
            let claimed = *claimed;
            let approved = PollApproved {
                status: "approved",
                installation_id: claimed.installation_id,
                installation_token: claimed.installation_token,
                signing_secret: claimed.signing_secret,
                write_key: claimed.write_key,
                organization: OrganisationRef {
                    id: claimed.organisation.id.as_str().to_owned(),
                    name: claimed.organisation.name,
                },
            };
            ([(header::CACHE_CONTROL, "no-store")], Json(approved)).into_response()
        }
        PollOutcome::Claimed => gone("claimed"),
        PollOutcome::Expired => gone("expired"),
        PollOutcome::Denied => gone("denied"),
    })
}
