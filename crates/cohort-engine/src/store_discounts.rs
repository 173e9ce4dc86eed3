//! The client for a connected store's discount endpoints (connect.md §5):
//! every call signed with the installation's `signing_secret`
//! (`cohort_domain::discounts::signing`), answers read into typed results,
//! and the store's refusals told apart — in particular a store whose plugin
//! predates the endpoints (`404 rest_no_route`): "plugin update required",
//! which is not the same as a coupon that does not exist.
//!
//! Routes are addressed as `<store_url>/?rest_route=/cohort/v1/…`, which
//! WordPress serves whatever the permalink settings (the `/wp-json/` form
//! needs pretty permalinks); the signed REQUEST_URI is the path and query
//! exactly as sent.

use std::time::Duration;

use cohort_domain::discounts::signing::{self, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use cohort_domain::discounts::wire::{Created, Deleted, RedemptionPage, StoreDiscount};
use cohort_domain::discounts::NewDiscount;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::outbound::{Outbound, OutboundError, OutboundPolicy};

/// Where and with what a store is called.
#[derive(Clone)]
pub struct StoreTarget {
    pub store_url: String,
    pub signing_secret: String,
}

impl std::fmt::Debug for StoreTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTarget")
            .field("store_url", &self.store_url)
            .finish_non_exhaustive()
    }
}

/// Why a call did not give the answer asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreCallError {
    /// The store's plugin has no discount endpoints (WordPress answered
    /// `404 rest_no_route`, or another 404 that is not ours).
    #[error("plugin update required: the store's Cohort Connect plugin has no discount endpoints (it answered 404 {0})")]
    PluginUpdateRequired(String),
    /// The plugin answered that there is no such coupon.
    #[error("no such discount in the store")]
    NotFound,
    /// A coupon with this code exists.
    #[error("{0}")]
    Conflict(String),
    /// The plugin refused the input, naming the field (its camelCase name).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The plugin refused the signature (`401 cohort_bad_signature`, or the site is no longer connected).
    #[error("the store refused Cohort's signature ({code}): {message}")]
    SignatureRefused { code: String, message: String },
    /// WooCommerce is not active on the store.
    #[error("WooCommerce is not active on the store: {0}")]
    WooCommerceInactive(String),
    /// Any other status.
    #[error("the store answered {status} {code}: {message}")]
    Unexpected {
        status: u16,
        code: String,
        message: String,
    },
    /// The store could not be reached (DNS, connection, timeout, TLS).
    #[error("the store could not be reached: {0}")]
    Network(String),
    /// A success whose body is not what the contract says.
    #[error("the store's answer could not be read: {0}")]
    BadAnswer(String),
}

/// Why an installation cannot be called.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no installation {0} in the organisation")]
    NotFound(String),
    #[error("the installation is {0}: discounts need a connected store")]
    NotConnected(String),
    #[error(transparent)]
    Store(#[from] cohort_store::StoreError),
}

/// The store a connected installation of `org` is reached at, with its
/// signing secret. Another organisation's installation is not found.
pub async fn target_for(
    db: &cohort_store::Db,
    org: &cohort_domain::ids::OrgId,
    installation: &str,
) -> Result<StoreTarget, TargetError> {
    let summary = db
        .list_installations(org)
        .await?
        .into_iter()
        .find(|s| s.installation.id == installation);
    let Some(summary) = summary else {
        return Err(TargetError::NotFound(installation.to_owned()));
    };
    let secret = db.installation_signing_secret(org, installation).await?;
    match (summary.installation.status.as_str(), secret) {
        ("connected", Some(secret)) if !secret.is_empty() => Ok(StoreTarget {
            store_url: summary.installation.store_url,
            signing_secret: secret,
        }),
        (status, _) => Err(TargetError::NotConnected(status.to_owned())),
    }
}

/// How long one call to a store may take.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(20);

/// Answers larger than this are refused (a page of redemptions is far smaller).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A signing HTTP client for store discount endpoints. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreClient {
    http: Outbound,
}

