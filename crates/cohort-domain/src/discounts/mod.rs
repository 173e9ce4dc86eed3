//! Discounts Cohort creates in a connected store (connect.md §5): what a
//! new discount must hold, checked before any call (each error names its
//! field), the body the plugin receives, and the signature on the calls.

pub mod signing;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::time::{format_rfc3339, parse_rfc3339};

pub const MAX_CODE_LEN: usize = 50;
pub const MAX_EMAILS: usize = 100;

/// A validated percentage discount.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDiscount {
    pub code: String,
    /// Percent off, in (0, 100].
    pub amount: Decimal,
    pub min_purchase_amount: Option<Decimal>,
    pub expires_at: Option<DateTime<Utc>>,
    pub usage_limit: Option<u32>,
    pub email_restrictions: Vec<String>,
}

/// An input error naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A decimal from a JSON number or numeric string.
fn decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    if text.contains(['e', 'E']) {
        return None;
    }
    text.parse::<Decimal>().ok()
}

/// A plausible email address: one `@`, a local part, a dotted domain, no spaces.
pub fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';')
        })
}

impl NewDiscount {
    /// Reads `{code, kind:"percentage", amount, min_purchase_amount?,
    /// expires_at?, usage_limit?, email_restrictions?}` (snake_case, the
    /// admin API's spelling; camelCase is accepted too).
    pub fn from_json(input: &Value, now: DateTime<Utc>) -> Result<Self, FieldError> {
        let Value::Object(map) = input else {
            return Err(invalid("body", "the body must be a JSON object"));
        };
        let get = |snake: &str, camel: &str| {
            map.get(snake)
                .or_else(|| map.get(camel))
                .filter(|v| !v.is_null())
        };
        let code = match map.get("code") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => return Err(invalid("code", "code is required")),
        };
        if code.chars().count() > MAX_CODE_LEN
            || code.chars().any(|c| {
                c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '\\' | '/' | '?' | '#' | '%')
            })
        {
            return Err(invalid("code", "code must be at most 50 characters, without control characters, quotes, slashes, backslashes, ?, #, % or angle brackets"));
        }
        match map.get("kind") {
            None | Some(Value::Null) => {}
            Some(Value::String(k)) if k == "percentage" => {}
            Some(_) => return Err(invalid("kind", "kind must be \"percentage\"")),
        }
        let amount = map
            .get("amount")
            .and_then(decimal)
            .filter(|a| *a > Decimal::ZERO && *a <= Decimal::ONE_HUNDRED);
        let Some(amount) = amount else {
            return Err(invalid(
                "amount",
                "amount must be a number greater than 0 and at most 100 (a percentage)",
            ));
        };
        if amount.scale() > 6 {
            return Err(invalid("amount", "amount has at most 6 decimals"));
        }
        let min_purchase_amount = match get("min_purchase_amount", "minPurchaseAmount") {
            None => None,
            Some(v) => match decimal(v).filter(|m| *m >= Decimal::ZERO && m.scale() <= 6) {
                Some(m) => Some(m),
                None => {
                    return Err(invalid(
                        "min_purchase_amount",
                        "min_purchase_amount must be a number of at least 0",
                    ))
                }
            },
        };
        let expires_at = match get("expires_at", "expiresAt") {
            None => None,
            Some(v) => match v.as_str().and_then(parse_rfc3339) {
                Some(t) if t > now => Some(t),
                Some(_) => return Err(invalid("expires_at", "expires_at must be in the future")),
                None => {
                    return Err(invalid(
                        "expires_at",
                        "expires_at must be an RFC 3339 time, e.g. 2030-12-31T23:59:59Z",
                    ))
                }
            },
        };
        let usage_limit = match get("usage_limit", "usageLimit") {
            None => None,
            Some(v) => match v.as_u64().filter(|n| (1..=i32::MAX as u64).contains(n)) {
                Some(n) => Some(n as u32),
                None => {
                    return Err(invalid(
                        "usage_limit",
                        "usage_limit must be a whole number of at least 1",
                    ))
                }
            },
        };
        let mut email_restrictions = Vec::new();
        if let Some(v) = get("email_restrictions", "emailRestrictions") {
            let Some(list) = v.as_array().filter(|l| l.len() <= MAX_EMAILS) else {
                return Err(invalid(
                    "email_restrictions",
                    "email_restrictions must be a list of at most 100 email addresses",
                ));
            };
            for (i, e) in list.iter().enumerate() {
                match e.as_str().map(str::trim).filter(|e| plausible_email(e)) {
                    Some(e) => email_restrictions.push(e.to_lowercase()),
                    None => {
                        return Err(invalid(
                            &format!("email_restrictions[{i}]"),
                            "email_restrictions must hold email addresses",
                        ))
                    }
                }
            }
        }
        Ok(Self {
            code,
            amount,
            min_purchase_amount,
            expires_at,
            usage_limit,
            email_restrictions,
        })
    }

    /// The body of `POST /discounts` as the plugin reads it (camelCase;
    /// amounts as decimal strings, so no float rounding on the way).
    pub fn store_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code));
        body.insert("kind".into(), json!("percentage"));
        body.insert("amount".into(), json!(self.amount.normalize().to_string()));
        if let Some(m) = self.min_purchase_amount {
            body.insert("minPurchaseAmount".into(), json!(m.normalize().to_string()));
        }
        if let Some(t) = self.expires_at {
            body.insert("expiresAt".into(), json!(format_rfc3339(t)));
        }
        if let Some(n) = self.usage_limit {
            body.insert("usageLimit".into(), json!(n));
        }
        if !self.email_restrictions.is_empty() {
            body.insert("emailRestrictions".into(), json!(self.email_restrictions));
        }
        Value::Object(body)
    }
}

