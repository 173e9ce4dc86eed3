//! The JS SDK as a browser or a CDN fetches it: `GET /sdk/v1/cohort.js` and
//! the versioned `/sdk/{version}/cohort.js`, their caching headers, ETag
//! revalidation and gzip; plus the build step that strips the source.
//! (What the SDK does in a browser is tested in crates/cohort/tests/it/sdk_browser.rs.)

mod common;

#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

use std::io::Read;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{Answer, TestApp};

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn app() -> TestApp {
    TestApp::on(cohort_testkit::sqlite().await).await
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header: {:?}", answer.headers))
}

#[tokio::test]
async fn the_sdk_is_served_as_javascript_with_an_etag_and_an_hour_of_cache() {
    let app = app().await;
    let answer = get(&app, "/sdk/v1/cohort.js", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        header(&answer, "content-type"),
        "application/javascript; charset=utf-8"
    );
    assert_eq!(header(&answer, "cache-control"), "public, max-age=3600");
    assert_eq!(header(&answer, "access-control-allow-origin"), "*");
    assert!(answer.headers.get("content-encoding").is_none());
    let etag = header(&answer, "etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "a strong ETag: {etag}"
    );

    let js = answer.text();
    assert!(
        js.starts_with(&format!("/*! Cohort JS SDK {VERSION} ")),
        "{}",
        &js[..80.min(js.len())]
    );
    assert!(
        js.contains(&format!("var VERSION='{VERSION}'")),
        "the version is filled in"
    );
    assert!(!js.contains("__COHORT_VERSION__"));
    // The source's comments are gone, its code is not.
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sdk/js/cohort.js"
    ))
    .unwrap();
    assert!(source.contains("// ---- delivery") && !js.contains("// ---- delivery"));
    assert!(js.len() < source.len());
    for api in [
        "page:function",
        "track:function",
        "identify:function",
        "alias:function",
        "group:function",
        "reset:function",
        "ready:function",
        "debug:function",
        "'/v1/batch'",
    ] {
        assert!(js.contains(api), "{api} missing from the served SDK");
    }

    // The same ETag on every request, and a 304 with no body when it matches.
    let again = get(&app, "/sdk/v1/cohort.js", &[]).await;
    assert_eq!(header(&again, "etag"), etag);
    let revalidated = get(&app, "/sdk/v1/cohort.js", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(revalidated.body.is_empty());
    assert_eq!(header(&revalidated, "etag"), etag);
    assert_eq!(
        header(&revalidated, "cache-control"),
        "public, max-age=3600"
    );
    let listed = get(
        &app,
        "/sdk/v1/cohort.js",
        &[("if-none-match", &format!("\"other\", W/{etag}"))],
    )
    .await;
    assert_eq!(
        listed.status,
        StatusCode::NOT_MODIFIED,
        "a weak form in a list matches too"
    );
    let stale = get(
        &app,
        "/sdk/v1/cohort.js",
        &[("if-none-match", "\"0123456789abcdef\"")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, answer.body);
}

#[tokio::test]
async fn the_versioned_path_is_immutable_and_other_versions_are_not_found() {
    let app = app().await;
    let current = get(&app, "/sdk/v1/cohort.js", &[]).await;
    let path = format!("/sdk/{VERSION}/cohort.js");
    let answer = get(&app, &path, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        header(&answer, "content-type"),
        "application/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&answer, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&answer, "access-control-allow-origin"), "*");
    assert_eq!(header(&answer, "etag"), header(&current, "etag"));
    assert_eq!(
        answer.body, current.body,
        "the same script under both paths"
    );
    let revalidated = get(&app, &path, &[("if-none-match", header(&current, "etag"))]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        header(&revalidated, "cache-control"),
        "public, max-age=31536000, immutable"
    );

    let other = get(&app, "/sdk/0.0.0-old/cohort.js", &[]).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(
        other.text().contains("/sdk/v1/cohort.js"),
        "{}",
        other.text()
    );
    assert!(header(&other, "cache-control").contains("no-cache"));
}

#[tokio::test]
async fn gzip_is_sent_to_clients_that_accept_it_under_its_own_etag() {
    let app = app().await;
    let plain = get(&app, "/sdk/v1/cohort.js", &[]).await;
    for accept in [
        "gzip",
        "gzip, deflate, br, zstd",
        "br;q=1.0, gzip;q=0.8",
        "*",
    ] {
        let zipped = get(&app, "/sdk/v1/cohort.js", &[("accept-encoding", accept)]).await;
        assert_eq!(zipped.status, StatusCode::OK, "{accept}");
        assert_eq!(header(&zipped, "content-encoding"), "gzip", "{accept}");
        assert_eq!(header(&zipped, "vary"), "Accept-Encoding");
        assert_eq!(
            header(&zipped, "content-type"),
            "application/javascript; charset=utf-8"
        );
        assert_ne!(
            header(&zipped, "etag"),
            header(&plain, "etag"),
            "each encoding has its own strong ETag"
        );
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&zipped.body[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, plain.body, "{accept}");
        assert!(zipped.body.len() * 2 < plain.body.len());
        let revalidated = get(
            &app,
            "/sdk/v1/cohort.js",
            &[
                ("accept-encoding", accept),
                (header::IF_NONE_MATCH.as_str(), header(&zipped, "etag")),
            ],
        )
        .await;
        assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED, "{accept}");
    }
    for refused in ["identity", "gzip;q=0", "br"] {
        let answer = get(&app, "/sdk/v1/cohort.js", &[("accept-encoding", refused)]).await;
        assert!(
            answer.headers.get("content-encoding").is_none(),
            "{refused}"
        );
        assert_eq!(answer.body, plain.body, "{refused}");
    }
}

#[tokio::test]
async fn head_answers_the_headers_without_the_script() {
    let app = app().await;
    let answer = app
        .send(
            Request::head("/sdk/v1/cohort.js")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    assert!(answer.headers.get("etag").is_some());
}

#[test]
fn the_stripper_keeps_code_strings_regexes_and_line_breaks_that_matter() {
    let strip = |s: &str| build_script::strip(s).unwrap_or_else(|e| panic!("{e}: {s}"));
    // Comments and indentation go; a notice comment stays.
    assert_eq!(
        strip("/*! notice */\n// c\n  var a = 1 // x\n  /* y */ var b = 2\n"),
        "/*! notice */\nvar a=1\nvar b=2\n"
    );
    // Comment markers inside strings, templates and regexes are content.
    assert_eq!(
        strip("var s = '// not /* a comment'"),
        "var s='// not /* a comment'\n"
    );
    assert_eq!(
        strip("var s = \"it's \\\" // \""),
        "var s=\"it's \\\" // \"\n"
    );
    assert_eq!(
        strip("var t = `a  // ${ x + { y: 1 }.y }  b`"),
        "var t=`a  // ${x+{y:1}.y}  b`\n"
    );
    assert_eq!(
        strip("var r = /[/]+\\/\\/ */g.test(s)"),
        "var r=/[/]+\\/\\/ */g.test(s)\n"
    );
    assert_eq!(
        strip("if (!/^https?:\\/\\//.test(h)) h = x"),
        "if(!/^https?:\\/\\//.test(h))h=x\n"
    );
    assert_eq!(strip("return /a b/.test(s)"), "return/a b/.test(s)\n");
    // Division stays division; no comment appears where there was none.
    assert_eq!(strip("var q = a / b / c"), "var q=a/b/c\n");
    assert_eq!(
        strip("var q = a / /b/.exec(c)[0].length"),
        "var q=a/ /b/.exec(c)[0].length\n"
    );
    // Line breaks that automatic semicolon insertion depends on stay.
    assert_eq!(strip("var a = b\n(c || d).e()"), "var a=b\n(c||d).e()\n");
    assert_eq!(strip("return\nx"), "return\nx\n");
    assert_eq!(strip("a\n++b"), "a\n++b\n");
    // Breaks after { ; , ( [ and before } ) ] go.
    assert_eq!(strip("f(a,\n  b)\n{\n  x = 1;\n}\n"), "f(a,b)\n{x=1;}\n");
    // Spaces that separate tokens stay.
    assert_eq!(
        strip("var x = a + +b - -c; typeof x; 1 .toString(); y = a++ + b"),
        "var x=a+ +b- -c;typeof x;1 .toString();y=a++ +b\n"
    );
    // Unterminated constructs and HTML-like comments are refused.
    for bad in [
        "var s = 'abc",
        "/* open",
        "var t = `x${",
        "x = /abc",
        "a <!-- b",
        "a --> b",
    ] {
        assert!(build_script::strip(bad).is_err(), "{bad}");
    }
}

/// The served file is valid JavaScript (checked by Node when available;
/// the browser tests run it in Chromium).
#[tokio::test]
async fn the_served_script_parses() {
    let app = app().await;
    let js = get(&app, "/sdk/v1/cohort.js", &[]).await.text();
    let dir = tempfile_dir();
    let file = dir.join("cohort.js");
    std::fs::write(&file, &js).unwrap();
    match std::process::Command::new("node")
        .arg("--check")
        .arg(&file)
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "node --check: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) if std::env::var("COHORT_TEST_REQUIRE_CLIENTS").as_deref() != Ok("1") => {
            cohort_testkit::skip("node --check of the SDK", "node is not installed");
        }
        Err(e) => panic!("COHORT_TEST_REQUIRE_CLIENTS=1 but node cannot run: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cohort-sdk-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn both_paths_are_in_the_openapi_document() {
    let doc = serde_json::to_value(cohort_api::openapi_document()).unwrap();
    for path in ["/sdk/v1/cohort.js", "/sdk/{version}/cohort.js"] {
        assert_eq!(doc["paths"][path]["get"]["tags"][0], "sdk", "{path}");
        assert!(
            doc["paths"][path]["get"]["responses"]["200"]["content"]["application/javascript"]
                .is_object(),
            "{path}"
        );
    }
}
