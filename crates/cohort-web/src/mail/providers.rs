//! SMTP providers: the list with the default first, the create form, a
//! provider's page (edit, test the connection, make default, delete). The
//! password is write-only: never sent back to a browser, kept when its
//! field is left empty.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use cohort_domain::mail::ProviderTls;
use cohort_engine::mail::{ProviderInput, ProviderPatch};
use cohort_store::mail::MailProvider;
use serde::{Deserialize, Serialize};

use super::{filled, refusal, service, Refusal, ShownError};
use crate::sources::DoneParams;
use crate::{html, redirect, templates, Member, UiError, UiResult, WebState};

/// A provider as the pages show it: no password, only whether one is set.
#[derive(Debug, Serialize)]
struct ProviderRow {
    id: String,
    name: String,
    host: String,
    port: u16,
    tls: &'static str,
    username: Option<String>,
    password_set: bool,
    max_connections: u32,
    rate_per_second: Option<u32>,
    rate_per_hour: Option<u32>,
    default: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<&MailProvider> for ProviderRow {
    fn from(p: &MailProvider) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            host: p.host.clone(),
            port: p.port,
            tls: p.tls.as_str(),
            username: p.username.clone(),
            password_set: p.password.is_some(),
            max_connections: p.max_connections,
            rate_per_second: p.limits.per_second,
            rate_per_hour: p.limits.per_hour,
            default: p.is_default,
            created_at: p.created_at_us,
            updated_at: p.updated_at_us,
        }
    }
}

/// The provider form as posted (every field text, so a bad number comes
/// back with its value and an error instead of a rejected form).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProviderForm {
    #[serde(default)]
    csrf: String,
    action: Option<String>,
    name: Option<String>,
    host: Option<String>,
    port: Option<String>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// `yes`: remove the stored password (and the username) on save.
    clear_password: Option<String>,
    max_connections: Option<String>,
    rate_per_second: Option<String>,
    rate_per_hour: Option<String>,
    default: Option<String>,
    confirm: Option<String>,
}

/// The values a form shows (never a password).
#[derive(Debug, Serialize)]
struct FormValues {
    name: String,
    host: String,
    port: String,
    tls: String,
    username: String,
    max_connections: String,
    rate_per_second: String,
    rate_per_hour: String,
    default: bool,
}

impl FormValues {
    fn blank(first: bool) -> Self {
        Self {
            name: String::new(),
            host: String::new(),
            port: "587".into(),
            tls: ProviderTls::StartTls.as_str().into(),
            username: String::new(),
            max_connections: "5".into(),
            rate_per_second: String::new(),
            rate_per_hour: String::new(),
            default: first,
        }
    }

    fn of(p: &MailProvider) -> Self {
        Self {
            name: p.name.clone(),
            host: p.host.clone(),
            port: p.port.to_string(),
            tls: p.tls.as_str().into(),
            username: p.username.clone().unwrap_or_default(),
            max_connections: p.max_connections.to_string(),
            rate_per_second: p
                .limits
                .per_second
                .map(|r| r.to_string())
                .unwrap_or_default(),
            rate_per_hour: p.limits.per_hour.map(|r| r.to_string()).unwrap_or_default(),
            default: p.is_default,
        }
    }

    fn posted(f: &ProviderForm) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            name: text(&f.name),
            host: text(&f.host),
            port: text(&f.port),
            tls: text(&f.tls),
            username: text(&f.username),
            max_connections: text(&f.max_connections),
            rate_per_second: text(&f.rate_per_second),
            rate_per_hour: text(&f.rate_per_hour),
            default: f.default.is_some(),
        }
    }
}

/// A whole number from a field, or the error naming it.
fn number(field: &'static str, value: &Option<String>) -> Result<Option<i64>, ShownError> {
    match filled(value) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ShownError::new(field, format!("{field}: a whole number"))),
    }
}

