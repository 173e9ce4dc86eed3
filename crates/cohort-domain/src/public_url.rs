//! The URL browsers reach this server at, from the configured public URL or
//! else the request's own headers. Shared by the API (the settings document,
//! the connect flow) and the UI (snippets, `Secure` cookies); takes header
//! values as text so it stays free of any HTTP library.

/// `("https", "cdp.example.com")` from the configured public URL, else the
/// request's `Host` (and `X-Forwarded-Proto` from a proxy).
pub fn public_host(
    public_url: Option<&str>,
    host_header: Option<&str>,
    forwarded_proto: Option<&str>,
) -> (&'static str, String) {
    if let Some(url) = public_url.filter(|u| !u.is_empty()) {
        let (protocol, rest) = match url.split_once("://") {
            Some(("https", rest)) => ("https", rest),
            Some((_, rest)) => ("http", rest),
            None => ("https", url),
        };
        return (protocol, rest.trim_end_matches('/').to_owned());
    }
    let host = host_header.unwrap_or("127.0.0.1:8080").to_owned();
    let protocol = if forwarded_https(forwarded_proto) {
        "https"
    } else {
        "http"
    };
    (protocol, host)
}

/// Whether a proxy in front says the browser used HTTPS
/// (`X-Forwarded-Proto: https`).
pub fn forwarded_https(forwarded_proto: Option<&str>) -> bool {
    forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_url_wins_over_the_request() {
        assert_eq!(
            public_host(Some("https://cdp.example.com/"), Some("10.0.0.1"), None),
            ("https", "cdp.example.com".to_owned())
        );
        assert_eq!(
            public_host(Some("http://cdp.example.com"), None, Some("https")),
            ("http", "cdp.example.com".to_owned())
        );
    }

    #[test]
    fn without_a_configured_url_the_host_and_proxy_header_decide() {
        assert_eq!(
            public_host(None, Some("shop.test:8080"), Some("HTTPS")),
            ("https", "shop.test:8080".to_owned())
        );
        assert_eq!(
            public_host(Some(""), None, None),
            ("http", "127.0.0.1:8080".to_owned())
        );
    }
}
