//! Helpers shared by the store's test modules.

use cohort_domain::collect::{normalize_request, Envelope, Limits};
use cohort_domain::ids::OrgId;
use cohort_store::events::NewEvent;
use cohort_store::orgs::Source;

/// The events of a Segment batch body (`{"batch": [...]}`) sent to `source`.
pub fn events_for(org: &OrgId, source: &Source, body: &str) -> Vec<NewEvent> {
    let parsed = normalize_request(
        body.as_bytes(),
        Envelope::Batch,
        chrono::Utc::now(),
        &Limits::default(),
    )
    .unwrap();
    parsed
        .messages
        .iter()
        .map(|m| NewEvent::from_message(org, &source.id, m))
        .collect()
}
