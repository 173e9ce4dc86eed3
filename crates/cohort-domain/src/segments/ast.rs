//! The rule AST: what the UI builder and the API exchange as JSON, and what
//! the text form prints from and parses to. The JSON shape is documented
//! in `docs/SEGMENTS.md`: every node is an object with a `"kind"`, value
//! tests carry a `"test"`, literals are plain JSON strings, numbers and
//! booleans.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A segment rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// All of `rules` (at least two).
    And {
        rules: Vec<Rule>,
    },
    /// Any of `rules` (at least two).
    Or {
        rules: Vec<Rule>,
    },
    Not {
        rule: Box<Rule>,
    },
    /// `trait.country = "DE"`: a profile trait; `path` is the trait name,
    /// then keys into an object-valued trait.
    Trait {
        path: Vec<String>,
        test: ValueTest,
    },
    /// `email exists`
    EmailExists,
    /// `subscribed`: has an email, not unsubscribed, not bounced.
    Subscribed,
    /// `unsubscribed`
    Unsubscribed,
    /// `bounced`
    Bounced,
    /// `tag "vip"`
    Tag {
        tag: String,
    },
    /// `orders.count >= 2`, `last_seen within 30 days`, …
    Metric {
        metric: Metric,
        test: MetricTest,
    },
    /// `performed "Order Completed" >= 2 times within 90 days where properties.total > 50`
    Performed {
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<Count>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<Window>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        filters: Vec<PropertyFilter>,
    },
    /// `last performed "Order Completed" before 90 days ago`: the latest
    /// such event falls in the window.
    LastPerformed {
        event: String,
        window: Window,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        filters: Vec<PropertyFilter>,
    },
    /// `received email >= 10 times within 365 days`, `clicked email "Summer sale"`
    Email {
        action: EmailAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        campaign: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<Count>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<Window>,
    },
    /// `bought product "SKU-123"`, `bought category "Shoes" within 1 year`
    Bought {
        item: BoughtItem,
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<Window>,
    },
    /// `in segment "VIP"`
    InSegment {
        segment: String,
    },
    /// `rfm.group = "At Risk"`, `rfm.recency >= 2`
    Rfm {
        field: RfmField,
        op: CmpOp,
        value: Literal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl CmpOp {
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether `left op right` holds.
    pub fn holds<T: PartialOrd>(self, left: &T, right: &T) -> bool {
        match self {
            CmpOp::Eq => left == right,
            CmpOp::Ne => left != right,
            CmpOp::Lt => left < right,
            CmpOp::Le => left <= right,
            CmpOp::Gt => left > right,
            CmpOp::Ge => left >= right,
        }
    }
}

/// A literal in a rule. In JSON: a string, a number or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    /// Exact; normalised (no trailing zeros).
    Number(Decimal),
    Bool(bool),
}

impl Serialize for Literal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Literal::String(v) => s.serialize_str(v),
            Literal::Bool(v) => s.serialize_bool(*v),
            Literal::Number(d) => number_json(*d).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Literal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(v) => Ok(Literal::String(v)),
            Value::Bool(v) => Ok(Literal::Bool(v)),
            Value::Number(n) => decimal_of_number(&n)
                .map(Literal::Number)
                .ok_or_else(|| serde::de::Error::custom("a number out of range")),
            other => Err(serde::de::Error::custom(format!(
                "expected a string, a number or a boolean, found {other}"
            ))),
        }
    }
}

fn number_json(d: Decimal) -> Value {
    crate::commerce::decimal_json(d)
}

fn decimal_of_number(n: &serde_json::Number) -> Option<Decimal> {
    let text = n.to_string();
    text.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
        .map(normalize_decimal)
}

/// Normalised, without a negative zero: the form the parser produces.
pub fn normalize_decimal(d: Decimal) -> Decimal {
    if d.is_zero() {
        Decimal::ZERO
    } else {
        d.normalize()
    }
}

/// A decimal in the AST's JSON: a number (a string is accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Num(pub Decimal);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        number_json(self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => decimal_of_number(&n)
                .map(Num)
                .ok_or_else(|| serde::de::Error::custom("a number out of range")),
            Value::String(s) => s
                .trim()
                .parse::<Decimal>()
                .map(|d| Num(normalize_decimal(d)))
                .map_err(|_| serde::de::Error::custom("expected a decimal number")),
            other => Err(serde::de::Error::custom(format!(
                "expected a number, found {other}"
            ))),
        }
    }
}

