//! Destinations (Everflow postbacks, signed webhooks): the list with each
//! one's health, the create and edit forms (Everflow's event mapping
//! editor, a webhook's URL and filters), pause, resume, delete, rotate a
//! signing secret (shown once), *send test conversion* (the exact request,
//! masked, and the receiver's answer), the seed's Everflow field mapping
//! with what the last matching event would send, and the delivery log with
//! filters, seek paging, one delivery's detail and replay.
//!
//! Every check is `cohort_engine::destinations::manage`'s, shared with the admin
//! API and the CLI: its `FieldError` becomes an inline error on the form
//! naming the field, with the values given kept.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Form;
use cohort_domain::destinations::everflow::{self, EverflowSettings};
use cohort_domain::destinations::{mask_url, DestinationKind};
use cohort_engine::destinations::log_filter::DeliveryQuery;
use cohort_engine::destinations::manage::{self, FieldError};
use cohort_engine::destinations::{Dispatcher, EventPeople, TestEvent};
use cohort_store::destinations::{DeliveryFilter, Destination};
use cohort_store::now_micros;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::sources::DoneParams;
use crate::WebState;
use crate::{html, redirect, session, templates, with_cookie, Member, UiError, UiResult};
use cohort_engine::views::deliveries::{delivery_view, DeliveryView};

/// Deliveries on a page of the log.
const PAGE: i64 = 50;
/// Deliveries shown on a destination's page.
const RECENT: i64 = 10;
/// Mapping rows offered on the form beyond those set (more with the script).
const BLANK_ROWS: usize = 2;
/// How long a rotated signing secret keeps signing too.
const ROTATION_GRACE_HOURS: i64 = 24;

fn dispatcher(state: &WebState) -> Result<&Dispatcher, UiError> {
    state.destinations().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Destinations are off",
            "This server runs without destinations: start it with a destinations key.",
        )
    })
}

async fn load(state: &WebState, member: &Member, id: &str) -> Result<Destination, UiError> {
    let key = dispatcher(state)?.key();
    Ok(state.db().get_destination(&member.org.id, key, id).await?)
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "Destination created. It receives the events that arrive from now on; send a test conversion to check it.",
        "saved" => "Saved.",
        "rotated" => "Signing secret rotated. The previous one keeps signing too for 24 hours, so receivers can switch.",
        "paused" => "Paused. Events arriving meanwhile are delivered once you resume.",
        "resumed" => "Resumed. Events that arrived while paused are being delivered.",
        "deleted" => "Destination deleted, with its delivery log.",
        "replayed" => "Failed deliveries queued again: they are sent within seconds.",
        "replayed_one" => "Delivery queued again: it is sent within seconds.",
        "not_failed" => "Only a failed delivery can be replayed; this one was left as it is.",
        _ => return None,
    })
}

/// The `Form` of a destination page, as ordered pairs (the mapping editor
/// and the type checkboxes repeat their names).
#[derive(Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A trimmed, non-empty value.
    fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One row of the event mapping editor.
#[derive(Debug, Clone, Serialize)]
struct MappingRow {
    event: String,
    id: String,
}

/// The values a form shows: the stored destination, or what was posted.
#[derive(Debug, Clone, Default, Serialize)]
struct FormValues {
    kind: String,
    name: String,
    tracking_domain: String,
    tracking_domain_masked: Option<String>,
    network_id: String,
    advertiser_id: String,
    source_kind: String,
    attribution_window_days: String,
    mapping: Vec<MappingRow>,
    url: String,
    url_masked: Option<String>,
    filter_events: String,
    filter_types: Vec<String>,
    /// Masked secrets that are set (`verification_token` → `***abcd`).
    secrets: Map<String, Value>,
}

fn with_blank_rows(mut rows: Vec<MappingRow>) -> Vec<MappingRow> {
    rows.extend((0..BLANK_ROWS).map(|_| MappingRow {
        event: String::new(),
        id: String::new(),
    }));
    rows
}

/// A URL for an edit form: shown when it holds no secret; otherwise the
/// field stays empty (empty keeps it) with the masked URL beside it.
fn editable_url(url: &str) -> (String, Option<String>) {
    let masked = mask_url(url);
    if masked == url {
        (url.to_owned(), None)
    } else {
        (String::new(), Some(masked))
    }
}

