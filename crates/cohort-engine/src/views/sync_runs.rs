//! A store's sync run (a history pull) with its per-resource progress.

use std::collections::BTreeMap;

use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::sync_runs::{ResourceProgress, SyncRun};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub command_id: Option<String>,
    pub resources: Vec<String>,
    /// `running` or `completed`
    pub status: String,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Per resource: batches, received, accepted, rejected, next_seq
    #[schema(value_type = Object)]
    pub progress: BTreeMap<String, ResourceProgress>,
    /// The counts the plugin reported when it completed the run
    #[schema(value_type = Option<Object>)]
    pub reported_counts: Option<Value>,
}

impl From<SyncRun> for RunView {
    fn from(run: SyncRun) -> Self {
        RunView {
            id: run.id,
            command_id: run.command_id,
            resources: run.resources,
            status: run.status.as_str().to_owned(),
            started_at: format_rfc3339(from_micros(run.started_at)),
            updated_at: format_rfc3339(from_micros(run.updated_at)),
            finished_at: run.finished_at.map(|t| format_rfc3339(from_micros(t))),
            progress: run.progress,
            reported_counts: run
                .reported_counts
                .and_then(|c| serde_json::from_str(&c).ok()),
        }
    }
}
