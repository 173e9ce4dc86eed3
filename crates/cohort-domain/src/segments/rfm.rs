//! RFM scores: recency, frequency and monetary value, each scored 1–3 by
//! the store's own tertiles, and the groups the spec names. Only customers
//! (at least one purchase) are scored; a profile without purchases has no
//! RFM and every `rfm.*` test is false for it.
//!
//! Tertiles by value, not by rank: the cuts are the values at the first
//! and second third of the sorted customers, and a customer scores 1 at or
//! below the first cut, 2 at or below the second, 3 above it (recency the
//! other way round: fewer days since the last purchase is better). Equal
//! values therefore always score the same — a store where most customers
//! bought once scores all of them F1, and every repeat customer F2 or F3.

use rust_decimal::Decimal;

/// One customer's raw figures.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerFigures {
    pub profile_id: String,
    /// Time of the latest purchase, UTC µs.
    pub last_purchase_us: i64,
    pub purchases: i64,
    /// Total spent, net of refunds.
    pub spent: Decimal,
}

/// Scores and group of one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmScore {
    pub profile_id: String,
    pub recency: i64,
    pub frequency: i64,
    pub monetary: i64,
    pub group: &'static str,
}

pub const CHAMPIONS: &str = "Champions";
pub const LOYAL: &str = "Loyal";
pub const RECENT: &str = "Recent";
pub const NEEDS_ATTENTION: &str = "Needs Attention";
pub const AT_RISK: &str = "At Risk";
pub const INACTIVE: &str = "Inactive";

/// The groups, in the order the grid shows them.
pub const GROUPS: [&str; 6] = [CHAMPIONS, LOYAL, RECENT, NEEDS_ATTENTION, AT_RISK, INACTIVE];

/// The group of a recency and frequency score. The spec's six groups leave
/// R3 F2 unnamed; it joins Recent (bought lately, not yet often).
pub fn group_of(recency: i64, frequency: i64) -> &'static str {
    match (recency, frequency) {
        (3, 3) => CHAMPIONS,
        (r, 3) if r >= 2 => LOYAL,
        (3, _) => RECENT,
        (2, _) => NEEDS_ATTENTION,
        (_, f) if f >= 2 => AT_RISK,
        _ => INACTIVE,
    }
}

/// The two tertile cuts of `values` (sorted ascending).
fn cuts<T: Copy>(sorted: &[T]) -> Option<(T, T)> {
    if sorted.is_empty() {
        return None;
    }
    let at = |k: usize| sorted[((sorted.len() * k).div_ceil(3)).saturating_sub(1)];
    Some((at(1), at(2)))
}

fn score<T: PartialOrd + Copy>(value: T, (low, high): (T, T)) -> i64 {
    if value <= low {
        1
    } else if value <= high {
        2
    } else {
        3
    }
}

/// Scores every customer against the others, at `now_us`.
pub fn score_customers(customers: &[CustomerFigures], now_us: i64) -> Vec<RfmScore> {
    // Recency as days since the last purchase, negated so that "higher is
    // better" holds for all three.
    let days = |c: &CustomerFigures| {
        -(now_us.saturating_sub(c.last_purchase_us)).div_euclid(86_400_000_000)
    };
    let mut r: Vec<i64> = customers.iter().map(days).collect();
    let mut f: Vec<i64> = customers.iter().map(|c| c.purchases).collect();
    let mut m: Vec<Decimal> = customers.iter().map(|c| c.spent).collect();
    r.sort_unstable();
    f.sort_unstable();
    m.sort_unstable();
    let (Some(rc), Some(fc), Some(mc)) = (cuts(&r), cuts(&f), cuts(&m)) else {
        return Vec::new();
    };
    customers
        .iter()
        .map(|c| {
            let recency = score(days(c), rc);
            let frequency = score(c.purchases, fc);
            RfmScore {
                profile_id: c.profile_id.clone(),
                recency,
                frequency,
                monetary: score(c.spent, mc),
                group: group_of(recency, frequency),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000_000;
    const NOW: i64 = 1_780_272_000_000_000;

    fn customer(id: &str, days_ago: i64, purchases: i64, spent: i64) -> CustomerFigures {
        CustomerFigures {
            profile_id: id.into(),
            last_purchase_us: NOW - days_ago * DAY,
            purchases,
            spent: Decimal::from(spent),
        }
    }

    #[test]
    fn thirds_of_a_store_score_one_two_three() {
        let cs: Vec<_> = (0..9)
            .map(|i| customer(&format!("c{i}"), 10 * (9 - i), i + 1, 100 * (i + 1)))
            .collect();
        let s = score_customers(&cs, NOW);
        let r: Vec<i64> = s.iter().map(|x| x.recency).collect();
        assert_eq!(r, [1, 1, 1, 2, 2, 2, 3, 3, 3]);
        let f: Vec<i64> = s.iter().map(|x| x.frequency).collect();
        assert_eq!(f, [1, 1, 1, 2, 2, 2, 3, 3, 3]);
        assert_eq!(s[8].group, CHAMPIONS);
        assert_eq!(s[0].group, INACTIVE);
        assert_eq!(s[4].group, NEEDS_ATTENTION);
    }

    #[test]
    fn equal_figures_score_the_same_and_one_time_buyers_are_f1() {
        let mut cs: Vec<_> = (0..8)
            .map(|i| customer(&format!("o{i}"), 5, 1, 20))
            .collect();
        cs.push(customer("repeat", 5, 4, 300));
        let s = score_customers(&cs, NOW);
        assert!(s[..8].iter().all(|x| x.frequency == 1 && x.monetary == 1));
        assert_eq!(s[8].frequency, 3);
        assert_eq!(s[8].monetary, 3);
        // Everyone bought 5 days ago: all the same recency score.
        assert!(s.iter().all(|x| x.recency == s[0].recency));
    }

    #[test]
    fn every_score_pair_has_a_group() {
        for r in 1..=3 {
            for f in 1..=3 {
                assert!(GROUPS.contains(&group_of(r, f)), "R{r} F{f}");
            }
        }
        assert_eq!(group_of(3, 2), RECENT);
        assert_eq!(group_of(2, 3), LOYAL);
        assert_eq!(group_of(1, 3), AT_RISK);
        assert_eq!(group_of(2, 2), NEEDS_ATTENTION);
        assert_eq!(group_of(3, 1), RECENT);
        assert_eq!(group_of(1, 1), INACTIVE);
    }

    proptest! {
        /// Scores are 1–3, monotone in each figure, and a better figure
        /// never scores lower.
        #[test]
        fn scores_are_monotone(figures in prop::collection::vec((0i64..400, 1i64..20, 0i64..5000), 1..60)) {
            let cs: Vec<_> = figures.iter().enumerate()
                .map(|(i, (d, p, s))| customer(&format!("c{i}"), *d, *p, *s)).collect();
            let s = score_customers(&cs, NOW);
            prop_assert_eq!(s.len(), cs.len());
            for (a, sa) in cs.iter().zip(&s) {
                prop_assert!((1..=3).contains(&sa.recency) && (1..=3).contains(&sa.frequency) && (1..=3).contains(&sa.monetary));
                prop_assert_eq!(sa.group, group_of(sa.recency, sa.frequency));
                for (b, sb) in cs.iter().zip(&s) {
                    if a.purchases <= b.purchases { prop_assert!(sa.frequency <= sb.frequency); }
                    if a.spent <= b.spent { prop_assert!(sa.monetary <= sb.monetary); }
                    if a.last_purchase_us <= b.last_purchase_us { prop_assert!(sa.recency <= sb.recency); }
                }
            }
        }
    }
}
