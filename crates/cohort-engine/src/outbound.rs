//! The one outbound HTTP policy. Every request Cohort makes to an address
//! someone gave it — a destination's receiver, a connected store's plugin,
//! a WooCommerce REST API — goes through an [`Outbound`] client, so every
//! such request:
//!
//! - refuses private, loopback, link-local, unspecified (and broadcast,
//!   documentation, multicast, carrier-grade NAT) addresses unless the
//!   configuration allows them: literal IPs before sending, names on every
//!   address they resolve to, at every request (a name that changes its
//!   answer after a check is still refused);
//! - follows no redirect (a redirect could lead to a refused address, and
//!   would change a signed request's URI) and ignores proxy variables;
//! - times out, and says who it is (`Cohort/<version>`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What outbound requests may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allows private, loopback and link-local receivers (tests, LANs).
    pub allow_private_addresses: bool,
}

impl OutboundPolicy {
    /// The default: only public addresses.
    pub const PUBLIC_ONLY: Self = Self {
        allow_private_addresses: false,
    };
    /// Everything, private addresses included.
    pub const ALLOW_PRIVATE: Self = Self {
        allow_private_addresses: true,
    };

    /// Whether a request may be sent to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private_addresses || !is_private(ip)
    }
}

/// Is this address one an outbound request must not reach by default?
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Why a request was not sent, or failed on the way.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The policy refuses the target, or the URL is not http(s).
    #[error("{0}")]
    Refused(String),
    /// DNS (a name resolving to a refused address included), connection,
    /// TLS, timeout or body errors; the text never holds the URL (it may
    /// carry a token).
    #[error("{message}")]
    Transport {
        message: String,
        timeout: bool,
        connect: bool,
    },
}

impl From<reqwest::Error> for OutboundError {
    fn from(error: reqwest::Error) -> Self {
        Self::transport(error)
    }
}

impl OutboundError {
    fn transport(error: reqwest::Error) -> Self {
        let error = error.without_url();
        Self::Transport {
            timeout: error.is_timeout(),
            connect: error.is_connect(),
            message: error_chain(&error),
        }
    }

    /// The text for an operator: what failed (`timed out`, `connection
    /// failed`, `request failed`, or the refusal) and why.
    pub fn describe(&self) -> String {
        match self {
            Self::Refused(why) => why.clone(),
            Self::Transport {
                message,
                timeout,
                connect,
            } => {
                let what = if *timeout {
                    "timed out"
                } else if *connect {
                    "connection failed"
                } else {
                    "request failed"
                };
                format!("{what}: {message}")
            }
        }
    }
}

/// An error and its sources, `outer: inner: …`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The refusal of a literal address.
const REFUSED_LITERAL: &str = "private address refused (allow_private_addresses is off)";

/// Resolves names and refuses them when any address is private.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| is_private(a.ip())) {
                return Err(format!("{host} resolves to a private address; refused").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// An HTTP client under the policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: OutboundPolicy,
}