impl StoreClient {
    /// A client whose calls time out after `timeout`, under `policy`;
    /// redirects are not followed (a redirect would change the signed
    /// REQUEST_URI).
    pub fn new(policy: OutboundPolicy, timeout: Duration) -> Result<Self, StoreCallError> {
        let http = Outbound::new(policy, timeout, Some("discounts"))
            .map_err(|e| StoreCallError::Network(e.describe()))?;
        Ok(Self { http })
    }

    /// `POST /discounts`.
    pub async fn create(
        &self,
        target: &StoreTarget,
        discount: &NewDiscount,
    ) -> Result<Created, StoreCallError> {
        let body = discount.store_body().to_string().into_bytes();
        self.call(
            target,
            reqwest::Method::POST,
            "/cohort/v1/discounts",
            &[],
            body,
        )
        .await
    }

    /// `GET /discounts/{providerId}`.
    pub async fn get(
        &self,
        target: &StoreTarget,
        provider_id: u64,
    ) -> Result<StoreDiscount, StoreCallError> {
        self.call(
            target,
            reqwest::Method::GET,
            &format!("/cohort/v1/discounts/{provider_id}"),
            &[],
            Vec::new(),
        )
        .await
    }

    /// `GET /discounts/by-code/{code}`.
    pub async fn get_by_code(
        &self,
        target: &StoreTarget,
        code: &str,
    ) -> Result<StoreDiscount, StoreCallError> {
        let route = format!("/cohort/v1/discounts/by-code/{}", encode(code));
        self.call(target, reqwest::Method::GET, &route, &[], Vec::new())
            .await
    }

    /// `DELETE /discounts/{providerId}`.
    pub async fn delete(
        &self,
        target: &StoreTarget,
        provider_id: u64,
    ) -> Result<Deleted, StoreCallError> {
        self.call(
            target,
            reqwest::Method::DELETE,
            &format!("/cohort/v1/discounts/{provider_id}"),
            &[],
            Vec::new(),
        )
        .await
    }

