//! Live membership: a background loop that keeps every saved segment's
//! members current. Its work comes from two places, both written durably
//! before it runs:
//!
//! - the marks the projection leaves in its own transaction for each
//!   profile a batch touched, with what touched it (`track:<event>`,
//!   `identify`, …): a mark re-evaluates only the segments whose rule (with
//!   the segments it names) can depend on that cause
//!   ([`Dependencies::affected_by`]);
//! - the window checks each evaluation schedules: a profile's next instant
//!   at which a window edge could change its membership with no new event
//!   (a profile leaves "ordered within 30 days" on day 31).
//!
//! A round takes a batch of both, evaluates each affected segment once for
//! all its profiles (one query per segment and chunk), writes the changes
//! and the feed, schedules the next checks, and deletes what it consumed,
//! all in one membership transaction: a crash repeats the round, never
//! loses or doubles a change.

use std::collections::{BTreeMap, BTreeSet};

use cohort_domain::ids::OrgId;
use cohort_domain::segments::{dependencies, Dependencies, Rule};
use cohort_jobs::worker::{RoundError, Rounds};
use cohort_store::segments::{DirtyMark, DueCheck, CAUSE_ANY};
use cohort_store::Db;

use super::{Clock, RuleBook, SegmentError, Segments};

/// Marks and checks taken per round.
pub const MARKS_PER_ROUND: u32 = 2000;
pub const CHECKS_PER_ROUND: u32 = 2000;

/// The reason recorded for a change a window caused.
pub const REASON_WINDOW: &str = "time window";

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub marks: usize,
    pub checks: usize,
    pub entered: usize,
    pub exited: usize,
}

impl RoundReport {
    /// Whether the round took a full batch (more may be waiting).
    pub fn full(&self) -> bool {
        self.marks as u32 >= MARKS_PER_ROUND || self.checks as u32 >= CHECKS_PER_ROUND
    }
}

/// What a rule depends on, through every segment it names.
pub fn dependencies_through(rule: &Rule, book: &RuleBook) -> Dependencies {
    let mut all = Dependencies::default();
    let mut seen = BTreeSet::new();
    let mut stack = vec![rule.clone()];
    while let Some(r) = stack.pop() {
        let d = dependencies(&r);
        for named in &d.segments {
            if seen.insert(named.clone()) {
                if let Some(inner) = book.lookup(named) {
                    stack.push(inner);
                }
            }
        }
        all.events.extend(d.events);
        all.segments.extend(d.segments);
        all.any_event |= d.any_event;
        all.traits |= d.traits;
        all.email |= d.email;
        all.tags |= d.tags;
        all.orders |= d.orders;
        all.rfm |= d.rfm;
        all.windowed |= d.windowed;
    }
    all
}

/// Whether a mark's cause can change a rule with these dependencies.
pub fn cause_affects(deps: &Dependencies, cause: &str) -> bool {
    if cause == CAUSE_ANY {
        return true;
    }
    match cause.split_once(':') {
        Some(("track", event)) => deps.affected_by("track", Some(event)),
        _ => deps.affected_by(cause, None),
    }
}

/// How a cause reads in the feed: `track:Order Completed` →
/// `event "Order Completed"`.
fn describe(cause: &str) -> String {
    match cause.split_once(':') {
        Some(("track", event)) => format!("event \"{event}\""),
        _ if cause == CAUSE_ANY => "profile changed".to_owned(),
        _ => cause.to_owned(),
    }
}

