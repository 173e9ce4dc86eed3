//! Times as Cohort stores and prints them: UTC, microsecond precision.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Parses an RFC 3339 time with `Z` or an offset and any fraction length.
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// RFC 3339 in UTC with as many fraction digits as needed (none, 3, 6 or 9).
pub fn format_rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn to_micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub fn from_micros(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// Truncates to whole microseconds, the precision of storage.
pub fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(to_micros(time))
}
