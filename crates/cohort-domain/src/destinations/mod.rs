//! Destinations: what Cohort sends to third parties, decided without IO.
//! [`everflow`] builds Everflow postbacks from events, [`webhook`] signs
//! webhook deliveries (Standard Webhooks), and this module classifies HTTP
//! outcomes and schedules retries.

pub mod everflow;
pub mod webhook;

use std::time::Duration;

use crate::text_enum;

text_enum! {
    /// What a destination sends to.
    pub enum DestinationKind {
        /// Everflow postbacks (`shared/spec/everflow.md`).
        Everflow = "everflow",
        /// Signed JSON to any URL (Standard Webhooks).
        Webhook = "webhook",
    }
}

text_enum! {
    /// Where a delivery stands.
    pub enum DeliveryStatus {
        /// Due; not attempted yet, or put back in the queue.
        Pending = "pending",
        /// Attempted and due again later.
        Retrying = "retrying",
        Delivered = "delivered",
        /// Given up on; a person may replay it.
        Failed = "failed",
        /// Not sent by decision (the event carries nothing to send).
        Skipped = "skipped",
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again after this delay (from the schedule, or `Retry-After`).
    Retry(Duration),
    /// Give up: a client error the receiver will keep refusing, or the
    /// schedule is exhausted.
    Failed(String),
}

/// Everflow's schedule (`shared/spec/everflow.md`): 5 s, 1 min, 10 min,
/// 1 h, 6 h, 24 h, then `failed`.
pub const EVERFLOW_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(60),
    Duration::from_secs(600),
    Duration::from_secs(3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The delay before retry number `attempt` (1 = the first retry), with
/// ±20 % jitter from `unit` (a random number in `[0, 1)`); `None` once the
/// schedule is exhausted.
pub fn retry_delay(schedule: &[Duration], attempt: u32, unit: f64) -> Option<Duration> {
    let base = schedule.get(attempt.checked_sub(1)? as usize)?;
    let factor = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
    Some(base.mul_f64(factor))
}

/// Classifies an HTTP answer (`None`: no answer, a network error or a
/// timeout). Retried: network errors, timeouts, 408, 429 (after
/// `Retry-After` when given) and 5xx; other 4xx fail at once.
pub fn classify(
    status: Option<u16>,
    retry_after: Option<Duration>,
    schedule: &[Duration],
    attempt: u32,
    unit: f64,
) -> AttemptOutcome {
    let retry = |why: String| match retry_delay(schedule, attempt, unit) {
        Some(delay) => {
            AttemptOutcome::Retry(retry_after.map_or(delay, |r| r.max(Duration::from_secs(1))))
        }
        None => AttemptOutcome::Failed(format!("{why}; gave up after {attempt} attempts")),
    };
    match status {
        Some(s) if (200..300).contains(&s) => AttemptOutcome::Delivered,
        None => retry("no answer".into()),
        Some(s @ (408 | 429)) => retry(format!("HTTP {s}")),
        Some(s) if s >= 500 => retry(format!("HTTP {s}")),
        Some(s) => AttemptOutcome::Failed(format!("HTTP {s}")),
    }
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&chrono::Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A secret as shown to people: its kind prefix (`whsec_`) and, for long
/// ones, the last four characters; never enough to use it.
pub fn mask_secret(secret: &str) -> String {
    let (prefix, rest) = match secret.strip_prefix(webhook::SECRET_PREFIX) {
        Some(rest) => (webhook::SECRET_PREFIX, rest),
        None => ("", secret),
    };
    let chars: Vec<char> = rest.chars().collect();
    if chars.len() >= 16 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{prefix}***{tail}")
    } else {
        format!("{prefix}***")
    }
}

/// Query parameters whose values are masked when a URL is shown.
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token",
        "key",
        "secret",
        "sig",
        "password",
        "passwd",
        "auth",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// A URL as shown in the delivery log and the API: the password of its
/// user info and the values of secret-looking query parameters
/// (`verification_token`, `api_key`, `sig`, …) become `***`.
pub fn mask_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return text.to_owned();
    };
    if url.password().is_none() && !url.query_pairs().any(|(k, _)| is_secret_param(&k)) {
        // Nothing to hide: shown as given (no normalisation).
        return text.to_owned();
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_urls_are_masked_for_display() {
        assert_eq!(
            mask_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "whsec_***LaSw"
        );
        assert_eq!(mask_secret("short"), "***");
        assert_eq!(mask_secret("whsec_x"), "whsec_***");
        assert_eq!(
            mask_url("https://u:pw@h.example/p?a=1&api_key=zz&Verification_Token=t"),
            "https://u:***@h.example/p?a=1&api_key=***&Verification_Token=***"
        );
        assert_eq!(mask_url("https://h.example/hook"), "https://h.example/hook");
        assert_eq!(mask_url("https://h.example"), "https://h.example");
        assert_eq!(mask_url("not a url"), "not a url");
    }

    #[test]
    fn the_schedule_has_jitter_and_an_end() {
        assert_eq!(
            retry_delay(&EVERFLOW_SCHEDULE, 1, 0.5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_delay(&EVERFLOW_SCHEDULE, 2, 0.0),
            Some(Duration::from_secs(48))
        );
        assert_eq!(
            retry_delay(&EVERFLOW_SCHEDULE, 2, 1.0),
            Some(Duration::from_secs(72))
        );
        assert_eq!(
            retry_delay(&EVERFLOW_SCHEDULE, 6, 0.5),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(retry_delay(&EVERFLOW_SCHEDULE, 7, 0.5), None);
        assert_eq!(retry_delay(&EVERFLOW_SCHEDULE, 0, 0.5), None);
    }

    #[test]
    fn statuses_are_retried_or_failed_as_the_contract_says() {
        let s = &EVERFLOW_SCHEDULE;
        assert_eq!(
            classify(Some(200), None, s, 1, 0.5),
            AttemptOutcome::Delivered
        );
        assert_eq!(
            classify(Some(204), None, s, 1, 0.5),
            AttemptOutcome::Delivered
        );
        for status in [None, Some(408), Some(429), Some(500), Some(503)] {
            assert_eq!(
                classify(status, None, s, 1, 0.5),
                AttemptOutcome::Retry(Duration::from_secs(5)),
                "{status:?}"
            );
        }
        assert_eq!(
            classify(Some(429), Some(Duration::from_secs(120)), s, 1, 0.5),
            AttemptOutcome::Retry(Duration::from_secs(120))
        );
        for status in [400, 401, 403, 404, 410, 422] {
            assert!(
                matches!(
                    classify(Some(status), None, s, 1, 0.5),
                    AttemptOutcome::Failed(_)
                ),
                "{status}"
            );
        }
        assert!(
            matches!(classify(Some(503), None, s, 7, 0.5), AttemptOutcome::Failed(m) if m.contains("gave up"))
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