impl Outbound {
    /// A client whose requests time out after `timeout`; `purpose` is added
    /// to the user agent (`Cohort/0.1.0 (discounts)`).
    pub fn new(
        policy: OutboundPolicy,
        timeout: Duration,
        purpose: Option<&str>,
    ) -> Result<Self, OutboundError> {
        let version = env!("CARGO_PKG_VERSION");
        let user_agent = match purpose {
            Some(purpose) => format!("Cohort/{version} ({purpose})"),
            None => format!("Cohort/{version}"),
        };
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(user_agent);
        if !policy.allow_private_addresses {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder.build().map_err(OutboundError::transport)?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> OutboundPolicy {
        self.policy
    }

    /// A request to build; send it with [`Outbound::send`].
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request` if the policy allows its target.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OutboundError> {
        let request = request.build().map_err(|error| {
            let bad_url =
                std::error::Error::source(&error).is_some_and(|s| s.is::<url::ParseError>());
            if bad_url {
                OutboundError::Refused("not an http(s) URL".into())
            } else {
                OutboundError::transport(error)
            }
        })?;
        self.check_target(request.url())?;
        self.client
            .execute(request)
            .await
            .map_err(OutboundError::transport)
    }

    /// http(s) only; a literal IP host must be allowed (names are checked
    /// by the resolver, on every address they resolve to).
    fn check_target(&self, url: &reqwest::Url) -> Result<(), OutboundError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::Refused("not an http(s) URL".into()));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if !self.policy.allows(ip) => {
                Err(OutboundError::Refused(REFUSED_LITERAL.into()))
            }
            _ => Ok(()),
        }
    }
}

/// Checks a URL an operator gives (a destination, a store): http(s) with a
/// host, and — unless the policy allows private addresses — not a private,
/// loopback or link-local address (literal, `localhost`, or a name
/// resolving to one). A name that does not resolve now is accepted (the
/// resolver checks again at every request).
pub async fn check_url(text: &str, policy: OutboundPolicy) -> Result<(), String> {
    let url =
        url::Url::parse(text.trim()).map_err(|_| "must be an absolute http(s) URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    let host = match url.host() {
        Some(h) => h.to_owned(),
        None => return Err("must have a host".into()),
    };
    if policy.allow_private_addresses {
        return Ok(());
    }
    let refused = || {
        Err("is a private or loopback address; refused (destinations.allow_private_addresses is off)".to_owned())
    };
    match host {
        url::Host::Ipv4(ip) if is_private(IpAddr::V4(ip)) => refused(),
        url::Host::Ipv6(ip) if is_private(IpAddr::V6(ip)) => refused(),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return refused();
            }
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::time::timeout(
                Duration::from_secs(3),
                tokio::net::lookup_host((name.as_str(), port)),
            )
            .await;
            match lookup {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.iter().any(|a| is_private(a.ip())) {
                        refused()
                    } else {
                        Ok(())
                    }
                }
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_unspecified_addresses_are_private() {
        for refused in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip(refused)), "{refused}");
            assert!(
                !OutboundPolicy::PUBLIC_ONLY.allows(ip(refused)),
                "{refused}"
            );
            assert!(
                OutboundPolicy::ALLOW_PRIVATE.allows(ip(refused)),
                "{refused}"
            );
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(!is_private(ip(public)), "{public}");
            assert!(OutboundPolicy::PUBLIC_ONLY.allows(ip(public)), "{public}");
        }
        assert_eq!(OutboundPolicy::default(), OutboundPolicy::PUBLIC_ONLY);
    }

    #[tokio::test]
    async fn operator_urls_are_checked_against_the_policy() {
        let strict = OutboundPolicy::PUBLIC_ONLY;
        for refused in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/",
            "http://localhost:3000/",
            "https://shop.localhost/",
            "http://10.1.2.3/",
        ] {
            let why = check_url(refused, strict).await.unwrap_err();
            assert!(why.contains("private"), "{refused}: {why}");
            assert_eq!(
                check_url(refused, OutboundPolicy::ALLOW_PRIVATE).await,
                Ok(())
            );
        }
        assert_eq!(
            check_url("https://93.184.216.34/hook", strict).await,
            Ok(())
        );
        assert!(check_url("ftp://example.com/", strict).await.is_err());
        assert!(check_url("not a url", OutboundPolicy::ALLOW_PRIVATE)
            .await
            .is_err());
    }

    /// A local receiver: refused by the strict client (by literal and by
    /// name, before anything is sent), reached by the allowing one.
    #[tokio::test]
    async fn requests_to_private_addresses_are_refused_unless_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
            let answer =
                b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            tokio::io::AsyncWriteExt::write_all(&mut socket, answer)
                .await
                .unwrap();
            String::from_utf8_lossy(&buffer).into_owned()
        });
        let timeout = Duration::from_secs(5);
        let strict = Outbound::new(OutboundPolicy::PUBLIC_ONLY, timeout, None).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
        ] {
            let refused = strict
                .send(strict.request(reqwest::Method::GET, &url))
                .await
                .unwrap_err();
            assert!(
                refused.to_string().contains("private address"),
                "{url}: {refused}"
            );
        }
        let ftp = strict
            .send(strict.request(reqwest::Method::GET, "ftp://93.184.216.34/"))
            .await
            .unwrap_err();
        assert!(matches!(ftp, OutboundError::Refused(_)), "{ftp}");

        let allowing =
            Outbound::new(OutboundPolicy::ALLOW_PRIVATE, timeout, Some("tests")).unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        let answer = allowing
            .send(allowing.request(reqwest::Method::GET, &url))
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 204);
        let request = served.await.unwrap().to_ascii_lowercase();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            request.contains(&format!("user-agent: cohort/{version} (tests)")),
            "{request}"
        );
    }
}