/// One round of live membership at `now_us`.
pub async fn membership_round(db: &Db, now_us: i64) -> Result<RoundReport, SegmentError> {
    // A read first: an idle worker never takes the write lock (on SQLite a
    // write every poll would make others' transactions wait).
    if !db.segment_work_pending(now_us).await? {
        return Ok(RoundReport::default());
    }
    let mut tx = db.begin_segments().await?;
    let marks = tx.take_dirty(MARKS_PER_ROUND).await?;
    let checks = tx.take_due_checks(now_us, CHECKS_PER_ROUND).await?;
    let mut report = RoundReport {
        marks: marks.len(),
        checks: checks.len(),
        ..Default::default()
    };
    let mut marks_by_org: BTreeMap<String, Vec<DirtyMark>> = BTreeMap::new();
    for m in marks {
        marks_by_org.entry(m.org_id.clone()).or_default().push(m);
    }
    let mut checks_by_org: BTreeMap<String, Vec<DueCheck>> = BTreeMap::new();
    for c in checks {
        checks_by_org.entry(c.org_id.clone()).or_default().push(c);
    }
    let orgs: BTreeSet<String> = marks_by_org
        .keys()
        .chain(checks_by_org.keys())
        .cloned()
        .collect();
    for org_key in orgs {
        let org = OrgId::from_stored(org_key.clone());
        let records = tx.definitions(&org).await?;
        if records.is_empty() {
            continue;
        }
        let book = RuleBook::of(&records);
        let lookup = |n: &str| book.lookup(n);
        // profile → its causes, in this round.
        let mut causes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in marks_by_org.remove(&org_key).unwrap_or_default() {
            causes.entry(m.profile_id).or_default().insert(m.cause);
        }
        let mut due: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in checks_by_org.remove(&org_key).unwrap_or_default() {
            due.entry(c.segment_id).or_default().insert(c.profile_id);
        }
        for record in &records {
            let deps = dependencies_through(&record.rule, &book);
            // Profiles to evaluate, grouped by the reason their change reads.
            let mut by_reason: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (profile, cs) in &causes {
                let reasons: Vec<String> = cs
                    .iter()
                    .filter(|c| cause_affects(&deps, c))
                    .map(|c| describe(c))
                    .collect();
                if !reasons.is_empty() {
                    by_reason
                        .entry(reasons.join(", "))
                        .or_default()
                        .push(profile.clone());
                }
            }
            let marked: BTreeSet<&String> = by_reason.values().flatten().collect();
            if let Some(profiles) = due.get(&record.segment_id) {
                let only_due: Vec<String> = profiles
                    .iter()
                    .filter(|p| !marked.contains(p))
                    .cloned()
                    .collect();
                if !only_due.is_empty() {
                    by_reason.insert(REASON_WINDOW.to_owned(), only_due);
                }
            }
            if by_reason.is_empty() {
                continue;
            }
            // One evaluation for every affected profile; the changes are
            // written per reason.
            let profiles: Vec<String> = by_reason.values().flatten().cloned().collect();
            let selected = tx
                .select(&org, &record.rule, Some(&profiles), now_us, &lookup)
                .await?;
            for (reason, group) in &by_reason {
                let chosen: BTreeSet<String> = group
                    .iter()
                    .filter(|p| selected.contains(*p))
                    .cloned()
                    .collect();
                let delta = tx
                    .apply(
                        &org,
                        &record.segment_id,
                        Some(group),
                        &chosen,
                        now_us,
                        reason,
                    )
                    .await?;
                report.entered += delta.entered.len();
                report.exited += delta.exited.len();
            }
            if deps.windowed {
                tx.schedule_checks(
                    &org,
                    &record.segment_id,
                    &record.rule,
                    Some(&profiles),
                    now_us,
                    &lookup,
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// Rounds until nothing is waiting at `now_us` (tests, `cohort segment
/// recompute`'s catch-up); returns the total.
pub async fn drain(db: &Db, now_us: i64) -> Result<RoundReport, SegmentError> {
    let mut total = RoundReport::default();
    loop {
        let r = membership_round(db, now_us).await?;
        total.marks += r.marks;
        total.checks += r.checks;
        total.entered += r.entered;
        total.exited += r.exited;
        if r.marks == 0 && r.checks == 0 {
            return Ok(total);
        }
    }
}

/// The live-membership loop of a `workers` node.
#[derive(Clone)]
pub struct MembershipRounds {
    db: Db,
    clock: Clock,
}

impl MembershipRounds {
    pub fn new(segments: &Segments) -> Self {
        Self {
            db: segments.db.clone(),
            clock: segments.clock.clone(),
        }
    }
}

impl Rounds for MembershipRounds {
    fn name(&self) -> &'static str {
        "segment membership"
    }

    async fn round(&self) -> Result<bool, RoundError> {
        let report = membership_round(&self.db, (self.clock)()).await?;
        Ok(report.full())
    }
}
