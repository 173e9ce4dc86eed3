//! The ready-made segments every store gets (`shared/spec/segments.md`,
//! "Ready-made segments"): Segmentflow's eleven and Klaviyo's defaults,
//! written in the rule language with the store's own amounts, as ordinary
//! segments the merchant can edit. Where the language cannot say exactly
//! what the spec describes, the rule is the closest it can say and the
//! description says what differs.

use rust_decimal::{Decimal, RoundingStrategy};

use super::ast::Rule;
use super::parse::{parse, ParseError};

/// What the amounts and periods are taken from: the store's purchases when
/// the segments are installed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFigures {
    /// The store's currency (ISO 4217), if known.
    pub currency: Option<String>,
    /// Purchases and their total, net of refunds.
    pub purchases: i64,
    pub spent: Decimal,
    /// Customers (profiles with a purchase).
    pub customers: i64,
    /// The average time between two purchases of repeat customers, µs.
    pub average_gap_us: Option<i64>,
}

/// One ready-made segment.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyMade {
    pub name: &'static str,
    pub description: String,
    pub rule: Rule,
}

/// The average order value assumed before a store has any purchase.
const FALLBACK_ORDER_VALUE: i64 = 50;

impl StoreFigures {
    fn money(&self, d: Decimal) -> String {
        d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
            .normalize()
            .to_string()
    }

    fn currency(&self) -> &str {
        self.currency.as_deref().unwrap_or("")
    }

    /// The average order value, or a fallback before the first purchase.
    pub fn average_order_value(&self) -> Decimal {
        if self.purchases > 0 {
            self.spent / Decimal::from(self.purchases)
        } else {
            Decimal::from(FALLBACK_ORDER_VALUE)
        }
    }

    /// The average a customer has spent, or the order-value fallback.
    pub fn average_customer_value(&self) -> Decimal {
        if self.customers > 0 {
            self.spent / Decimal::from(self.customers)
        } else {
            Decimal::from(FALLBACK_ORDER_VALUE)
        }
    }
}

