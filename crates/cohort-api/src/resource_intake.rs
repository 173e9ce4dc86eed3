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
    let message = resource_message(source.as_str(), topic, resource, currency).map_err(|e| {
        IntakeError::Invalid {
            message: e.to_string(),
            field: e.field,
        }
    })?;
    let event = NewEvent::from_resource(org, source, &message, cohort_store::now_micros());
    let inserted = state
        .inner
        .writer
        .append(vec![event])
        .await
        .map_err(|e| match e {
            AppendError::Overloaded => IntakeError::Overloaded,
            AppendError::Unavailable(_) | AppendError::ShuttingDown => IntakeError::Unavailable,
        })?;
    Ok(ResourceAccepted {
        message_id: message.message_id,
        duplicate: inserted == 0,
    })
}

/// A page of resources, checked one by one and stored with one append.
#[derive(Debug, Default)]
pub(crate) struct PageStored {
    pub accepted: i64,
    /// (index, field, message) of each rejected item.
    pub rejected: Vec<(usize, String, String)>,
    /// New rows in the log (the rest were already there).
    pub inserted: u64,
    /// The latest `date_modified_gmt` among the accepted items.
    pub newest_modified_us: Option<i64>,
}

/// Checks each resource of a page (REST pulls: one topic per page) and
/// stores the valid ones durably for `source`, as `store_resource` does.
pub(crate) async fn store_resources(
    state: &AppState,
    org: &OrgId,
    source: &SourceId,
    topic: &str,
    items: &[Value],
    currency: Option<&str>,
) -> Result<PageStored, IntakeError> {
    let now = cohort_store::now_micros();
    let mut stored = PageStored::default();
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match resource_message(source.as_str(), topic, item, currency) {
            Ok(message) => {
                stored.newest_modified_us =
                    stored.newest_modified_us.max(Some(message.timestamp_us));
                events.push(NewEvent::from_resource(org, source, &message, now));
            }
            Err(e) => stored.rejected.push((index, e.field, e.message)),
        }
    }
    stored.accepted = events.len() as i64;
    stored.inserted = state
        .inner
        .writer
        .append(events)
        .await
        .map_err(|e| match e {
            AppendError::Overloaded => IntakeError::Overloaded,
            AppendError::Unavailable(_) | AppendError::ShuttingDown => IntakeError::Unavailable,
        })?;
    Ok(stored)
}
