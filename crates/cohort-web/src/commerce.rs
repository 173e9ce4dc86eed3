//! Orders and products, filtered and paginated, money exact in the
//! store's currency.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use cohort_store::projection::{OrderFilter, ProductFilter};
use serde::{Deserialize, Serialize};

use crate::WebState;
use crate::{html, templates, Member, UiResult};

const PAGE: u32 = 50;

#[derive(Serialize)]
struct Store {
    id: String,
    name: String,
}

async fn stores(state: &WebState, member: &Member) -> Result<Vec<Store>, super::UiError> {
    Ok(state
        .db()
        .list_sources(&member.org.id)
        .await?
        .into_iter()
        .map(|s| Store {
            id: s.id.as_str().to_owned(),
            name: s.name,
        })
        .collect())
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrderParams {
    /// WooCommerce status: pending, processing, completed, …
    pub status: Option<String>,
    /// The store's source id
    pub store: Option<String>,
    /// `<created µs>_<order key>` of the last order of the previous page
    pub before: Option<String>,
}

/// Orders, newest first.
pub(crate) async fn list_orders(
    State(state): State<WebState>,
    member: Member,
    Query(p): Query<OrderParams>,
) -> UiResult {
    let status = non_empty(p.status);
    let store = non_empty(p.store);
    let before = p
        .before
        .as_deref()
        .and_then(|c| c.split_once('_'))
        .and_then(|(ts, key)| Some((ts.parse::<i64>().ok()?, key.to_owned())));
    let filter = OrderFilter {
        profile_id: None,
        status: status.clone(),
        store: store.clone(),
        before: before.clone(),
        limit: PAGE,
    };
    let orders = state.db().list_orders(&member.org.id, &filter).await?;
    let next = (orders.len() == PAGE as usize)
        .then(|| {
            orders
                .last()
                .map(|(created, o)| format!("{created}_{}", o.key))
        })
        .flatten();
    let orders: Vec<_> = orders.into_iter().map(|(_, o)| o).collect();
    let body = templates::render(
        "orders.html",
        &member.layout("orders", "Orders"),
        minijinja::context! {
            orders,
            next,
            first_page => before.is_none(),
            status => status.unwrap_or_default(),
            store => store.unwrap_or_default(),
            stores => stores(&state, &member).await?,
            statuses => ["pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"],
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProductParams {
    /// The store's source id
    pub store: Option<String>,
    /// `yes` to include deleted products
    pub deleted: Option<String>,
    /// `<store>/<product id>` of the last product of the previous page
    pub after: Option<String>,
}

/// The catalogue, by store and product id.
pub(crate) async fn list_products(
    State(state): State<WebState>,
    member: Member,
    Query(p): Query<ProductParams>,
) -> UiResult {
    let store = non_empty(p.store);
    let include_deleted = p.deleted.as_deref() == Some("yes");
    let after = p
        .after
        .as_deref()
        .and_then(|c| c.split_once('/'))
        .map(|(s, id)| (s.to_owned(), id.to_owned()));
    let filter = ProductFilter {
        store: store.clone(),
        include_deleted,
        after: after.clone(),
        limit: PAGE,
    };
    let products = state.db().list_products(&member.org.id, &filter).await?;
    let next = (products.len() == PAGE as usize)
        .then(|| {
            products
                .last()
                .map(|p| format!("{}/{}", p.product.store, p.product.product_id))
        })
        .flatten();
    let body = templates::render(
        "products.html",
        &member.layout("products", "Products"),
        minijinja::context! {
            products,
            next,
            first_page => after.is_none(),
            store => store.unwrap_or_default(),
            include_deleted,
            stores => stores(&state, &member).await?,
        },
    )?;
    Ok(html(StatusCode::OK, body))
}
