//! `/api/v1/mail/webhooks`: the endpoints an organisation gives its mail
//! providers (Amazon SES through SNS, SendGrid, Postmark, Mailgun) for
//! bounce and complaint reports. The URL, with its secret, is shown once,
//! at creation; Mailgun's signing key is kept sealed and never shown.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use cohort_store::mail::{MailWebhook, WebhookKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::mail::{mail, time};
use super::ApiCaller;
use crate::connect::base_url;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// A webhook endpoint; its secret and signing key are never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    /// `ses`, `sendgrid`, `postmark` or `mailgun`
    pub kind: String,
    pub name: String,
    /// Whether a signing key is stored (Mailgun)
    pub signing_key_set: bool,
    /// An SNS subscription waits for confirmation: open this URL once
    pub subscribe_url: Option<String>,
    pub reports_received: i64,
    pub last_received_at: Option<String>,
    pub created_at: String,
}

impl From<MailWebhook> for WebhookView {
    fn from(w: MailWebhook) -> Self {
        Self {
            id: w.id,
            kind: w.kind.as_str().into(),
            name: w.name,
            signing_key_set: w.signing_key.is_some(),
            subscribe_url: w.subscribe_url,
            reports_received: w.reports_received,
            last_received_at: w.last_received_at_us.map(time),
            created_at: time(w.created_at_us),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `ses`, `sendgrid`, `postmark` or `mailgun`
    pub kind: String,
    pub name: String,
    /// Mailgun's HTTP webhook signing key (required for Mailgun, refused
    /// for the others)
    pub signing_key: Option<String>,
}

/// The endpoint just made, with the URL to give the provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    pub webhook: WebhookView,
    /// The URL to paste into the provider's settings; it holds the secret
    /// and is shown only now
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
}

/// The organisation's webhook endpoints.
#[utoipa::path(
    get,
    path = "/api/v1/mail/webhooks",
    tag = "mail",
    responses(
        (status = 200, description = "Endpoints by name", body = WebhookList),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<WebhookList>, ApiError> {
    let rows = mail(&state)?.webhooks(&caller.org).await?;
    Ok(Json(WebhookList {
        data: rows.into_iter().map(WebhookView::from).collect(),
    }))
}

/// Makes an endpoint for a provider's bounce and complaint notifications.
#[utoipa::path(
    post,
    path = "/api/v1/mail/webhooks",
    tag = "mail",
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Made; `url` is shown only now", body = CreatedWebhook),
        (status = 400, description = "A field is invalid (named)", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<Json<NewWebhook>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let Json(new) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let kind = new
        .kind
        .trim()
        .parse::<WebhookKind>()
        .map_err(|_| ApiError::invalid("kind", "one of ses, sendgrid, postmark, mailgun"))?;
    let issued = mail(&state)?
        .create_webhook(&caller.org, kind, &new.name, new.signing_key.as_deref())
        .await?;
    let base = base_url(state.public_url(), &headers);
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            url: format!("{base}{}", issued.path),
            webhook: issued.webhook.into(),
        }),
    ))
}

/// Removes an endpoint; the provider's posts to it are refused from now on.
#[utoipa::path(
    delete,
    path = "/api/v1/mail/webhooks/{id}",
    tag = "mail",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such webhook in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    mail(&state)?.delete_webhook(&caller.org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
