//! An optional per-source rate limit (token bucket, events per second, with
//! ten seconds of burst). It is kept in this node's memory: with several
//! nodes each enforces the limit on its own share of the traffic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use cohort_domain::ids::SourceId;

pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<SourceId, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `events` tokens, or returns the seconds to wait before retrying.
    pub fn check(&self, source: &SourceId, events: usize) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let capacity = self.per_second * 10.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let (tokens, last) = buckets.entry(source.clone()).or_insert((capacity, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(capacity);
        *last = now;
        let wanted = events as f64;
        if wanted <= *tokens {
            *tokens -= wanted;
            Ok(())
        } else {
            let missing = wanted.min(capacity) - *tokens;
            Err((missing / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_over_its_limit_is_told_when_to_come_back() {
        let limiter = RateLimiter::new(10);
        let source = SourceId::generate();
        assert!(limiter.check(&source, 100).is_ok());
        assert_eq!(limiter.check(&source, 20), Err(2));
        assert!(limiter.check(&SourceId::generate(), 5).is_ok());
        assert!(RateLimiter::new(0).check(&source, 1_000_000).is_ok());
    }
}
