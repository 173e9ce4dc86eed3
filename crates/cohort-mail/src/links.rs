//! Tracking in a rendered body: every web link goes through Cohort's click
//! redirect, and an open pixel is added at the end of the body. The URLs
//! carry signed tokens ([`cohort_domain::tracking`]); the tracking
//! endpoints that serve them check the signature and need no lookup.
//!
//! Left as they are: `mailto:`, `tel:`, in-page anchors, anything not
//! http(s), and links marked `data-cohort-notrack` (the unsubscribe link:
//! a scanner following a tracked unsubscribe link must not count as a
//! click, and the link must work without the redirect).

use cohort_domain::tracking::{Tracked, TrackingKey};
use lol_html::html_content::ContentType;
use lol_html::{element, rewrite_str, RewriteStrSettings};

/// The attribute that keeps a link out of click tracking.
pub const NO_TRACK_ATTRIBUTE: &str = "data-cohort-notrack";

/// Where and how one message's links are tracked.
#[derive(Debug, Clone)]
pub struct LinkTracking<'a> {
    /// The public base of the tracking endpoints, e.g.
    /// `https://cdp.example.com` (no trailing slash needed).
    pub base_url: &'a str,
    pub key: &'a TrackingKey,
    /// The outbox message the body belongs to.
    pub message_id: &'a str,
}

impl LinkTracking<'_> {
    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// The click redirect for `url`.
    pub fn click_url(&self, url: &str) -> String {
        let token = self.key.sign(&Tracked {
            message_id: self.message_id.to_owned(),
            url: Some(url.to_owned()),
        });
        format!("{}/t/c/{token}", self.base())
    }

    /// The open pixel's address.
    pub fn open_url(&self) -> String {
        let token = self.key.sign(&Tracked {
            message_id: self.message_id.to_owned(),
            url: None,
        });
        format!("{}/t/o/{token}.gif", self.base())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the HTML could not be rewritten: {0}")]
pub struct RewriteError(String);

/// An attribute value as the browser reads it: character references
/// decoded (minijinja writes `/` as `&#x2f;` and `&` as `&amp;`).
fn decode_attribute(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|end| *end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether a link's target is a web page worth tracking.
fn trackable(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `html` with its web links through the click redirect and the open
/// pixel appended to the body (to the document when it has no `<body>`).
pub fn track(html: &str, tracking: &LinkTracking<'_>) -> Result<String, RewriteError> {
    let pixel = format!(
        r#"<img src="{}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px;" />"#,
        tracking.open_url()
    );
    let mut has_body = false;
    let rewritten = rewrite_str(
        html,
        RewriteStrSettings {
            element_content_handlers: vec![
                element!("a[href]", |el| {
                    if el.has_attribute(NO_TRACK_ATTRIBUTE) {
                        el.remove_attribute(NO_TRACK_ATTRIBUTE);
                        return Ok(());
                    }
                    if let Some(href) = el.get_attribute("href") {
                        let href = decode_attribute(href.trim());
                        if trackable(&href) {
                            el.set_attribute("href", &tracking.click_url(&href))?;
                        }
                    }
                    Ok(())
                }),
                element!("body", |el| {
                    has_body = true;
                    el.append(&pixel, ContentType::Html);
                    Ok(())
                }),
            ],
            ..RewriteStrSettings::new()
        },
    )
    .map_err(|e| RewriteError(e.to_string()))?;
    if has_body {
        Ok(rewritten)
    } else {
        Ok(format!("{rewritten}{pixel}"))
    }
}
