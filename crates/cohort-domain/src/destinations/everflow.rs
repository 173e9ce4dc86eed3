//! Everflow postbacks, exactly as `shared/spec/everflow.md`: which events
//! are sent (the event mapping, `0` = the base conversion), the transaction
//! id and its fallbacks, the seed's whole field mapping (all sources and
//! mobile sources, with types checked, never coerced), and the request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::commerce::parse_decimal;

/// One Everflow destination's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EverflowSettings {
    /// The base of the postback URL, e.g. `https://www.abc123trk.com`.
    pub tracking_domain: String,
    /// `nid`
    pub network_id: String,
    #[serde(default)]
    pub verification_token: Option<String>,
    #[serde(default)]
    pub advertiser_id: Option<String>,
    /// Cohort event name → Everflow advertiser event id; `0` is the base
    /// conversion. Events not listed are not forwarded.
    pub event_mapping: BTreeMap<String, u64>,
    /// `all` (the default: mobile rules apply to events with `context.app`)
    /// or `mobile` (mobile rules for every event).
    #[serde(default)]
    pub source_kind: SourceKind,
    /// How old the profile's last Everflow transaction id may be, relative
    /// to the event, to stand in for a missing one (days; default 30).
    #[serde(default = "default_window_days")]
    pub attribution_window_days: u32,
}

/// Everflow's default click attribution window.
pub const DEFAULT_ATTRIBUTION_WINDOW_DAYS: u32 = 30;

fn default_window_days() -> u32 {
    DEFAULT_ATTRIBUTION_WINDOW_DAYS
}

/// A click recorded a little after the conversion (clock skew between the
/// browser's identify and the server's order) still counts.
pub const PROFILE_CLOCK_SKEW_US: i64 = 5 * 60 * 1_000_000;

/// The profile's transaction id when it may stand in for the event's own:
/// `trait_at_us` (when the profile last got `ef_transaction_id`) lies within
/// the attribution window before the event (`event_at_us`), up to a few
/// minutes after it.
pub fn profile_transaction_id(
    value: Option<&Value>,
    trait_at_us: Option<i64>,
    event_at_us: i64,
    window_days: u32,
) -> Option<String> {
    let id = non_empty_text(value)?;
    let at = trait_at_us?;
    let window = i64::from(window_days).saturating_mul(86_400_000_000);
    (at >= event_at_us.saturating_sub(window)
        && at <= event_at_us.saturating_add(PROFILE_CLOCK_SKEW_US))
    .then_some(id)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    All,
    Mobile,
}

/// Why an event is not sent; written to the delivery log as `skipped: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("event not in the mapping")]
    NotMapped,
    #[error("no transaction id")]
    NoTransactionId,
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field} must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
}

/// A postback ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postback {
    /// The URL to `GET`.
    pub url: String,
    /// The same URL with the verification token masked, for logs and the UI.
    pub masked_url: String,
    /// The query parameters, in order.
    pub params: Vec<(String, String)>,
    /// `None` for the base conversion.
    pub adv_event_id: Option<u64>,
}

