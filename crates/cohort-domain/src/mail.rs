//! The rules of the outbox, with no IO: where a message is in its life,
//! what an attempt's answer does to it, the providers' rate limits as
//! token buckets, VERP return paths, and the DNS records a sending domain
//! publishes. `cohort-store` keeps the rows, `cohort-engine` sends.

use crate::text_enum;

text_enum! {
    /// Where an outbox message is. Only `sent`, `bounced` and `suppressed`
    /// are final by themselves; `dead` waits for an operator's retry.
    pub enum OutboxState {
        /// Committed, waiting for its time (a first try, a retry's backoff,
        /// a throttled provider's pause).
        Queued = "queued",
        /// Claimed by a worker until its lease ends.
        Sending = "sending",
        /// The provider answered `250` (or the outbox folder has the file).
        Sent = "sent",
        /// The provider refused it for good (5xx): a hard bounce.
        Bounced = "bounced",
        /// Out of attempts; visible with its reason and retryable.
        Dead = "dead",
        /// Not sent: the address was suppressed when its turn came.
        Suppressed = "suppressed",
    }
}

text_enum! {
    /// What one attempt came to.
    pub enum AttemptOutcome {
        /// `250`, or written to the outbox folder.
        Accepted = "accepted",
        /// The provider asked to slow down: no attempt is spent.
        Throttled = "throttled",
        /// A 4xx, a timeout, a lost connection: retried after a backoff.
        Temporary = "temporary",
        /// A 5xx: a hard bounce.
        Permanent = "permanent",
        /// The worker sending it stopped (a crash) before the answer was
        /// recorded: the message is sent again, with the same Message-ID,
        /// and may arrive twice.
        Interrupted = "interrupted",
        /// Found suppressed at send time: never handed to a provider.
        Suppressed = "suppressed",
    }
}

text_enum! {
    /// How a provider's SMTP connection is secured.
    pub enum ProviderTls {
        None = "none",
        StartTls = "starttls",
        Tls = "tls",
    }
}

/// A provider's limits: at most `per_second` and `per_hour` messages (each
/// optional), as two token buckets whose state is kept in the database so
/// that every node sending through the provider shares them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub per_second: Option<u32>,
    pub per_hour: Option<u32>,
}

/// The stored state of a provider's buckets, as GCRA's "theoretical
/// arrival times" (one instant per bucket, in microseconds): a bucket is
/// full when its time is in the past. `slowdown` is how many times slower
/// than its limits the provider is driven after it throttled (1: full
/// speed), and `paused_until_us` holds every send back after a throttling
/// answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketState {
    pub second_tat_us: i64,
    pub hour_tat_us: i64,
    pub slowdown: i64,
    pub paused_until_us: i64,
}

/// The most a throttled provider is slowed: 1/64 of its limits.
pub const MAX_SLOWDOWN: i64 = 64;

/// How long every send to a provider waits after it throttled.
pub const THROTTLE_PAUSE_US: i64 = 5_000_000;

/// A provider with no `rate_per_second` is driven no faster than this
/// after it throttles (so a slowdown has something to divide).
const UNLIMITED_FALLBACK_PER_SECOND: u32 = 100;

/// What [`take_tokens`] grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Messages that may start now.
    pub granted: u32,
    /// When the next token after these is due (`now` when tokens remain).
    pub next_at_us: i64,
    pub state: BucketState,
}

/// Microseconds between two tokens of a bucket refilling `per` tokens per
/// `window_us`, slowed `slowdown` times.
fn interval(per: u32, window_us: i64, slowdown: i64) -> i64 {
    (window_us / i64::from(per.max(1))).max(1) * slowdown.max(1)
}

