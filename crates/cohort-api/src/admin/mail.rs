//! `/api/v1/mail/…`: the organisation's SMTP providers (create, change,
//! test the connection, choose the default), its sending domains with the
//! DNS records to publish, and the outbox: every message with its state,
//! its attempts and the server's answers, and a retry for dead letters.
//! Passwords and DKIM keys are never shown.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use cohort_domain::mail::{DnsRecord, OutboxState};
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_engine::mail::{DomainSetup, Mail, MailError, ProviderInput, ProviderPatch};
use cohort_store::mail::{MailAttempt, MailProvider, MailReportRow, OutboxMessage, OutboxQuery};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::profiles::parse_limit;
use super::ApiCaller;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

pub(super) fn mail(state: &AppState) -> Result<&Mail, ApiError> {
    state.mail().ok_or_else(ApiError::unavailable)
}

impl From<MailError> for ApiError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Invalid { field, message } => ApiError::invalid(field, message),
            MailError::NotFound(what) => ApiError::not_found(what),
            MailError::Store(s) => s.into(),
        }
    }
}

pub(super) fn time(us: i64) -> String {
    format_rfc3339(from_micros(us))
}

/// A provider; the password is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub id: String,
    pub name: String,
    /// `smtp`
    pub kind: String,
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`
    pub tls: String,
    pub username: Option<String>,
    /// Whether a password is stored (it is never returned)
    pub password_set: bool,
    pub max_connections: u32,
    pub rate_per_second: Option<u32>,
    pub rate_per_hour: Option<u32>,
    /// Mail goes through the default unless a message names a provider
    pub default: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<MailProvider> for ProviderView {
    fn from(p: MailProvider) -> Self {
        Self {
            id: p.id,
            name: p.name,
            kind: p.kind,
            host: p.host,
            port: p.port,
            tls: p.tls.as_str().into(),
            username: p.username,
            password_set: p.password.is_some(),
            max_connections: p.max_connections,
            rate_per_second: p.limits.per_second,
            rate_per_hour: p.limits.per_hour,
            default: p.is_default,
            created_at: time(p.created_at_us),
            updated_at: time(p.updated_at_us),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    pub name: String,
    /// `smtp` (the default and only kind)
    pub kind: Option<String>,
    pub host: String,
    pub port: i64,
    /// `none`, `starttls` or `tls`
    pub tls: String,
    pub username: Option<String>,
    /// Stored encrypted; never returned
    pub password: Option<String>,
    /// 1 to 100, default 4
    pub max_connections: Option<i64>,
    /// Messages per second at most (a token bucket shared by every node)
    pub rate_per_second: Option<i64>,
    /// Messages per hour at most
    pub rate_per_hour: Option<i64>,
    /// Make it the default (the first provider always is)
    pub default: Option<bool>,
}

/// `null` given is `Some(None)` (clear), absent is `None` (keep).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A change: absent fields keep their value; `null` clears `username`,
/// `password` and the rates.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderChange {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub tls: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
    pub max_connections: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub rate_per_second: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub rate_per_hour: Option<Option<i64>>,
    /// `true` makes it the default
    pub default: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub data: Vec<ProviderView>,
}

/// The organisation's SMTP providers, the default first.
#[utoipa::path(
    get,
    path = "/api/v1/mail/providers",
    tag = "mail",
    responses(
        (status = 200, description = "The providers", body = ProviderList),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_providers(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<ProviderList>, ApiError> {
    let providers = mail(&state)?.providers(&caller.org).await?;
    Ok(Json(ProviderList {
        data: providers.into_iter().map(ProviderView::from).collect(),
    }))
}

/// Adds an SMTP provider. The first one is the default; `default: true`
/// moves the mark to the new one.
#[utoipa::path(
    post,
    path = "/api/v1/mail/providers",
    tag = "mail",
    request_body = NewProvider,
    responses(
        (status = 201, description = "Created", body = ProviderView),
        (status = 400, description = "The field that is wrong is named", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn create_provider(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<NewProvider>, JsonRejection>,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    let Json(b) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let created = mail(&state)?
        .create_provider(
            &caller.org,
            ProviderInput {
                name: b.name,
                kind: b.kind,
                host: b.host,
                port: b.port,
                tls: b.tls,
                username: b.username,
                password: b.password,
                max_connections: b.max_connections,
                rate_per_second: b.rate_per_second,
                rate_per_hour: b.rate_per_hour,
                default: b.default.unwrap_or(false),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// One provider.
#[utoipa::path(
    get,
    path = "/api/v1/mail/providers/{id}",
    tag = "mail",
    params(("id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "The provider", body = ProviderView),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such provider in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_provider(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ProviderView>, ApiError> {
    Ok(Json(mail(&state)?.provider(&caller.org, &id).await?.into()))
}

/// Changes a provider; a new password replaces the stored one.
#[utoipa::path(
    patch,
    path = "/api/v1/mail/providers/{id}",
    tag = "mail",
    params(("id" = String, Path, description = "Provider id")),
    request_body = ProviderChange,
    responses(
        (status = 200, description = "Changed", body = ProviderView),
        (status = 400, description = "The field that is wrong is named", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such provider in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn update_provider(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<ProviderChange>, JsonRejection>,
) -> Result<Json<ProviderView>, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let updated = mail(&state)?
        .update_provider(
            &caller.org,
            &id,
            ProviderPatch {
                name: b.name,
                host: b.host,
                port: b.port,
                tls: b.tls,
                username: b.username,
                password: b.password,
                max_connections: b.max_connections,
                rate_per_second: b.rate_per_second,
                rate_per_hour: b.rate_per_hour,
                default: b.default,
            },
        )
        .await?;
    Ok(Json(updated.into()))
}

/// Deletes a provider. When it was the default, the oldest remaining one
/// becomes the default; its queued messages go through the default.
#[utoipa::path(
    delete,
    path = "/api/v1/mail/providers/{id}",
    tag = "mail",
    params(("id" = String, Path, description = "Provider id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such provider in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn delete_provider(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    mail(&state)?.delete_provider(&caller.org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderTest {
    /// Whether Cohort connected, greeted (and authenticated) and got `NOOP` answered
    pub ok: bool,
    /// The server's or the network's answer when it failed
    pub error: Option<String>,
}

/// Tests a provider's connection: connect, `EHLO`, authenticate with the
/// stored credentials, `NOOP`. Sends no mail.
#[utoipa::path(
    post,
    path = "/api/v1/mail/providers/{id}/test",
    tag = "mail",
    params(("id" = String, Path, description = "Provider id")),
    responses(
        (status = 200, description = "What the server answered", body = ProviderTest),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such provider in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn test_provider(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ProviderTest>, ApiError> {
    let answer = mail(&state)?.test_provider(&caller.org, &id).await?;
    Ok(Json(ProviderTest {
        ok: answer.is_ok(),
        error: answer.err(),
    }))
}

/// A sending domain with the records to publish (the DKIM private key is
/// never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    pub dkim_selector: String,
    pub records: Vec<RecordView>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    /// `dkim`, `spf`, `dmarc` or `return_path`
    pub purpose: String,
    /// `TXT` or `MX`
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    pub value: String,
    pub note: String,
}

impl From<DnsRecord> for RecordView {
    fn from(r: DnsRecord) -> Self {
        Self {
            purpose: r.purpose.into(),
            record_type: r.record_type.into(),
            name: r.name,
            value: r.value,
            note: r.note,
        }
    }
}

impl From<DomainSetup> for DomainView {
    fn from(d: DomainSetup) -> Self {
        Self {
            domain: d.domain.domain,
            dkim_selector: d.domain.dkim_selector,
            records: d.records.into_iter().map(RecordView::from).collect(),
            created_at: time(d.domain.created_at_us),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// The domain mail is sent from, e.g. `shop.example`
    pub domain: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    pub data: Vec<DomainView>,
}

/// The sending domains.
#[utoipa::path(
    get,
    path = "/api/v1/mail/domains",
    tag = "mail",
    responses(
        (status = 200, description = "The sending domains", body = DomainList),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_domains(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<DomainList>, ApiError> {
    let domains = mail(&state)?.domains(&caller.org).await?;
    Ok(Json(DomainList {
        data: domains.into_iter().map(DomainView::from).collect(),
    }))
}

/// Adds a sending domain: Cohort generates its DKIM key (RSA 2048) and
/// answers the DKIM, SPF and DMARC records to publish. A domain already
/// added keeps its key (200).
#[utoipa::path(
    post,
    path = "/api/v1/mail/domains",
    tag = "mail",
    request_body = NewDomain,
    responses(
        (status = 201, description = "Added, with the records to publish", body = DomainView),
        (status = 200, description = "Already added: its key and records", body = DomainView),
        (status = 400, description = "Not a domain", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn add_domain(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Result<Json<NewDomain>, JsonRejection>,
) -> Result<(StatusCode, Json<DomainView>), ApiError> {
    let Json(b) = body.map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let (setup, created) = mail(&state)?.add_domain(&caller.org, &b.domain).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(setup.into())))
}

/// An outbox message (bodies only in the single-message answer).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// The `Message-ID` header, the same on every attempt
    pub message_id: String,
    /// What it was enqueued for (`campaign:…`): with the recipient, unique
    pub send_key: String,
    pub recipient: String,
    /// `marketing` or `transactional`
    pub purpose: String,
    pub from: String,
    pub subject: String,
    /// `queued`, `sending`, `sent`, `bounced`, `dead`, `suppressed`
    pub state: String,
    /// Attempts spent (throttled ones are not)
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: Option<String>,
    /// The last refusal or failure
    pub last_error: Option<String>,
    pub profile_id: Option<String>,
    pub campaign_id: Option<String>,
    pub flow_id: Option<String>,
    pub provider_id: Option<String>,
    /// The id the relay gave it in its `250` answer
    pub provider_message_id: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}

impl From<&OutboxMessage> for MessageView {
    fn from(m: &OutboxMessage) -> Self {
        Self {
            id: m.id.clone(),
            message_id: m.message_id.clone(),
            send_key: m.send_key.clone(),
            recipient: m.recipient.clone(),
            purpose: m.purpose.as_str().into(),
            from: m.from_address.clone(),
            subject: m.subject.clone(),
            state: m.state.as_str().into(),
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            next_attempt_at: (m.state == OutboxState::Queued).then(|| time(m.next_attempt_at_us)),
            last_error: m.last_error.clone(),
            profile_id: m.profile_id.clone(),
            campaign_id: m.campaign_id.clone(),
            flow_id: m.flow_id.clone(),
            provider_id: m.provider_id.clone(),
            provider_message_id: m.provider_message_id.clone(),
            created_at: time(m.created_at_us),
            sent_at: m.sent_at_us.map(time),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    /// A provider id, `outbox-folder` or `smtp-config`
    pub provider: String,
    pub started_at: String,
    pub finished_at: String,
    /// `accepted`, `throttled`, `temporary`, `permanent`, `interrupted`, `suppressed`
    pub outcome: String,
    /// The server's answer, as it gave it
    pub answer: Option<String>,
}

impl From<MailAttempt> for AttemptView {
    fn from(a: MailAttempt) -> Self {
        Self {
            attempt: a.attempt,
            provider: a.provider,
            started_at: time(a.started_at_us),
            finished_at: time(a.finished_at_us),
            outcome: a.outcome.as_str().into(),
            answer: a.answer,
        }
    }
}

/// A bounce, complaint or delivery report received about a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    pub id: String,
    /// `hard_bounce`, `soft_bounce`, `complaint` or `delivered`
    pub kind: String,
    pub recipient: String,
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`
    pub status: Option<String>,
    /// The remote server's answer or the provider's reason
    pub diagnostic: Option<String>,
    /// `inbound` (a DSN or ARF report), `ses`, `sendgrid`, `postmark`, `mailgun`
    pub source: String,
    pub reported_at: String,
    pub received_at: String,
    /// The suppression this report added, if any
    pub suppressed: Option<String>,
    /// For a soft bounce: the recipient's soft bounces in a row
    pub soft_in_a_row: Option<i64>,
}

