//! The background loops a `workers` node runs, in the one loop shape of
//! `cohort_jobs::worker`.

use cohort_jobs::worker::{RoundError, Rounds};
use cohort_store::projection::{Projector, BATCH_EVENTS};

/// The profile projection: one batch of the log per round.
#[derive(Clone)]
pub struct ProjectionRounds(pub Projector);

impl Rounds for ProjectionRounds {
    fn name(&self) -> &'static str {
        "projection"
    }

    async fn round(&self) -> Result<bool, RoundError> {
        let report = self.0.step().await?;
        Ok(report.events as i64 >= BATCH_EVENTS)
    }
}
