//! Walking a webhook's JSON with errors that name the field by its path
//! (`bounce.bouncedRecipients[0].emailAddress`), so a rejected webhook
//! says exactly what was wrong. Typed serde structs would say "missing
//! field `emailAddress`" without saying where.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::BounceError;

/// The body parsed, as the root node.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, BounceError> {
    serde_json::from_slice(body).map_err(|e| BounceError::Json(e.to_string()))
}

/// A value and where it is in the payload.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: String::new(),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The field `key` of this object; `None` when absent or null (or when
    /// this is not an object).
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        let value = self.value.as_object()?.get(key)?;
        (!value.is_null()).then(|| Node {
            value,
            path: self.child_path(key),
        })
    }

    /// The field `key`, which must be there.
    pub fn req(&self, key: &str) -> Result<Node<'a>, BounceError> {
        self.get(key)
            .ok_or_else(|| BounceError::missing(self.child_path(key)))
    }

    pub fn as_str(&self) -> Result<&'a str, BounceError> {
        self.value
            .as_str()
            .ok_or_else(|| BounceError::invalid(&self.path, "should be a string"))
    }

    /// The string field `key`, which must be there.
    pub fn req_str(&self, key: &str) -> Result<&'a str, BounceError> {
        self.req(key)?.as_str()
    }

    /// The string field `key` if present; an error if it is not a string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, BounceError> {
        self.get(key).map(|node| node.as_str()).transpose()
    }

    /// The items of this array.
    pub fn items(&self) -> Result<Vec<Node<'a>>, BounceError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| BounceError::invalid(&self.path, "should be an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(index, value)| Node {
                value,
                path: format!("{}[{index}]", self.path),
            })
            .collect())
    }

    /// This must be an object.
    pub fn expect_object(&self) -> Result<(), BounceError> {
        if self.value.is_object() {
            Ok(())
        } else {
            let what = if self.path.is_empty() {
                "the body".to_owned()
            } else {
                self.path.clone()
            };
            Err(BounceError::invalid(what, "should be an object"))
        }
    }

    /// The RFC 3339 time in field `key`, if present.
    pub fn opt_rfc3339(&self, key: &str) -> Result<Option<DateTime<Utc>>, BounceError> {
        let Some(node) = self.get(key) else {
            return Ok(None);
        };
        let text = node.as_str()?;
        cohort_domain::time::parse_rfc3339(text)
            .map(Some)
            .ok_or_else(|| BounceError::invalid(node.path, "is not an RFC 3339 time"))
    }

    /// The Unix time (seconds, possibly fractional) in field `key`, if
    /// present.
    pub fn opt_unix_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, BounceError> {
        let Some(node) = self.get(key) else {
            return Ok(None);
        };
        let seconds = node
            .value
            .as_f64()
            .or_else(|| node.value.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| BounceError::invalid(&node.path, "should be a Unix time"))?;
        unix_time(seconds)
            .map(Some)
            .ok_or_else(|| BounceError::invalid(node.path, "is out of range"))
    }
}

/// `seconds` since the epoch, to the microsecond.
fn unix_time(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() || seconds.abs() > 1e13 {
        return None;
    }
    let micros = (seconds * 1e6).round();
    // In range: |seconds| <= 1e13 keeps micros within i64.
    Utc.timestamp_micros(micros as i64).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_path() {
        let value: Value =
            serde_json::from_str(r#"{"a": {"list": [{"x": 1}, {"y": null}]}}"#).unwrap();
        let root = Node::root(&value);
        let list = root.req("a").unwrap().req("list").unwrap().items().unwrap();
        assert_eq!(
            list[0].req_str("x"),
            Err(BounceError::invalid("a.list[0].x", "should be a string"))
        );
        assert_eq!(
            list[1].req_str("y"),
            Err(BounceError::missing("a.list[1].y"))
        );
        assert_eq!(root.opt_str("b"), Ok(None));
    }

    #[test]
    fn unix_times_keep_microseconds_and_refuse_nonsense() {
        let value: Value =
            serde_json::from_str(r#"{"t": 1529692199.626182, "s": "1513299569", "bad": 1e300}"#)
                .unwrap();
        let root = Node::root(&value);
        let t = root.opt_unix_time("t").unwrap().unwrap();
        assert_eq!(t.timestamp(), 1_529_692_199);
        assert_eq!(t.timestamp_subsec_micros(), 626_182);
        assert_eq!(
            root.opt_unix_time("s").unwrap().map(|t| t.timestamp()),
            Some(1_513_299_569)
        );
        assert!(root.opt_unix_time("bad").is_err());
    }
}
