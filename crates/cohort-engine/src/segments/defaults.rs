//! The ready-made segments (`cohort_domain::segments::defaults`), installed
//! once per organisation: by a background loop when its first store has
//! been connected for a while (long enough for the history sync to bring
//! the orders the amounts are computed from) or has purchases, and on
//! demand (`cohort segment install-defaults`). A name the merchant already
//! uses is left alone; installing again creates only what is missing.

use std::time::Duration;

use cohort_domain::ids::OrgId;
use cohort_domain::segments::defaults::ready_made;
use cohort_jobs::worker::{RoundError, Rounds};

use super::{RuleSource, SegmentDraft, SegmentError, Segments};

/// How long after a store connects the loop waits for its history, unless
/// purchases arrive first.
pub const SETTLE_AFTER_CONNECT: Duration = Duration::from_secs(15 * 60);

/// What an installation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultsReport {
    pub created: Vec<String>,
    /// Names that already existed, kept as they are.
    pub kept: Vec<String>,
}

impl Segments {
    /// Creates the ready-made segments `org` does not have yet.
    pub async fn install_defaults(&self, org: &OrgId) -> Result<DefaultsReport, SegmentError> {
        let figures = self.db.store_figures(org).await?;
        let all = ready_made(&figures).map_err(SegmentError::InvalidRule)?;
        let existing: std::collections::BTreeSet<String> = self
            .db
            .segments_of(org)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut report = DefaultsReport::default();
        for segment in all {
            if existing.contains(segment.name) {
                report.kept.push(segment.name.to_owned());
                continue;
            }
            match self
                .create(
                    org,
                    SegmentDraft {
                        name: segment.name.to_owned(),
                        description: Some(segment.description),
                        rule: RuleSource::Ast(segment.rule),
                    },
                )
                .await
            {
                Ok(_) => report.created.push(segment.name.to_owned()),
                // Saved meanwhile by someone else: theirs stays.
                Err(SegmentError::NameTaken(name)) => report.kept.push(name),
                Err(e) => return Err(e),
            }
        }
        self.db
            .mark_default_segments_installed(org, self.now_us())
            .await?;
        Ok(report)
    }
}

/// The loop that installs ready-made segments for newly connected stores.
#[derive(Clone)]
pub struct DefaultsRounds {
    segments: Segments,
}

impl DefaultsRounds {
    pub fn new(segments: &Segments) -> Self {
        Self {
            segments: segments.clone(),
        }
    }
}

impl Rounds for DefaultsRounds {
    fn name(&self) -> &'static str {
        "ready-made segments"
    }

    async fn round(&self) -> Result<bool, RoundError> {
        let settled = self.segments.now_us() - SETTLE_AFTER_CONNECT.as_micros() as i64;
        let due = self
            .segments
            .db
            .orgs_needing_default_segments(settled)
            .await?;
        let Some(org) = due.first() else {
            return Ok(false);
        };
        let report = self.segments.install_defaults(org).await?;
        tracing::info!(org = %org, created = report.created.len(), kept = report.kept.len(), "ready-made segments installed");
        Ok(due.len() > 1)
    }
}
