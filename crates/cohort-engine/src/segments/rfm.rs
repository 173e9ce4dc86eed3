//! RFM: every customer's recency, frequency and monetary scores by the
//! store's own tertiles (`cohort_domain::segments::rfm`), recomputed daily
//! by a background loop and on demand. A recompute replaces the scores and
//! recomputes every segment whose rule reads `rfm.*` in the same membership
//! transaction, so a segment never sees half a scoring.

use std::time::Duration;

use cohort_domain::ids::OrgId;
use cohort_domain::segments::rfm::score_customers;
use cohort_jobs::worker::{RoundError, Rounds};

use super::membership::dependencies_through;
use super::{recompute_in, Clock, RuleBook, SegmentError, Segments};

/// How old scores may get before the loop recomputes them.
pub const RFM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The reason recorded for membership changes a new scoring causes.
pub const REASON_RFM: &str = "RFM recomputed";

/// What a recompute did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmReport {
    pub customers: usize,
    /// Segments reading `rfm.*` that were recomputed.
    pub segments: usize,
}

impl Segments {
    /// Scores every customer of `org` now, and recomputes the segments
    /// that read RFM.
    pub async fn recompute_rfm(&self, org: &OrgId) -> Result<RfmReport, SegmentError> {
        let mut tx = self.db.begin_segments().await?;
        let now = self.now_us();
        let figures = tx.customer_figures(org).await?;
        let scores = score_customers(&figures, now);
        tx.replace_rfm(org, &scores, now).await?;
        let records = tx.definitions(org).await?;
        let book = RuleBook::of(&records);
        let mut segments = 0;
        for r in &records {
            if dependencies_through(&r.rule, &book).rfm {
                recompute_in(&mut tx, org, &r.segment_id, &r.rule, &book, now, REASON_RFM).await?;
                segments += 1;
            }
        }
        tx.commit().await?;
        Ok(RfmReport {
            customers: scores.len(),
            segments,
        })
    }
}

/// The daily RFM loop of a `workers` node: one organisation whose scores
/// are missing or older than [`RFM_MAX_AGE`] per round.
#[derive(Clone)]
pub struct RfmRounds {
    segments: Segments,
}

impl RfmRounds {
    pub fn new(segments: &Segments) -> Self {
        Self {
            segments: segments.clone(),
        }
    }
}

impl Rounds for RfmRounds {
    fn name(&self) -> &'static str {
        "rfm"
    }

    async fn round(&self) -> Result<bool, RoundError> {
        let clock: &Clock = &self.segments.clock;
        let stale_before = clock() - RFM_MAX_AGE.as_micros() as i64;
        let due = self.segments.db.orgs_due_for_rfm(stale_before).await?;
        let Some(org) = due.first() else {
            return Ok(false);
        };
        let report = self.segments.recompute_rfm(org).await?;
        tracing::info!(org = %org, customers = report.customers, segments = report.segments, "RFM recomputed");
        Ok(due.len() > 1)
    }
}
