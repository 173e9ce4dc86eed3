//! One way in for WooCommerce resources (orders, customers, products in
//! REST v3 JSON), whoever brings them: the admin API, the plugin's
//! `/connect/v1/resources`, the no-plugin webhook receiver and the REST
//! pull (`crate::woocommerce_rest`).
//! The one parser (`cohort_domain::commerce::woocommerce`) checks them and
//! names the bad field; the message goes to the log, where its messageId
//! (kind, id, `date_modified_gmt`) makes a repeated version a duplicate.

use cohort_domain::commerce::woocommerce::resource_message;
use cohort_domain::ids::{OrgId, SourceId};
use cohort_store::events::NewEvent;
use cohort_store::writer::{AppendError, EventWriter};
use serde_json::Value;

/// One resource stored (or recognised as already stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStored {
    /// The log message id: (kind, id, `date_modified_gmt`), so the same
    /// version sent again is recognised.
    pub message_id: String,
    /// This version was already stored.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The resource (or topic, or currency) is invalid; `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The writer's queue is full: retry shortly.
    #[error("the event log is busy")]
    Overloaded,
    /// Storage is unavailable or shutting down.
    #[error("the event log is unavailable")]
    Unavailable,
}

/// Checks one resource and stores it durably for `source`.
pub async fn store_resource(
    writer: &EventWriter,
    org: &OrgId,
    source: &SourceId,
    topic: &str,
    resource: &Value,
    currency: Option<&str>,
) -> Result<ResourceStored, IntakeError> {
    let message = resource_message(source.as_str(), topic, resource, currency).map_err(|e| {
        IntakeError::Invalid {
            message: e.to_string(),
            field: e.field,
        }
    })?;
    let event = NewEvent::from_resource(org, source, &message, cohort_store::now_micros());
    let inserted = writer.append(vec![event]).await.map_err(append_error)?;
    Ok(ResourceStored {
        message_id: message.message_id,
        duplicate: inserted == 0,
    })
}

/// A page of resources, checked one by one and stored with one append.
#[derive(Debug, Default)]
pub struct PageStored {
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
pub async fn store_resources(
    writer: &EventWriter,
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
    stored.inserted = writer.append(events).await.map_err(append_error)?;
    Ok(stored)
}

fn append_error(error: AppendError) -> IntakeError {
    match error {
        AppendError::Overloaded => IntakeError::Overloaded,
        AppendError::Unavailable(_) | AppendError::ShuttingDown => IntakeError::Unavailable,
    }
}
