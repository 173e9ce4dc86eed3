//! What one logged event says about people: its identities, the traits it
//! sets, and the commerce facts it carries. Pure reading; the decisions are
//! in `fold`.

use serde_json::{Map, Value};

use crate::commerce::{self, normalize_email, woocommerce, Cart, Customer, Order, Product};

use super::identity::Identity;
use super::LogEvent;

/// The commerce fact of an event, if it has one.
#[derive(Debug, Clone)]
pub enum Commerce {
    None,
    /// A WooCommerce order snapshot (sync, webhook, pull).
    OrderSnapshot(Order),
    /// A Segment order event from a store without WooCommerce.
    OrderEvent {
        order: Order,
        event: String,
        refund: Option<rust_decimal::Decimal>,
    },
    Customer(Customer),
    Product {
        product: Product,
        deleted: bool,
    },
    /// `Cart Started`, `Product Added`, …: the cart as described.
    Cart(Cart),
    CheckoutStarted(Cart),
    CartCleared,
}

#[derive(Debug, Clone)]
pub struct Interpretation {
    /// Person identities, strongest first (user id, email, store customer,
    /// anonymous id).
    pub identities: Vec<Identity>,
    pub user_id: Option<String>,
    /// `alias`: the earlier id being linked to `user_id`.
    pub previous_id: Option<String>,
    /// Identities that only group events (an order's id), never a person.
    pub links: Vec<Identity>,
    /// Traits this event sets on its profile.
    pub traits: Map<String, Value>,
    pub commerce: Commerce,
    pub event: Option<String>,
    /// Cohort derived this event itself (from an order's state).
    pub derived: bool,
    /// The event could not be read as its kind claims (kept in the log;
    /// it still lands on its profile).
    pub problem: Option<String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn id_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    match cur {
        Value::String(s) if !s.trim().is_empty() && s.trim() != "0" => Some(s.trim().to_owned()),
        Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => Some(n.to_string()),
        _ => None,
    }
}

pub fn interpret(e: &LogEvent) -> Interpretation {
    let m = &e.message;
    let mut it = Interpretation {
        identities: Vec::new(),
        user_id: None,
        previous_id: None,
        links: Vec::new(),
        traits: Map::new(),
        commerce: Commerce::None,
        event: str_at(m, &["event"]).map(str::to_owned),
        derived: m
            .pointer("/context/cohort/derived")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        problem: None,
    };
    let mut emails: Vec<String> = Vec::new();
    let mut store_customers: Vec<String> = Vec::new();

    if it.derived {
        // A derived order event belongs with its order, wherever the order is.
        if let Some(order) = str_at(m, &["context", "cohort", "order"]) {
            it.links.push(Identity::order(order));
        }
    }
    if e.message_type == "resource" {
        read_resource(e, &mut it, &mut emails, &mut store_customers);
    } else {
        it.user_id = str_at(m, &["userId"]).map(str::to_owned);
        if e.message_type == "alias" {
            it.previous_id = str_at(m, &["previousId"]).map(str::to_owned);
        }
        if e.message_type == "identify" {
            if let Some(traits) = m.get("traits").and_then(Value::as_object) {
                it.traits = traits.clone();
            }
        }
        for path in [
            &["traits", "email"][..],
            &["context", "traits", "email"],
            &["email"],
        ] {
            if let Some(email) = str_at(m, path).and_then(normalize_email) {
                emails.push(email);
            }
        }
        if let Some(email) = it
            .traits
            .get("email")
            .and_then(Value::as_str)
            .and_then(normalize_email)
        {
            it.traits.insert("email".into(), Value::String(email));
        }
        if let Some(customer) = id_at(m, &["context", "woocommerce", "customer_id"]) {
            store_customers.push(format!("{}/{customer}", e.source_id));
        }
        // Everflow's click id, as the SDK forwards it from `_ef_transaction_id`.
        if str_at(m, &["context", "referrer", "type"]) == Some("everflow") {
            if let Some(id) = str_at(m, &["context", "referrer", "id"]) {
                it.traits
                    .insert("ef_transaction_id".into(), Value::String(id.to_owned()));
            }
        }
        if e.message_type == "track" {
            read_track(e, &mut it, emails.first().map(String::as_str));
        }
    }

    if let Some(user) = &it.user_id {
        it.identities.push(Identity::user(user));
    }
    emails.dedup();
    for email in emails {
        let id = Identity::email(&email);
        if !it.identities.contains(&id) {
            it.identities.push(id);
        }
    }
    for customer in store_customers {
        it.identities.push(Identity::store_customer(&customer));
    }
    if let Some(anon) = str_at(m, &["anonymousId"]) {
        it.identities.push(Identity::anonymous(anon));
    }
    if let Some(previous) = &it.previous_id {
        // The earlier id is an anonymous id or another user id; the fold
        // decides which. Both keep the alias in the cluster of either.
        let anon = Identity::anonymous(previous);
        if !it.identities.contains(&anon) {
            it.identities.push(anon);
        }
        it.links.push(Identity::user(previous));
    }
    it
}

