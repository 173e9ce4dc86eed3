//! One way in for WooCommerce resources (orders, customers, products in
//! REST v3 JSON), whoever brings them: the admin API, the plugin's
//! `/connect/v1/resources` and sync batches, and later the webhook receiver.
//! The one parser (`cohort_domain::commerce::woocommerce`) checks them and
//! names the bad field; the message goes to the log, where its messageId
//! (kind, id, `date_modified_gmt`) makes a repeated version a duplicate.

use cohort_domain::commerce::woocommerce::resource_message;
use cohort_domain::ids::{OrgId, SourceId};
use cohort_store::events::NewEvent;
use cohort_store::writer::AppendError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceAccepted {
    /// The log message id: (kind, id, `date_modified_gmt`), so the same
    /// version sent again is recognised.
    pub message_id: String,
    /// This version was already stored.
    pub duplicate: bool,
}

#[derive(Debug)]
pub(crate) enum IntakeError {
    /// The resource (or topic, or currency) is invalid; `field` names it.
    Invalid { field: String, message: String },
    /// The writer's queue is full: retry shortly.
    Overloaded,
    /// Storage is unavailable or shutting down.
    Unavailable,
}

/// Checks one resource and stores it durably for `source`.
pub(crate) async fn store_resource(
    state: &AppState,
    org: &OrgId,
    source: &SourceId,
    topic: &str,
    resource: &Value,
    currency: Option<&str>,
) -> Result<ResourceAccepted, IntakeError> {
    let message = resource_message(source.as_str(), topic, resource, currency)
        .map_err(|e| IntakeError::Invalid { message: e.to_string(), field: e.field })?;
    let event = NewEvent::from_resource(org, source, &message, cohort_store::now_micros());
    let inserted = state.inner.writer.append(vec![event]).await.map_err(|e| match e {
        AppendError::Overloaded => IntakeError::Overloaded,
        AppendError::Unavailable(_) | AppendError::ShuttingDown => IntakeError::Unavailable,
    })?;
    Ok(ResourceAccepted { message_id: message.message_id, duplicate: inserted == 0 })
}
