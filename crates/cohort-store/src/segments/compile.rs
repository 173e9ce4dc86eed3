//! The compiler: a rule to `SELECT p.profile_id FROM profiles p WHERE …`.

use cohort_domain::ids::OrgId;
use cohort_domain::segments::{
    BoughtItem, CmpOp, Count, Literal, Metric, MetricTest, PropertyFilter, Relation, RfmField,
    Rule, ValueTest, Window, CAMPAIGN_NAME, EMAIL_BOUNCED, EMAIL_DELIVERED, OPT_OUT_EVENTS,
    SUBSCRIBED,
};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::sql::{Bind, Statement};
use crate::Backend;

/// Which profiles the query looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    /// One profile (re-evaluation after its event).
    Profile(&'a str),
    /// Some profiles (a batch re-evaluated together: one query per
    /// segment, not one per profile).
    Profiles(&'a [String]),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("no segment is named \"{0}\"")]
    UnknownSegment(String),
    #[error("segments form a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error("{0}")]
    Invalid(String),
}

/// A compiled rule: its statement and values, ready to run.
#[derive(Debug)]
pub struct CompiledRule {
    pub(crate) statement: Statement,
}

impl CompiledRule {
    /// The SQL text (values are parameters, not in it).
    pub fn sql(&self) -> &str {
        &self.statement.sql
    }
}

/// Compiles `rule` for `backend`, evaluated at `now_us`. `in segment` is
/// compiled by inlining the named segment's rule from `lookup`.
pub fn compile(
    backend: Backend,
    org: &OrgId,
    rule: &Rule,
    now_us: i64,
    scope: Scope<'_>,
    lookup: &dyn Fn(&str) -> Option<Rule>,
) -> Result<CompiledRule, CompileError> {
    compile_select(backend, org, rule, now_us, scope, lookup, Select::Ids)
}

/// What the compiled query answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Select {
    /// The members' ids, in order.
    Ids,
    /// How many members (one row, one column).
    Count,
    /// The first members' ids, in order, at most this many.
    FirstIds(u32),
}

pub(crate) fn compile_select(
    backend: Backend,
    org: &OrgId,
    rule: &Rule,
    now_us: i64,
    scope: Scope<'_>,
    lookup: &dyn Fn(&str) -> Option<Rule>,
    select: Select,
) -> Result<CompiledRule, CompileError> {
    rule.validate()
        .map_err(|e| CompileError::Invalid(e.to_string()))?;
    let mut c = Compiler::new(backend, org, now_us, scope, lookup);
    let condition = c.rule(rule)?;
    let org_marker = c.text(&c.org.clone());
    let columns = match select {
        Select::Ids | Select::FirstIds(_) => "p.profile_id",
        Select::Count => "COUNT(*)",
    };
    let mut sql = format!("SELECT {columns} FROM profiles p WHERE p.org_id = {org_marker}");
    sql.push_str(&c.scoped("p.profile_id"));
    sql.push_str(&format!(" AND ({condition})"));
    match select {
        Select::Ids => sql.push_str(" ORDER BY p.profile_id"),
        Select::FirstIds(n) => sql.push_str(&format!(" ORDER BY p.profile_id LIMIT {n}")),
        Select::Count => {}
    }
    c.st.sql = sql;
    Ok(CompiledRule { statement: c.st })
}

/// Compiles the query of the next instant, after `now_us`, at which a
/// window of `rule` (or of a segment it names) could change a profile's
/// membership without a new event: `SELECT profile_id, due_us`, one row per
/// profile that has such an instant. A fact at `t` crosses a window of
/// length `L` at `t + L + 1` µs; a crossing is ahead exactly when
/// `t >= now − L`. Property filters and campaigns are ignored here, so the
/// instants are a superset of the real changes: a check that changes
/// nothing re-evaluates and schedules the next one. `None` when the rule
/// has no window.
pub fn compile_next_checks(
    backend: Backend,
    org: &OrgId,
    rule: &Rule,
    now_us: i64,
    scope: Scope<'_>,
    lookup: &dyn Fn(&str) -> Option<Rule>,
) -> Result<Option<CompiledRule>, CompileError> {
    rule.validate()
        .map_err(|e| CompileError::Invalid(e.to_string()))?;
    let mut c = Compiler::new(backend, org, now_us, scope, lookup);
    let mut parts = Vec::new();
    c.crossings(rule, &mut parts)?;
    if parts.is_empty() {
        return Ok(None);
    }
    c.st.sql = format!(
        "SELECT x.profile_id AS profile_id, MIN(x.due_us) AS due_us FROM ({}) x GROUP BY x.profile_id",
        parts.join(" UNION ALL ")
    );
    Ok(Some(CompiledRule { statement: c.st }))
}