/// Takes up to `wanted` tokens from both buckets at `now`. A bucket
/// allows a burst of one window's worth (a full second, a full hour) at
/// the slowed rate; GCRA keeps the arithmetic to one instant per bucket.
pub fn take_tokens(limits: RateLimits, state: BucketState, wanted: u32, now: i64) -> Grant {
    let slowdown = state.slowdown.max(1);
    if now < state.paused_until_us {
        return Grant {
            granted: 0,
            next_at_us: state.paused_until_us,
            state,
        };
    }
    let per_second = match (limits.per_second, slowdown > 1) {
        (Some(n), _) => Some(n),
        (None, true) => Some(UNLIMITED_FALLBACK_PER_SECOND),
        (None, false) => None,
    };
    // (tokens per window, window, stored instant) of each bucket in force.
    let buckets = [
        per_second.map(|n| (n, 1_000_000_i64, state.second_tat_us)),
        limits
            .per_hour
            .map(|n| (n, 3_600_000_000_i64, state.hour_tat_us)),
    ];
    let mut granted = wanted;
    for (per, window, tat) in buckets.into_iter().flatten() {
        let step = interval(per, window, slowdown);
        let room = (now + burst(per, slowdown) * step - tat.max(now)) / step;
        granted = granted.min(u32::try_from(room.max(0)).unwrap_or(u32::MAX));
    }
    let mut out = state;
    let mut next_at = now;
    for (per, window, tat) in buckets.into_iter().flatten() {
        let step = interval(per, window, slowdown);
        let tat = tat.max(now) + i64::from(granted) * step;
        if window == 1_000_000 {
            out.second_tat_us = tat;
        } else {
            out.hour_tat_us = tat;
        }
        // The next token is due once tat is within the burst again.
        next_at = next_at.max(tat - burst(per, slowdown) * step + step);
    }
    Grant {
        granted,
        next_at_us: next_at,
        state: out,
    }
}

/// The tokens a full bucket holds: one window's worth, slowed too.
fn burst(per: u32, slowdown: i64) -> i64 {
    i64::from(per.max(1)).div_euclid(slowdown.max(1)).max(1)
}

/// Gives back tokens taken for messages that were not sent after all.
pub fn return_tokens(limits: RateLimits, state: BucketState, unused: u32) -> BucketState {
    let slowdown = state.slowdown.max(1);
    let per_second = limits
        .per_second
        .or((slowdown > 1).then_some(UNLIMITED_FALLBACK_PER_SECOND));
    let mut out = state;
    if let Some(n) = per_second {
        out.second_tat_us -= i64::from(unused) * interval(n, 1_000_000, slowdown);
    }
    if let Some(n) = limits.per_hour {
        out.hour_tat_us -= i64::from(unused) * interval(n, 3_600_000_000, slowdown);
    }
    out
}

/// The provider throttled at `now`: pause it and halve its speed.
pub fn throttled(state: BucketState, now: i64) -> BucketState {
    BucketState {
        slowdown: (state.slowdown.max(1) * 2).min(MAX_SLOWDOWN),
        paused_until_us: state.paused_until_us.max(now + THROTTLE_PAUSE_US),
        ..state
    }
}

/// The provider accepted `accepted` messages in a row without throttling:
/// win back speed, one step per 100 messages.
pub fn recovered(state: BucketState, accepted: u32) -> BucketState {
    let mut slowdown = state.slowdown.max(1);
    for _ in 0..(accepted / 100) {
        if slowdown == 1 {
            break;
        }
        slowdown /= 2;
    }
    BucketState { slowdown, ..state }
}

/// The local part that marks Cohort's bounce addresses.
pub const VERP_PREFIX: &str = "bounces+";

/// The VERP return path of one message: `bounces+{id}@{domain}`. A bounce
/// sent back to it names its message without reading the report, and the
/// id is random, so a forged bounce cannot name a message it never saw.
pub fn verp_return_path(message_id: &str, domain: &str) -> String {
    format!("{VERP_PREFIX}{message_id}@{domain}")
}

