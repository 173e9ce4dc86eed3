//! Sending domains: the list, the form that adds one (Cohort generates
//! its DKIM key), and a domain's page with the DNS records to publish
//! (DKIM, SPF, DMARC and, with a bounce domain, the return path's MX).

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use cohort_domain::mail::DnsRecord;
use cohort_engine::mail::DomainSetup;
use serde::{Deserialize, Serialize};

use super::{refusal, service, Refusal, ShownError};
use crate::sources::DoneParams;
use crate::{html, redirect, templates, Member, UiError, UiResult, WebState};

#[derive(Debug, Serialize)]
struct DomainRow {
    domain: String,
    dkim_selector: String,
    created_at: i64,
    records: Vec<DnsRecord>,
}

impl From<DomainSetup> for DomainRow {
    fn from(d: DomainSetup) -> Self {
        Self {
            domain: d.domain.domain,
            dkim_selector: d.domain.dkim_selector,
            created_at: d.domain.created_at_us,
            records: d.records,
        }
    }
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "added" => "Domain added with a new DKIM key. Publish the records below at your DNS host; messages from this domain are signed from now on.",
        "kept" => "This domain was already set up: its key and records are unchanged.",
        _ => return None,
    })
}

async fn list_page(
    state: &WebState,
    member: &Member,
    status: StatusCode,
    typed: &str,
    error: Option<ShownError>,
) -> UiResult {
    let domains: Vec<DomainRow> = service(state)?
        .domains(&member.org.id)
        .await?
        .into_iter()
        .map(DomainRow::from)
        .collect();
    let body = templates::render(
        "mail_domains.html",
        &member.layout("mail", "Sending domains"),
        minijinja::context! { tab => "domains", domains, typed, field_error => error },
    )?;
    Ok(html(status, body))
}

pub(crate) async fn list_domains(State(state): State<WebState>, member: Member) -> UiResult {
    list_page(&state, &member, StatusCode::OK, "", None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct DomainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    domain: String,
}

/// Adds a domain and opens its page with the records.
pub(crate) async fn add_domain(
    State(state): State<WebState>,
    member: Member,
    form: Result<Form<DomainForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(f)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(&f.csrf)?;
    match service(&state)?.add_domain(&member.org.id, &f.domain).await {
        Ok((setup, created)) => {
            let done = if created { "added" } else { "kept" };
            Ok(redirect(&member.path(&format!(
                "/mail/domains/{}?done={done}",
                setup.domain.domain
            ))))
        }
        Err(e) => match refusal(e) {
            Refusal::Field(error) => {
                list_page(
                    &state,
                    &member,
                    StatusCode::BAD_REQUEST,
                    &f.domain,
                    Some(error),
                )
                .await
            }
            Refusal::Page(e) => Err(e),
        },
    }
}

/// A domain with the records to publish.
pub(crate) async fn show_domain(
    State(state): State<WebState>,
    member: Member,
    Path((_, name)): Path<(String, String)>,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let wanted = name.trim().to_ascii_lowercase();
    let domain = service(&state)?
        .domains(&member.org.id)
        .await?
        .into_iter()
        .find(|d| d.domain.domain == wanted)
        .map(DomainRow::from)
        .ok_or_else(UiError::not_found)?;
    let body = templates::render(
        "mail_domain.html",
        &member.layout("mail", domain.domain.clone()),
        minijinja::context! { tab => "domains", d => domain, notice => notice(params.done.as_deref()) },
    )?;
    Ok(html(StatusCode::OK, body))
}