impl EverflowSettings {
    /// Checks the settings an operator gives; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let domain = self.tracking_domain.trim();
        let parsed = url::Url::parse(domain).map_err(|_| {
            (
                "tracking_domain",
                "must be a URL like https://www.abc123trk.com".to_owned(),
            )
        })?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err((
                "tracking_domain",
                "must be an http(s) URL with a host".into(),
            ));
        }
        if self.network_id.trim().is_empty()
            || !self.network_id.trim().bytes().all(|b| b.is_ascii_digit())
        {
            return Err(("network_id", "must be Everflow's numeric network id".into()));
        }
        if self.event_mapping.is_empty() {
            return Err((
                "event_mapping",
                "map at least one event, e.g. {\"Order Completed\": 0}".into(),
            ));
        }
        if self.event_mapping.keys().any(|k| k.trim().is_empty()) {
            return Err(("event_mapping", "event names must not be empty".into()));
        }
        if !(1..=365).contains(&self.attribution_window_days) {
            return Err((
                "attribution_window_days",
                "must be between 1 and 365".into(),
            ));
        }
        Ok(())
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn non_empty_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The transaction id: `context.referrer.id` when `context.referrer.type` is
/// `everflow`, then `properties.transaction_id`, `properties.transactionId`,
/// `integrations.Everflow.transaction_id`, then the profile's last one
/// (within the attribution window, which the caller applies).
pub fn transaction_id(message: &Value, from_profile: Option<&str>) -> Option<String> {
    let referrer = (at(message, &["context", "referrer", "type"]).and_then(Value::as_str)
        == Some("everflow"))
    .then(|| non_empty_text(at(message, &["context", "referrer", "id"])))
    .flatten();
    referrer
        .or_else(|| non_empty_text(at(message, &["properties", "transaction_id"])))
        .or_else(|| non_empty_text(at(message, &["properties", "transactionId"])))
        .or_else(|| non_empty_text(at(message, &["integrations", "Everflow", "transaction_id"])))
        .or_else(|| {
            from_profile
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    TextOrNumber,
    TextNumberOrBool,
    Number,
    Bool,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::TextOrNumber => "a string or a number",
            Kind::TextNumberOrBool => "a string, a number or a boolean",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
        }
    }

    /// The parameter's text, or `None` if the value has the wrong type.
    fn render(self, v: &Value) -> Option<String> {
        match (self, v) {
            (Kind::Text | Kind::TextOrNumber | Kind::TextNumberOrBool, Value::String(s)) => {
                Some(s.clone())
            }
            (Kind::TextOrNumber | Kind::TextNumberOrBool | Kind::Number, Value::Number(n)) => {
                // Exact decimal text: 27.50 stays 27.5, never float-rounded.
                parse_decimal(v, "")
                    .ok()
                    .map(|d| d.normalize().to_string())
                    .or_else(|| Some(n.to_string()))
            }
            (Kind::TextNumberOrBool | Kind::Bool, Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// (path in the message, Everflow parameter, type) for every source, in
/// the order of Everflow's documented postback (`amount`, `order_id`,
/// `coupon_code`, `email`, …). `order_id` is handled on its own (two names).
const ALL_SOURCES: [(&[&str], &str, Kind); 11] = [
    (&["properties", "total"], "amount", Kind::Number),
    (&["properties", "coupon"], "coupon_code", Kind::TextOrNumber),
    (&["context", "traits", "email"], "email", Kind::Text),
    (&["properties", "adv1"], "adv1", Kind::TextNumberOrBool),
    (&["properties", "adv2"], "adv2", Kind::TextNumberOrBool),
    (&["properties", "adv3"], "adv3", Kind::TextNumberOrBool),
    (&["properties", "adv4"], "adv4", Kind::TextNumberOrBool),
    (&["properties", "adv5"], "adv5", Kind::TextNumberOrBool),
    (&["properties", "affiliateId"], "affiliate_id", Kind::Number),
    (&["context", "ip"], "conversion_user_ip", Kind::Text),
    (&["context", "userAgent"], "http_user_agent", Kind::Text),
];

/// Mobile sources, additionally: (path, parameter, type, required).
const MOBILE_SOURCES: [(&[&str], &str, Kind, bool); 12] = [
    (&["context", "app", "namespace"], "app_id", Kind::Text, true),
    (&["context", "app", "name"], "app_name", Kind::Text, false),
    (
        &["context", "app", "version"],
        "app_version",
        Kind::TextOrNumber,
        false,
    ),
    (
        &["context", "device", "manufacturer"],
        "device_make",
        Kind::Text,
        false,
    ),
    (
        &["context", "device", "model"],
        "device_model",
        Kind::Text,
        false,
    ),
    (
        &["context", "network", "carrier"],
        "carrier",
        Kind::Text,
        false,
    ),
    (&["context", "os", "name"], "os", Kind::Text, false),
    (
        &["context", "os", "version"],
        "os_version",
        Kind::TextOrNumber,
        false,
    ),
    (
        &["context", "location", "latitude"],
        "latitude",
        Kind::Number,
        false,
    ),
    (
        &["context", "location", "longitude"],
        "longitude",
        Kind::Number,
        false,
    ),
    // Handled below: limit_ad_tracking, connection_type.
    (
        &["context", "device", "adTrackingEnabled"],
        "limit_ad_tracking",
        Kind::Bool,
        false,
    ),
    (
        &["context", "network", "wifi"],
        "connection_type",
        Kind::Text,
        false,
    ),
];

fn dotted(path: &[&str]) -> String {
    path.join(".")
}

/// Builds the postback for one event, or says why it is skipped.
/// `profile_transaction_id` is the last Everflow transaction id seen on the
/// event's profile within the attribution window (the last fallback).
pub fn build_postback(
    settings: &EverflowSettings,
    message: &Value,
    profile_transaction_id: Option<&str>,
) -> Result<Postback, Skip> {
    let event = message
        .get("event")
        .and_then(Value::as_str)
        .ok_or(Skip::NotMapped)?;
    let adv_event_id = *settings.event_mapping.get(event).ok_or(Skip::NotMapped)?;
    let tid = transaction_id(message, profile_transaction_id).ok_or(Skip::NoTransactionId)?;

    let mut params: Vec<(String, String)> = vec![
        ("nid".into(), settings.network_id.trim().to_owned()),
        ("transaction_id".into(), tid),
    ];
    if adv_event_id != 0 {
        params.push(("adv_event_id".into(), adv_event_id.to_string()));
    }

    let mobile =
        settings.source_kind == SourceKind::Mobile || at(message, &["context", "app"]).is_some();
    if mobile && at(message, &["context", "ip"]).is_none() {
        return Err(Skip::Missing("context.ip"));
    }
    for (i, (path, param, kind)) in ALL_SOURCES.iter().enumerate() {
        if i == 1 {
            // Order id: `orderId`, or Segment's `order_id`; string ids kept as given.
            if let Some(v) = at(message, &["properties", "orderId"])
                .or_else(|| at(message, &["properties", "order_id"]))
            {
                let text = Kind::TextOrNumber
                    .render(v)
                    .ok_or_else(|| Skip::WrongType {
                        field: "properties.orderId".into(),
                        expected: "a number or a string",
                    })?;
                params.push(("order_id".into(), text));
            }
        }
        if let Some(v) = at(message, path) {
            let text = kind.render(v).ok_or_else(|| Skip::WrongType {
                field: dotted(path),
                expected: kind.expected(),
            })?;
            params.push(((*param).into(), text));
        }
    }
    if mobile {
        for (path, param, kind, required) in MOBILE_SOURCES {
            let Some(v) = at(message, path) else {
                if required {
                    // `app_id` is the one required mobile field besides the IP.
                    return Err(Skip::Missing("context.app.namespace"));
                }
                continue;
            };
            let text = match param {
                // Everflow asks whether tracking is *limited*; Segment says
                // whether it is *enabled*.
                "limit_ad_tracking" => v.as_bool().map(|enabled| (!enabled).to_string()),
                // Segment's libraries send `wifi` as a boolean.
                "connection_type" => match v {
                    Value::Bool(true) => Some("wifi".into()),
                    Value::Bool(false) => Some("cellular".into()),
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                },
                _ => kind.render(v),
            };
            let text = text.ok_or_else(|| Skip::WrongType {
                field: dotted(path),
                expected: if param == "connection_type" {
                    "a string or a boolean"
                } else {
                    kind.expected()
                },
            })?;
            params.push((param.into(), text));
        }
    }
    // Line items, as Everflow's own SDK sends them: `order={"items":[…]}`.
    if let Some(products) = at(message, &["properties", "products"]) {
        let products = products.as_array().ok_or(Skip::WrongType {
            field: "properties.products".into(),
            expected: "an array",
        })?;
        let mut items = Vec::with_capacity(products.len());
        for (i, p) in products.iter().enumerate() {
            let mut item = serde_json::Map::new();
            for (key, kind) in [
                ("sku", Kind::Text),
                ("name", Kind::Text),
                ("quantity", Kind::Number),
            ] {
                if let Some(v) = p.get(key).filter(|v| !v.is_null()) {
                    let field = format!("properties.products[{i}].{key}");
                    let text = kind.render(v).ok_or_else(|| Skip::WrongType {
                        field,
                        expected: kind.expected(),
                    })?;
                    let value = if key == "quantity" {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    } else {
                        Value::String(text)
                    };
                    item.insert(key.into(), value);
                }
            }
            items.push(Value::Object(item));
        }
        if !items.is_empty() {
            params.push(("order".into(), json!({"items": items}).to_string()));
        }
    }
    if let Some(token) = settings
        .verification_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        params.push(("verification_token".into(), token.to_owned()));
    }

    let base = settings.tracking_domain.trim().trim_end_matches('/');
    let query = |mask: bool| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            q.append_pair(
                k,
                if mask && k == "verification_token" {
                    "***"
                } else {
                    v
                },
            );
        }
        q.finish()
    };
    Ok(Postback {
        url: format!("{base}/?{}", query(false)),
        masked_url: format!("{base}/?{}", query(true)),
        params,
        adv_event_id: (adv_event_id != 0).then_some(adv_event_id),
    })
}

/// What one row of the seed's field mapping would send for an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    /// The parameter's text, as the postback would carry it.
    Sends(String),
    /// The event has no value there.
    Missing,
    /// The value has the wrong type: the whole event would be skipped.
    WrongType(String),
    /// A mobile field of an event that is not mobile: not sent.
    NotMobile,
}