/// The message id a VERP address names (case-insensitive prefix; the id
/// kept as written).
pub fn verp_message_id(address: &str) -> Option<&str> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _domain) = address.rsplit_once('@')?;
    let prefix = local.get(..VERP_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(VERP_PREFIX) {
        return None;
    }
    let id = &local[VERP_PREFIX.len()..];
    (!id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then_some(id)
}

/// Why a domain name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);

/// A sending domain as typed: lower-cased, without a trailing dot, made of
/// DNS labels (letters, digits, hyphens; at least two labels).
pub fn normalize_domain(input: &str) -> Result<String, DomainError> {
    let domain = input.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        return Err(DomainError("the domain is empty".into()));
    }
    if domain.len() > 253 {
        return Err(DomainError("a domain has at most 253 characters".into()));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(DomainError(format!(
            "{domain:?} is not a domain: expected a name like example.com"
        )));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(DomainError(format!(
                "{label:?} is not a DNS label: letters, digits and inner hyphens, 1 to 63 characters"
            )));
        }
    }
    Ok(domain)
}

/// One DNS record to publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DnsRecord {
    /// What it is for: `dkim`, `spf`, `dmarc`, `return_path`.
    pub purpose: &'static str,
    /// `TXT` or `MX`.
    #[serde(rename = "type")]
    pub record_type: &'static str,
    pub name: String,
    pub value: String,
    /// What the merchant should know before publishing it.
    pub note: String,
}

/// The records a sending domain publishes: its DKIM key, an SPF policy, a
/// DMARC policy that starts by monitoring, and, when Cohort receives
/// bounces itself, the MX of the return-path domain.
pub fn domain_records(
    domain: &str,
    dkim_name: &str,
    dkim_value: &str,
    bounce_domain: Option<&str>,
) -> Vec<DnsRecord> {
    let mut records = vec![
        DnsRecord {
            purpose: "dkim",
            record_type: "TXT",
            name: dkim_name.to_owned(),
            value: dkim_value.to_owned(),
            note: "Cohort signs every message from this domain with this key.".into(),
        },
        DnsRecord {
            purpose: "spf",
            record_type: "TXT",
            name: domain.to_owned(),
            value: "v=spf1 a mx ~all".into(),
            note: "Add your SMTP provider's include (for example include:amazonses.com) \
                   before ~all; a domain has one SPF record, so merge with one that exists."
                .into(),
        },
        DnsRecord {
            purpose: "dmarc",
            record_type: "TXT",
            name: format!("_dmarc.{domain}"),
            value: format!("v=DMARC1; p=none; rua=mailto:dmarc@{domain}; adkim=r; aspf=r"),
            note: "p=none reports without rejecting; tighten to quarantine once reports are clean."
                .into(),
        },
    ];
    if let Some(bounces) = bounce_domain {
        records.push(DnsRecord {
            purpose: "return_path",
            record_type: "MX",
            name: bounces.to_owned(),
            value: "10 <this Cohort server's host name>".into(),
            note: "Bounces come back to bounces+…@ this domain; its MX must reach \
                   Cohort's [mail.inbound] listener."
                .into(),
        });
    }
    records
}

/// The domain of an address (`Shop <news@shop.example>` → `shop.example`),
/// lower-cased.
pub fn address_domain(address: &str) -> Option<String> {
    let bare = match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address,
    };
    let (_, domain) = bare.trim().rsplit_once('@')?;
    let domain = domain.trim().to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

text_enum! {
    /// What a bounce or complaint report says happened to one recipient of
    /// one message, whatever brought it (a DSN, an ARF report, a provider's
    /// webhook).
    pub enum ReportKind {
        /// The address does not take mail: suppress it.
        HardBounce = "hard_bounce",
        /// Not delivered this time (full mailbox, greylisting, a delay):
        /// counted, and only soft bounces in a row suppress the address.
        SoftBounce = "soft_bounce",
        /// The recipient marked the message as spam (or asked to hear no
        /// more): no more marketing mail.
        Complaint = "complaint",
        /// The receiving server accepted the message.
        Delivered = "delivered",
    }
}