fn input_of(f: &ProviderForm) -> Result<ProviderInput, ShownError> {
    Ok(ProviderInput {
        name: f.name.clone().unwrap_or_default(),
        kind: None,
        host: f.host.clone().unwrap_or_default(),
        port: number("port", &f.port)?.ok_or_else(|| ShownError::new("port", "port: required"))?,
        tls: f.tls.clone().unwrap_or_default(),
        username: filled(&f.username).map(str::to_owned),
        password: filled(&f.password).map(str::to_owned),
        max_connections: number("max_connections", &f.max_connections)?,
        rate_per_second: number("rate_per_second", &f.rate_per_second)?,
        rate_per_hour: number("rate_per_hour", &f.rate_per_hour)?,
        default: f.default.is_some(),
    })
}

/// A change from the edit form: an empty password keeps the stored one.
fn patch_of(f: &ProviderForm) -> Result<ProviderPatch, ShownError> {
    let clear = f.clear_password.as_deref() == Some("yes");
    Ok(ProviderPatch {
        name: f.name.clone(),
        host: f.host.clone(),
        port: Some(
            number("port", &f.port)?.ok_or_else(|| ShownError::new("port", "port: required"))?,
        ),
        tls: f.tls.clone(),
        username: Some(filled(&f.username).map(str::to_owned)),
        password: match (clear, filled(&f.password)) {
            (true, _) => Some(None),
            (false, Some(p)) => Some(Some(p.to_owned())),
            (false, None) => None,
        },
        max_connections: number("max_connections", &f.max_connections)?,
        rate_per_second: Some(number("rate_per_second", &f.rate_per_second)?),
        rate_per_hour: Some(number("rate_per_hour", &f.rate_per_hour)?),
        // Unchecked does not demote: another provider is made the default instead.
        default: f.default.is_some().then_some(true),
    })
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "Provider created. Test the connection before mail goes through it.",
        "saved" => "Saved. The next messages go out with these settings.",
        "default" => "This provider is now the default: mail that names none goes through it.",
        "deleted" => "Provider deleted. Messages that named it go through the default.",
        _ => return None,
    })
}

fn tls_modes() -> Vec<&'static str> {
    ProviderTls::ALL.iter().map(|t| t.as_str()).collect()
}

async fn list_page(
    state: &WebState,
    member: &Member,
    status: StatusCode,
    form: FormValues,
    error: Option<ShownError>,
    notice: Option<&str>,
) -> UiResult {
    let providers = service(state)?.providers(&member.org.id).await?;
    let rows: Vec<ProviderRow> = providers.iter().map(ProviderRow::from).collect();
    let body = templates::render(
        "mail_providers.html",
        &member.layout("mail", "Mail providers"),
        minijinja::context! {
            tab => "providers",
            providers => rows,
            node_transport => node_transport(state),
            form,
            field_error => error,
            tls_modes => tls_modes(),
            notice,
        },
    )?;
    Ok(html(status, body))
}

/// What sends an organisation's mail while it has no provider.
fn node_transport(state: &WebState) -> String {
    match state.mail().map(|m| &m.settings().transport) {
        Some(cohort_engine::mail::NodeTransport::Folder(dir)) => {
            format!("the server's outbox folder ({})", dir.display())
        }
        Some(cohort_engine::mail::NodeTransport::Smtp(s)) => {
            format!("the server's own relay ({}:{})", s.host, s.port)
        }
        None => "nothing".into(),
    }
}

/// The providers and the form that adds one.
pub(crate) async fn list_providers(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let first = service(&state)?.providers(&member.org.id).await?.is_empty();
    list_page(
        &state,
        &member,
        StatusCode::OK,
        FormValues::blank(first),
        None,
        notice(params.done.as_deref()),
    )
    .await
}

