//! The JS tracking SDK (`sdk/js/cohort.js`, see docs/SDK.md), built by
//! `build.rs` and embedded in the binary:
//!
//! - `GET /sdk/v1/cohort.js`: the current SDK, cached for an hour and then
//!   revalidated with its `ETag` (what sites and the WordPress plugin load);
//! - `GET /sdk/{version}/cohort.js`: the same bytes under this server's
//!   version, cached for a year as `immutable`; another version is a `404`.
//!
//! Both answer `If-None-Match` with `304`, send the gzip form (compressed
//! once, at first use) to clients that accept it, and allow any origin.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The served file, exactly as built from `sdk/js/cohort.js`.
pub(crate) const SDK_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/cohort.js"));
/// The SDK's version: the server's, as in the versioned path and in
/// `context.library.version` of every message it sends.
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

const CACHE_CURRENT: &str = "public, max-age=3600";
const CACHE_VERSIONED: &str = "public, max-age=31536000, immutable";

struct Asset {
    gzip: Vec<u8>,
    etag: HeaderValue,
    etag_gzip: HeaderValue,
}

/// Compressed and hashed once. The two encodings are two representations,
/// so they carry two strong ETags (the gzip one with a `-gz` suffix).
static ASSET: LazyLock<Asset> = LazyLock::new(|| {
    let hash = &cohort_domain::secrets::digest(SDK_JS)[..32];
    Asset {
        gzip: gzip(SDK_JS.as_bytes()),
        etag: HeaderValue::from_str(&format!("\"{hash}\""))
            .unwrap_or(HeaderValue::from_static("\"sdk\"")),
        etag_gzip: HeaderValue::from_str(&format!("\"{hash}-gz\""))
            .unwrap_or(HeaderValue::from_static("\"sdk-gz\"")),
    }
});

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail; an empty result only disables gzip.
    if encoder.write_all(bytes).is_err() {
        return Vec::new();
    }
    encoder.finish().unwrap_or_default()
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sdk_js))
        .routes(routes!(sdk_js_versioned))
}

/// The JS tracking SDK (see docs/SDK.md). Cached for an hour, then
/// revalidated with `If-None-Match`.
#[utoipa::path(
    get,
    path = "/sdk/v1/cohort.js",
    tag = "sdk",
    params(
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds"),
        ("Accept-Encoding" = Option<String>, Header, description = "`gzip` to receive the compressed form"),
    ),
    responses(
        (status = 200, description = "The SDK (`Cache-Control: public, max-age=3600`, strong `ETag`)", content_type = "application/javascript", body = String),
        (status = 304, description = "The client's copy (If-None-Match) is current"),
    )
)]
async fn sdk_js(headers: HeaderMap) -> Response {
    serve(&headers, CACHE_CURRENT)
}

/// The JS tracking SDK of this server's version, cacheable forever
/// (`immutable`): the path changes with every release.
#[utoipa::path(
    get,
    path = "/sdk/{version}/cohort.js",
    tag = "sdk",
    params(
        ("version" = String, Path, description = "This server's version, e.g. `0.1.0`"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds"),
        ("Accept-Encoding" = Option<String>, Header, description = "`gzip` to receive the compressed form"),
    ),
    responses(
        (status = 200, description = "The SDK (`Cache-Control: public, max-age=31536000, immutable`)", content_type = "application/javascript", body = String),
        (status = 304, description = "The client's copy (If-None-Match) is current"),
        (status = 404, description = "This server does not serve that version; `/sdk/v1/cohort.js` is always the current one", content_type = "text/plain", body = String),
    )
)]
async fn sdk_js_versioned(Path(version): Path<String>, headers: HeaderMap) -> Response {
    if version != SDK_VERSION {
        let message = format!("this server serves SDK version {SDK_VERSION} (/sdk/{SDK_VERSION}/cohort.js); /sdk/v1/cohort.js is always the current one\n");
        return (
            StatusCode::NOT_FOUND,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            message,
        )
            .into_response();
    }
    serve(&headers, CACHE_VERSIONED)
}

fn serve(headers: &HeaderMap, cache_control: &'static str) -> Response {
    let asset = &*ASSET;
    let use_gzip = !asset.gzip.is_empty() && accepts_gzip(headers);
    let etag = if use_gzip {
        &asset.etag_gzip
    } else {
        &asset.etag
    };
    let mut response = if not_modified(headers, asset) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if use_gzip {
        let mut r = asset.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        SDK_JS.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    h.insert(header::ETAG, etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// `If-None-Match` names either encoding's ETag (both are the same
/// script), or is `*`.
fn not_modified(headers: &HeaderMap, asset: &Asset) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*"
                || tag.as_bytes() == asset.etag.as_bytes()
                || tag.as_bytes() == asset.etag_gzip.as_bytes()
        })
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}
