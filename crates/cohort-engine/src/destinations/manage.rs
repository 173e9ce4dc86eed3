//! What operators give to create and edit destinations, checked field by
//! field (the admin API and the CLI share it), and how a destination is
//! shown: secrets masked, never in full after the one answer that creates
//! or rotates them.

use std::collections::BTreeMap;

use cohort_domain::destinations::everflow::{
    EverflowSettings, SourceKind, DEFAULT_ATTRIBUTION_WINDOW_DAYS,
};
use cohort_domain::destinations::{mask_secret, mask_url, webhook, DestinationKind};
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::destinations::{Destination, DestinationSecrets, Filters, NewDestination};
use serde_json::{json, Map, Value};

/// Message types a filter may name.
pub const MESSAGE_TYPES: [&str; 7] = [
    "track", "identify", "page", "screen", "group", "alias", "resource",
];

/// A field at fault (`settings.url`, `filters.types`, …) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// [`crate::outbound::check_url`] with the destinations' flag.
async fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let policy = crate::outbound::OutboundPolicy {
        allow_private_addresses: allow_private,
    };
    crate::outbound::check_url(url, policy).await
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A new destination as given.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub kind: String,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub filters: Option<Value>,
    pub settings: Value,
    pub secrets: Option<Value>,
}

/// An edit: only the parts given change. `settings` keys replace those
/// stored; a `secrets` key set to `null` removes that secret.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub filters: Option<Value>,
    pub settings: Option<Value>,
    pub secrets: Option<Value>,
}

/// A checked new destination, with the signing secret generated for it
/// (shown once) when none was given.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub new: NewDestination,
    pub generated_secret: Option<String>,
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, FieldError> {
    value
        .as_object()
        .ok_or_else(|| bad(field, "must be a JSON object"))
}

fn name_of(name: Option<String>, kind: DestinationKind) -> Result<String, FieldError> {
    let name = name
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|| kind.as_str().to_owned());
    if name.is_empty() || name.chars().count() > 200 {
        return Err(bad("name", "must be 1 to 200 characters"));
    }
    Ok(name)
}

/// Checks `filters`: `{"events": [names], "types": [types]}`, both optional.
pub fn parse_filters(value: &Value) -> Result<Filters, FieldError> {
    let map = object(value, "filters")?;
    let mut filters = Filters::default();
    for (key, v) in map {
        let field = format!("filters.{key}");
        let list = match key.as_str() {
            "events" | "types" => v
                .as_array()
                .ok_or_else(|| bad(&field, "must be an array of strings"))?,
            _ => return Err(bad(field, "unknown filter; use events and types")),
        };
        let mut names = Vec::with_capacity(list.len());
        for item in list {
            let text = item
                .as_str()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad(&field, "must be an array of non-empty strings"))?;
            if key == "types" && !MESSAGE_TYPES.contains(&text) {
                return Err(bad(
                    field,
                    format!("unknown type {text:?}; one of {}", MESSAGE_TYPES.join(", ")),
                ));
            }
            names.push(text.to_owned());
        }
        if key == "events" {
            filters.events = names;
        } else {
            filters.types = names;
        }
    }
    Ok(filters)
}

/// The secrets an operator may give for a destination type.
fn secret_names(kind: DestinationKind) -> &'static [&'static str] {
    match kind {
        DestinationKind::Everflow => &["verification_token", "api_key"],
        DestinationKind::Webhook => &["signing_secret"],
    }
}

/// Applies given secrets onto `secrets` (`null` removes one).
fn apply_secrets(
    kind: DestinationKind,
    given: &Value,
    secrets: &mut DestinationSecrets,
) -> Result<(), FieldError> {
    for (key, v) in object(given, "secrets")? {
        let field = format!("secrets.{key}");
        if !secret_names(kind).contains(&key.as_str()) {
            return Err(bad(
                field,
                format!(
                    "unknown secret for a {kind} destination; use {}",
                    secret_names(kind).join(", ")
                ),
            ));
        }
        let value = match v {
            Value::Null => None,
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => {
                return Err(bad(
                    field,
                    "must be a non-empty string, or null to remove it",
                ))
            }
        };
        match key.as_str() {
            "signing_secret" => {
                let value = value.ok_or_else(|| {
                    bad(
                        &field,
                        "a webhook needs a signing secret; rotate it instead",
                    )
                })?;
                if webhook::secret_key(&value).is_none_or(|k| k.len() < 24) {
                    return Err(bad(
                        field,
                        "must be whsec_ followed by the base64 of at least 24 random bytes",
                    ));
                }
                secrets.signing_secret = Some(value);
            }
            "verification_token" => secrets.verification_token = value,
            _ => secrets.api_key = value,
        }
    }
    Ok(())
}

