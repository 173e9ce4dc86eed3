//! A row of a destination's delivery log, secrets masked.

use cohort_domain::destinations::mask_url;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::destinations::{Delivery, DeliveryStatus};
use serde::Serialize;
use utoipa::ToSchema;

fn time(us: i64) -> String {
    format_rfc3339(from_micros(us))
}

/// One row of the delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub message_id: String,
    pub event: Option<String>,
    /// The event's position in the log
    pub seq: i64,
    /// pending, retrying, delivered, failed, skipped
    pub status: String,
    /// `delivered`, `retrying`, `failed`, `pending` or `skipped: <reason>`
    pub outcome: String,
    /// Requests sent
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    /// The last request (`METHOD URL` and headers), secrets masked
    pub request: Option<String>,
    pub response_status: Option<i64>,
    /// The beginning of the last answer's body
    pub response_excerpt: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A delivery as the API and the admin UI show it.
pub fn delivery_view(d: Delivery) -> DeliveryView {
    let outcome = match (d.status, &d.reason) {
        (DeliveryStatus::Skipped, Some(reason)) if reason.starts_with("skipped") => reason.clone(),
        (DeliveryStatus::Skipped, Some(reason)) => format!("skipped: {reason}"),
        (status, _) => status.as_str().to_owned(),
    };
    // Masked when written; masked again in case an older row was not.
    let request = d.request.map(|r| match r.split_once(' ') {
        Some((method, rest)) => {
            let (url, headers) = rest
                .split_once('\n')
                .map_or((rest, None), |(u, h)| (u, Some(h)));
            let mut out = format!("{method} {}", mask_url(url));
            if let Some(h) = headers {
                out.push('\n');
                out.push_str(h);
            }
            out
        }
        None => r,
    });
    DeliveryView {
        message_id: d.message_id,
        event: d.event,
        seq: d.seq,
        status: d.status.as_str().to_owned(),
        outcome,
        attempts: d.attempts,
        next_attempt_at: d
            .next_attempt_at_us
            .filter(|_| matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Retrying))
            .map(time),
        request,
        response_status: d.response_status,
        response_excerpt: d.response_excerpt,
        reason: d.reason,
        created_at: time(d.created_at_us),
        updated_at: time(d.updated_at_us),
    }
}