struct Compiler<'a> {
    backend: Backend,
    st: Statement,
    org: String,
    now_us: i64,
    profiles: Option<Vec<String>>,
    lookup: &'a dyn Fn(&str) -> Option<Rule>,
    stack: Vec<String>,
}

/// Where a value test finds its JSON: the profile's traits or an event's
/// properties.
#[derive(Clone, Copy)]
enum Doc {
    Traits,
    Properties,
}

impl<'a> Compiler<'a> {
    fn new(
        backend: Backend,
        org: &OrgId,
        now_us: i64,
        scope: Scope<'_>,
        lookup: &'a dyn Fn(&str) -> Option<Rule>,
    ) -> Self {
        Compiler {
            backend,
            st: Statement::new(""),
            org: org.as_str().to_owned(),
            now_us,
            profiles: match scope {
                Scope::All => None,
                Scope::Profile(p) => Some(vec![p.to_owned()]),
                Scope::Profiles(ps) => Some(ps.to_vec()),
            },
            lookup,
            stack: Vec::new(),
        }
    }
    fn text(&mut self, v: &str) -> String {
        self.st.bind(Bind::Text(v.to_owned()))
    }

    fn int(&mut self, v: i64) -> String {
        self.st.bind(Bind::Int(v))
    }

    fn float(&mut self, v: f64) -> String {
        self.st.bind(Bind::Float(v))
    }

    fn org(&mut self) -> String {
        let org = self.org.clone();
        self.text(&org)
    }

    /// ` AND <column> IN (<the profiles>)` when scoped to some profiles.
    fn scoped(&mut self, column: &str) -> String {
        match self.profiles.clone() {
            Some(ps) if ps.is_empty() => " AND 1 = 0".to_owned(),
            Some(ps) if ps.len() == 1 => {
                let m = self.text(&ps[0]);
                format!(" AND {column} = {m}")
            }
            Some(ps) => {
                let list = self.st.in_list(ps.iter().map(String::as_str));
                format!(" AND {column} IN {list}")
            }
            None => String::new(),
        }
    }

    fn window(&mut self, column: &str, window: &Window) -> String {
        let edge = self.int(window.edge_us(self.now_us));
        match window.relation {
            Relation::Within => format!("{column} >= {edge}"),
            Relation::Before => format!("{column} < {edge}"),
        }
    }

