//! Segment e-commerce events (spec v2) into the commerce model, for stores
//! that send `Order Completed`, `Product Added`, … instead of WooCommerce
//! resources. Amounts may be JSON numbers or strings; both are read exactly.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::{
    normalize_email, parse_decimal, parse_optional_decimal, Cart, CartLine, FieldError, LineItem,
    Money, Order,
};

/// Segment's order events that describe an order's state.
pub fn order_status_of_event(event: &str) -> Option<&'static str> {
    match event {
        "Order Completed" => Some("completed"),
        "Order Cancelled" => Some("cancelled"),
        "Order Refunded" => Some("refunded"),
        _ => None,
    }
}

/// The currency of an event: `properties.currency`, else USD, the default
/// Segment's destinations assume.
fn currency(props: &Map<String, Value>) -> Result<String, FieldError> {
    match props.get("currency") {
        None | Some(Value::Null) => Ok("USD".into()),
        Some(v) => super::parse_currency(v, "properties.currency"),
    }
}

fn id_text(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn text(props: &Map<String, Value>, key: &str) -> Option<String> {
    props
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn lines(props: &Map<String, Value>) -> Result<Vec<CartLine>, FieldError> {
    let Some(products) = props.get("products").filter(|v| !v.is_null()) else {
        // A single-product event (`Product Added`) describes the product at the top level.
        if props.contains_key("product_id") || props.contains_key("sku") {
            return Ok(vec![line(props, "properties")?]);
        }
        return Ok(Vec::new());
    };
    let products = products
        .as_array()
        .ok_or_else(|| FieldError::new("properties.products", "must be an array"))?;
    products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = format!("properties.products[{i}]");
            line(
                p.as_object()
                    .ok_or_else(|| FieldError::new(&path, "must be an object"))?,
                &path,
            )
        })
        .collect()
}

fn line(p: &Map<String, Value>, path: &str) -> Result<CartLine, FieldError> {
    Ok(CartLine {
        product_id: id_text(p.get("product_id")),
        sku: text(p, "sku"),
        name: text(p, "name"),
        price: parse_optional_decimal(p.get("price"), &format!("{path}.price"))?,
        quantity: parse_optional_decimal(p.get("quantity"), &format!("{path}.quantity"))?
            .unwrap_or(Decimal::ONE),
        url: text(p, "url"),
        image_url: text(p, "image_url"),
    })
}

/// Each line's `category` (Segment's product property), in line order.
fn line_categories(props: &Map<String, Value>) -> Vec<Option<String>> {
    match props.get("products").and_then(Value::as_array) {
        Some(products) => products
            .iter()
            .map(|p| p.as_object().and_then(|p| text(p, "category")))
            .collect(),
        None => vec![text(props, "category")],
    }
}

/// An order from `Order Completed` (or another order event) properties.
/// `email` is the buyer's identity from the message, if any.
pub fn parse_order_event(
    store: &str,
    event: &str,
    props: &Map<String, Value>,
    timestamp_us: i64,
    email: Option<&str>,
) -> Result<Order, FieldError> {
    let order_id = id_text(props.get("order_id"))
        .ok_or_else(|| FieldError::new("properties.order_id", "is required"))?;
    let status = order_status_of_event(event).unwrap_or("completed");
    let currency = currency(props)?;
    let categories = line_categories(props);
    let line_items: Vec<LineItem> = lines(props)?
        .into_iter()
        .zip(categories.into_iter().chain(std::iter::repeat(None)))
        .map(|(l, category)| {
            let price = l.price.unwrap_or_default();
            LineItem {
                product_id: l.product_id,
                variation_id: None,
                sku: l.sku,
                name: l.name.unwrap_or_default(),
                subtotal: (price * l.quantity).normalize(),
                total: (price * l.quantity).normalize(),
                quantity: l.quantity,
                price,
                category,
            }
        })
        .collect();
    let amount = |key: &str| parse_optional_decimal(props.get(key), &format!("properties.{key}"));
    let subtotal =
        amount("subtotal")?.unwrap_or_else(|| line_items.iter().map(|l| l.subtotal).sum());
    let total = match amount("total")? {
        Some(total) => total,
        None => amount("revenue")?
            .ok_or_else(|| FieldError::new("properties.total", "is required (or revenue)"))?,
    };
    let coupons = text(props, "coupon").map(|c| vec![c]).unwrap_or_default();
    Ok(Order {
        store: store.to_owned(),
        number: None,
        status: status.to_owned(),
        currency,
        customer_id: None,
        email: email.and_then(normalize_email),
        billing: Map::new(),
        line_items,
        subtotal: subtotal.normalize(),
        discount_total: amount("discount")?.unwrap_or_default(),
        shipping_total: amount("shipping")?.unwrap_or_default(),
        tax_total: amount("tax")?.unwrap_or_default(),
        total: total.normalize(),
        coupons,
        refunds: Vec::new(),
        created_at_us: timestamp_us,
        modified_at_us: timestamp_us,
        paid_at_us: (status == "completed").then_some(timestamp_us),
        completed_at_us: None,
        order_id,
    })
}

