//! The signed-in user's account: password change.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Form;
use cohort_domain::accounts::{hash_password, AccountError, MIN_PASSWORD_CHARS};
use cohort_store::StoreError;
use serde::Deserialize;

use crate::WebState;
use crate::{html, templates, Signed, UiError, UiResult};

fn page(
    signed: &Signed,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> UiResult {
    let body = templates::render(
        "account.html",
        &signed.layout("account", "Your account"),
        minijinja::context! { min_chars => MIN_PASSWORD_CHARS, notice, error },
    )?;
    Ok(html(status, body))
}

/// The account page.
pub(crate) async fn show_account(signed: Signed) -> UiResult {
    page(&signed, StatusCode::OK, None, None)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PasswordForm {
    pub csrf: Option<String>,
    pub current_password: Option<String>,
    pub new_password: Option<String>,
    pub new_password_confirmation: Option<String>,
}

/// Changes the password; the user's other sessions end.
pub(crate) async fn change_password(
    State(state): State<WebState>,
    signed: Signed,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    signed.check_csrf(form.csrf.as_deref().unwrap_or_default())?;
    let user = &signed.session.user;
    let current = form.current_password.unwrap_or_default();
    if state
        .db()
        .authenticate_user(&user.email, &current)
        .await?
        .is_none()
    {
        return page(
            &signed,
            StatusCode::UNAUTHORIZED,
            None,
            Some("The current password is wrong."),
        );
    }
    let new = form.new_password.unwrap_or_default();
    if Some(&new) != form.new_password_confirmation.as_ref() {
        return page(
            &signed,
            StatusCode::BAD_REQUEST,
            None,
            Some("The two new passwords differ."),
        );
    }
    let hash = match tokio::task::spawn_blocking(move || hash_password(&new)).await {
        Ok(Ok(hash)) => hash,
        Ok(Err(AccountError::PasswordTooShort)) => {
            return page(
                &signed,
                StatusCode::BAD_REQUEST,
                None,
                Some("The new password is too short."),
            );
        }
        _ => return Err(StoreError::PasswordHash.into()),
    };
    state
        .db()
        .set_password(&user.id, &hash, signed.session.id())
        .await?;
    tracing::info!(user = %user.id.as_str(), "password changed from the admin UI");
    page(
        &signed,
        StatusCode::OK,
        Some("Password changed. Your other sessions were signed out."),
        None,
    )
}