    fn rule(&mut self, rule: &Rule) -> Result<String, CompileError> {
        Ok(match rule {
            Rule::And { rules } | Rule::Or { rules } => {
                let joiner = if matches!(rule, Rule::And { .. }) {
                    " AND "
                } else {
                    " OR "
                };
                let parts = rules
                    .iter()
                    .map(|r| self.rule(r).map(|s| format!("({s})")))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.join(joiner)
            }
            Rule::Not { rule } => format!("NOT ({})", self.rule(rule)?),
            Rule::Trait { path, test } => self.value_test(Doc::Traits, path, test),
            Rule::EmailExists => "p.email IS NOT NULL".to_owned(),
            Rule::Subscribed => {
                let unsubscribed = self.unsubscribed();
                let bounced = self.bounced();
                format!("p.email IS NOT NULL AND NOT ({unsubscribed}) AND NOT ({bounced})")
            }
            Rule::Unsubscribed => self.unsubscribed(),
            Rule::Bounced => self.bounced(),
            Rule::Tag { tag } => {
                let org = self.org();
                let tag = self.text(tag);
                let scoped = self.scoped("t.profile_id");
                format!(
                    "p.profile_id IN (SELECT t.profile_id FROM profile_tags t WHERE t.org_id = {org} AND t.tag = {tag}{scoped})"
                )
            }
            Rule::Metric { metric, test } => self.metric(*metric, test)?,
            Rule::Performed {
                event,
                count,
                window,
                filters,
            } => {
                let from = self.events_of(event, window.as_ref(), filters, None);
                self.counted(&from, count)
            }
            Rule::LastPerformed {
                event,
                window,
                filters,
            } => {
                let from = self.events_of(event, None, filters, None);
                let test = self.window("MAX(e.timestamp_us)", window);
                format!("p.profile_id IN (SELECT ce.profile_id {from} GROUP BY ce.profile_id HAVING {test})")
            }
            Rule::Email {
                action,
                campaign,
                count,
                window,
            } => {
                let from =
                    self.events_of(action.event(), window.as_ref(), &[], campaign.as_deref());
                self.counted(&from, count)
            }
            Rule::Bought {
                item,
                value,
                window,
            } => {
                let org = self.org();
                let matches = match item {
                    BoughtItem::Product => {
                        let a = self.text(value);
                        let b = self.text(value);
                        format!("(l.product_id = {a} OR l.sku = {b})")
                    }
                    BoughtItem::Category => {
                        let a = self.text(value);
                        format!("l.category = {a}")
                    }
                };
                let window = match window {
                    Some(w) => format!(" AND {}", self.window("l.purchased_at_us", w)),
                    None => String::new(),
                };
                let scoped = self.scoped("l.profile_id");
                format!(
                    "p.profile_id IN (SELECT l.profile_id FROM order_lines l WHERE l.org_id = {org} AND {matches}{window}{scoped})"
                )
            }
            Rule::InSegment { segment } => {
                if let Some(at) = self.stack.iter().position(|s| s == segment) {
                    let mut cycle = self.stack[at..].to_vec();
                    cycle.push(segment.clone());
                    return Err(CompileError::Cycle(cycle));
                }
                let inner = (self.lookup)(segment)
                    .ok_or_else(|| CompileError::UnknownSegment(segment.clone()))?;
                inner
                    .validate()
                    .map_err(|e| CompileError::Invalid(format!("segment \"{segment}\": {e}")))?;
                self.stack.push(segment.clone());
                let sql = self.rule(&inner);
                self.stack.pop();
                sql?
            }
            Rule::Rfm { field, op, value } => {
                let test = match (field, value) {
                    (RfmField::Group, Literal::String(g))
                        if matches!(op, CmpOp::Eq | CmpOp::Ne) =>
                    {
                        let m = self.text(g);
                        format!("r.rfm_group {} {m}", sql_op(*op))
                    }
                    (RfmField::Group, _) => return Ok(FALSE.to_owned()),
                    (field, Literal::Number(n)) => {
                        let m = self.float(n.to_f64().unwrap_or(f64::NAN));
                        let column = match field {
                            RfmField::Recency => "r.recency",
                            RfmField::Frequency => "r.frequency",
                            _ => "r.monetary",
                        };
                        format!("{column} {} {m}", sql_op(*op))
                    }
                    _ => return Ok(FALSE.to_owned()),
                };
                let org = self.org();
                let scoped = self.scoped("r.profile_id");
                format!(
                    "p.profile_id IN (SELECT r.profile_id FROM profile_rfm r WHERE r.org_id = {org} AND {test}{scoped})"
                )
            }
        })
    }