/// Checks and normalises a type's settings (secrets found in them move to
/// `secrets`); returns the settings to store.
async fn check_settings(
    kind: DestinationKind,
    settings: &Value,
    secrets: &mut DestinationSecrets,
    allow_private: bool,
) -> Result<Value, FieldError> {
    let map = object(settings, "settings")?;
    match kind {
        DestinationKind::Webhook => {
            for key in map.keys() {
                if key != "url" {
                    return Err(bad(
                        format!("settings.{key}"),
                        "unknown setting of a webhook; use url",
                    ));
                }
            }
            let url = map
                .get("url")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| bad("settings.url", "is required"))?;
            check_url(url, allow_private)
                .await
                .map_err(|m| bad("settings.url", m))?;
            Ok(json!({ "url": url }))
        }
        DestinationKind::Everflow => {
            const KNOWN: [&str; 8] = [
                "tracking_domain",
                "network_id",
                "advertiser_id",
                "event_mapping",
                "source_kind",
                "attribution_window_days",
                "verification_token",
                "api_key",
            ];
            for key in map.keys() {
                if !KNOWN.contains(&key.as_str()) {
                    return Err(bad(
                        format!("settings.{key}"),
                        format!("unknown Everflow setting; use {}", KNOWN[..6].join(", ")),
                    ));
                }
            }
            let text = |key: &str, required: bool| -> Result<Option<String>, FieldError> {
                match map.get(key) {
                    None | Some(Value::Null) if !required => Ok(None),
                    None | Some(Value::Null) => Err(bad(format!("settings.{key}"), "is required")),
                    Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
                    Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
                    Some(_) => Err(bad(format!("settings.{key}"), "must be a non-empty string")),
                }
            };
            let tracking_domain = text("tracking_domain", true)?.unwrap_or_default();
            let network_id = text("network_id", true)?.unwrap_or_default();
            let advertiser_id = text("advertiser_id", false)?;
            let mut event_mapping = BTreeMap::new();
            let mapping = map.get("event_mapping").ok_or_else(|| {
                bad(
                    "settings.event_mapping",
                    "is required, e.g. {\"Order Completed\": 0}",
                )
            })?;
            for (event, id) in object(mapping, "settings.event_mapping")? {
                let id = match id {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    bad(
                        "settings.event_mapping",
                        format!("{event:?} must map to an Everflow event id (0 = base conversion)"),
                    )
                })?;
                event_mapping.insert(event.clone(), id);
            }
            let source_kind = match map.get("source_kind").and_then(Value::as_str) {
                None if map.get("source_kind").is_none_or(Value::is_null) => SourceKind::All,
                Some("all") => SourceKind::All,
                Some("mobile") => SourceKind::Mobile,
                _ => return Err(bad("settings.source_kind", "must be all or mobile")),
            };
            let attribution_window_days = match map.get("attribution_window_days") {
                None | Some(Value::Null) => DEFAULT_ATTRIBUTION_WINDOW_DAYS,
                Some(v) => v
                    .as_u64()
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| {
                        bad(
                            "settings.attribution_window_days",
                            "must be a whole number of days",
                        )
                    })?,
            };
            // Secrets never stay in the plain settings.
            if let Some(token) = text("verification_token", false)? {
                secrets.verification_token = Some(token);
            }
            if let Some(key) = text("api_key", false)? {
                secrets.api_key = Some(key);
            }
            let settings = EverflowSettings {
                tracking_domain,
                network_id,
                verification_token: None,
                advertiser_id,
                event_mapping,
                source_kind,
                attribution_window_days,
            };
            settings
                .validate()
                .map_err(|(field, message)| bad(format!("settings.{field}"), message))?;
            if !allow_private && !settings.tracking_domain.trim().starts_with("https://") {
                return Err(bad(
                    "settings.tracking_domain",
                    "must be https:// (Everflow refuses plain HTTP postbacks)",
                ));
            }
            check_url(&settings.tracking_domain, allow_private)
                .await
                .map_err(|m| bad("settings.tracking_domain", m))?;
            serde_json::to_value(&settings).map_err(|e| bad("settings", e.to_string()))
        }
    }
}