/// Maps a field the plugin names (camelCase) to the admin API's spelling.
pub fn admin_field(store_field: &str) -> String {
    let (head, tail) = store_field
        .split_once('[')
        .map_or((store_field, ""), |(h, _)| (h, &store_field[h.len()..]));
    let snake = match head {
        "minPurchaseAmount" => "min_purchase_amount",
        "expiresAt" => "expires_at",
        "usageLimit" => "usage_limit",
        "emailRestrictions" => "email_restrictions",
        other => other,
    };
    format!("{snake}{tail}")
}

/// What the store answers (connect.md §5, camelCase on the wire). Amounts
/// arrive as decimal strings (or numbers, from other implementations).
pub mod wire {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize};

    fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        super::decimal(&v).ok_or_else(|| serde::de::Error::custom(format!("not a decimal: {v}")))
    }

    fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        super::decimal(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a decimal: {v}")))
    }

    /// A provider id: the plugin sends a number; a string of digits is accepted.
    fn id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| serde::de::Error::custom("providerId is not a positive integer")),
            serde_json::Value::String(s) => s
                .parse()
                .map_err(|_| serde::de::Error::custom("providerId is not a positive integer")),
            other => Err(serde::de::Error::custom(format!("providerId: {other}"))),
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Created {
        #[serde(deserialize_with = "id")]
        pub provider_id: u64,
        pub code: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Deleted {
        #[serde(deserialize_with = "id")]
        pub provider_id: u64,
        pub deleted: bool,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StoreDiscount {
        #[serde(deserialize_with = "id")]
        pub provider_id: u64,
        pub code: String,
        pub kind: String,
        #[serde(deserialize_with = "decimal")]
        pub amount: Decimal,
        #[serde(default, deserialize_with = "opt_decimal")]
        pub min_purchase_amount: Option<Decimal>,
        #[serde(default)]
        pub expires_at: Option<String>,
        #[serde(default)]
        pub usage_limit: Option<u64>,
        #[serde(default)]
        pub usage_count: Option<u64>,
        #[serde(default)]
        pub email_restrictions: Vec<String>,
        #[serde(default)]
        pub currency: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Redemption {
        pub provider_order_id: String,
        pub code: String,
        #[serde(default)]
        pub customer_id: Option<String>,
        #[serde(default)]
        pub email: Option<String>,
        /// The discount the coupon gave on this order.
        #[serde(deserialize_with = "decimal")]
        pub amount: Decimal,
        pub currency: String,
        pub created_at: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RedemptionPage {
        pub redemptions: Vec<Redemption>,
        #[serde(default)]
        pub next_cursor: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
    }

    #[test]
    fn a_full_discount_and_its_store_body() {
        let d = NewDiscount::from_json(
            &json!({"code": " SUMMER20 ", "kind": "percentage", "amount": "20.50", "min_purchase_amount": 50,
                    "expires_at": "2099-12-31T00:00:00Z", "usage_limit": 3, "email_restrictions": ["Ada@Example.com"]}),
            now(),
        )
        .unwrap();
        assert_eq!(d.code, "SUMMER20");
        assert_eq!(d.amount, Decimal::new(2050, 2));
        assert_eq!(
            d.store_body(),
            json!({"code": "SUMMER20", "kind": "percentage", "amount": "20.5", "minPurchaseAmount": "50",
                   "expiresAt": "2099-12-31T00:00:00Z", "usageLimit": 3, "emailRestrictions": ["ada@example.com"]})
        );
        let minimal = NewDiscount::from_json(&json!({"code": "X", "amount": 0.1}), now()).unwrap();
        assert_eq!(minimal.amount, Decimal::new(1, 1));
        assert_eq!(
            minimal.store_body(),
            json!({"code": "X", "kind": "percentage", "amount": "0.1"})
        );
    }

    #[test]
    fn errors_name_the_field() {
        let ok = json!({"code": "A", "kind": "percentage", "amount": 10});
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        let cases = [
            (json!([1]), "body"),
            (json!({"kind": "percentage", "amount": 10}), "code"),
            (with("code", json!("  ")), "code"),
            (with("code", json!(12)), "code"),
            (with("code", json!("a".repeat(51))), "code"),
            (with("code", json!("a/b")), "code"),
            (with("kind", json!("fixed_cart")), "kind"),
            (json!({"code": "A"}), "amount"),
            (with("amount", json!(0)), "amount"),
            (with("amount", json!("100.01")), "amount"),
            (with("amount", json!("1e2")), "amount"),
            (with("amount", json!(true)), "amount"),
            (
                with("min_purchase_amount", json!(-1)),
                "min_purchase_amount",
            ),
            (
                with("expires_at", json!("2099-02-30T00:00:00Z")),
                "expires_at",
            ),
            (
                with("expires_at", json!("2025-12-31T23:59:59Z")),
                "expires_at",
            ),
            (with("usage_limit", json!(0)), "usage_limit"),
            (with("usage_limit", json!("3")), "usage_limit"),
            (
                with("email_restrictions", json!("a@b.co")),
                "email_restrictions",
            ),
            (
                with("email_restrictions", json!(["a@b.co", "nope"])),
                "email_restrictions[1]",
            ),
        ];
        for (input, field) in cases {
            let err = NewDiscount::from_json(&input, now()).expect_err(&input.to_string());
            assert_eq!(err.field, field, "{input}");
        }
    }

    #[test]
    fn store_fields_map_to_admin_fields() {
        assert_eq!(admin_field("minPurchaseAmount"), "min_purchase_amount");
        assert_eq!(admin_field("emailRestrictions[2]"), "email_restrictions[2]");
        assert_eq!(admin_field("code"), "code");
    }

    #[test]
    fn store_answers_parse_with_exact_amounts() {
        let page: wire::RedemptionPage = serde_json::from_value(json!({"redemptions": [
            {"providerOrderId": "727", "code": "summer20", "customerId": null, "email": "john.doe@example.com",
             "amount": "4.40", "currency": "USD", "createdAt": "2026-01-02T10:00:00Z"},
            {"providerOrderId": "728", "code": "summer20", "amount": 0.1, "currency": "EUR", "createdAt": "2026-01-02T10:00:00Z"}
        ], "nextCursor": "c1.x"})).unwrap();
        assert_eq!(page.redemptions[0].amount, Decimal::new(440, 2));
        assert_eq!(page.redemptions[1].amount, Decimal::new(1, 1));
        let d: wire::StoreDiscount = serde_json::from_value(
            json!({"providerId": 123, "code": "SUMMER20", "kind": "percentage",
            "amount": "20", "minPurchaseAmount": null, "expiresAt": null}),
        )
        .unwrap();
        assert_eq!(d.provider_id, 123);
        assert!(
            serde_json::from_value::<wire::Created>(json!({"providerId": -1, "code": "x"}))
                .is_err()
        );
        assert!(serde_json::from_value::<wire::StoreDiscount>(
            json!({"providerId": 1, "code": "x", "kind": "percentage", "amount": "lots"})
        )
        .is_err());
    }
}