    /// The `SELECT profile_id, due_us` of every window crossing ahead in
    /// `rule`, appended to `parts`.
    fn crossings(&mut self, rule: &Rule, parts: &mut Vec<String>) -> Result<(), CompileError> {
        match rule {
            Rule::And { rules } | Rule::Or { rules } => {
                for r in rules {
                    self.crossings(r, parts)?;
                }
            }
            Rule::Not { rule } => self.crossings(rule, parts)?,
            Rule::Performed {
                event,
                window: Some(window),
                ..
            }
            | Rule::LastPerformed { event, window, .. } => {
                let part = self.event_crossings(&[event.as_str()], window);
                parts.push(part);
            }
            Rule::Email {
                action,
                window: Some(window),
                ..
            } => {
                let part = self.event_crossings(&[action.event()], window);
                parts.push(part);
            }
            Rule::Metric {
                metric,
                test: MetricTest::Window { window },
            } => {
                let (length, edge) = self.crossing_bounds(window);
                let org = self.org();
                let part = if *metric == Metric::LastSeen {
                    let scoped = self.scoped("p.profile_id");
                    format!(
                        "SELECT p.profile_id AS profile_id, p.last_seen_us + {length} AS due_us FROM profiles p \
                         WHERE p.org_id = {org} AND p.last_seen_us >= {edge}{scoped}"
                    )
                } else {
                    self.purchase_crossings(org, length, edge)
                };
                parts.push(part);
            }
            Rule::Bought {
                window: Some(window),
                ..
            } => {
                let (length, edge) = self.crossing_bounds(window);
                let org = self.org();
                let part = self.purchase_crossings(org, length, edge);
                parts.push(part);
            }
            Rule::InSegment { segment } => {
                if let Some(at) = self.stack.iter().position(|s| s == segment) {
                    let mut cycle = self.stack[at..].to_vec();
                    cycle.push(segment.clone());
                    return Err(CompileError::Cycle(cycle));
                }
                let inner = (self.lookup)(segment)
                    .ok_or_else(|| CompileError::UnknownSegment(segment.clone()))?;
                self.stack.push(segment.clone());
                let result = self.crossings(&inner, parts);
                self.stack.pop();
                result?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The markers of a window's length + 1 µs and of its edge at now.
    fn crossing_bounds(&mut self, window: &Window) -> (String, String) {
        let length = self.int(window.length_us().saturating_add(1));
        let edge = self.int(window.edge_us(self.now_us));
        (length, edge)
    }

    fn event_crossings(&mut self, events: &[&str], window: &Window) -> String {
        let (length, edge) = self.crossing_bounds(window);
        let org = self.org();
        let names = self.st.in_list(events.iter().copied());
        let scoped = self.scoped("ce.profile_id");
        format!(
            "SELECT ce.profile_id AS profile_id, e.timestamp_us + {length} AS due_us \
             FROM events e JOIN cluster_events ce ON ce.org_id = e.org_id AND ce.seq = e.seq \
             WHERE e.org_id = {org} AND e.event IN {names} AND e.type = 'track' \
             AND e.erased_at_us IS NULL AND ce.profile_id IS NOT NULL AND e.timestamp_us >= {edge}{scoped}"
        )
    }

    fn purchase_crossings(&mut self, org: String, length: String, edge: String) -> String {
        let scoped = self.scoped("o.profile_id");
        format!(
            "SELECT o.profile_id AS profile_id, o.purchased_at_us + {length} AS due_us FROM orders o \
             WHERE o.org_id = {org} AND o.purchased = 1 AND o.purchased_at_us >= {edge}{scoped}"
        )
    }

    /// `FROM events e … cluster_events ce WHERE `, joined, to be followed by
    /// the conditions. Over all profiles the events drive the join (`CROSS JOIN`
    /// fixes SQLite's join order; PostgreSQL plans it as the inner join it
    /// is): without statistics SQLite otherwise walked every placement of
    /// the organisation in `cluster_events_profile` order to skip the
    /// GROUP BY sort, reading each event's row to test its name (all 10 M
    /// of them for `performed "Order Completed" = 2 times`). For one profile
    /// its placements are the better start, and the planner finds them.
    fn events_join(&self) -> &'static str {
        match self.profiles {
            None => "FROM events e CROSS JOIN cluster_events ce WHERE ce.org_id = e.org_id AND ce.seq = e.seq AND ",
            Some(_) => "FROM events e JOIN cluster_events ce ON ce.org_id = e.org_id AND ce.seq = e.seq WHERE ",
        }
    }

    /// `FROM … WHERE …` of a profile's `track` events named `event`.
    fn events_of(
        &mut self,
        event: &str,
        window: Option<&Window>,
        filters: &[PropertyFilter],
        campaign: Option<&str>,
    ) -> String {
        let org = self.org();
        let name = self.text(event);
        let join = self.events_join();
        let mut sql = format!(
            "{join}e.org_id = {org} AND e.event = {name} AND e.type = 'track' \
             AND e.erased_at_us IS NULL AND ce.profile_id IS NOT NULL"
        );
        if let Some(w) = window {
            sql.push_str(&format!(" AND {}", self.window("e.timestamp_us", w)));
        }
        for f in filters {
            sql.push_str(&format!(
                " AND {}",
                self.value_test(Doc::Properties, &f.path, &f.test)
            ));
        }
        if let Some(c) = campaign {
            let test = ValueTest::Compare {
                op: CmpOp::Eq,
                value: Literal::String(c.to_owned()),
            };
            sql.push_str(&format!(
                " AND {}",
                self.value_test(Doc::Properties, &[CAMPAIGN_NAME.to_owned()], &test)
            ));
        }
        sql.push_str(&self.scoped("ce.profile_id"));
        sql
    }

    /// A count of events compared: profiles whose count passes, or, when
    /// zero passes, profiles except those whose count fails.
    fn counted(&mut self, from: &str, count: &Option<Count>) -> String {
        let count = count.unwrap_or(Count {
            op: CmpOp::Ge,
            times: 1,
        });
        let n = self.int(i64::from(count.times));
        let test = format!("COUNT(*) {} {n}", sql_op(count.op));
        if count.holds(0) {
            format!("p.profile_id NOT IN (SELECT ce.profile_id {from} GROUP BY ce.profile_id HAVING NOT ({test}))")
        } else {
            format!("p.profile_id IN (SELECT ce.profile_id {from} GROUP BY ce.profile_id HAVING {test})")
        }
    }

    /// The latest opt-out is at or after the latest opt-in.
    fn unsubscribed(&mut self) -> String {
        let join = self.events_join();
        let org = self.org();
        let names: Vec<String> = OPT_OUT_EVENTS
            .iter()
            .chain([SUBSCRIBED].iter())
            .map(|n| self.text(n))
            .collect();
        let on = self.text(SUBSCRIBED);
        let on2 = self.text(SUBSCRIBED);
        let min = self.int(i64::MIN);
        let scoped = self.scoped("ce.profile_id");
        format!(
            "p.profile_id IN (SELECT ce.profile_id {join}\
             e.org_id = {org} AND e.event IN ({}) AND e.type = 'track' AND e.erased_at_us IS NULL AND ce.profile_id IS NOT NULL{scoped} \
             GROUP BY ce.profile_id \
             HAVING MAX(CASE WHEN e.event = {on} THEN NULL ELSE e.timestamp_us END) >= COALESCE(MAX(CASE WHEN e.event = {on2} THEN e.timestamp_us END), {min}))",
            names.join(", ")
        )
    }

    /// The latest bounce is after the latest delivery.
    fn bounced(&mut self) -> String {
        let join = self.events_join();
        let org = self.org();
        let bounce = self.text(EMAIL_BOUNCED);
        let delivered = self.text(EMAIL_DELIVERED);
        let bounce2 = self.text(EMAIL_BOUNCED);
        let delivered2 = self.text(EMAIL_DELIVERED);
        let min = self.int(i64::MIN);
        let scoped = self.scoped("ce.profile_id");
        format!(
            "p.profile_id IN (SELECT ce.profile_id {join}\
             e.org_id = {org} AND e.event IN ({bounce}, {delivered}) AND e.type = 'track' AND e.erased_at_us IS NULL AND ce.profile_id IS NOT NULL{scoped} \
             GROUP BY ce.profile_id \
             HAVING MAX(CASE WHEN e.event = {bounce2} THEN e.timestamp_us END) > COALESCE(MAX(CASE WHEN e.event = {delivered2} THEN e.timestamp_us END), {min}))"
        )
    }

    fn metric(&mut self, metric: Metric, test: &MetricTest) -> Result<String, CompileError> {
        let window = match test {
            MetricTest::Window { window } => Some(*window),
            MetricTest::Compare { .. } => None,
        };
        if metric == Metric::LastSeen {
            let Some(w) = window else {
                return Ok(FALSE.to_owned());
            };
            return Ok(self.window("p.last_seen_us", &w));
        }
        let (aggregate, zero_passes) = match (metric, test) {
            (Metric::OrdersFirstAt, MetricTest::Window { window }) => {
                (self.window("MIN(o.purchased_at_us)", window), false)
            }
            (Metric::OrdersLastAt, MetricTest::Window { window }) => {
                (self.window("MAX(o.purchased_at_us)", window), false)
            }
            (Metric::OrdersCount, MetricTest::Compare { op, value }) => {
                let m = self.float(value.0.to_f64().unwrap_or(f64::NAN));
                (
                    format!("COUNT(*) {} {m}", sql_op(*op)),
                    op.holds(&Decimal::ZERO, &value.0),
                )
            }
            (
                Metric::OrdersTotalSpent | Metric::OrdersAverageValue,
                MetricTest::Compare { op, value },
            ) => {
                // value × 10⁴ = n / 10ᵏ  ⇒  sum_e4 × 10ᵏ op n (× count for the average): exact integers.
                let scaled = normalize(value.0 * Decimal::from(10_000));
                let k = scaled.scale();
                let n = i64::try_from(scaled.mantissa())
                    .ok()
                    .filter(|_| k <= 4)
                    .ok_or_else(|| {
                        CompileError::Invalid(format!(
                            "{} compares with an amount of at most 8 decimal places and 14 digits",
                            metric.as_str()
                        ))
                    })?;
                let factor = self.int(10i64.pow(k));
                let n = self.int(n);
                if metric == Metric::OrdersTotalSpent {
                    (
                        format!("SUM(o.net_total_e4) * {factor} {} {n}", sql_op(*op)),
                        op.holds(&Decimal::ZERO, &value.0),
                    )
                } else {
                    (
                        format!(
                            "SUM(o.net_total_e4) * {factor} {} {n} * COUNT(*)",
                            sql_op(*op)
                        ),
                        false,
                    )
                }
            }
            _ => return Ok(FALSE.to_owned()),
        };
        let org = self.org();
        let scoped = self.scoped("o.profile_id");
        let from = format!("FROM orders o WHERE o.org_id = {org} AND o.purchased = 1{scoped}");
        Ok(if zero_passes {
            format!("p.profile_id NOT IN (SELECT o.profile_id {from} GROUP BY o.profile_id HAVING NOT ({aggregate}))")
        } else {
            format!("p.profile_id IN (SELECT o.profile_id {from} GROUP BY o.profile_id HAVING {aggregate})")
        })
    }

    /// A value test at `path` in the traits (`p.doc`) or the properties
    /// (`e.payload`); keys are bound parameters on both backends.
    fn value_test(&mut self, doc: Doc, path: &[String], test: &ValueTest) -> String {
        match self.backend {
            Backend::Sqlite => self.sqlite_value_test(doc, path, test),
            Backend::Postgres => self.pg_value_test(doc, path, test),
        }
    }

    /// `EXISTS (SELECT 1 FROM json_each(doc, '$.traits') j1, json_each(j1 if an object) j2 … WHERE j1.key = ? …)`:
    /// `json_each` takes the keys as values, where a JSON path would need them spliced.
    fn sqlite_value_test(&mut self, doc: Doc, path: &[String], test: &ValueTest) -> String {
        let (column, root) = match doc {
            Doc::Traits => ("p.doc", "'$.traits'"),
            Doc::Properties => ("e.payload", "'$.properties'"),
        };
        let mut from = Vec::new();
        let mut wheres = Vec::new();
        for (i, key) in path.iter().enumerate() {
            let alias = format!("j{}", i + 1);
            if i == 0 {
                from.push(format!("json_each({column}, {root}) {alias}"));
            } else {
                let prev = format!("j{i}");
                from.push(format!(
                    "json_each(CASE WHEN {prev}.type = 'object' THEN {prev}.value ELSE '{{}}' END) {alias}"
                ));
            }
            let m = self.text(key);
            wheres.push(format!("{alias}.key = {m}"));
        }
        let last = format!("j{}", path.len());
        let (ty, value) = (format!("{last}.type"), format!("{last}.value"));
        let test = self.sqlite_test(&ty, &value, test);
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE {} AND ({test}))",
            from.join(", "),
            wheres.join(" AND ")
        )
    }