/// The default filters of a type: an Everflow destination receives the
/// events of its mapping, a webhook everything.
fn default_filters(kind: DestinationKind, settings: &Value) -> Filters {
    match kind {
        DestinationKind::Everflow => Filters {
            events: settings
                .get("event_mapping")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            types: Vec::new(),
        },
        DestinationKind::Webhook => Filters::default(),
    }
}

/// Checks a new destination.
pub async fn prepare(input: Input, allow_private: bool) -> Result<Prepared, FieldError> {
    let Some(kind) = DestinationKind::parse(&input.kind.trim().to_ascii_lowercase()) else {
        let kinds: Vec<&str> = DestinationKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(bad(
            "type",
            format!(
                "unknown destination type {:?}; one of {}",
                input.kind,
                kinds.join(", ")
            ),
        ));
    };
    let name = name_of(input.name, kind)?;
    let mut secrets = DestinationSecrets::default();
    if let Some(given) = &input.secrets {
        apply_secrets(kind, given, &mut secrets)?;
    }
    let settings = check_settings(kind, &input.settings, &mut secrets, allow_private).await?;
    let mut generated_secret = None;
    if kind == DestinationKind::Webhook && secrets.signing_secret.is_none() {
        let secret = webhook::new_secret();
        secrets.signing_secret = Some(secret.clone());
        generated_secret = Some(secret);
    }
    let filters = match &input.filters {
        Some(f) if !f.is_null() => parse_filters(f)?,
        _ => default_filters(kind, &settings),
    };
    Ok(Prepared {
        new: NewDestination {
            kind,
            name,
            enabled: input.enabled.unwrap_or(true),
            filters,
            settings,
            secrets,
        },
        generated_secret,
    })
}

/// Applies an edit to `d`, checking the result as a whole. An Everflow
/// destination whose filters were its mapping's keys keeps following its
/// mapping unless filters are given.
pub async fn apply(
    d: &mut Destination,
    patch: Patch,
    allow_private: bool,
) -> Result<(), FieldError> {
    if let Some(name) = patch.name {
        d.name = name_of(Some(name), d.kind)?;
    }
    if let Some(enabled) = patch.enabled {
        d.enabled = enabled;
    }
    let mut secrets = d.secrets.clone();
    if let Some(given) = &patch.secrets {
        apply_secrets(d.kind, given, &mut secrets)?;
    }
    let followed_mapping = d.filters == default_filters(d.kind, &d.settings);
    if let Some(given) = &patch.settings {
        let mut merged = d.settings.as_object().cloned().unwrap_or_default();
        for (k, v) in object(given, "settings")? {
            merged.insert(k.clone(), v.clone());
        }
        d.settings =
            check_settings(d.kind, &Value::Object(merged), &mut secrets, allow_private).await?;
    }
    match &patch.filters {
        Some(f) if !f.is_null() => d.filters = parse_filters(f)?,
        Some(_) => d.filters = default_filters(d.kind, &d.settings),
        None if followed_mapping => d.filters = default_filters(d.kind, &d.settings),
        None => {}
    }
    d.secrets = secrets;
    Ok(())
}

/// Starts a rotation of a webhook's signing secret: a new secret signs from
/// now on, and the old one too until `grace_us` has passed, so receivers
/// can switch without rejecting a delivery. Returns the new secret.
pub fn rotate(d: &mut Destination, grace_us: i64, now_us: i64) -> Result<String, FieldError> {
    if d.kind != DestinationKind::Webhook {
        return Err(bad(
            "type",
            "only webhook destinations have signing secrets",
        ));
    }
    let secret = webhook::new_secret();
    d.secrets.previous_signing_secret = d.secrets.signing_secret.replace(secret.clone());
    d.secrets.previous_expires_at_us = Some(now_us.saturating_add(grace_us));
    Ok(secret)
}

fn time(us: i64) -> String {
    format_rfc3339(from_micros(us))
}