    /// `GET /discounts/redemptions?since=&cursor=`.
    pub async fn redemptions(
        &self,
        target: &StoreTarget,
        since: &str,
        cursor: Option<&str>,
    ) -> Result<RedemptionPage, StoreCallError> {
        let mut query = vec![("since", since)];
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        self.call(
            target,
            reqwest::Method::GET,
            "/cohort/v1/discounts/redemptions",
            &query,
            Vec::new(),
        )
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        target: &StoreTarget,
        method: reqwest::Method,
        route: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<T, StoreCallError> {
        let url = route_url(&target.store_url, route, query)?;
        let request_uri = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let now = chrono::Utc::now().timestamp();
        let signed = signing::sign(
            &target.signing_secret,
            now,
            method.as_str(),
            &request_uri,
            &body,
        );
        let mut request = self
            .http
            .request(method, url.as_str())
            .header("Accept", "application/json")
            .header(TIMESTAMP_HEADER, signed.timestamp)
            .header(NONCE_HEADER, signed.nonce)
            .header(SIGNATURE_HEADER, signed.signature);
        if !body.is_empty() {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let mut response = self
            .http
            .send(request)
            .await
            .map_err(|e| StoreCallError::Network(e.describe()))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(StoreCallError::BadAnswer(
                            "the answer is larger than 4 MiB".into(),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(StoreCallError::Network(body_error(e))),
            }
        }
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if (200..300).contains(&status) {
            let json = json.ok_or_else(|| {
                StoreCallError::BadAnswer(format!("{status} without a JSON body"))
            })?;
            return serde_json::from_value(json)
                .map_err(|e| StoreCallError::BadAnswer(e.to_string()));
        }
        Err(classify(status, json.as_ref()))
    }
}

/// Reads a refusal: WordPress's REST errors are `{code, message, data:{status, field?}}`.
pub fn classify(status: u16, body: Option<&Value>) -> StoreCallError {
    let text = |key: &str| {
        body.and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (code, message) = (text("code"), text("message"));
    match (status, code.as_str()) {
        (404, "cohort_discount_not_found") => StoreCallError::NotFound,
        (404, _) => StoreCallError::PluginUpdateRequired(if code.is_empty() {
            "without a WordPress error code".into()
        } else {
            code
        }),
        (400, _) => StoreCallError::Invalid {
            field: body
                .and_then(|b| b.pointer("/data/field"))
                .and_then(Value::as_str)
                .unwrap_or("body")
                .to_owned(),
            message,
        },
        (401, _) => StoreCallError::SignatureRefused { code, message },
        (409, _) => StoreCallError::Conflict(if message.is_empty() {
            "a discount with this code exists".into()
        } else {
            message
        }),
        (503, "cohort_woocommerce_inactive") => StoreCallError::WooCommerceInactive(message),
        _ => StoreCallError::Unexpected {
            status,
            code,
            message,
        },
    }
}

/// Percent-encodes a query value or path segment (RFC 3986 unreserved kept).
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `<store_url>/?rest_route=<route>&k=v…`
pub fn route_url(
    store_url: &str,
    route: &str,
    query: &[(&str, &str)],
) -> Result<url::Url, StoreCallError> {
    let mut base = url::Url::parse(store_url.trim()).map_err(|e| {
        StoreCallError::Network(format!("the installation's store URL is not a URL: {e}"))
    })?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(StoreCallError::Network(
            "the installation's store URL is not http(s)".into(),
        ));
    }
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let mut q = format!("rest_route={route}");
    for (k, v) in query {
        q.push('&');
        q.push_str(k);
        q.push('=');
        q.push_str(&encode(v));
    }
    base.set_query(Some(&q));
    Ok(base)
}

/// A failure while reading the answer's body.
fn body_error(error: reqwest::Error) -> String {
    OutboundError::from(error).describe()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_use_rest_route_and_encode_values() {
        let u = route_url(
            "https://shop.example/wp",
            "/cohort/v1/discounts/redemptions",
            &[
                ("since", "2026-01-01T00:00:00+01:00"),
                ("cursor", "c1.a-b_c"),
            ],
        )
        .unwrap();
        assert_eq!(u.as_str(), "https://shop.example/wp/?rest_route=/cohort/v1/discounts/redemptions&since=2026-01-01T00%3A00%3A00%2B01%3A00&cursor=c1.a-b_c");
        let u = route_url(
            "http://127.0.0.1:8080",
            &format!("/cohort/v1/discounts/by-code/{}", encode("été 20+1")),
            &[],
        )
        .unwrap();
        assert_eq!(u.path(), "/");
        assert_eq!(
            u.query(),
            Some("rest_route=/cohort/v1/discounts/by-code/%C3%A9t%C3%A9%2020%2B1")
        );
        assert!(route_url("ftp://x", "/", &[]).is_err());
    }

    #[test]
    fn refusals_are_told_apart() {
        let no_route = json!({"code": "rest_no_route", "message": "No route was found matching the URL and request method.", "data": {"status": 404}});
        assert!(
            matches!(classify(404, Some(&no_route)), StoreCallError::PluginUpdateRequired(c) if c == "rest_no_route")
        );
        assert!(matches!(
            classify(404, None),
            StoreCallError::PluginUpdateRequired(_)
        ));
        assert_eq!(
            classify(404, Some(&json!({"code": "cohort_discount_not_found"}))),
            StoreCallError::NotFound
        );
        assert_eq!(
            classify(
                400,
                Some(
                    &json!({"code": "cohort_invalid_discount", "message": "m", "data": {"status": 400, "field": "expiresAt"}})
                )
            ),
            StoreCallError::Invalid {
                field: "expiresAt".into(),
                message: "m".into()
            }
        );
        assert!(matches!(
            classify(401, Some(&json!({"code": "cohort_bad_signature"}))),
            StoreCallError::SignatureRefused { .. }
        ));
        assert!(matches!(classify(409, None), StoreCallError::Conflict(_)));
        assert!(matches!(
            classify(503, Some(&json!({"code": "cohort_woocommerce_inactive"}))),
            StoreCallError::WooCommerceInactive(_)
        ));
        assert!(matches!(
            classify(500, None),
            StoreCallError::Unexpected { status: 500, .. }
        ));
    }
}