    fn sqlite_test(&mut self, ty: &str, value: &str, test: &ValueTest) -> String {
        match test {
            ValueTest::Exists => format!("{ty} <> 'null'"),
            ValueTest::Contains { text } => {
                let m = self.text(text);
                format!("{ty} = 'text' AND instr({value}, {m}) > 0")
            }
            ValueTest::In { values } => self.any_of(values, |c, lit| {
                c.sqlite_test(
                    ty,
                    value,
                    &ValueTest::Compare {
                        op: CmpOp::Eq,
                        value: lit.clone(),
                    },
                )
            }),
            ValueTest::Compare { op, value: lit } => match lit {
                Literal::String(s) => {
                    let m = self.text(s);
                    format!("{ty} = 'text' AND {value} {} {m}", sql_op(*op))
                }
                Literal::Number(n) => {
                    let m = self.float(n.to_f64().unwrap_or(f64::NAN));
                    format!(
                        "{ty} IN ('integer', 'real') AND {value} {} {m}",
                        sql_op(*op)
                    )
                }
                Literal::Bool(b) => match bool_type(*op, *b) {
                    Some(t) => format!("{ty} = '{t}'"),
                    None => FALSE.to_owned(),
                },
            },
        }
    }

    /// `jsonb -> $key::text …`: `->` with a text key yields NULL on
    /// anything but an object, as the domain's path lookup does.
    fn pg_value_test(&mut self, doc: Doc, path: &[String], test: &ValueTest) -> String {
        let mut x = match doc {
            Doc::Traits => "(p.doc::jsonb -> 'traits')".to_owned(),
            Doc::Properties => "(e.payload::jsonb -> 'properties')".to_owned(),
        };
        for key in path {
            let m = self.text(key);
            x = format!("({x} -> ({m}::text))");
        }
        let test = self.pg_test(&x, test);
        format!("COALESCE(({test}), FALSE)")
    }

