//! The UI's stylesheet and script, embedded and served under a name that
//! carries a hash of their content (`app-<hash>.css`): a page always
//! names the current bytes, so they can be cached for a year.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");
/// The segment editor's builder and live preview (its pages only).
const SEGMENTS_JS: &str = include_str!("assets/segments.js");

struct Names {
    css: String,
    js: String,
    segments_js: String,
}

static NAMES: LazyLock<Names> = LazyLock::new(|| Names {
    css: format!("app-{}.css", &cohort_domain::secrets::digest(CSS)[..16]),
    js: format!("app-{}.js", &cohort_domain::secrets::digest(JS)[..16]),
    segments_js: format!(
        "segments-{}.js",
        &cohort_domain::secrets::digest(SEGMENTS_JS)[..16]
    ),
});

pub(crate) fn css_url() -> String {
    format!("/app/assets/{}", NAMES.css)
}

pub(crate) fn js_url() -> String {
    format!("/app/assets/{}", NAMES.js)
}

pub(crate) fn segments_js_url() -> String {
    format!("/app/assets/{}", NAMES.segments_js)
}

/// The stylesheet or the script of the UI, by its hashed name.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = if file == NAMES.css {
        (CSS, "text/css; charset=utf-8")
    } else if file == NAMES.js {
        (JS, "text/javascript; charset=utf-8")
    } else if file == NAMES.segments_js {
        (SEGMENTS_JS, "text/javascript; charset=utf-8")
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