/// The ready-made segments for a store with these figures.
pub fn ready_made(figures: &StoreFigures) -> Result<Vec<ReadyMade>, ParseError> {
    let cur = figures.currency();
    let aov = figures.average_order_value();
    let high = figures.money(aov * Decimal::from(3));
    let acv = figures.money(figures.average_customer_value());
    let basis = if figures.purchases > 0 {
        format!("from {} purchases at install", figures.purchases)
    } else {
        "assumed before the first purchase; edit it once orders arrive".to_owned()
    };
    let churn_days = figures
        .average_gap_us
        .map(|g| (2 * g).div_euclid(86_400_000_000).clamp(30, 730))
        .unwrap_or(180);
    let engaged = |days: u32| {
        format!(
            "opened email within {days} days or clicked email within {days} days \
             or orders.last_at within {days} days or performed \"Subscribed\" within {days} days"
        )
    };
    let list: Vec<(&'static str, String, String)> = vec![
        ("Repeat Customers", "Customers with two or more paid orders.".into(), "orders.count >= 2".into()),
        (
            "High Spenders",
            format!("Customers whose total spend is at least three times the store's average order value ({} {cur}, {basis}).", figures.money(aov)),
            format!("orders.total_spent >= {high}"),
        ),
        ("First-Time Buyers", "Customers with exactly one paid order.".into(), "orders.count = 1".into()),
        (
            "Recent First-Time Buyers",
            "Customers whose one paid order was in the last 30 days.".into(),
            "orders.count = 1 and orders.last_at within 30 days".into(),
        ),
        (
            "Churning Customers",
            "Repeat customers with no paid order in the last 90 days.".into(),
            "orders.count >= 2 and not orders.last_at within 90 days".into(),
        ),
        ("Active Customers", "Customers with a paid order in the last 30 days.".into(), "orders.last_at within 30 days".into()),
        (
            "Abandoned Cart",
            "Started a cart or checkout in the last day and still have it (an order clears the cart tags).".into(),
            "(tag \"ecommerce.in_cart\" or tag \"ecommerce.in_checkout\") and (performed \"Cart Started\" within 1 day or performed \"Checkout Started\" within 1 day)".into(),
        ),
        (
            "Awaiting Shipment",
            "A paid order in the last 30 days and no fulfilment in that time.".into(),
            "orders.last_at within 30 days and not performed \"Order Fulfilled\" within 30 days".into(),
        ),
        ("Orders Fulfilled", "Customers with at least one fulfilled order.".into(), "performed \"Order Fulfilled\"".into()),
        ("Order Cancelled", "Customers with at least one cancelled order.".into(), "performed \"Order Cancelled\"".into()),
        ("Refund Received", "Customers who received at least one refund.".into(), "performed \"Order Refunded\"".into()),
        (
            "New Subscribers",
            "Subscribed in the last 14 days and still reachable (not unsubscribed or bounced).".into(),
            "performed \"Subscribed\" within 14 days and subscribed".into(),
        ),
        ("Engaged (30 days)", "Opened or clicked an email, ordered, or subscribed in the last 30 days.".into(), engaged(30)),
        ("Engaged (60 days)", "Opened or clicked an email, ordered, or subscribed in the last 60 days.".into(), engaged(60)),
        ("Engaged (90 days)", "Opened or clicked an email, ordered, or subscribed in the last 90 days.".into(), engaged(90)),
        (
            "Unengaged",
            "Received at least ten emails in the last year and opened or clicked none. (Klaviyo also asks that the profile be a year old; ten emails in a year implies most of that.)".into(),
            "received email >= 10 times within 365 days and not opened email within 365 days and not clicked email within 365 days".into(),
        ),
        (
            "VIP",
            format!("Three or more paid orders, the latest in the last 120 days, and a total spend above the store's average customer value ({acv} {cur}, {basis})."),
            format!("orders.count >= 3 and orders.last_at within 120 days and orders.total_spent > {acv}"),
        ),
        (
            "Churn Risk",
            format!("Customers with no order for {churn_days} days, twice the store's average time between a customer's orders (180 days for one-order customers). Klaviyo measures each customer's own rhythm; a rule measures the store's."),
            format!("(orders.count = 1 and orders.last_at before 180 days ago) or (orders.count >= 2 and orders.last_at before {churn_days} days ago)"),
        ),
    ];
    list.into_iter()
        .map(|(name, description, text)| {
            Ok(ReadyMade {
                name,
                description: description.replace("  ", " ").trim().to_owned(),
                rule: parse(&text)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::print;

    fn figures(purchases: i64, spent: i64, customers: i64) -> StoreFigures {
        StoreFigures {
            currency: Some("EUR".into()),
            purchases,
            spent: Decimal::from(spent),
            customers,
            average_gap_us: Some(40 * 86_400_000_000),
        }
    }

    #[test]
    fn every_ready_made_segment_parses_validates_and_round_trips() {
        for f in [figures(0, 0, 0), figures(7, 1000, 3)] {
            let all = ready_made(&f).unwrap();
            assert_eq!(all.len(), 18);
            let names: std::collections::BTreeSet<_> = all.iter().map(|r| r.name).collect();
            assert_eq!(names.len(), all.len(), "names are unique");
            for r in &all {
                r.rule.validate().unwrap();
                assert_eq!(parse(&print(&r.rule)).unwrap(), r.rule, "{}", r.name);
                assert!(!r.description.is_empty());
            }
        }
    }

    #[test]
    fn amounts_come_from_the_stores_figures() {
        let all = ready_made(&figures(8, 1000, 4)).unwrap();
        let text = |name: &str| print(&all.iter().find(|r| r.name == name).unwrap().rule);
        // Average order 125 → 375; average customer 250.
        assert_eq!(text("High Spenders"), "orders.total_spent >= 375");
        assert!(
            text("VIP").ends_with("orders.total_spent > 250"),
            "{}",
            text("VIP")
        );
        assert!(
            text("Churn Risk").contains("before 80 days ago"),
            "{}",
            text("Churn Risk")
        );
        let vip = all.iter().find(|r| r.name == "VIP").unwrap();
        assert!(vip.description.contains("250 EUR"), "{}", vip.description);
    }
}
