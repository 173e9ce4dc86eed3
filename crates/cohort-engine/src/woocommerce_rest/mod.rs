//! No-plugin mode (connect.md §6): a WooCommerce store connected through
//! WooCommerce's own REST API and webhooks. The HTTP side (starting a
//! connection, the keys callback, webhook deliveries) is `cohort-api`'s;
//! here are the background pull (`worker`), its REST client (`client`) and
//! what both sides share.

pub mod client;
pub mod worker;

/// The webhook topics registered with the store (connect.md §6).
pub const WEBHOOK_TOPICS: [&str; 10] = [
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "product.created",
    "product.updated",
    "product.deleted",
];

/// The authorize URL WooCommerce shows the merchant.
pub fn authorize_url(store_url: &str, state: &str, return_url: &str, callback_url: &str) -> String {
    use client::encode;
    format!(
        "{store_url}/wc-auth/v1/authorize?app_name=Cohort&scope=read_write&user_id={}&return_url={}&callback_url={}",
        encode(state),
        encode(return_url),
        encode(callback_url)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_urls_carry_the_state_and_encoded_urls() {
        let url = authorize_url(
            "https://shop.example",
            "wcs_abc",
            "https://cdp.example/app",
            "https://cdp.example/connect/v1/woocommerce/callback",
        );
        assert_eq!(
            url,
            "https://shop.example/wc-auth/v1/authorize?app_name=Cohort&scope=read_write&user_id=wcs_abc\
             &return_url=https%3A%2F%2Fcdp.example%2Fapp&callback_url=https%3A%2F%2Fcdp.example%2Fconnect%2Fv1%2Fwoocommerce%2Fcallback"
        );
    }
}
