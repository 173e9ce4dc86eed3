//! The commerce model: products, customers, orders, carts. Amounts are
//! exact decimals with their currency (`Money`); times are UTC microseconds.
//!
//! Two parsers feed it: [`woocommerce`] (REST v3 JSON, however it arrives:
//! plugin sync, webhooks, REST pulls) and [`segment`] (the Segment
//! e-commerce events of stores without WooCommerce).

pub mod segment;
pub mod woocommerce;

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An exact amount in one currency (ISO 4217 code, upper case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: String,
}

impl Money {
    pub fn new(amount: Decimal, currency: &str) -> Self {
        Self {
            amount: amount.normalize(),
            currency: currency.to_owned(),
        }
    }
}

/// A field that failed to parse: which one (a JSON path such as
/// `line_items[1].total`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An ISO 4217 code: three ASCII letters, returned upper-cased.
pub fn parse_currency(value: &Value, field: &str) -> Result<String, FieldError> {
    match value.as_str().map(str::trim) {
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(code.to_ascii_uppercase())
        }
        _ => Err(FieldError::new(
            field,
            "must be a three-letter ISO 4217 currency code",
        )),
    }
}

/// An exact decimal from a JSON string ("29.35") or number (29.35). A
/// number is read back from its shortest decimal form, which for a price is
/// the text the client wrote.
pub fn parse_decimal(value: &Value, field: &str) -> Result<Decimal, FieldError> {
    let parsed = match value {
        Value::String(s) if s.trim().is_empty() => Some(Decimal::ZERO),
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        Value::Null => Some(Decimal::ZERO),
        _ => None,
    };
    parsed
        .map(|d| d.normalize())
        .ok_or_else(|| FieldError::new(field, "must be a decimal number"))
}

/// As [`parse_decimal`], but a missing or empty value is `None`.
pub fn parse_optional_decimal(
    value: Option<&Value>,
    field: &str,
) -> Result<Option<Decimal>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => parse_decimal(v, field).map(Some),
    }
}

/// A decimal as a JSON number for Segment-spec properties (which use
/// numbers). Prices have far fewer than 15 significant digits, so the
/// number's shortest form is the decimal's exact text.
pub fn decimal_json(amount: Decimal) -> Value {
    let text = amount.normalize().to_string();
    serde_json::from_str::<serde_json::Number>(&text)
        .map(Value::Number)
        .unwrap_or(Value::String(text))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The source (store) the product belongs to.
    pub store: String,
    pub product_id: String,
    pub parent_id: Option<String>,
    pub sku: Option<String>,
    pub name: String,
    pub price: Option<Money>,
    pub images: Vec<String>,
    pub categories: Vec<String>,
    pub url: Option<String>,
    pub stock_status: Option<String>,
    pub status: Option<String>,
    pub modified_at_us: i64,
}

/// A store's customer account: the traits it gives the profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub store: String,
    pub customer_id: String,
    pub email: Option<String>,
    pub traits: serde_json::Map<String, Value>,
    pub modified_at_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub product_id: Option<String>,
    pub variation_id: Option<String>,
    pub sku: Option<String>,
    pub name: String,
    pub quantity: Decimal,
    /// Unit price before discounts.
    pub price: Decimal,
    /// Quantity × price before discounts.
    pub subtotal: Decimal,
    /// After discounts, before tax.
    pub total: Decimal,
    /// The product's category as the order event named it (Segment's
    /// `products[].category`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    /// Positive amount given back.
    pub amount: Decimal,
    pub reason: Option<String>,
}

/// Order states, as WooCommerce names them; Segment-only stores reach
/// `completed` directly.
pub const PAID_STATUSES: [&str; 2] = ["processing", "completed"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub store: String,
    pub order_id: String,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    /// The store's customer account, if the buyer had one (`None` for guests).
    pub customer_id: Option<String>,
    /// The billing email, trimmed and lower-cased.
    pub email: Option<String>,
    pub billing: serde_json::Map<String, Value>,
    pub line_items: Vec<LineItem>,
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub shipping_total: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub coupons: Vec<String>,
    pub refunds: Vec<Refund>,
    pub created_at_us: i64,
    pub modified_at_us: i64,
    pub paid_at_us: Option<i64>,
    pub completed_at_us: Option<i64>,
}

impl Order {
    pub fn refunded_total(&self) -> Decimal {
        self.refunds.iter().map(|r| r.amount).sum()
    }

    pub fn money(&self, amount: Decimal) -> Money {
        Money::new(amount, &self.currency)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: Option<String>,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub price: Option<Decimal>,
    pub quantity: Decimal,
    pub url: Option<String>,
    pub image_url: Option<String>,
}

/// A shopper's open cart or checkout, as the last cart event described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub cart_id: Option<String>,
    pub products: Vec<CartLine>,
    pub value: Option<Money>,
    pub recover_url: Option<String>,
    pub updated_at_us: i64,
}

/// Trims and lower-cases an email; `None` unless it looks like one.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace);
    valid.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_are_exact_from_strings_and_numbers() {
        assert_eq!(
            parse_decimal(&json!("29.35"), "t").unwrap().to_string(),
            "29.35"
        );
        assert_eq!(
            parse_decimal(&json!(29.35), "t").unwrap().to_string(),
            "29.35"
        );
        assert_eq!(
            parse_decimal(&json!(0.1), "t").unwrap() + parse_decimal(&json!(0.2), "t").unwrap(),
            Decimal::from_str("0.3").unwrap()
        );
        assert_eq!(
            parse_decimal(&json!("abc"), "total").unwrap_err().field,
            "total"
        );
        assert_eq!(
            decimal_json(Decimal::from_str("29.350").unwrap()),
            json!(29.35)
        );
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  John.Doe@Example.COM "),
            Some("john.doe@example.com".into())
        );
        assert_eq!(normalize_email("nope"), None);
        assert_eq!(normalize_email("a b@c.d"), None);
    }
}