impl From<MailReportRow> for ReportView {
    fn from(r: MailReportRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind.as_str().into(),
            recipient: r.recipient,
            status: r.status,
            diagnostic: r.diagnostic,
            source: r.source,
            reported_at: time(r.reported_at_us),
            received_at: time(r.received_at_us),
            suppressed: r.suppressed.map(|s| s.as_str().into()),
            soft_in_a_row: r.soft_in_a_row,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageDetail {
    pub message: MessageView,
    pub html: String,
    pub text: String,
    pub attempts: Vec<AttemptView>,
    /// Bounce, complaint and delivery reports received about it, oldest first
    pub reports: Vec<ReportView>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageParams {
    /// `queued`, `sending`, `sent`, `bounced`, `dead` or `suppressed`
    pub state: Option<String>,
    /// The exact address
    pub recipient: Option<String>,
    pub campaign_id: Option<String>,
    pub flow_id: Option<String>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// 1 to 1000, default 100
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub data: Vec<MessageView>,
    /// Pass as `cursor` for the next page; null on the last page
    pub next_cursor: Option<String>,
}

fn encode_cursor(m: &OutboxMessage) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}\n{}", m.created_at_us, m.id))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::invalid("cursor", "not a cursor this API gave");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('\n').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

/// The outbox, newest first, filtered by state, recipient, campaign or flow.
#[utoipa::path(
    get,
    path = "/api/v1/mail/messages",
    tag = "mail",
    params(MessageParams),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "Bad state, cursor or limit (the field is named)", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: ApiCaller,
    params: Result<Query<MessageParams>, QueryRejection>,
) -> Result<Json<MessagePage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = parse_limit(p.limit.as_deref())?;
    let wanted = p
        .state
        .as_deref()
        .map(|s| {
            s.parse::<OutboxState>().map_err(|_| {
                ApiError::invalid(
                    "state",
                    "one of queued, sending, sent, bounced, dead, suppressed",
                )
            })
        })
        .transpose()?;
    let before = p.cursor.as_deref().map(decode_cursor).transpose()?;
    let recipient = p.recipient.map(|r| r.trim().to_lowercase());
    let rows = mail(&state)?
        .messages(
            &caller.org,
            &OutboxQuery {
                state: wanted,
                recipient: recipient.as_deref(),
                campaign_id: p.campaign_id.as_deref(),
                flow_id: p.flow_id.as_deref(),
                before: before.as_ref().map(|(at, id)| (*at, id.as_str())),
                limit,
            },
        )
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(encode_cursor))
        .flatten();
    Ok(Json(MessagePage {
        data: rows.iter().map(MessageView::from).collect(),
        next_cursor,
    }))
}