/// One row of the seed's field mapping table ("Segment property → Everflow
/// parameter"), with the value an event would send through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldPreview {
    /// Where the value comes from, e.g. `properties.total`.
    pub source: String,
    /// The Everflow parameter, e.g. `amount`.
    pub parameter: String,
    /// The types accepted, e.g. `a number`.
    pub expected: &'static str,
    pub required: bool,
    /// A row of the seed's "Mobile Sources" table.
    pub mobile: bool,
    pub value: FieldValue,
}

/// The seed's whole field mapping (all sources, then mobile sources) with,
/// for `message`, the value each field would send — by the same rules as
/// [`build_postback`], so the page shows what a delivery would carry.
pub fn preview_fields(settings: &EverflowSettings, message: &Value) -> Vec<FieldPreview> {
    let mobile =
        settings.source_kind == SourceKind::Mobile || at(message, &["context", "app"]).is_some();
    let value_of = |v: Option<&Value>, kind: Kind| match v {
        None => FieldValue::Missing,
        Some(v) => kind
            .render(v)
            .map(FieldValue::Sends)
            .unwrap_or_else(|| FieldValue::WrongType(format!("must be {}", kind.expected()))),
    };
    let mut rows = Vec::new();
    for (i, (path, param, kind)) in ALL_SOURCES.iter().enumerate() {
        if i == 1 {
            let v = at(message, &["properties", "orderId"])
                .or_else(|| at(message, &["properties", "order_id"]));
            let value = match v {
                None => FieldValue::Missing,
                Some(v) => Kind::TextOrNumber
                    .render(v)
                    .map(FieldValue::Sends)
                    .unwrap_or_else(|| {
                        FieldValue::WrongType("must be a number or a string".into())
                    }),
            };
            rows.push(FieldPreview {
                source: "properties.orderId".into(),
                parameter: "order_id".into(),
                expected: "a number or a string",
                required: false,
                mobile: false,
                value,
            });
        }
        rows.push(FieldPreview {
            source: dotted(path),
            parameter: (*param).into(),
            expected: kind.expected(),
            required: false,
            mobile: false,
            value: value_of(at(message, path), *kind),
        });
    }
    let products = at(message, &["properties", "products"]);
    for (key, kind) in [
        ("quantity", Kind::Number),
        ("name", Kind::Text),
        ("sku", Kind::Text),
    ] {
        let value = match products {
            None => FieldValue::Missing,
            Some(Value::Array(items)) => {
                let mut texts = Vec::new();
                let mut wrong = None;
                for p in items {
                    match p.get(key).filter(|v| !v.is_null()) {
                        None => {}
                        Some(v) => match kind.render(v) {
                            Some(t) => texts.push(t),
                            None => wrong = Some(format!("must be {}", kind.expected())),
                        },
                    }
                }
                match wrong {
                    Some(w) => FieldValue::WrongType(w),
                    None if texts.is_empty() => FieldValue::Missing,
                    None => FieldValue::Sends(texts.join(", ")),
                }
            }
            Some(_) => FieldValue::WrongType("properties.products must be an array".into()),
        };
        rows.push(FieldPreview {
            source: format!("properties.products[i].{key}"),
            parameter: format!("order_line_items[i].{key}"),
            expected: kind.expected(),
            required: false,
            mobile: false,
            value,
        });
    }
    let ip = at(message, &["context", "ip"]);
    rows.push(FieldPreview {
        source: "context.ip".into(),
        parameter: "conversion_user_ip".into(),
        expected: Kind::Text.expected(),
        required: true,
        mobile: true,
        value: if mobile {
            value_of(ip, Kind::Text)
        } else {
            FieldValue::NotMobile
        },
    });
    for (path, param, kind, required) in MOBILE_SOURCES {
        let value = if !mobile {
            FieldValue::NotMobile
        } else {
            match (param, at(message, path)) {
                (_, None) => FieldValue::Missing,
                ("limit_ad_tracking", Some(v)) => v
                    .as_bool()
                    .map(|enabled| FieldValue::Sends((!enabled).to_string()))
                    .unwrap_or_else(|| FieldValue::WrongType("must be a boolean".into())),
                ("connection_type", Some(v)) => match v {
                    Value::Bool(true) => FieldValue::Sends("wifi".into()),
                    Value::Bool(false) => FieldValue::Sends("cellular".into()),
                    Value::String(s) => FieldValue::Sends(s.clone()),
                    _ => FieldValue::WrongType("must be a string or a boolean".into()),
                },
                (_, v) => value_of(v, kind),
            }
        };
        rows.push(FieldPreview {
            source: dotted(path),
            parameter: param.into(),
            expected: kind.expected(),
            required,
            mobile: true,
            value,
        });
    }
    rows
}

#[cfg(test)]
mod tests;
