//! How values read on a page: exact money in its currency, grouped
//! numbers, UTC times, "3 min ago", JSON.

use cohort_domain::time::{from_micros, parse_rfc3339};
use cohort_store::now_micros;
use minijinja::{Environment, Value};
use rust_decimal::Decimal;

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_filter("money", money_filter);
    env.add_filter("num", |v: i64| group(&v.to_string()));
    env.add_filter("time", |v: Value| {
        micros_of(&v).map(time).unwrap_or_default()
    });
    env.add_filter("ago", |v: Value| {
        micros_of(&v)
            .map(|t| ago(t, now_micros()))
            .unwrap_or_else(|| "never".into())
    });
    env.add_filter("pretty_json", |v: Value| {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    });
    env.add_filter("compact_json", |v: Value| match v.as_str() {
        Some(s) => s.to_owned(),
        None => serde_json::to_string(&v).unwrap_or_default(),
    });
}

/// Micros from an integer or an RFC 3339 string.
fn micros_of(v: &Value) -> Option<i64> {
    if v.is_none() || v.is_undefined() {
        return None;
    }
    if let Some(s) = v.as_str() {
        return parse_rfc3339(s).map(|t| t.timestamp_micros());
    }
    i64::try_from(v.clone()).ok()
}

/// `{amount, currency}` (as the API serialises `Money`) on a page.
fn money_filter(v: Value) -> String {
    let amount = v
        .get_attr("amount")
        .ok()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let currency = v
        .get_attr("currency")
        .ok()
        .and_then(|c| c.as_str().map(str::to_owned))
        .unwrap_or_default();
    match amount.parse::<Decimal>() {
        Ok(d) => money(d, &currency),
        Err(_) => String::new(),
    }
}

/// `€1,234.50`, `1,234.567 KWD`: every digit kept, at least two decimals.
pub(crate) fn money(amount: Decimal, currency: &str) -> String {
    let mut d = amount;
    if d.scale() < 2 {
        d.rescale(2);
    }
    let text = d.abs().to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let number = if fraction.is_empty() {
        group(whole)
    } else {
        format!("{}.{fraction}", group(whole))
    };
    let sign = if d.is_sign_negative() && !d.is_zero() {
        "−"
    } else {
        ""
    };
    match currency {
        "EUR" => format!("{sign}€{number}"),
        "USD" => format!("{sign}${number}"),
        "GBP" => format!("{sign}£{number}"),
        _ => format!("{sign}{number} {currency}").trim_end().to_owned(),
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn group(digits: &str) -> String {
    let (sign, digits) = digits.strip_prefix('-').map_or(("", digits), |d| ("-", d));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// `2026-11-23 14:05 UTC`.
pub(crate) fn time(micros: i64) -> String {
    from_micros(micros).format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `just now`, `5 min ago`, `3 h ago`, `2 days ago`.
pub(crate) fn ago(micros: i64, now: i64) -> String {
    let seconds = (now - micros) / 1_000_000;
    match seconds {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_every_digit_in_its_currency() {
        let d = |s: &str| s.parse::<Decimal>().unwrap_or_default();
        assert_eq!(money(d("1234.5"), "EUR"), "€1,234.50");
        assert_eq!(money(d("0.1"), "USD"), "$0.10");
        assert_eq!(money(d("1234567.125"), "KWD"), "1,234,567.125 KWD");
        assert_eq!(money(d("-12"), "GBP"), "−£12.00");
        assert_eq!(money(d("19.99"), "CHF"), "19.99 CHF");
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(group("1000"), "1,000");
        assert_eq!(group("999"), "999");
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        let now = 10_000 * 1_000_000;
        assert_eq!(ago(now - 5_000_000, now), "just now");
        assert_eq!(ago(now - 300_000_000, now), "5 min ago");
        assert_eq!(ago(now - 7_200_000_000, now), "2 h ago");
    }
}
