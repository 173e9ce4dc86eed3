//! Skips that can be seen: a test that cannot run a real part (no
//! PostgreSQL, no browser, no WooCommerce …) says so on stderr, which
//! `cargo test` hides for a passing test, and appends a line to the file
//! named by `COHORT_TEST_SKIP_LOG`, which `scripts/test.sh` creates and
//! lists as the last lines of its output.

use std::io::Write;

/// The environment variable naming the file skips are appended to.
pub const SKIP_LOG_VAR: &str = "COHORT_TEST_SKIP_LOG";

/// The reason of a skip for want of WooCommerce, which no package registry
/// serves: the only skip CI tolerates (`scripts/test.sh` matches this text).
pub const WOOCOMMERCE_NOT_SET: &str = "COHORT_WOOCOMMERCE_DIR is not set";

/// Records that the running test skipped `what` because of `reason`: one
/// line `<package>/<test binary>/<test>\t<what>: <reason>` in the skip log,
/// and a loud line on stderr.
pub fn skip(what: &str, reason: &str) {
    let test = current_test();
    let reason = one_line(&format!("{what}: {reason}"));
    eprintln!("\n*** SKIPPED {test}: {reason} ***\n");
    let Ok(path) = std::env::var(SKIP_LOG_VAR) else {
        return;
    };
    // One write of one short line to a file opened for appending: lines of
    // tests running at once (threads, test binaries) do not interleave.
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{test}\t{reason}\n").as_bytes()));
    if let Err(error) = appended {
        eprintln!("could not record the skip in {path} ({SKIP_LOG_VAR}): {error}");
    }
}

/// `<package>/<test binary>/<test>`, e.g. `cohort/it/wordpress_plugin::runs`:
/// `cargo test -p cohort --test it wordpress_plugin::runs` runs it again.
fn current_test() -> String {
    // Cargo sets CARGO_PKG_NAME for the test binaries it runs.
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "?".into());
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, _hash)) => name.to_owned(),
            None => stem,
        })
        .unwrap_or_else(|| "?".into());
    // The test harness names each test's thread after the test.
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" && !name.starts_with("tokio-") => name,
        _ => "?",
    };
    format!("{package}/{binary}/{test}")
}

fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reason_stays_on_one_line_of_the_log() {
        assert_eq!(super::one_line("a\tb\nc"), "a b c");
    }

    #[test]
    fn the_test_is_named_after_package_binary_and_test() {
        assert_eq!(
            super::current_test(),
            "cohort-testkit/cohort_testkit/skip::tests::the_test_is_named_after_package_binary_and_test"
        );
    }
}