/// The cart a cart or checkout event describes.
pub fn parse_cart(props: &Map<String, Value>, timestamp_us: i64) -> Result<Cart, FieldError> {
    let products = lines(props)?;
    let value = match parse_optional_decimal(props.get("value"), "properties.value")? {
        Some(v) => Some(Money::new(v, &currency(props)?)),
        None => match parse_optional_decimal(props.get("total"), "properties.total")? {
            Some(v) => Some(Money::new(v, &currency(props)?)),
            None => None,
        },
    };
    Ok(Cart {
        cart_id: id_text(props.get("cart_id")).or_else(|| id_text(props.get("checkout_id"))),
        products,
        value,
        recover_url: text(props, "recover_url"),
        updated_at_us: timestamp_us,
    })
}

/// A refund amount (`Order Refunded` carries `total` or `amount`).
pub fn parse_refund_amount(props: &Map<String, Value>) -> Result<Option<Decimal>, FieldError> {
    match props.get("amount").or_else(|| props.get("total")) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_decimal(v, "properties.amount").map(|d| Some(d.abs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    #[test]
    fn order_completed_properties_become_an_order() {
        let props = json!({"order_id": "50314b8e", "total": 27.50, "revenue": 25.00, "shipping": 3, "tax": 2,
            "discount": 2.5, "coupon": "hasbros", "currency": "usd",
            "products": [{"product_id": "507f1f77", "sku": "45790-32", "name": "Monopoly", "price": 19, "quantity": 1},
                         {"product_id": "505bd76785", "sku": "46493-32", "name": "Uno Card Game", "price": 3, "quantity": 2}]});
        let order = parse_order_event(
            "src",
            "Order Completed",
            props.as_object().unwrap(),
            7,
            Some("A@B.c"),
        )
        .unwrap();
        assert_eq!(order.total, Decimal::from_str("27.5").unwrap());
        assert_eq!(order.currency, "USD");
        assert_eq!(order.subtotal, Decimal::from_str("25").unwrap());
        assert_eq!(order.coupons, vec!["hasbros"]);
        assert_eq!(order.email.as_deref(), Some("a@b.c"));
        assert_eq!(order.paid_at_us, Some(7));
        let missing = json!({"total": 1});
        assert_eq!(
            parse_order_event(
                "s",
                "Order Completed",
                missing.as_object().unwrap(),
                0,
                None
            )
            .unwrap_err()
            .field,
            "properties.order_id"
        );
    }

    #[test]
    fn a_product_added_is_a_one_line_cart() {
        let props = json!({"cart_id": "c1", "product_id": "p1", "price": "9.99", "quantity": 2});
        let cart = parse_cart(props.as_object().unwrap(), 1).unwrap();
        assert_eq!(cart.products.len(), 1);
        assert_eq!(
            cart.products[0].price,
            Some(Decimal::from_str("9.99").unwrap())
        );
        assert_eq!(cart.cart_id.as_deref(), Some("c1"));
    }
}
