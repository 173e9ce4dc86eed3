//! `POST /mail/webhooks/{id}/{secret}`: where providers post bounce and
//! complaint notifications. The secret in the path is the authentication
//! (compared with its stored digest in constant time; Mailgun's requests
//! are also checked against its signature); an unknown endpoint and a
//! wrong secret get the same 404. A report is recorded before the `200`,
//! so a provider that saw `200` never needs to send it again, and one sent
//! again is recorded once.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use cohort_engine::mail::WebhookRefusal;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::{ApiError, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_webhook))
}

/// What a notification came to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// Reports recorded now
    pub recorded: u64,
    /// Reports recorded before (a retry)
    pub duplicates: u64,
    /// Reports that named neither a known message nor a recipient
    pub unmatched: u64,
    /// An SNS subscription confirmation: the merchant confirms it from
    /// the webhook's `subscribe_url`
    pub subscription_pending: bool,
}

/// Takes a provider's bounce, complaint or delivery notification (SES
/// through SNS, SendGrid's event webhook, Postmark's bounce and spam
/// complaint webhooks, Mailgun's webhooks), in the provider's own format.
#[utoipa::path(
    post,
    path = "/mail/webhooks/{id}/{secret}",
    tag = "mail",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("secret" = String, Path, description = "The secret of the webhook's URL"),
    ),
    request_body(content = String, description = "The provider's payload", content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded", body = WebhookReceipt),
        (status = 400, description = "Not a notification of this provider (the field is named)", body = ErrorBody),
        (status = 401, description = "Mailgun's signature does not match", body = ErrorBody),
        (status = 404, description = "No such webhook (or the wrong secret)", body = ErrorBody),
    )
)]
pub async fn receive_webhook(
    State(state): State<AppState>,
    Path((id, secret)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<WebhookReceipt>, ApiError> {
    let mail = state.mail().ok_or_else(ApiError::unavailable)?;
    match mail.take_webhook(&id, &secret, &body).await {
        Ok(outcome) => Ok(Json(WebhookReceipt {
            recorded: outcome.recorded,
            duplicates: outcome.duplicates,
            unmatched: outcome.unmatched,
            subscription_pending: outcome.subscription_pending,
        })),
        Err(WebhookRefusal::Unknown) => Err(ApiError::not_found("webhook")),
        Err(WebhookRefusal::BadSignature) => Err(ApiError::unauthorized_because(
            "the Mailgun signature does not match the webhook's signing key",
        )),
        Err(WebhookRefusal::Unreadable { field, message }) => {
            Err(ApiError::invalid(&field, message))
        }
        Err(WebhookRefusal::Mail(error)) => Err(error.into()),
    }
}