    fn pg_test(&mut self, x: &str, test: &ValueTest) -> String {
        let text = format!("({x} #>> '{{}}')");
        match test {
            ValueTest::Exists => format!("jsonb_typeof({x}) <> 'null'"),
            ValueTest::Contains { text: needle } => {
                let m = self.text(needle);
                format!("jsonb_typeof({x}) = 'string' AND strpos({text}, ({m}::text)) > 0")
            }
            ValueTest::In { values } => self.any_of(values, |c, lit| {
                let t = c.pg_test(
                    x,
                    &ValueTest::Compare {
                        op: CmpOp::Eq,
                        value: lit.clone(),
                    },
                );
                format!("COALESCE(({t}), FALSE)")
            }),
            ValueTest::Compare { op, value: lit } => match lit {
                Literal::String(s) => {
                    let m = self.text(s);
                    format!(
                        "jsonb_typeof({x}) = 'string' AND {text} COLLATE \"C\" {} ({m}::text)",
                        sql_op(*op)
                    )
                }
                Literal::Number(n) => {
                    let m = self.float(n.to_f64().unwrap_or(f64::NAN));
                    format!(
                        "jsonb_typeof({x}) = 'number' AND (CASE WHEN jsonb_typeof({x}) = 'number' THEN {text}::float8 END) {} ({m}::float8)",
                        sql_op(*op)
                    )
                }
                Literal::Bool(b) => match bool_type(*op, *b) {
                    Some(t) => format!("jsonb_typeof({x}) = 'boolean' AND {text} = '{t}'"),
                    None => FALSE.to_owned(),
                },
            },
        }
    }

    fn any_of(
        &mut self,
        values: &[Literal],
        mut each: impl FnMut(&mut Self, &Literal) -> String,
    ) -> String {
        if values.is_empty() {
            return FALSE.to_owned();
        }
        let parts: Vec<String> = values
            .iter()
            .map(|lit| format!("({})", each(self, lit)))
            .collect();
        parts.join(" OR ")
    }
}

const FALSE: &str = "1 = 0";

fn sql_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

/// Which JSON boolean a boolean comparison matches (`!= true` is `false`).
fn bool_type(op: CmpOp, value: bool) -> Option<&'static str> {
    let wanted = match op {
        CmpOp::Eq => value,
        CmpOp::Ne => !value,
        _ => return None,
    };
    Some(if wanted { "true" } else { "false" })
}

fn normalize(d: Decimal) -> Decimal {
    if d.is_zero() {
        Decimal::ZERO
    } else {
        d.normalize()
    }
}