/// One message with its bodies and every attempt with the server's answer.
#[utoipa::path(
    get,
    path = "/api/v1/mail/messages/{id}",
    tag = "mail",
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "The message", body = MessageDetail),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such message in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn get_message(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<MessageDetail>, ApiError> {
    let mail = mail(&state)?;
    let (message, attempts) = mail.message(&caller.org, &id).await?;
    let reports = mail.reports_of(&caller.org, &id).await?;
    Ok(Json(MessageDetail {
        reports: reports.into_iter().map(ReportView::from).collect(),
        message: MessageView::from(&message),
        html: message.html,
        text: message.text,
        attempts: attempts.into_iter().map(AttemptView::from).collect(),
    }))
}

/// Queues a dead letter again with its attempts renewed.
#[utoipa::path(
    post,
    path = "/api/v1/mail/messages/{id}/retry",
    tag = "mail",
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "Queued again", body = MessageView),
        (status = 400, description = "The message is not a dead letter (field `state`)", body = ErrorBody),
        (status = 401, description = "Missing or invalid API token", body = ErrorBody),
        (status = 404, description = "No such message in this organisation", body = ErrorBody),
    ),
    security(("apiToken" = []))
)]
pub async fn retry_message(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let message = mail(&state)?.retry(&caller.org, &id).await?;
    Ok(Json(MessageView::from(&message)))
}
