//! Validation of the JSON bodies plugins send: every problem names the
//! field at fault (`400 {"error":{"code","message","field"}}`).

use cohort_domain::time::parse_rfc3339;
use serde_json::{Map, Value};

use super::ApiError;

pub const MAX_VERSION_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 300;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_ERROR_CHARS: usize = 2000;

/// A JSON object body.
pub struct Fields(Map<String, Value>);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::invalid("body", "the body must be a JSON object")),
            Err(_) => Err(ApiError::invalid("body", "the body is not valid JSON")),
        }
    }

    /// The field's value, absent when missing or null.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A string that may be absent or null (an empty string counts as absent).
    pub fn opt_text(&self, field: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.chars().count() > max {
                    return Err(ApiError::invalid(
                        field,
                        format!("{field} must have at most {max} characters"),
                    ));
                }
                Ok((!s.is_empty()).then(|| s.to_owned()))
            }
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// A string that must be present and not empty.
    pub fn text(&self, field: &str, max: usize) -> Result<String, ApiError> {
        self.opt_text(field, max)?
            .ok_or_else(|| ApiError::invalid(field, format!("{field} is required")))
    }

    /// A string that must be present but may be empty.
    pub fn text_or_empty(&self, field: &str, max: usize) -> Result<String, ApiError> {
        if self.value(field).is_none() {
            return Err(ApiError::invalid(field, format!("{field} is required")));
        }
        Ok(self.opt_text(field, max)?.unwrap_or_default())
    }

    /// An optional string cut to `max` characters rather than refused
    /// (error messages: a long one must not make a heartbeat fail).
    pub fn opt_text_cut(&self, field: &str, max: usize) -> Result<Option<String>, ApiError> {
        self.opt_text(field, usize::MAX)
            .map(|v| v.map(|s| s.chars().take(max).collect()))
    }

    /// A whole number ≥ 0 that may be absent or null.
    pub fn opt_count(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(v) => count(v).map(Some).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("{field} must be a whole number of at least 0"),
                )
            }),
        }
    }

    /// An RFC 3339 time that may be absent or null, as UTC microseconds.
    pub fn opt_time(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::String(s)) => parse_rfc3339(s)
                .map(|t| Some(t.timestamp_micros()))
                .ok_or_else(|| {
                    ApiError::invalid(field, format!("{field} must be an RFC 3339 time"))
                }),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be an RFC 3339 time"),
            )),
        }
    }

    /// A required `http(s)://` URL, normalised (see `http_url`).
    pub fn url(&self, field: &str) -> Result<String, ApiError> {
        let text = self.text(field, MAX_URL_CHARS)?;
        http_url(&text).ok_or_else(|| {
            ApiError::invalid(field, format!("{field} must be an http:// or https:// URL"))
        })
    }

    pub fn opt_url(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.opt_text(field, MAX_URL_CHARS)? {
            None => Ok(None),
            Some(text) => http_url(&text).map(Some).ok_or_else(|| {
                ApiError::invalid(field, format!("{field} must be an http:// or https:// URL"))
            }),
        }
    }

    pub fn object(&self, field: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be an object"),
            )),
        }
    }
}

pub fn count(value: &Value) -> Option<i64> {
    value.as_i64().filter(|n| *n >= 0)
}

/// `value` if it is an absolute `http://` or `https://` URL with a host and
/// without credentials or white space, with the scheme and host lower-cased
/// and a trailing `/` removed, so one store has one spelling.
pub fn http_url(value: &str) -> Option<String> {
    let value = value.trim();
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (scheme, rest) = value.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(host_end);
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        && !host.starts_with(':');
    if !host_ok {
        return None;
    }
    let mut url = format!("{scheme}://{}{tail}", host.to_ascii_lowercase());
    while url.ends_with('/') && url.len() > scheme.len() + 3 + host.len() {
        url.pop();
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::http_url;

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(
            http_url("HTTPS://Shop.Example.com/"),
            Some("https://shop.example.com".into())
        );
        assert_eq!(
            http_url("http://127.0.0.1:8081/wp/"),
            Some("http://127.0.0.1:8081/wp".into())
        );
        assert_eq!(
            http_url("https://shop.example/wp-admin/admin.php?page=cohort"),
            Some("https://shop.example/wp-admin/admin.php?page=cohort".into())
        );
        for bad in [
            "ftp://x.y",
            "javascript:alert(1)",
            "https://",
            "https://user:pw@x.y",
            "https://a b.c",
            "shop.example",
            "",
        ] {
            assert_eq!(http_url(bad), None, "{bad}");
        }
    }
}