/// Creates a provider from the form.
pub(crate) async fn create_provider(
    State(state): State<WebState>,
    member: Member,
    form: Result<Form<ProviderForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(f)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(&f.csrf)?;
    let mail = service(&state)?;
    let again = |error: ShownError| {
        list_page(
            &state,
            &member,
            StatusCode::BAD_REQUEST,
            FormValues::posted(&f),
            Some(error),
            None,
        )
    };
    let input = match input_of(&f) {
        Ok(input) => input,
        Err(error) => return again(error).await,
    };
    match mail.create_provider(&member.org.id, input).await {
        Ok(created) => {
            tracing::info!(provider = %created.id, "mail provider created from the admin UI");
            Ok(redirect(&member.path(&format!(
                "/mail/providers/{}?done=created",
                created.id
            ))))
        }
        Err(e) => match refusal(e) {
            Refusal::Field(error) => again(error).await,
            Refusal::Page(e) => Err(e),
        },
    }
}

/// A connection test as the page shows it.
#[derive(Debug, Serialize)]
struct TestShown {
    ok: bool,
    answer: String,
}

async fn provider_page(
    member: &Member,
    provider: &MailProvider,
    status: StatusCode,
    shown: (Option<FormValues>, Option<ShownError>, Option<TestShown>),
    notice: Option<&str>,
) -> UiResult {
    let (form, error, test) = shown;
    let body = templates::render(
        "mail_provider.html",
        &member.layout("mail", provider.name.clone()),
        minijinja::context! {
            tab => "providers",
            p => ProviderRow::from(provider),
            form => form.unwrap_or_else(|| FormValues::of(provider)),
            field_error => error,
            test,
            tls_modes => tls_modes(),
            notice,
        },
    )?;
    Ok(html(status, body))
}

/// A provider's page: its settings to edit and the other actions.
pub(crate) async fn show_provider(
    State(state): State<WebState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let provider = service(&state)?.provider(&member.org.id, &id).await?;
    provider_page(
        &member,
        &provider,
        StatusCode::OK,
        (None, None, None),
        notice(params.done.as_deref()),
    )
    .await
}

/// `action`: `save`, `test`, `default` or `delete` (with `confirm=yes`).
pub(crate) async fn provider_action(
    State(state): State<WebState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
    form: Result<Form<ProviderForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(f)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(&f.csrf)?;
    let mail = service(&state)?;
    let org = &member.org.id;
    let provider = mail.provider(org, &id).await?;
    let page = member.path(&format!("/mail/providers/{id}"));
    match f.action.as_deref() {
        Some("save") => {
            let again = |error: ShownError| {
                provider_page(
                    &member,
                    &provider,
                    StatusCode::BAD_REQUEST,
                    (Some(FormValues::posted(&f)), Some(error), None),
                    None,
                )
            };
            let patch = match patch_of(&f) {
                Ok(patch) => patch,
                Err(error) => return again(error).await,
            };
            match mail.update_provider(org, &id, patch).await {
                Ok(_) => Ok(redirect(&format!("{page}?done=saved"))),
                Err(e) => match refusal(e) {
                    Refusal::Field(error) => again(error).await,
                    Refusal::Page(e) => Err(e),
                },
            }
        }
        Some("default") => {
            let patch = ProviderPatch {
                default: Some(true),
                ..Default::default()
            };
            mail.update_provider(org, &id, patch).await?;
            Ok(redirect(&format!("{page}?done=default")))
        }
        Some("test") => {
            let test = match mail.test_provider(org, &id).await? {
                Ok(()) => TestShown {
                    ok: true,
                    answer: format!(
                        "{}:{} accepted the connection{}.",
                        provider.host,
                        provider.port,
                        if provider.username.is_some() {
                            " and the credentials"
                        } else {
                            ""
                        }
                    ),
                },
                Err(answer) => TestShown { ok: false, answer },
            };
            provider_page(
                &member,
                &provider,
                StatusCode::OK,
                (None, None, Some(test)),
                None,
            )
            .await
        }
        Some("delete") => {
            if f.confirm.as_deref() != Some("yes") {
                return Err(UiError::bad_form());
            }
            mail.delete_provider(org, &id).await?;
            tracing::info!(provider = %id, "mail provider deleted from the admin UI");
            Ok(redirect(&member.path("/mail/providers?done=deleted")))
        }
        _ => Err(UiError::bad_form()),
    }
}
