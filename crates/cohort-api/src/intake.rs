//! The answer of the routes that store a WooCommerce resource through the
//! engine's one intake (`cohort_engine::intake`).

use cohort_engine::intake::ResourceStored;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceAccepted {
    /// The log message id: (kind, id, `date_modified_gmt`), so the same
    /// version sent again is recognised.
    pub message_id: String,
    /// This version was already stored.
    pub duplicate: bool,
}

impl From<ResourceStored> for ResourceAccepted {
    fn from(stored: ResourceStored) -> Self {
        Self {
            message_id: stored.message_id,
            duplicate: stored.duplicate,
        }
    }
}