/// The id a relay gave a message it accepted, from its `250` answer, so a
/// provider's webhook that names only its own id finds the message:
/// `250 2.0.0 Ok: queued as 4C1F2A0B3D` (postfix, SendGrid), `250 Ok
/// 0100018c…-000000` (Amazon SES), `250 OK id=1rA2b3-0004cD-Ef` (exim).
pub fn queued_id(answer: &str) -> Option<String> {
    let lower = answer.to_ascii_lowercase();
    let token_after = |marker: &str| -> Option<&str> {
        let at = lower.find(marker)? + marker.len();
        answer[at..].split_whitespace().next()
    };
    let token = token_after("queued as ")
        .or_else(|| token_after("id="))
        .or_else(|| {
            // SES: the id is the word after a bare "Ok".
            let mut words = answer.split_whitespace().skip_while(|w| {
                w.chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            });
            let ok = words.next()?;
            ok.eq_ignore_ascii_case("ok")
                .then(|| words.next())
                .flatten()
        })?;
    let token = token
        .trim_matches(|c: char| matches!(c, '<' | '>' | '(' | ')' | ',' | ';' | '"'))
        .trim_end_matches('.');
    let plausible = token.len() >= 6
        && token.len() <= 200
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    plausible.then(|| token.to_owned())
}

/// The outbox id in one of Cohort's Message-IDs (`{id}@{domain}`, angle
/// brackets or not), if it has the shape of one.
pub fn outbox_id_of_message_id(message_id: &str) -> Option<&str> {
    let bare = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let (id, domain) = bare.split_once('@')?;
    let looks_like_ours = id.starts_with("msg_")
        && id.len() > 4
        && !domain.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    looks_like_ours.then_some(id)
}

