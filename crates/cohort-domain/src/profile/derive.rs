//! The Segment e-commerce events Cohort derives from a WooCommerce order's
//! states (`shared/spec/connect.md` §3). Each has a message id made of the
//! store, the order and the state alone, so deriving again (a repeated
//! webhook, a resync, `cohort reproject`) never adds a second one.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::commerce::{decimal_json, Order};
use crate::time::{format_rfc3339, from_micros};

use super::fold::OrderState;

#[derive(Debug, Clone, PartialEq)]
pub struct DerivedEvent {
    pub message_id: String,
    pub event: String,
    pub timestamp_us: i64,
    /// The store's source.
    pub source_id: String,
    pub email: Option<String>,
    /// The whole Segment `track` message.
    pub message: Map<String, Value>,
}

/// `kind` is `created`, `completed`, `fulfilled`, `cancelled`, `failed` or
/// `refunded` (with the refund's id).
pub fn derived_id(order: &Order, kind: &str, refund: Option<&str>) -> String {
    let text = format!(
        "{}\0{}\0{kind}\0{}",
        order.store,
        order.order_id,
        refund.unwrap_or_default()
    );
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("cohort-order-{kind}-{hex}")
}

/// Every event the order's history calls for so far.
pub fn derived_events(state: &OrderState) -> Vec<DerivedEvent> {
    if !state.from_resource {
        // A Segment-only store sends its own order events.
        return Vec::new();
    }
    let order = &state.order;
    let mut out = Vec::new();
    out.push(build(
        state,
        "Order Created",
        "created",
        None,
        order.created_at_us,
        summary(order),
    ));
    if let Some(paid) = state.paid_at_us() {
        out.push(build(
            state,
            "Order Completed",
            "completed",
            None,
            paid,
            revenue_properties(order),
        ));
    }
    if let Some(at) = state.statuses.get("completed") {
        let at = order.completed_at_us.unwrap_or(*at);
        out.push(build(
            state,
            "Order Fulfilled",
            "fulfilled",
            None,
            at,
            summary(order),
        ));
    }
    for (status, event) in [("cancelled", "Order Cancelled"), ("failed", "Order Failed")] {
        if let Some(at) = state.statuses.get(status) {
            out.push(build(state, event, status, None, *at, summary(order)));
        }
    }
    if state.refunds.is_empty() {
        if let Some(at) = state.statuses.get("refunded") {
            let mut props = summary(order);
            props.insert("total".into(), decimal_json(order.total));
            out.push(build(
                state,
                "Order Refunded",
                "refunded",
                Some("full"),
                *at,
                props,
            ));
        }
    }
    for (id, refund) in &state.refunds {
        let at = state
            .refunds_seen_us
            .get(id)
            .copied()
            .unwrap_or(order.modified_at_us);
        let mut props = summary(order);
        props.insert("total".into(), decimal_json(refund.amount));
        props.insert("refund_id".into(), Value::String(id.clone()));
        if let Some(reason) = &refund.reason {
            props.insert("reason".into(), Value::String(reason.clone()));
        }
        out.push(build(
            state,
            "Order Refunded",
            "refunded",
            Some(id),
            at,
            props,
        ));
    }
    out
}

fn summary(order: &Order) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("order_id".into(), Value::String(order.order_id.clone()));
    p.insert("total".into(), decimal_json(order.total));
    p.insert("currency".into(), Value::String(order.currency.clone()));
    p.insert("status".into(), Value::String(order.status.clone()));
    p
}

/// Segment's `Order Completed` properties; `revenue` excludes shipping and
/// tax, as Segment defines it.
fn revenue_properties(order: &Order) -> Map<String, Value> {
    let mut p = summary(order);
    p.remove("status");
    let revenue: Decimal = order.total - order.shipping_total - order.tax_total;
    p.insert("revenue".into(), decimal_json(revenue));
    p.insert("subtotal".into(), decimal_json(order.subtotal));
    p.insert("shipping".into(), decimal_json(order.shipping_total));
    p.insert("tax".into(), decimal_json(order.tax_total));
    p.insert("discount".into(), decimal_json(order.discount_total));
    if !order.coupons.is_empty() {
        p.insert("coupon".into(), Value::String(order.coupons.join(",")));
    }
    let products: Vec<Value> = order
        .line_items
        .iter()
        .map(|l| {
            json!({
                "product_id": l.product_id,
                "sku": l.sku,
                "name": l.name,
                "price": decimal_json(l.price),
                "quantity": decimal_json(l.quantity),
            })
        })
        .collect();
    p.insert("products".into(), Value::Array(products));
    p
}

fn build(
    state: &OrderState,
    event: &str,
    kind: &str,
    refund: Option<&str>,
    timestamp_us: i64,
    properties: Map<String, Value>,
) -> DerivedEvent {
    let order = &state.order;
    let message_id = derived_id(order, kind, refund);
    let mut context = json!({
        "cohort": {"derived": true, "store": order.store, "order": format!("{}/{}", order.store, order.order_id)},
    });
    if let Some(email) = &order.email {
        context["traits"] = json!({"email": email});
    }
    if let Some(customer) = &order.customer_id {
        context["woocommerce"] = json!({"customer_id": customer});
    }
    let time = format_rfc3339(from_micros(timestamp_us));
    let mut message = Map::new();
    message.insert("type".into(), Value::String("track".into()));
    message.insert("event".into(), Value::String(event.into()));
    message.insert("messageId".into(), Value::String(message_id.clone()));
    message.insert("timestamp".into(), Value::String(time.clone()));
    message.insert("originalTimestamp".into(), Value::String(time));
    message.insert("properties".into(), Value::Object(properties));
    message.insert("context".into(), context);
    DerivedEvent {
        message_id,
        event: event.into(),
        timestamp_us,
        source_id: order.store.clone(),
        email: order.email.clone(),
        message,
    }
}