/// A test on a JSON value (a trait or an event property).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "test", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueTest {
    /// `= "DE"`, `>= 30`, `= true`
    Compare { op: CmpOp, value: Literal },
    /// `in ["gold", "silver"]`
    In { values: Vec<Literal> },
    /// `contains "van"`
    Contains { text: String },
    /// `exists`: present and not null.
    Exists,
}

/// `where properties.total > 50`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyFilter {
    pub path: Vec<String>,
    pub test: ValueTest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    OrdersCount,
    OrdersTotalSpent,
    OrdersAverageValue,
    OrdersFirstAt,
    OrdersLastAt,
    LastSeen,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::OrdersCount,
        Metric::OrdersTotalSpent,
        Metric::OrdersAverageValue,
        Metric::OrdersFirstAt,
        Metric::OrdersLastAt,
        Metric::LastSeen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::OrdersCount => "orders.count",
            Metric::OrdersTotalSpent => "orders.total_spent",
            Metric::OrdersAverageValue => "orders.average_value",
            Metric::OrdersFirstAt => "orders.first_at",
            Metric::OrdersLastAt => "orders.last_at",
            Metric::LastSeen => "last_seen",
        }
    }

    /// A time (tested with a window) rather than a quantity.
    pub fn is_time(self) -> bool {
        matches!(
            self,
            Metric::OrdersFirstAt | Metric::OrdersLastAt | Metric::LastSeen
        )
    }
}

/// A quantity compared with a number, or a time tested with a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "test", rename_all = "snake_case", deny_unknown_fields)]
pub enum MetricTest {
    Compare { op: CmpOp, value: Num },
    Window { window: Window },
}

/// `>= 2 times`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    pub op: CmpOp,
    pub times: u32,
}

impl Count {
    pub fn holds(&self, n: u64) -> bool {
        self.op.holds(&n, &u64::from(self.times))
    }
}

/// `within 30 days` (at or after `now - 30 days`) or `before 30 days ago`
/// (strictly before `now - 30 days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub relation: Relation,
    pub amount: u32,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Within,
    Before,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Hours,
    Days,
    Weeks,
    /// 30 days.
    Months,
    /// 365 days.
    Years,
}

impl TimeUnit {
    pub const ALL: [TimeUnit; 5] = [
        TimeUnit::Hours,
        TimeUnit::Days,
        TimeUnit::Weeks,
        TimeUnit::Months,
        TimeUnit::Years,
    ];

    pub fn micros(self) -> i64 {
        const HOUR: i64 = 3_600_000_000;
        match self {
            TimeUnit::Hours => HOUR,
            TimeUnit::Days => 24 * HOUR,
            TimeUnit::Weeks => 7 * 24 * HOUR,
            TimeUnit::Months => 30 * 24 * HOUR,
            TimeUnit::Years => 365 * 24 * HOUR,
        }
    }

    pub fn word(self, amount: u32) -> &'static str {
        match (self, amount == 1) {
            (TimeUnit::Hours, true) => "hour",
            (TimeUnit::Hours, false) => "hours",
            (TimeUnit::Days, true) => "day",
            (TimeUnit::Days, false) => "days",
            (TimeUnit::Weeks, true) => "week",
            (TimeUnit::Weeks, false) => "weeks",
            (TimeUnit::Months, true) => "month",
            (TimeUnit::Months, false) => "months",
            (TimeUnit::Years, true) => "year",
            (TimeUnit::Years, false) => "years",
        }
    }

    pub fn from_word(word: &str) -> Option<TimeUnit> {
        Some(match word {
            "hour" | "hours" => TimeUnit::Hours,
            "day" | "days" => TimeUnit::Days,
            "week" | "weeks" => TimeUnit::Weeks,
            "month" | "months" => TimeUnit::Months,
            "year" | "years" => TimeUnit::Years,
            _ => return None,
        })
    }
}

impl Window {
    pub fn length_us(&self) -> i64 {
        i64::from(self.amount).saturating_mul(self.unit.micros())
    }

    /// The window's edge for `now`: `now - length`.
    pub fn edge_us(&self, now_us: i64) -> i64 {
        now_us.saturating_sub(self.length_us())
    }

    /// Whether a fact at `at_us` is inside the window at `now_us`.
    pub fn contains(&self, at_us: i64, now_us: i64) -> bool {
        match self.relation {
            Relation::Within => at_us >= self.edge_us(now_us),
            Relation::Before => at_us < self.edge_us(now_us),
        }
    }