impl FormValues {
    fn blank(kind: &str) -> Self {
        let everflow = kind == "everflow";
        FormValues {
            kind: kind.to_owned(),
            name: if everflow {
                "Everflow".into()
            } else {
                "Webhook".into()
            },
            source_kind: "all".into(),
            attribution_window_days: everflow::DEFAULT_ATTRIBUTION_WINDOW_DAYS.to_string(),
            mapping: with_blank_rows(if everflow {
                vec![MappingRow {
                    event: "Order Completed".into(),
                    id: "0".into(),
                }]
            } else {
                Vec::new()
            }),
            ..Default::default()
        }
    }

    fn of(d: &Destination) -> Self {
        let s = &d.settings;
        let text = |key: &str| match s.get(key) {
            Some(Value::String(v)) => v.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let (tracking_domain, tracking_domain_masked) = editable_url(&text("tracking_domain"));
        let (url, url_masked) = editable_url(&text("url"));
        let mapping = s
            .get("event_mapping")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(event, id)| MappingRow {
                        event: event.clone(),
                        id: id.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let view = manage::view(d, now_micros());
        FormValues {
            kind: d.kind.as_str().to_owned(),
            name: d.name.clone(),
            tracking_domain,
            tracking_domain_masked,
            network_id: text("network_id"),
            advertiser_id: text("advertiser_id"),
            source_kind: if text("source_kind").is_empty() {
                "all".into()
            } else {
                text("source_kind")
            },
            attribution_window_days: text("attribution_window_days"),
            mapping: with_blank_rows(mapping),
            url,
            url_masked,
            filter_events: d.filters.events.join("\n"),
            filter_types: d.filters.types.clone(),
            secrets: view
                .get("secrets")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// What was posted, shown again with an error (secrets never).
    fn posted(kind: &str, f: &Fields, stored: Option<&Destination>) -> Self {
        let get = |name: &str| f.get(name).unwrap_or_default().to_owned();
        let rows: Vec<MappingRow> = f
            .all("map_event")
            .into_iter()
            .zip(f.all("map_id"))
            .filter(|(e, i)| !e.trim().is_empty() || !i.trim().is_empty())
            .map(|(e, i)| MappingRow {
                event: e.to_owned(),
                id: i.to_owned(),
            })
            .collect();
        let stored_values = stored.map(FormValues::of).unwrap_or_default();
        FormValues {
            kind: kind.to_owned(),
            name: get("name"),
            tracking_domain: get("tracking_domain"),
            tracking_domain_masked: stored_values.tracking_domain_masked,
            network_id: get("network_id"),
            advertiser_id: get("advertiser_id"),
            source_kind: get("source_kind"),
            attribution_window_days: get("attribution_window_days"),
            mapping: with_blank_rows(rows),
            url: get("url"),
            url_masked: stored_values.url_masked,
            filter_events: get("filter_events"),
            filter_types: f
                .all("filter_types")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            secrets: stored_values.secrets,
        }
    }
}

/// The settings, filters and secrets of a posted form, as the admin API
/// would receive them; `editing` leaves out a URL field left empty (kept).
fn settings_of(kind: &str, f: &Fields, editing: bool) -> (Value, Option<Value>, Option<Value>) {
    let mut settings = Map::new();
    let mut secrets = Map::new();
    match kind {
        "everflow" => {
            if let Some(domain) = f.text("tracking_domain") {
                settings.insert("tracking_domain".into(), Value::String(domain));
            } else if !editing {
                settings.insert("tracking_domain".into(), Value::Null);
            }
            settings.insert(
                "network_id".into(),
                f.text("network_id")
                    .map(Value::String)
                    .unwrap_or(Value::Null),
            );
            settings.insert(
                "advertiser_id".into(),
                f.text("advertiser_id")
                    .map(Value::String)
                    .unwrap_or(Value::Null),
            );
            settings.insert(
                "source_kind".into(),
                f.text("source_kind")
                    .map(Value::String)
                    .unwrap_or(Value::Null),
            );
            let days = f
                .text("attribution_window_days")
                .map(|d| {
                    d.parse::<u64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(d))
                })
                .unwrap_or(Value::Null);
            settings.insert("attribution_window_days".into(), days);
            let mut mapping = Map::new();
            for (event, id) in f.all("map_event").into_iter().zip(f.all("map_id")) {
                if event.trim().is_empty() && id.trim().is_empty() {
                    continue;
                }
                mapping.insert(event.trim().to_owned(), Value::String(id.trim().to_owned()));
            }
            settings.insert("event_mapping".into(), Value::Object(mapping));
            for name in ["verification_token", "api_key"] {
                if let Some(secret) = f.text(name) {
                    secrets.insert(name.into(), Value::String(secret));
                }
            }
            (
                Value::Object(settings),
                None,
                (!secrets.is_empty()).then_some(Value::Object(secrets)),
            )
        }
        _ => {
            match f.text("url") {
                Some(url) => {
                    settings.insert("url".into(), Value::String(url));
                }
                None if !editing => {
                    settings.insert("url".into(), Value::Null);
                }
                None => {}
            }
            let events: Vec<String> = f
                .get("filter_events")
                .unwrap_or_default()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            let types: Vec<&str> = f.all("filter_types");
            let filters = if events.is_empty() && types.is_empty() {
                Value::Null
            } else {
                json!({ "events": events, "types": types })
            };
            (Value::Object(settings), Some(filters), None)
        }
    }
}

/// A field error as the form shows it.
#[derive(Debug, Serialize)]
struct ShownError {
    /// The form field at fault (`network_id`, `map`, `url`, …)
    input: String,
    text: String,
}

fn shown(e: &FieldError) -> ShownError {
    let input = e
        .field
        .trim_start_matches("settings.")
        .trim_start_matches("secrets.")
        .trim_start_matches("filters.");
    let input = match input {
        "event_mapping" => "map",
        "events" => "filter_events",
        "types" => "filter_types",
        other => other,
    };
    ShownError {
        input: input.to_owned(),
        text: format!("{}: {}", e.field, e.message),
    }
}

/// A destination in the list.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    kind: String,
    name: String,
    enabled: bool,
    target: String,
    events: Vec<String>,
    failed_24h: i64,
    retrying: i64,
    last_delivered_at: Option<i64>,
}

/// The organisation's destinations.
pub(crate) async fn list_destinations(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let key = dispatcher(&state)?.key();
    let db = state.db();
    let org = &member.org.id;
    let now = now_micros();
    let health = db.destination_health(org, now).await?;
    let rows: Vec<Row> = db
        .list_destinations(org, key)
        .await?
        .into_iter()
        .map(|d| {
            let h = health.iter().find(|h| h.id == d.id);
            let target = d
                .settings
                .get(if d.kind == DestinationKind::Everflow {
                    "tracking_domain"
                } else {
                    "url"
                })
                .and_then(Value::as_str)
                .map(mask_url)
                .unwrap_or_default();
            Row {
                target,
                events: if d.kind == DestinationKind::Everflow {
                    d.settings
                        .get("event_mapping")
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default()
                } else {
                    d.filters.events.clone()
                },
                failed_24h: h.map_or(0, |h| h.failed_24h),
                retrying: h.map_or(0, |h| h.retrying),
                last_delivered_at: h.and_then(|h| h.last_delivered_at),
                id: d.id,
                kind: d.kind.as_str().to_owned(),
                name: d.name,
                enabled: d.enabled,
            }
        })
        .collect();
    let body = templates::render(
        "destinations.html",
        &member.layout("destinations", "Destinations"),
        minijinja::context! { destinations => rows, notice => notice(params.done.as_deref()) },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewParams {
    /// `everflow` (default) or `webhook`
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

fn form_page(
    member: &Member,
    status: StatusCode,
    values: &FormValues,
    error: Option<ShownError>,
) -> UiResult {
    let title = if values.kind == "everflow" {
        "New Everflow destination"
    } else {
        "New webhook"
    };
    let body = templates::render(
        "destination_new.html",
        &member.layout("destinations", title),
        minijinja::context! { form => values, field_error => error, message_types => manage::MESSAGE_TYPES },
    )?;
    Ok(html(status, body))
}

/// The form that creates an Everflow destination or a webhook.
pub(crate) async fn new_destination(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<NewParams>,
) -> UiResult {
    dispatcher(&state)?;
    if !member.role.can_manage() {
        return Err(UiError::read_only());
    }
    let kind = if params.kind.as_deref() == Some("webhook") {
        "webhook"
    } else {
        "everflow"
    };
    form_page(&member, StatusCode::OK, &FormValues::blank(kind), None)
}

/// Creates a destination from the form.
pub(crate) async fn create_destination(
    State(state): State<WebState>,
    member: Member,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> UiResult {
    let Ok(Form(pairs)) = form else {
        return Err(UiError::bad_form());
    };
    let f = Fields(pairs);
    member.check_change(f.get("csrf").unwrap_or_default())?;
    let sender = dispatcher(&state)?;
    let kind = match f.get("type") {
        Some("webhook") => "webhook",
        Some("everflow") => "everflow",
        _ => return Err(UiError::bad_form()),
    };
    let (settings, filters, secrets) = settings_of(kind, &f, false);
    let input = manage::Input {
        kind: kind.into(),
        name: f.text("name"),
        enabled: Some(true),
        filters,
        settings,
        secrets,
    };
    let prepared = match manage::prepare(input, sender.options().allow_private_addresses).await {
        Ok(p) => p,
        Err(e) => {
            return form_page(
                &member,
                StatusCode::BAD_REQUEST,
                &FormValues::posted(kind, &f, None),
                Some(shown(&e)),
            )
        }
    };
    let created = state
        .db()
        .create_destination(&member.org.id, sender.key(), &prepared.new)
        .await?;
    tracing::info!(destination = %created.id, kind = %created.kind, "destination created from the admin UI");
    let created_page =
        redirect(&member.path(&format!("/destinations/{}?done=created", created.id)));
    // A webhook's generated signing secret is shown once on the page the
    // redirect opens (sealed in a cookie of this session).
    let sealed = prepared.generated_secret.map(|secret| {
        member.signed.session.reveal_once(
            &reveal_for(&created.id),
            &secret,
            session::is_secure(state.public_url(), &headers),
        )
    });
    Ok(with_cookie(created_page, sealed))
}

/// What a destination's new signing secret is sealed for until its page.
fn reveal_for(destination: &str) -> String {
    format!("destination:{destination}")
}

/// What a destination page shows beyond the destination.
#[derive(Default)]
struct Shown {
    notice: Option<&'static str>,
    /// A signing secret just generated: shown this once.
    secret: Option<String>,
    test: Option<TestShown>,
    form: Option<FormValues>,
    error: Option<ShownError>,
    status: Option<StatusCode>,
}

/// A test conversion as the page shows it.
#[derive(Debug, Serialize)]
struct TestShown {
    event_source: &'static str,
    message_id: Option<String>,
    outcome: String,
    request: Option<Value>,
    response_status: Option<u16>,
    response_excerpt: Option<String>,
    reason: Option<String>,
}

/// The seed's Everflow field mapping with the values of the last event
/// the destination would receive.
#[derive(Debug, Serialize)]
struct Preview {
    message_id: Option<String>,
    event: Option<String>,
    received: Option<String>,
    /// `None` when no event of the log matches.
    from_log: bool,
    adv_event_id: Option<u64>,
    transaction_id: Option<String>,
    transaction_from_profile: bool,
    /// Would it be sent, or why not.
    verdict: String,
    sent: bool,
    fields: Vec<everflow::FieldPreview>,
}

async fn everflow_preview(
    state: &WebState,
    member: &Member,
    d: &Destination,
) -> Result<Option<Preview>, UiError> {
    if d.kind != DestinationKind::Everflow {
        return Ok(None);
    }
    let Ok(settings) = serde_json::from_value::<EverflowSettings>(d.settings.clone()) else {
        return Ok(None);
    };
    let sender = dispatcher(state)?;
    let event = sender.test_event(&member.org.id, d, None, None).await?;
    let Some(TestEvent {
        source: "log",
        message,
        people,
    }) = event
    else {
        return Ok(Some(Preview {
            message_id: None,
            event: None,
            received: None,
            from_log: false,
            adv_event_id: None,
            transaction_id: None,
            transaction_from_profile: false,
            verdict: "No event in the log matches this destination yet.".into(),
            sent: false,
            fields: everflow::preview_fields(&settings, &Value::Object(Map::new())),
        }));
    };
    let own = everflow::transaction_id(&message, None);
    let mut from_profile = None;
    if own.is_none() && sender.options().profile_fallback {
        if let Some(people) = &people {
            from_profile = sender
                .profile_transaction_id(&member.org.id, &settings, people)
                .await?;
        }
    }
    let verdict = everflow::build_postback(&settings, &message, from_profile.as_deref());
    let event_name = message
        .get("event")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Some(Preview {
        message_id: message
            .get("messageId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        adv_event_id: event_name
            .as_deref()
            .and_then(|e| settings.event_mapping.get(e).copied()),
        event: event_name,
        received: people
            .as_ref()
            .map(|p: &EventPeople| super::format::time(p.timestamp_us)),
        from_log: true,
        transaction_from_profile: own.is_none() && from_profile.is_some(),
        transaction_id: own.or(from_profile),
        sent: verdict.is_ok(),
        verdict: match verdict {
            Ok(_) => "A delivery of this event would send the values below.".into(),
            Err(skip) => format!("A delivery of this event would be skipped: {skip}."),
        },
        fields: everflow::preview_fields(&settings, &message),
    }))
}

async fn destination_page(
    state: &WebState,
    member: &Member,
    d: &Destination,
    shown: Shown,
) -> UiResult {
    let db = state.db();
    let org = &member.org.id;
    let now = now_micros();
    let health = db
        .destination_health(org, now)
        .await?
        .into_iter()
        .find(|h| h.id == d.id);
    let recent: Vec<DeliveryView> = db
        .list_deliveries(
            org,
            &d.id,
            &DeliveryFilter {
                limit: RECENT,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(delivery_view)
        .collect();
    let preview = everflow_preview(state, member, d).await?;
    let view = manage::view(d, now);
    let body = templates::render(
        "destination.html",
        &member.layout("destinations", d.name.clone()),
        minijinja::context! {
            d => view,
            health,
            recent,
            preview,
            form => shown.form.unwrap_or_else(|| FormValues::of(d)),
            field_error => shown.error,
            secret => shown.secret,
            test => shown.test,
            notice => shown.notice,
            message_types => manage::MESSAGE_TYPES,
        },
    )?;
    Ok(html(shown.status.unwrap_or(StatusCode::OK), body))
}

/// A destination: its settings and health, the edit form, its actions,
/// Everflow's field mapping with the last matching event's values, the
/// newest deliveries.
pub(crate) async fn show_destination(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    Query(params): Query<DoneParams>,
    headers: HeaderMap,
) -> UiResult {
    let d = load(&state, &member, &ids.1).await?;
    let secure = session::is_secure(state.public_url(), &headers);
    let (secret, clear) = member
        .signed
        .session
        .take_revealed(&headers, &reveal_for(&d.id), secure);
    let page = destination_page(
        &state,
        &member,
        &d,
        Shown {
            notice: notice(params.done.as_deref()),
            secret,
            ..Default::default()
        },
    )
    .await?;
    Ok(with_cookie(page, clear))
}

/// Edits, pauses, resumes, deletes a destination, rotates its signing
/// secret, sends a test conversion, or replays its failed deliveries.
pub(crate) async fn destination_action(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> UiResult {
    let Ok(Form(pairs)) = form else {
        return Err(UiError::bad_form());
    };
    let f = Fields(pairs);
    member.check_change(f.get("csrf").unwrap_or_default())?;
    let sender = dispatcher(&state)?;
    let mut d = load(&state, &member, &ids.1).await?;
    let db = state.db();
    let org = &member.org.id;
    let id = d.id.clone();
    let back = |done: &str| -> UiResult {
        Ok(redirect(
            &member.path(&format!("/destinations/{id}?done={done}")),
        ))
    };
    match f.get("action") {
        Some("save") => {
            let (settings, filters, secrets) = settings_of(d.kind.as_str(), &f, true);
            let patch = manage::Patch {
                name: f.get("name").map(str::to_owned),
                enabled: None,
                filters: filters.or(Some(Value::Null)),
                settings: Some(settings),
                secrets,
            };
            let patch = if d.kind == DestinationKind::Everflow {
                manage::Patch {
                    filters: None,
                    ..patch
                }
            } else {
                patch
            };
            let stored = d.clone();
            if let Err(e) =
                manage::apply(&mut d, patch, sender.options().allow_private_addresses).await
            {
                let form = FormValues::posted(stored.kind.as_str(), &f, Some(&stored));
                return destination_page(
                    &state,
                    &member,
                    &stored,
                    Shown {
                        form: Some(form),
                        error: Some(shown(&e)),
                        status: Some(StatusCode::BAD_REQUEST),
                        ..Default::default()
                    },
                )
                .await;
            }
            db.update_destination(sender.key(), &d).await?;
            tracing::info!(destination = %d.id, "destination edited from the admin UI");
            back("saved")
        }
        Some(action @ ("pause" | "resume")) => {
            d.enabled = action == "resume";
            db.update_destination(sender.key(), &d).await?;
            tracing::info!(destination = %d.id, enabled = d.enabled, "destination paused or resumed from the admin UI");
            back(if d.enabled { "resumed" } else { "paused" })
        }
        Some("delete") => {
            if f.get("confirm") != Some("yes") {
                let error = ShownError {
                    input: "confirm".into(),
                    text: "Tick the box to confirm: the delivery log is deleted too.".into(),
                };
                return destination_page(
                    &state,
                    &member,
                    &d,
                    Shown {
                        error: Some(error),
                        status: Some(StatusCode::BAD_REQUEST),
                        ..Default::default()
                    },
                )
                .await;
            }
            db.delete_destination(org, &d.id).await?;
            tracing::info!(destination = %d.id, "destination deleted from the admin UI");
            Ok(redirect(&member.path("/destinations?done=deleted")))
        }
        Some("rotate") => {
            let secret =
                match manage::rotate(&mut d, ROTATION_GRACE_HOURS * 3_600_000_000, now_micros()) {
                    Ok(s) => s,
                    Err(e) => {
                        return destination_page(
                            &state,
                            &member,
                            &d,
                            Shown {
                                error: Some(shown(&e)),
                                status: Some(StatusCode::BAD_REQUEST),
                                ..Default::default()
                            },
                        )
                        .await
                    }
                };
            db.update_destination(sender.key(), &d).await?;
            tracing::info!(destination = %d.id, "signing secret rotated from the admin UI");
            let sealed = member.signed.session.reveal_once(
                &reveal_for(&d.id),
                &secret,
                session::is_secure(state.public_url(), &headers),
            );
            Ok(with_cookie(back("rotated")?, Some(sealed)))
        }
        Some("test") => {
            let message_id = f.text("message_id");
            let Some(event) = sender
                .test_event(org, &d, None, message_id.as_deref())
                .await?
            else {
                let error = ShownError {
                    input: "message_id".into(),
                    text: "message_id: no event of the log has this messageId".into(),
                };
                return destination_page(
                    &state,
                    &member,
                    &d,
                    Shown {
                        error: Some(error),
                        status: Some(StatusCode::BAD_REQUEST),
                        ..Default::default()
                    },
                )
                .await;
            };
            let outcome = sender.test_conversion(org, &d, &event).await?;
            tracing::info!(destination = %d.id, outcome = %outcome.outcome, "test conversion sent from the admin UI");
            let test = TestShown {
                event_source: event.source,
                message_id: event
                    .message
                    .get("messageId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                outcome: outcome.outcome,
                request: outcome
                    .request
                    .map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
                response_status: outcome.response_status,
                response_excerpt: outcome.response_excerpt,
                reason: outcome.reason,
            };
            destination_page(
                &state,
                &member,
                &d,
                Shown {
                    test: Some(test),
                    ..Default::default()
                },
            )
            .await
        }
        Some("replay_failed") => {
            let replayed = db
                .replay_failed(org, &d.id, &DeliveryFilter::default())
                .await?;
            tracing::info!(destination = %d.id, replayed, "failed deliveries replayed from the admin UI");
            Ok(redirect(&member.path(&format!(
                "/destinations/{}/deliveries?done=replayed",
                d.id
            ))))
        }
        _ => Err(UiError::bad_form()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogParams {
    /// pending, retrying, delivered, failed or skipped
    pub status: Option<String>,
    /// Event name, e.g. `Order Completed`
    pub event: Option<String>,
    pub message_id: Option<String>,
    /// Text in the message id, event, request, response or reason
    pub q: Option<String>,
    /// Changed at or after (UTC, `2026-11-23T10:00`)
    pub since: Option<String>,
    /// Changed before (UTC)
    pub until: Option<String>,
    /// The log position of the last delivery of the previous page
    pub before: Option<String>,
    pub done: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The engine's check of the log filters (`cohort_engine::destinations::log_filter`).
fn log_filter(p: &LogParams) -> Result<DeliveryFilter, ShownError> {
    let query = DeliveryQuery {
        status: p.status.clone(),
        event: p.event.clone(),
        message_id: p.message_id.clone(),
        search: p.q.clone(),
        since: p.since.clone(),
        until: p.until.clone(),
        before: p.before.clone(),
        limit: PAGE,
    };
    query.filter().map_err(|e| ShownError {
        text: format!("{}: {}", e.field, e.message),
        input: e.field,
    })
}

/// The query string of the filters (for the next page's link).
fn filter_query(p: &LogParams) -> String {
    let mut q = Vec::new();
    for (name, value) in [
        ("status", &p.status),
        ("event", &p.event),
        ("message_id", &p.message_id),
        ("q", &p.q),
        ("since", &p.since),
        ("until", &p.until),
    ] {
        if let Some(v) = non_empty(value) {
            q.push(format!("{name}={}", super::auth::urlencode(&v)));
        }
    }
    q.join("&")
}

/// A destination's delivery log, newest first, filtered, in pages.
pub(crate) async fn list_deliveries(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    Query(p): Query<LogParams>,
) -> UiResult {
    let d = load(&state, &member, &ids.1).await?;
    let (status, rows, error, next) = match log_filter(&p) {
        Ok(filter) => {
            let rows = state
                .db()
                .list_deliveries(&member.org.id, &d.id, &filter)
                .await?;
            let next = (rows.len() as i64 == PAGE)
                .then(|| rows.last().map(|r| r.seq))
                .flatten();
            (
                StatusCode::OK,
                rows.into_iter().map(delivery_view).collect::<Vec<_>>(),
                None,
                next,
            )
        }
        Err(e) => (StatusCode::BAD_REQUEST, Vec::new(), Some(e), None),
    };
    let query = filter_query(&p);
    let next_url = next.map(|seq| {
        if query.is_empty() {
            format!("?before={seq}")
        } else {
            format!("?{query}&before={seq}")
        }
    });
    let body = templates::render(
        "deliveries.html",
        &member.layout("destinations", format!("{} · delivery log", d.name)),
        minijinja::context! {
            d => manage::view(&d, now_micros()),
            deliveries => rows,
            field_error => error,
            filters => minijinja::context! {
                status => non_empty(&p.status), event => non_empty(&p.event), message_id => non_empty(&p.message_id),
                q => non_empty(&p.q), since => non_empty(&p.since), until => non_empty(&p.until),
            },
            filtered => !query.is_empty(),
            paged => p.before.is_some(),
            next_url,
            statuses => ["pending", "retrying", "delivered", "failed", "skipped"],
            notice => notice(p.done.as_deref()),
        },
    )?;
    Ok(html(status, body))
}

/// One delivery: the masked request, the answer, attempts and outcome.
pub(crate) async fn show_delivery(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String, String)>,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let d = load(&state, &member, &ids.1).await?;
    let delivery = delivery_view(
        state
            .db()
            .get_delivery(&member.org.id, &d.id, &ids.2)
            .await?,
    );
    let body = templates::render(
        "delivery.html",
        &member.layout("destinations", format!("Delivery {}", delivery.message_id)),
        minijinja::context! { d => manage::view(&d, now_micros()), delivery, notice => notice(params.done.as_deref()) },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReplayForm {
    pub csrf: Option<String>,
}

/// Sends a failed delivery again.
pub(crate) async fn replay_delivery(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String, String)>,
    form: Result<Form<ReplayForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let d = load(&state, &member, &ids.1).await?;
    let replayed = state
        .db()
        .replay_delivery(&member.org.id, &d.id, &ids.2)
        .await?;
    tracing::info!(destination = %d.id, message_id = %ids.2, replayed, "delivery replayed from the admin UI");
    let done = if replayed {
        "replayed_one"
    } else {
        "not_failed"
    };
    let message = super::auth::urlencode(&ids.2);
    Ok(redirect(&member.path(&format!(
        "/destinations/{}/deliveries/{message}?done={done}",
        d.id
    ))))
}
