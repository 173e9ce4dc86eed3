//! The bounce and complaint webhooks given to mail providers (SES through
//! SNS, SendGrid, Postmark, Mailgun): the list with what each received, the
//! form that makes one, and its page, which shows its secret URL once
//! (only a digest is kept) and deletes it.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Form;
use cohort_store::mail::webhooks::{MailWebhook, WebhookKind};
use serde::{Deserialize, Serialize};

use super::{filled, refusal, service, Refusal, ShownError};
use crate::sources::{api_host, DoneParams};
use crate::{html, redirect, session, templates, with_cookie, Member, UiError, UiResult, WebState};

#[derive(Debug, Serialize)]
struct WebhookRow {
    id: String,
    kind: &'static str,
    kind_label: &'static str,
    name: String,
    signing_key_set: bool,
    subscribe_url: Option<String>,
    reports_received: i64,
    last_received_at: Option<i64>,
    created_at: i64,
}

fn label(kind: WebhookKind) -> &'static str {
    match kind {
        WebhookKind::Ses => "Amazon SES (SNS)",
        WebhookKind::SendGrid => "SendGrid",
        WebhookKind::Postmark => "Postmark",
        WebhookKind::Mailgun => "Mailgun",
    }
}

impl From<&MailWebhook> for WebhookRow {
    fn from(w: &MailWebhook) -> Self {
        Self {
            id: w.id.clone(),
            kind: w.kind.as_str(),
            kind_label: label(w.kind),
            name: w.name.clone(),
            signing_key_set: w.signing_key.is_some(),
            subscribe_url: w.subscribe_url.clone(),
            reports_received: w.reports_received,
            last_received_at: w.last_received_at_us,
            created_at: w.created_at_us,
        }
    }
}

#[derive(Debug, Serialize)]
struct KindOption {
    value: &'static str,
    label: &'static str,
}

fn kinds() -> Vec<KindOption> {
    WebhookKind::ALL
        .iter()
        .map(|k| KindOption {
            value: k.as_str(),
            label: label(*k),
        })
        .collect()
}

#[derive(Debug, Default, Serialize)]
struct FormValues {
    kind: String,
    name: String,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "Webhook made. Give its URL to the provider now: it is shown only once.",
        "deleted" => "Webhook deleted: the provider's posts to it are refused from now on.",
        _ => return None,
    })
}

async fn list_page(
    state: &WebState,
    member: &Member,
    status: StatusCode,
    form: FormValues,
    error: Option<ShownError>,
    notice: Option<&str>,
) -> UiResult {
    let hooks = service(state)?.webhooks(&member.org.id).await?;
    let rows: Vec<WebhookRow> = hooks.iter().map(WebhookRow::from).collect();
    let body = templates::render(
        "mail_webhooks.html",
        &member.layout("mail", "Bounce webhooks"),
        minijinja::context! {
            tab => "webhooks",
            webhooks => rows,
            kinds => kinds(),
            form,
            field_error => error,
            notice,
        },
    )?;
    Ok(html(status, body))
}

pub(crate) async fn list_webhooks(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<DoneParams>,
) -> UiResult {
    list_page(
        &state,
        &member,
        StatusCode::OK,
        FormValues {
            kind: WebhookKind::Ses.as_str().into(),
            name: String::new(),
        },
        None,
        notice(params.done.as_deref()),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WebhookForm {
    #[serde(default)]
    csrf: String,
    kind: Option<String>,
    name: Option<String>,
    signing_key: Option<String>,
    confirm: Option<String>,
}

/// What a new webhook's URL is sealed for until its page.
fn reveal_for(id: &str) -> String {
    format!("mail-webhook:{id}")
}

/// Makes a webhook and opens its page, which shows the URL once.
pub(crate) async fn create_webhook(
    State(state): State<WebState>,
    member: Member,
    headers: HeaderMap,
    form: Result<Form<WebhookForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(f)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(&f.csrf)?;
    let mail = service(&state)?;
    let posted = FormValues {
        kind: f.kind.clone().unwrap_or_default(),
        name: f.name.clone().unwrap_or_default(),
    };
    let Some(kind) = filled(&f.kind).and_then(WebhookKind::parse) else {
        let error = ShownError::new("kind", "kind: one of ses, sendgrid, postmark, mailgun");
        return list_page(
            &state,
            &member,
            StatusCode::BAD_REQUEST,
            posted,
            Some(error),
            None,
        )
        .await;
    };
    let issued = match mail
        .create_webhook(
            &member.org.id,
            kind,
            f.name.as_deref().unwrap_or_default(),
            filled(&f.signing_key),
        )
        .await
    {
        Ok(issued) => issued,
        Err(e) => {
            return match refusal(e) {
                Refusal::Field(error) => {
                    list_page(
                        &state,
                        &member,
                        StatusCode::BAD_REQUEST,
                        posted,
                        Some(error),
                        None,
                    )
                    .await
                }
                Refusal::Page(e) => Err(e),
            }
        }
    };
    tracing::info!(webhook = %issued.webhook.id, kind = kind.as_str(), "mail webhook made from the admin UI");
    let url = format!("{}{}", api_host(&state, &headers), issued.path);
    let sealed = member.signed.session.reveal_once(
        &reveal_for(&issued.webhook.id),
        &url,
        session::is_secure(state.public_url(), &headers),
    );
    let page = redirect(&member.path(&format!(
        "/mail/webhooks/{}?done=created",
        issued.webhook.id
    )));
    Ok(with_cookie(page, Some(sealed)))
}

async fn find(state: &WebState, member: &Member, id: &str) -> Result<MailWebhook, UiError> {
    service(state)?
        .webhooks(&member.org.id)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or_else(UiError::not_found)
}

/// A webhook: what it received, its URL if just made, the delete button.
pub(crate) async fn show_webhook(
    State(state): State<WebState>,
    member: Member,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let hook = find(&state, &member, &id).await?;
    let secure = session::is_secure(state.public_url(), &headers);
    let (url, clear) = member
        .signed
        .session
        .take_revealed(&headers, &reveal_for(&hook.id), secure);
    let body = templates::render(
        "mail_webhook.html",
        &member.layout("mail", hook.name.clone()),
        minijinja::context! {
            tab => "webhooks",
            w => WebhookRow::from(&hook),
            url,
            notice => notice(params.done.as_deref()),
        },
    )?;
    Ok(with_cookie(html(StatusCode::OK, body), clear))
}

/// Deletes the webhook (`confirm=yes`).
pub(crate) async fn webhook_action(
    State(state): State<WebState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
    form: Result<Form<WebhookForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(f)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(&f.csrf)?;
    let mail = service(&state)?;
    if f.confirm.as_deref() != Some("yes") {
        return Err(UiError::bad_form());
    }
    mail.delete_webhook(&member.org.id, &id).await?;
    tracing::info!(webhook = %id, "mail webhook deleted from the admin UI");
    Ok(redirect(&member.path("/mail/webhooks?done=deleted")))
}
