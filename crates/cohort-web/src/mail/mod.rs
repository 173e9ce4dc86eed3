//! The mail pages under `/app/o/{org}/mail`: the outbox (filters by state
//! and recipient, a message with every attempt's SMTP answer and the
//! bounce reports received, retry of a dead letter), the SMTP providers
//! (create, edit, test the connection, make default, delete; the password
//! never shown), the sending domains with the DKIM, SPF, DMARC and
//! return-path records to publish, the suppression list (search, add,
//! lift with a reason) and the bounce webhooks of the providers (the
//! secret URL shown once).
//!
//! Every check is `cohort_engine::mail`'s, shared with the admin API and
//! the CLI: its `MailError::Invalid` becomes an inline error beside the
//! field it names, with the values given kept.

mod domains;
mod outbox;
mod providers;
mod suppressions;
mod webhooks;

use axum::http::StatusCode;
use cohort_engine::mail::{Mail, MailError};
use serde::Serialize;

pub(crate) use domains::{add_domain, list_domains, show_domain};
pub(crate) use outbox::{list_outbox, message_action, show_message};
pub(crate) use providers::{create_provider, list_providers, provider_action, show_provider};
pub(crate) use suppressions::{list_suppressions, suppression_action};
pub(crate) use webhooks::{create_webhook, list_webhooks, show_webhook, webhook_action};

use crate::{UiError, WebState};

/// The server's mail service, or a page saying mail is off.
fn service(state: &WebState) -> Result<&Mail, UiError> {
    state.mail().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Mail is off",
            "This server runs without its mail service.",
        )
    })
}

/// A field error as a form shows it: the input at fault and the sentence.
#[derive(Debug, Clone, Serialize)]
struct ShownError {
    input: String,
    text: String,
}

impl ShownError {
    fn new(input: &str, text: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            text: text.into(),
        }
    }
}

/// What a refused mail operation shows: a field error for bad input, the
/// page's own error otherwise.
enum Refusal {
    Field(ShownError),
    Page(UiError),
}

fn refusal(error: MailError) -> Refusal {
    match error {
        MailError::Invalid { field, message } => {
            Refusal::Field(ShownError::new(field, format!("{field}: {message}")))
        }
        other => Refusal::Page(other.into()),
    }
}

impl From<MailError> for UiError {
    fn from(error: MailError) -> Self {
        match error {
            MailError::NotFound(_) => UiError::not_found(),
            MailError::Store(e) => e.into(),
            MailError::Invalid { field, message } => UiError::new(
                StatusCode::BAD_REQUEST,
                "Not possible",
                format!("{field}: {message}"),
            ),
        }
    }
}

/// A trimmed, non-empty form value.
fn filled(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}
