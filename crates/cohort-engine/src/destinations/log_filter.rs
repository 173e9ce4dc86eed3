//! The delivery log's filters as an operator gives them — the admin API's
//! query, the UI's form, the CLI's flags — checked once, here, into the
//! store's `DeliveryFilter`. Each surface names the fields its own way
//! (`cursor` or `before`, `--since`) and words the refusal around
//! [`FieldError::message`], which says what is expected.

use chrono::{NaiveDateTime, TimeZone, Utc};
use cohort_domain::time::parse_rfc3339;
use cohort_store::destinations::{DeliveryFilter, DeliveryStatus};

use super::manage::FieldError;

/// The filters as text; empty values are no filter.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// pending, retrying, delivered, failed or skipped
    pub status: Option<String>,
    pub event: Option<String>,
    pub message_id: Option<String>,
    /// Text in the message id, event, request, response or reason
    pub search: Option<String>,
    /// Last changed at or after this time
    pub since: Option<String>,
    /// Last changed before this time
    pub until: Option<String>,
    /// The log position of the previous page's last delivery
    pub before: Option<String>,
    /// Deliveries on a page (the surface bounds it)
    pub limit: i64,
}

/// What `status` must be.
const STATUSES: &str = "pending, retrying, delivered, failed or skipped";

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn refused(field: &str, expected: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: expected.to_owned(),
    }
}

/// An RFC 3339 time, or a time without offset read as UTC (the form's
/// `datetime-local`).
fn utc_micros(field: &str, value: &Option<String>) -> Result<Option<i64>, FieldError> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    if let Some(t) = parse_rfc3339(&text) {
        return Ok(Some(t.timestamp_micros()));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok())
        .map(|t| Some(Utc.from_utc_datetime(&t).timestamp_micros()))
        .ok_or_else(|| {
            refused(
                field,
                "a UTC time such as 2026-11-23T10:00, or RFC 3339 (2026-11-23T10:00:00Z)",
            )
        })
}

impl DeliveryQuery {
    /// The store's filter, or the field at fault (`status`, `since`,
    /// `until`, `before`) with what it must be.
    pub fn filter(&self) -> Result<DeliveryFilter, FieldError> {
        let status = match non_empty(&self.status) {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(&s).ok_or_else(|| refused("status", STATUSES))?),
        };
        let before_seq =
            match non_empty(&self.before) {
                None => None,
                Some(b) => Some(b.parse::<i64>().map_err(|_| {
                    refused("before", "a position of the log (a next_cursor value)")
                })?),
            };
        Ok(DeliveryFilter {
            status,
            event: non_empty(&self.event),
            message_id: non_empty(&self.message_id),
            search: non_empty(&self.search),
            since_us: utc_micros("since", &self.since)?,
            until_us: utc_micros("until", &self.until)?,
            before_seq,
            limit: self.limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_and_empty_ones_ignored() {
        let query = DeliveryQuery {
            status: Some("failed".into()),
            event: Some(" ".into()),
            since: Some("2026-11-23T10:00".into()),
            until: Some("2026-11-24T00:00:00Z".into()),
            before: Some("42".into()),
            limit: 100,
            ..Default::default()
        };
        let filter = query.filter().unwrap();
        assert_eq!(filter.status, Some(DeliveryStatus::Failed));
        assert_eq!(filter.event, None);
        assert_eq!(filter.before_seq, Some(42));
        assert_eq!(filter.since_us, Some(1_795_428_000_000_000));
        assert_eq!(filter.until_us, Some(1_795_478_400_000_000));
        assert_eq!(filter.limit, 100);
        for (field, query) in [
            (
                "status",
                DeliveryQuery {
                    status: Some("sent".into()),
                    ..Default::default()
                },
            ),
            (
                "since",
                DeliveryQuery {
                    since: Some("yesterday".into()),
                    ..Default::default()
                },
            ),
            (
                "until",
                DeliveryQuery {
                    until: Some("2026-13-01".into()),
                    ..Default::default()
                },
            ),
            (
                "before",
                DeliveryQuery {
                    before: Some("abc".into()),
                    ..Default::default()
                },
            ),
        ] {
            assert_eq!(query.filter().unwrap_err().field, field);
        }
    }
}