    /// The first instant after which a fact at `at_us` has crossed the
    /// window's edge (left `within`, entered `before`).
    pub fn crossing_us(&self, at_us: i64) -> i64 {
        at_us.saturating_add(self.length_us()).saturating_add(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailAction {
    /// `Email Delivered`
    Received,
    /// `Email Opened`
    Opened,
    /// `Email Link Clicked`
    Clicked,
}

impl EmailAction {
    pub const ALL: [EmailAction; 3] = [
        EmailAction::Received,
        EmailAction::Opened,
        EmailAction::Clicked,
    ];

    pub fn word(self) -> &'static str {
        match self {
            EmailAction::Received => "received",
            EmailAction::Opened => "opened",
            EmailAction::Clicked => "clicked",
        }
    }

    /// The Segment Email spec event this action reads.
    pub fn event(self) -> &'static str {
        match self {
            EmailAction::Received => EMAIL_DELIVERED,
            EmailAction::Opened => EMAIL_OPENED,
            EmailAction::Clicked => EMAIL_LINK_CLICKED,
        }
    }
}

/// Segment Email spec events and property names.
pub const EMAIL_DELIVERED: &str = "Email Delivered";
pub const EMAIL_OPENED: &str = "Email Opened";
pub const EMAIL_LINK_CLICKED: &str = "Email Link Clicked";
pub const EMAIL_BOUNCED: &str = "Email Bounced";
pub const EMAIL_MARKED_AS_SPAM: &str = "Email Marked as Spam";
pub const UNSUBSCRIBED: &str = "Unsubscribed";
/// Cohort's opt-in event (the Segment Email spec has only the opt-out).
pub const SUBSCRIBED: &str = "Subscribed";
pub const CAMPAIGN_NAME: &str = "campaign_name";

/// The events that turn a profile's subscription off.
pub const OPT_OUT_EVENTS: [&str; 2] = [UNSUBSCRIBED, EMAIL_MARKED_AS_SPAM];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoughtItem {
    /// A line's product id or SKU.
    Product,
    /// A line's category.
    Category,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RfmField {
    Group,
    Recency,
    Frequency,
    Monetary,
}

impl RfmField {
    pub const ALL: [RfmField; 4] = [
        RfmField::Group,
        RfmField::Recency,
        RfmField::Frequency,
        RfmField::Monetary,
    ];

    pub fn word(self) -> &'static str {
        match self {
            RfmField::Group => "group",
            RfmField::Recency => "recency",
            RfmField::Frequency => "frequency",
            RfmField::Monetary => "monetary",
        }
    }
}

/// A rule that cannot be evaluated as given (from JSON, which the parser
/// did not check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRule(pub String);

impl Rule {
    /// Checks what the JSON shape alone cannot: `and`/`or` with at least
    /// two rules, comparisons that make sense for their values, names not
    /// empty. Everything the parser produces passes.
    pub fn validate(&self) -> Result<(), InvalidRule> {
        let bad = |m: &str| Err(InvalidRule(m.to_owned()));
        match self {
            Rule::And { rules } | Rule::Or { rules } => {
                if rules.len() < 2 {
                    return bad("`and` and `or` need at least two rules");
                }
                rules.iter().try_for_each(Rule::validate)
            }
            Rule::Not { rule } => rule.validate(),
            Rule::Trait { path, test } => {
                validate_path(path)?;
                validate_test(test)
            }
            Rule::Performed { filters, .. } | Rule::LastPerformed { filters, .. } => {
                for f in filters {
                    validate_path(&f.path)?;
                    validate_test(&f.test)?;
                }
                Ok(())
            }
            Rule::Metric { metric, test } => match (metric.is_time(), test) {
                (true, MetricTest::Window { .. }) | (false, MetricTest::Compare { .. }) => Ok(()),
                (true, _) => bad(&format!("{} takes a window", metric.as_str())),
                (false, _) => bad(&format!("{} takes a comparison", metric.as_str())),
            },
            Rule::Rfm { field, op, value } => match (field, value) {
                (RfmField::Group, Literal::String(_)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                    Ok(())
                }
                (RfmField::Group, _) => bad("rfm.group takes = or != and a string"),
                (_, Literal::Number(_)) => Ok(()),
                _ => bad("rfm scores compare with a number"),
            },
            _ => Ok(()),
        }
    }
}

fn validate_path(path: &[String]) -> Result<(), InvalidRule> {
    if path.is_empty() {
        return Err(InvalidRule("a trait or property path is empty".into()));
    }
    Ok(())
}

fn validate_test(test: &ValueTest) -> Result<(), InvalidRule> {
    match test {
        ValueTest::Compare {
            op,
            value: Literal::Bool(_),
        } if !matches!(op, CmpOp::Eq | CmpOp::Ne) => Err(InvalidRule(
            "true and false compare with = or != only".into(),
        )),
        _ => Ok(()),
    }
}
