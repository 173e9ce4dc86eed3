//! What a rule depends on, for live membership: which events can change
//! it, whether time alone can (windows), the next instant it could, and the
//! `in segment` graph's cycles.

use std::collections::{BTreeMap, BTreeSet};

use super::ast::*;
use super::eval::{email_event_matches, filters_hold};
use super::facts::ProfileFacts;

/// The facts a rule reads. An event can change a profile's membership only
/// if it is named in `events`, or `any_event` is set (`last_seen`), or it
/// can change the kind of fact flagged here (traits and email come from
/// `identify` and any message's `context.traits`; tags, orders and
/// `orders.*` from cart and order events and store resources).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// `track` event names read directly.
    pub events: BTreeSet<String>,
    /// `last_seen`: every event moves it.
    pub any_event: bool,
    pub traits: bool,
    pub email: bool,
    pub tags: bool,
    pub orders: bool,
    pub rfm: bool,
    /// Segments named by `in segment`, directly.
    pub segments: BTreeSet<String>,
    /// Some condition has a window, so time alone can change membership.
    pub windowed: bool,
}

impl Dependencies {
    /// Whether a `message_type` message (`track` with `event`) could change
    /// the rule's value for its profile. Conservative: identities can merge
    /// profiles through any message, so any message that names a person may
    /// matter to a rule on facts a merge combines — callers that merge
    /// re-evaluate the merged profiles whatever this says.
    pub fn affected_by(&self, message_type: &str, event: Option<&str>) -> bool {
        if self.any_event || (self.traits || self.email) && message_type != "resource" {
            return true;
        }
        if (self.orders || self.tags) && (message_type == "resource" || message_type == "track") {
            return true;
        }
        message_type == "track" && event.is_some_and(|e| self.events.contains(e))
    }
}

/// The dependencies of `rule`, not following `in segment` (see
/// [`Dependencies::segments`]).
pub fn dependencies(rule: &Rule) -> Dependencies {
    let mut d = Dependencies::default();
    collect(rule, &mut d);
    d
}

fn collect(rule: &Rule, d: &mut Dependencies) {
    match rule {
        Rule::And { rules } | Rule::Or { rules } => rules.iter().for_each(|r| collect(r, d)),
        Rule::Not { rule } => collect(rule, d),
        Rule::Trait { .. } => d.traits = true,
        Rule::EmailExists => d.email = true,
        Rule::Subscribed | Rule::Unsubscribed | Rule::Bounced => {
            if matches!(rule, Rule::Subscribed) {
                d.email = true;
            }
            if !matches!(rule, Rule::Bounced) {
                d.events
                    .extend(OPT_OUT_EVENTS.iter().map(|s| s.to_string()));
                d.events.insert(SUBSCRIBED.into());
            }
            if !matches!(rule, Rule::Unsubscribed) {
                d.events.insert(EMAIL_BOUNCED.into());
                d.events.insert(EMAIL_DELIVERED.into());
            }
        }
        Rule::Tag { .. } => d.tags = true,
        Rule::Metric { metric, test } => {
            if *metric == Metric::LastSeen {
                d.any_event = true;
            } else {
                d.orders = true;
            }
            d.windowed |= matches!(test, MetricTest::Window { .. });
        }
        Rule::Performed { event, window, .. } => {
            d.events.insert(event.clone());
            d.windowed |= window.is_some();
        }
        Rule::LastPerformed { event, .. } => {
            d.events.insert(event.clone());
            d.windowed = true;
        }
        Rule::Email { action, window, .. } => {
            d.events.insert(action.event().into());
            d.windowed |= window.is_some();
        }
        Rule::Bought { window, .. } => {
            d.orders = true;
            d.windowed |= window.is_some();
        }
        Rule::InSegment { segment } => {
            d.segments.insert(segment.clone());
        }
        Rule::Rfm { .. } => d.rfm = true,
    }
}