fn read_track(e: &LogEvent, it: &mut Interpretation, email: Option<&str>) {
    let empty = Map::new();
    let props = e
        .message
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let Some(event) = it.event.clone() else {
        return;
    };
    let result = match event.as_str() {
        "Order Completed" | "Order Cancelled" | "Order Refunded" if !it.derived => {
            commerce::segment::parse_order_event(&e.source_id, &event, props, e.timestamp_us, email)
                .and_then(|order| {
                    it.links.push(Identity::order(&format!(
                        "{}/{}",
                        order.store, order.order_id
                    )));
                    let refund = if event == "Order Refunded" {
                        commerce::segment::parse_refund_amount(props)?
                    } else {
                        None
                    };
                    it.commerce = Commerce::OrderEvent {
                        order,
                        event: event.clone(),
                        refund,
                    };
                    Ok(())
                })
        }
        "Cart Started" | "Cart Updated" | "Cart Viewed" | "Product Added" | "Product Removed" => {
            commerce::segment::parse_cart(props, e.timestamp_us)
                .map(|cart| it.commerce = Commerce::Cart(cart))
        }
        "Checkout Started" => commerce::segment::parse_cart(props, e.timestamp_us)
            .map(|cart| it.commerce = Commerce::CheckoutStarted(cart)),
        "Cart Cleared" => {
            it.commerce = Commerce::CartCleared;
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(problem) = result {
        it.problem = Some(problem.to_string());
    }
}

fn read_resource(
    e: &LogEvent,
    it: &mut Interpretation,
    emails: &mut Vec<String>,
    customers: &mut Vec<String>,
) {
    let m = &e.message;
    let topic = str_at(m, &["topic"]).unwrap_or_default();
    let resource = m.get("resource").unwrap_or(&Value::Null);
    let result = woocommerce::parse_topic(topic).and_then(|(kind, action)| match kind {
        woocommerce::ResourceKind::Order => {
            let order = woocommerce::parse_order(&e.source_id, resource)?;
            if let Some(email) = &order.email {
                emails.push(email.clone());
            }
            if let Some(customer) = &order.customer_id {
                customers.push(format!("{}/{customer}", e.source_id));
            }
            if order.customer_id.is_none() {
                // A guest's billing name is all Cohort knows of them.
                for key in ["first_name", "last_name", "phone"] {
                    if let Some(v) = order
                        .billing
                        .get(key)
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                    {
                        it.traits.insert(key.into(), Value::String(v.to_owned()));
                    }
                }
            }
            if let Some(email) = &order.email {
                it.traits
                    .insert("email".into(), Value::String(email.clone()));
            }
            it.links.push(Identity::order(&format!(
                "{}/{}",
                order.store, order.order_id
            )));
            // A deleted order is kept as its last state, marked.
            let mut order = order;
            if action == "deleted" {
                order.status = "trash".into();
            }
            it.commerce = Commerce::OrderSnapshot(order);
            Ok(())
        }
        woocommerce::ResourceKind::Customer => {
            let customer = woocommerce::parse_customer(&e.source_id, resource)?;
            if let Some(email) = &customer.email {
                emails.push(email.clone());
            }
            customers.push(format!("{}/{}", e.source_id, customer.customer_id));
            it.traits = customer.traits.clone();
            it.commerce = Commerce::Customer(customer);
            Ok(())
        }
        woocommerce::ResourceKind::Product => {
            let currency = str_at(m, &["currency"]);
            let product = woocommerce::parse_product(&e.source_id, currency, resource)?;
            it.commerce = Commerce::Product {
                product,
                deleted: action == "deleted",
            };
            Ok(())
        }
    });
    if let Err(problem) = result {
        it.problem = Some(problem.to_string());
    }
}
