//! The profile projection as a background loop of a `workers` node, in the
//! one loop shape of `cohort_jobs::worker` (the projector itself, SQL and
//! fold, is `cohort_store::projection`; it reads the log through the log
//! follower's `profiles` cursor).

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
