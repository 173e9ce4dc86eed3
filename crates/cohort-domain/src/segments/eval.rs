//! The naive evaluator: a rule over one profile's facts at `now`, read
//! straight from the definitions in `docs/SEGMENTS.md`. It is the
//! reference the SQL compiler is tested against, and what live membership
//! can use for one profile.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

use super::ast::*;
use super::facts::{EventFact, ProfileFacts};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("no segment is named \"{0}\"")]
    UnknownSegment(String),
    #[error("segments form a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
}

/// Whether the profile is in the rule's segment at `now_us`. `lookup`
/// finds the rule of a segment named by `in segment`.
pub fn evaluate(
    rule: &Rule,
    facts: &ProfileFacts,
    now_us: i64,
    lookup: &dyn Fn(&str) -> Option<Rule>,
) -> Result<bool, EvalError> {
    Evaluator {
        facts,
        now_us,
        lookup,
        stack: Vec::new(),
    }
    .eval(rule)
}

struct Evaluator<'a> {
    facts: &'a ProfileFacts,
    now_us: i64,
    lookup: &'a dyn Fn(&str) -> Option<Rule>,
    stack: Vec<String>,
}

/// The value at `path` inside an object (each step must be an object).
pub fn value_at<'v>(
    root: &'v serde_json::Map<String, Value>,
    path: &[String],
) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let mut v = root.get(first)?;
    for key in rest {
        v = v.as_object()?.get(key)?;
    }
    Some(v)
}

/// A value test on a JSON value: values compare only with literals of
/// their own type; a missing or null value passes nothing but `not`.
pub fn value_test(value: Option<&Value>, test: &ValueTest) -> bool {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return false;
    };
    match test {
        ValueTest::Exists => true,
        ValueTest::Contains { text } => value.as_str().is_some_and(|s| s.contains(text.as_str())),
        ValueTest::In { values } => values.iter().any(|l| compare(value, CmpOp::Eq, l)),
        ValueTest::Compare { op, value: lit } => compare(value, *op, lit),
    }
}

fn compare(value: &Value, op: CmpOp, lit: &Literal) -> bool {
    match (value, lit) {
        (Value::String(s), Literal::String(l)) => op.holds(&s.as_str(), &l.as_str()),
        (Value::Number(n), Literal::Number(l)) => match (n.as_f64(), l.to_f64()) {
            (Some(a), Some(b)) => op.holds(&a, &b),
            _ => false,
        },
        (Value::Bool(b), Literal::Bool(l)) => matches!(op, CmpOp::Eq | CmpOp::Ne) && op.holds(b, l),
        _ => false,
    }
}

/// Whether an event passes `where` filters.
pub fn filters_hold(event: &EventFact, filters: &[PropertyFilter]) -> bool {
    filters.iter().all(|f| {
        let v = event
            .properties
            .as_object()
            .and_then(|props| value_at(props, &f.path));
        value_test(v, &f.test)
    })
}

/// The events an email predicate counts.
pub fn email_event_matches(event: &EventFact, action: EmailAction, campaign: Option<&str>) -> bool {
    event.name == action.event()
        && campaign
            .is_none_or(|c| event.properties.get(CAMPAIGN_NAME).and_then(Value::as_str) == Some(c))
}

fn latest(facts: &ProfileFacts, names: &[&str]) -> Option<i64> {
    facts
        .events
        .iter()
        .filter(|e| names.contains(&e.name.as_str()))
        .map(|e| e.at_us)
        .max()
}

pub fn is_unsubscribed(facts: &ProfileFacts) -> bool {
    match latest(facts, &OPT_OUT_EVENTS) {
        Some(off) => off >= latest(facts, &[SUBSCRIBED]).unwrap_or(i64::MIN),
        None => false,
    }
}

pub fn is_bounced(facts: &ProfileFacts) -> bool {
    match latest(facts, &[EMAIL_BOUNCED]) {
        Some(bounce) => bounce > latest(facts, &[EMAIL_DELIVERED]).unwrap_or(i64::MIN),
        None => false,
    }
}

/// The exact total spent (all purchases, net of refunds).
pub fn total_spent(facts: &ProfileFacts) -> Decimal {
    facts.purchases.iter().map(|p| p.net_total).sum()
}

