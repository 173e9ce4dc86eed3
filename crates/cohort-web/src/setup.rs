//! The one-time link printed on first start: it lets whoever holds it create
//! the first owner account. The link's secret is its own CSRF protection: a
//! cross-site form cannot know it, and it works once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Form;
use cohort_domain::accounts::{hash_password, AccountError, MIN_PASSWORD_CHARS};
use cohort_store::StoreError;
use serde::Deserialize;

use crate::{html, redirect, templates, UiError, UiResult, WebState};

#[derive(Deserialize)]
pub struct SetupForm {
    pub email: String,
    pub password: String,
    pub password_confirmation: String,
}

fn invalid_link() -> UiError {
    UiError::new(
        StatusCode::NOT_FOUND,
        "This setup link cannot be used",
        "It is unknown, already used or expired. Create an account with \"cohort user create\", \
         or restart Cohort while no account exists to print a new link.",
    )
}

/// The form, with the email given and the reason it was refused.
fn form(status: StatusCode, token: &str, email: &str, error: Option<&str>) -> UiResult {
    let body = templates::render_bare(
        "setup.html",
        minijinja::context! {
            title => "Create the first admin",
            token,
            email,
            error,
            min_password_chars => MIN_PASSWORD_CHARS,
        },
    );
    Ok(html(status, body))
}

/// The form that creates the first owner.
pub(crate) async fn show_setup(
    State(state): State<WebState>,
    Path(token): Path<String>,
) -> UiResult {
    match state.db().check_setup_link(&token).await {
        Ok(Some(_)) => form(StatusCode::OK, &token, "", None),
        Ok(None) => Err(invalid_link()),
        Err(error) => Err(UiError::unavailable(error)),
    }
}

/// Creates the first owner and spends the link.
pub(crate) async fn create_first_admin(
    State(state): State<WebState>,
    Path(token): Path<String>,
    Form(input): Form<SetupForm>,
) -> UiResult {
    match state.db().check_setup_link(&token).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(invalid_link()),
        Err(error) => return Err(UiError::unavailable(error)),
    }
    if input.password != input.password_confirmation {
        return form(
            StatusCode::BAD_REQUEST,
            &token,
            &input.email,
            Some("The two passwords differ."),
        );
    }
    let password = input.password;
    let hashed = tokio::task::spawn_blocking(move || hash_password(&password)).await;
    let hash = match hashed {
        Ok(Ok(hash)) => hash,
        Ok(Err(short @ AccountError::PasswordTooShort)) => {
            return form(
                StatusCode::BAD_REQUEST,
                &token,
                &input.email,
                Some(&short.to_string()),
            )
        }
        Ok(Err(_)) | Err(_) => return Err(UiError::unavailable(StoreError::PasswordHash)),
    };
    match state
        .db()
        .redeem_setup_link(&token, &input.email, &hash)
        .await
    {
        // A redirect, so a reload of the next page posts nothing again.
        Ok(Some(user)) => {
            tracing::info!(user = %user.id, "first owner created with the setup link");
            Ok(redirect("/app/sign-in?done=account"))
        }
        Ok(None) => Err(invalid_link()),
        Err(StoreError::Invalid(reason)) => {
            form(StatusCode::BAD_REQUEST, &token, &input.email, Some(&reason))
        }
        Err(error) => Err(UiError::unavailable(error)),
    }
}