/// A destination as shown: settings with URLs masked, secrets masked.
pub fn view(d: &Destination, now_us: i64) -> Value {
    let mut settings = d.settings.clone();
    for key in ["url", "tracking_domain"] {
        if let Some(Value::String(u)) = settings.get_mut(key) {
            *u = mask_url(u);
        }
    }
    if let Some(map) = settings.as_object_mut() {
        map.remove("verification_token");
    }
    let mut secrets = Map::new();
    let s = &d.secrets;
    for (name, value) in [
        ("signing_secret", &s.signing_secret),
        ("verification_token", &s.verification_token),
        ("api_key", &s.api_key),
    ] {
        if let Some(v) = value {
            secrets.insert(name.into(), Value::String(mask_secret(v)));
        }
    }
    if let (Some(previous), Some(until)) = (&s.previous_signing_secret, s.previous_expires_at_us) {
        if until > now_us {
            secrets.insert(
                "previous_signing_secret".into(),
                Value::String(mask_secret(previous)),
            );
            secrets.insert("previous_valid_until".into(), Value::String(time(until)));
        }
    }
    json!({
        "id": d.id,
        "type": d.kind,
        "name": d.name,
        "enabled": d.enabled,
        "filters": { "events": d.filters.events, "types": d.filters.types },
        "settings": settings,
        "secrets": secrets,
        "created_at": time(d.created_at_us),
        "updated_at": time(d.updated_at_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everflow(settings: Value) -> Input {
        Input {
            kind: "everflow".into(),
            settings,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn everflow_filters_default_to_the_mapping_and_secrets_leave_the_settings() {
        let p = prepare(
            everflow(json!({"tracking_domain": "https://www.abc123trk.com", "network_id": 7, "event_mapping": {"Order Completed": 0, "Purchase": "24"}, "verification_token": "vt_12345678901234567890"})),
            false,
        )
        .await
        .unwrap();
        assert_eq!(p.new.filters.events, ["Order Completed", "Purchase"]);
        assert_eq!(p.new.settings["network_id"], "7");
        assert_eq!(p.new.settings["event_mapping"]["Purchase"], 24);
        assert!(p
            .new
            .settings
            .get("verification_token")
            .is_none_or(Value::is_null));
        assert_eq!(
            p.new.secrets.verification_token.as_deref(),
            Some("vt_12345678901234567890")
        );
    }

    #[tokio::test]
    async fn errors_name_the_field() {
        let field = |r: Result<Prepared, FieldError>| r.unwrap_err().field;
        assert_eq!(
            field(
                prepare(
                    Input {
                        kind: "ftp".into(),
                        settings: json!({}),
                        ..Default::default()
                    },
                    true
                )
                .await
            ),
            "type"
        );
        let ok = json!({"tracking_domain": "https://t.example", "network_id": "7", "event_mapping": {"A": 0}});
        let mut m = ok.clone();
        m["event_mapping"] = json!({"A": -1});
        assert_eq!(
            field(prepare(everflow(m), true).await),
            "settings.event_mapping"
        );
        let mut m = ok.clone();
        m["tracking_domain"] = json!("not a url");
        assert_eq!(
            field(prepare(everflow(m), true).await),
            "settings.tracking_domain"
        );
        let mut m = ok.clone();
        m["tracking_domain"] = json!("http://t.example");
        assert_eq!(
            field(prepare(everflow(m), false).await),
            "settings.tracking_domain",
            "plain HTTP in production"
        );
        let mut m = ok.clone();
        m["network_id"] = json!("abc");
        assert_eq!(
            field(prepare(everflow(m), true).await),
            "settings.network_id"
        );
        let mut i = everflow(ok.clone());
        i.filters = Some(json!({"types": ["bogus"]}));
        assert_eq!(field(prepare(i, true).await), "filters.types");
        let mut i = everflow(ok.clone());
        i.filters = Some(json!({"names": []}));
        assert_eq!(field(prepare(i, true).await), "filters.names");
        let hook = |url: &str| Input {
            kind: "webhook".into(),
            settings: json!({"url": url}),
            ..Default::default()
        };
        assert_eq!(
            field(prepare(hook("http://127.0.0.1:9/x"), false).await),
            "settings.url"
        );
        assert_eq!(
            field(prepare(hook("http://localhost/x"), false).await),
            "settings.url"
        );
        assert_eq!(
            field(prepare(hook("http://[::1]/x"), false).await),
            "settings.url"
        );
        assert_eq!(
            field(prepare(hook("ftp://x.example/"), true).await),
            "settings.url"
        );
        let mut i = hook("http://127.0.0.1:9/x");
        i.secrets = Some(json!({"signing_secret": "plain"}));
        assert_eq!(field(prepare(i, true).await), "secrets.signing_secret");
        let p = prepare(hook("http://127.0.0.1:9/x"), true).await.unwrap();
        assert!(p.generated_secret.unwrap().starts_with("whsec_"));
    }
}