/// Soft bounces in a row that suppress an address unless `[mail]
/// soft_bounce_limit` says otherwise (Klaviyo and listmonk use a few).
pub const DEFAULT_SOFT_BOUNCE_LIMIT: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_grants_its_burst_then_one_token_per_interval() {
        let limits = RateLimits {
            per_second: Some(10),
            per_hour: None,
        };
        let now = 1_000_000_000;
        let g = take_tokens(limits, BucketState::default(), 25, now);
        assert_eq!(g.granted, 10);
        assert_eq!(g.next_at_us, now + 100_000);
        let again = take_tokens(limits, g.state, 5, now);
        assert_eq!(again.granted, 0);
        let later = take_tokens(limits, g.state, 5, now + 300_000);
        assert_eq!(later.granted, 3);
        let back = return_tokens(limits, later.state, 3);
        assert_eq!(take_tokens(limits, back, 5, now + 300_000).granted, 3);
    }

    #[test]
    fn the_hour_bucket_holds_across_seconds() {
        let limits = RateLimits {
            per_second: Some(100),
            per_hour: Some(150),
        };
        let mut state = BucketState::default();
        let mut sent = 0;
        for s in 0..60 {
            let g = take_tokens(limits, state, 100, s * 1_000_000);
            sent += g.granted;
            state = g.state;
        }
        // 150 at once, then one per 24 s.
        assert_eq!(sent, 150 + 2);
    }

    #[test]
    fn no_limit_grants_everything_until_throttled() {
        let now = 5_000_000;
        let g = take_tokens(RateLimits::default(), BucketState::default(), 1000, now);
        assert_eq!(g.granted, 1000);
        let slowed = throttled(g.state, now);
        assert_eq!(slowed.slowdown, 2);
        assert_eq!(
            take_tokens(RateLimits::default(), slowed, 10, now).granted,
            0
        );
        let after = take_tokens(RateLimits::default(), slowed, 1000, now + THROTTLE_PAUSE_US);
        assert_eq!(after.granted, 50, "half of the 100/s fallback");
        let mut s = slowed;
        for _ in 0..10 {
            s = throttled(s, now);
        }
        assert_eq!(s.slowdown, MAX_SLOWDOWN);
        assert_eq!(recovered(s, 250).slowdown, MAX_SLOWDOWN / 4);
        assert_eq!(recovered(s, 10_000).slowdown, 1);
    }

    #[test]
    fn verp_addresses_name_their_message() {
        let path = verp_return_path("msg_Ab12", "bounce.shop.example");
        assert_eq!(path, "bounces+msg_Ab12@bounce.shop.example");
        assert_eq!(verp_message_id(&path), Some("msg_Ab12"));
        assert_eq!(
            verp_message_id("<BOUNCES+msg_Ab12@bounce.shop.example>"),
            Some("msg_Ab12")
        );
        assert_eq!(verp_message_id("bounces+@x.example"), None);
        assert_eq!(verp_message_id("news@x.example"), None);
        assert_eq!(verp_message_id("bounces+a b@x.example"), None);
        assert_eq!(verp_message_id("bounces+a"), None);
    }

    #[test]
    fn domains_are_normalised_or_refused_with_the_reason() {
        assert_eq!(normalize_domain(" Shop.Example. ").unwrap(), "shop.example");
        assert!(normalize_domain("localhost").is_err());
        assert!(normalize_domain("-a.example").is_err());
        assert!(normalize_domain("a..example").is_err());
        assert!(normalize_domain("sh op.example").is_err());
        assert_eq!(
            address_domain("Shop <News@Shop.Example>").as_deref(),
            Some("shop.example")
        );
        assert_eq!(
            address_domain("news@shop.example").as_deref(),
            Some("shop.example")
        );
        assert_eq!(address_domain("nobody"), None);
    }

    #[test]
    fn records_name_dkim_spf_dmarc_and_the_bounce_mx() {
        let r = domain_records(
            "shop.example",
            "cohort1._domainkey.shop.example",
            "v=DKIM1; k=rsa; p=AAA",
            Some("bounces.shop.example"),
        );
        let kinds: Vec<_> = r.iter().map(|r| (r.purpose, r.record_type)).collect();
        assert_eq!(
            kinds,
            [
                ("dkim", "TXT"),
                ("spf", "TXT"),
                ("dmarc", "TXT"),
                ("return_path", "MX")
            ]
        );
        assert_eq!(r[2].name, "_dmarc.shop.example");
    }
    #[test]
    fn relays_queued_ids_are_read_from_their_answers() {
        assert_eq!(
            queued_id("250 2.0.0 Ok: queued as 4C1F2A0B3D").as_deref(),
            Some("4C1F2A0B3D")
        );
        assert_eq!(
            queued_id("250 Ok 0100018c5e0e9a3b-5f1c2d3e-0000-000000").as_deref(),
            Some("0100018c5e0e9a3b-5f1c2d3e-0000-000000")
        );
        assert_eq!(
            queued_id("250 OK id=1rA2b3-0004cD-Ef").as_deref(),
            Some("1rA2b3-0004cD-Ef")
        );
        assert_eq!(queued_id("250 2.0.0 Ok"), None);
        assert_eq!(queued_id("written to /tmp/x.eml"), None);
        assert_eq!(queued_id("250 ok"), None);
    }

    #[test]
    fn cohort_message_ids_name_their_outbox_row() {
        assert_eq!(
            outbox_id_of_message_id("<msg_01HAB@shop.example>"),
            Some("msg_01HAB")
        );
        assert_eq!(
            outbox_id_of_message_id("msg_01HAB@shop.example"),
            Some("msg_01HAB")
        );
        assert_eq!(outbox_id_of_message_id("CAF=abc@mail.gmail.com"), None);
        assert_eq!(outbox_id_of_message_id("msg_@x"), None);
        assert_eq!(outbox_id_of_message_id("msg_1"), None);
    }
}