/// The first instant after `now_us` at which a window of the rule could
/// change its value for this profile without a new event (a fact crossing
/// a window's edge); `None` if none can. It may be an instant at which
/// nothing changes after all (a crossing that does not flip a count's
/// comparison): re-evaluate then and ask again.
pub fn next_change_us(
    rule: &Rule,
    facts: &ProfileFacts,
    now_us: i64,
    lookup: &dyn Fn(&str) -> Option<Rule>,
) -> Option<i64> {
    let mut next: Option<i64> = None;
    let mut seen = BTreeSet::new();
    crossings(rule, facts, now_us, lookup, &mut seen, &mut next);
    next
}

fn crossings(
    rule: &Rule,
    f: &ProfileFacts,
    now: i64,
    lookup: &dyn Fn(&str) -> Option<Rule>,
    seen: &mut BTreeSet<String>,
    next: &mut Option<i64>,
) {
    let mut consider = |window: &Window, at: i64| {
        let t = window.crossing_us(at);
        if t > now && next.is_none_or(|n| t < n) {
            *next = Some(t);
        }
    };
    match rule {
        Rule::And { rules } | Rule::Or { rules } => {
            for r in rules {
                crossings(r, f, now, lookup, seen, next);
            }
        }
        Rule::Not { rule } => crossings(rule, f, now, lookup, seen, next),
        Rule::Metric {
            metric,
            test: MetricTest::Window { window },
        } => {
            let times: Vec<i64> = match metric {
                Metric::LastSeen => vec![f.last_seen_us],
                Metric::OrdersFirstAt => f
                    .purchases
                    .iter()
                    .map(|p| p.at_us)
                    .min()
                    .into_iter()
                    .collect(),
                _ => f
                    .purchases
                    .iter()
                    .map(|p| p.at_us)
                    .max()
                    .into_iter()
                    .collect(),
            };
            times.into_iter().for_each(|t| consider(window, t));
        }
        Rule::Performed {
            event,
            window: Some(window),
            filters,
            ..
        } => f
            .events
            .iter()
            .filter(|e| e.name == *event && filters_hold(e, filters))
            .for_each(|e| consider(window, e.at_us)),
        Rule::LastPerformed {
            event,
            window,
            filters,
        } => {
            if let Some(at) = f
                .events
                .iter()
                .filter(|e| e.name == *event && filters_hold(e, filters))
                .map(|e| e.at_us)
                .max()
            {
                consider(window, at);
            }
        }
        Rule::Email {
            action,
            campaign,
            window: Some(window),
            ..
        } => f
            .events
            .iter()
            .filter(|e| email_event_matches(e, *action, campaign.as_deref()))
            .for_each(|e| consider(window, e.at_us)),
        Rule::Bought {
            window: Some(window),
            ..
        } => f.purchases.iter().for_each(|p| consider(window, p.at_us)),
        Rule::InSegment { segment } if seen.insert(segment.clone()) => {
            if let Some(inner) = lookup(segment) {
                crossings(&inner, f, now, lookup, seen, next);
            }
        }
        _ => {}
    }
}

/// Segments whose `in segment` references go round in a circle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("segments form a cycle: {}", .names.join(" → "))]
pub struct SegmentCycle {
    /// The cycle, its first segment repeated at the end (`A → B → A`).
    pub names: Vec<String>,
}

/// Finds a cycle among segments (name → rule) through `in segment`;
/// references to segments not in the map are ignored here.
pub fn find_cycle(segments: &BTreeMap<String, Rule>) -> Result<(), SegmentCycle> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        name: &str,
        segments: &BTreeMap<String, Rule>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Result<(), SegmentCycle> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == name).unwrap_or(0);
                let mut names = path[start..].to_vec();
                names.push(name.to_owned());
                return Err(SegmentCycle { names });
            }
            None => {}
        }
        let Some(rule) = segments.get(name) else {
            return Ok(());
        };
        marks.insert(name.to_owned(), Mark::Open);
        path.push(name.to_owned());
        for next in dependencies(rule).segments {
            visit(&next, segments, marks, path)?;
        }
        path.pop();
        marks.insert(name.to_owned(), Mark::Done);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    for name in segments.keys() {
        visit(name, segments, &mut marks, &mut Vec::new())?;
    }
    Ok(())
}