impl Evaluator<'_> {
    fn eval(&mut self, rule: &Rule) -> Result<bool, EvalError> {
        let f = self.facts;
        let now = self.now_us;
        Ok(match rule {
            Rule::And { rules } => {
                for r in rules {
                    if !self.eval(r)? {
                        return Ok(false);
                    }
                }
                true
            }
            Rule::Or { rules } => {
                for r in rules {
                    if self.eval(r)? {
                        return Ok(true);
                    }
                }
                false
            }
            Rule::Not { rule } => !self.eval(rule)?,
            Rule::Trait { path, test } => value_test(value_at(&f.traits, path), test),
            Rule::EmailExists => f.email.is_some(),
            Rule::Subscribed => f.email.is_some() && !is_unsubscribed(f) && !is_bounced(f),
            Rule::Unsubscribed => is_unsubscribed(f),
            Rule::Bounced => is_bounced(f),
            Rule::Tag { tag } => f.tags.contains(tag),
            Rule::Metric { metric, test } => self.metric(*metric, test),
            Rule::Performed {
                event,
                count,
                window,
                filters,
            } => {
                let n = f
                    .events
                    .iter()
                    .filter(|e| {
                        e.name == *event
                            && window.is_none_or(|w| w.contains(e.at_us, now))
                            && filters_hold(e, filters)
                    })
                    .count() as u64;
                count
                    .unwrap_or(Count {
                        op: CmpOp::Ge,
                        times: 1,
                    })
                    .holds(n)
            }
            Rule::LastPerformed {
                event,
                window,
                filters,
            } => f
                .events
                .iter()
                .filter(|e| e.name == *event && filters_hold(e, filters))
                .map(|e| e.at_us)
                .max()
                .is_some_and(|at| window.contains(at, now)),
            Rule::Email {
                action,
                campaign,
                count,
                window,
            } => {
                let n = f
                    .events
                    .iter()
                    .filter(|e| {
                        email_event_matches(e, *action, campaign.as_deref())
                            && window.is_none_or(|w| w.contains(e.at_us, now))
                    })
                    .count() as u64;
                count
                    .unwrap_or(Count {
                        op: CmpOp::Ge,
                        times: 1,
                    })
                    .holds(n)
            }
            Rule::Bought {
                item,
                value,
                window,
            } => f.purchases.iter().any(|p| {
                window.is_none_or(|w| w.contains(p.at_us, now))
                    && p.lines.iter().any(|l| match item {
                        BoughtItem::Product => {
                            l.product_id.as_deref() == Some(value)
                                || l.sku.as_deref() == Some(value)
                        }
                        BoughtItem::Category => l.category.as_deref() == Some(value),
                    })
            }),
            Rule::InSegment { segment } => {
                if let Some(at) = self.stack.iter().position(|s| s == segment) {
                    let mut cycle = self.stack[at..].to_vec();
                    cycle.push(segment.clone());
                    return Err(EvalError::Cycle(cycle));
                }
                let inner = (self.lookup)(segment)
                    .ok_or_else(|| EvalError::UnknownSegment(segment.clone()))?;
                self.stack.push(segment.clone());
                let result = self.eval(&inner);
                self.stack.pop();
                result?
            }
            Rule::Rfm { field, op, value } => match (&f.rfm, field, value) {
                (None, ..) => false,
                (Some(r), RfmField::Group, Literal::String(g)) => {
                    matches!(op, CmpOp::Eq | CmpOp::Ne) && op.holds(&r.group.as_str(), &g.as_str())
                }
                (Some(r), field, Literal::Number(n)) => {
                    let score = match field {
                        RfmField::Recency => r.recency,
                        RfmField::Frequency => r.frequency,
                        RfmField::Monetary => r.monetary,
                        RfmField::Group => return Ok(false),
                    };
                    op.holds(&Decimal::from(score), n)
                }
                _ => false,
            },
        })
    }

    fn metric(&self, metric: Metric, test: &MetricTest) -> bool {
        let f = self.facts;
        match (metric, test) {
            (Metric::OrdersCount, MetricTest::Compare { op, value }) => {
                op.holds(&Decimal::from(f.purchases.len() as u64), &value.0)
            }
            (Metric::OrdersTotalSpent, MetricTest::Compare { op, value }) => {
                op.holds(&total_spent(f), &value.0)
            }
            (Metric::OrdersAverageValue, MetricTest::Compare { op, value }) => {
                // total / n op v  ⇔  total op v × n (n > 0): exact, no rounding.
                let n = Decimal::from(f.purchases.len() as u64);
                !f.purchases.is_empty() && op.holds(&total_spent(f), &(value.0 * n))
            }
            (Metric::OrdersFirstAt, MetricTest::Window { window }) => f
                .purchases
                .iter()
                .map(|p| p.at_us)
                .min()
                .is_some_and(|at| window.contains(at, self.now_us)),
            (Metric::OrdersLastAt, MetricTest::Window { window }) => f
                .purchases
                .iter()
                .map(|p| p.at_us)
                .max()
                .is_some_and(|at| window.contains(at, self.now_us)),
            (Metric::LastSeen, MetricTest::Window { window }) => {
                window.contains(f.last_seen_us, self.now_us)
            }
            _ => false,
        }
    }
}
