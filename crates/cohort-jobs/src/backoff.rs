//! The retry schedule: exponential from `base`, capped at `max`, with ±20 %
//! jitter so jobs that failed together (a store that was down) do not all
//! come back in the same instant.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(60 * 60),
        }
    }
}

impl Backoff {
    /// The delay before the retry that follows failed attempt `attempt`
    /// (1 for the first attempt), before jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay with jitter: within ±20 % of [`Backoff::nominal`].
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt);
        let factor = rand::thread_rng().gen_range(0.8..=1.2);
        nominal.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_up_to_max() {
        let b = Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        let nominal: Vec<u64> = (1..=6).map(|a| b.nominal(a).as_secs()).collect();
        assert_eq!(nominal, [5, 10, 20, 40, 60, 60]);
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let b = Backoff::default();
        for attempt in 1..=12 {
            let nominal = b.nominal(attempt).as_secs_f64();
            for _ in 0..50 {
                let d = b.delay(attempt).as_secs_f64();
                assert!(
                    d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9,
                    "{d} vs {nominal}"
                );
            }
        }
    }
}
