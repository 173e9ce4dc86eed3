//! The one-time link printed on first start: it lets whoever holds it create
//! the first owner account. The link's secret is its own CSRF protection: a
//! cross-site form cannot know it, and it works once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::Form;
use cohort_domain::accounts::{hash_password, AccountError, MIN_PASSWORD_CHARS};
use cohort_store::StoreError;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::html::{escape, page};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_setup, create_first_admin))
}

#[derive(Deserialize, ToSchema)]
pub struct SetupForm {
    pub email: String,
    pub password: String,
    pub password_confirmation: String,
}

fn invalid_link() -> (StatusCode, Html<String>) {
    (
        StatusCode::NOT_FOUND,
        Html(page(
            "Setup link",
            "<h1>This setup link cannot be used</h1><p>It is unknown, already used or expired. \
             Create an account with <code>cohort user create</code>, or restart Cohort while no \
             account exists to print a new link.</p>",
        )),
    )
}

fn form(token: &str, email: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Create the first admin",
        &format!(
            "<h1>Create the first admin account</h1>{error}\
             <form method=\"post\" action=\"/setup/{token}\">\
             <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{email}\">\
             <label for=\"password\">Password (at least {MIN_PASSWORD_CHARS} characters)</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"{MIN_PASSWORD_CHARS}\">\
             <label for=\"password_confirmation\">Password again</label>\
             <input id=\"password_confirmation\" name=\"password_confirmation\" type=\"password\" autocomplete=\"new-password\" required>\
             <button type=\"submit\">Create account</button></form>",
            token = escape(token),
            email = escape(email),
        ),
    )
}

/// The form that creates the first owner.
#[utoipa::path(
    get,
    path = "/setup/{token}",
    tag = "setup",
    params(("token" = String, Path, description = "The one-time setup secret")),
    responses((status = 200, description = "The form", content_type = "text/html", body = String),
              (status = 404, description = "Unknown, used or expired link", content_type = "text/html", body = String))
)]
async fn show_setup(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> (StatusCode, Html<String>) {
    match state.db().check_setup_link(&token).await {
        Ok(Some(_)) => (StatusCode::OK, Html(form(&token, "", None))),
        Ok(None) => invalid_link(),
        Err(_) => unavailable(),
    }
}

/// Creates the first owner and spends the link.
#[utoipa::path(
    post,
    path = "/setup/{token}",
    tag = "setup",
    params(("token" = String, Path, description = "The one-time setup secret")),
    request_body(content = SetupForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 201, description = "Account created", content_type = "text/html", body = String),
              (status = 400, description = "Invalid email or password; the form again with the reason", content_type = "text/html", body = String),
              (status = 404, description = "Unknown, used or expired link", content_type = "text/html", body = String))
)]
async fn create_first_admin(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(input): Form<SetupForm>,
) -> (StatusCode, Html<String>) {
    match state.db().check_setup_link(&token).await {
        Ok(Some(_)) => {}
        Ok(None) => return invalid_link(),
        Err(_) => return unavailable(),
    }
    if input.password != input.password_confirmation {
        return (
            StatusCode::BAD_REQUEST,
            Html(form(
                &token,
                &input.email,
                Some("The two passwords differ."),
            )),
        );
    }
    let password = input.password;
    let hashed = tokio::task::spawn_blocking(move || hash_password(&password)).await;
    let hash = match hashed {
        Ok(Ok(hash)) => hash,
        Ok(Err(short @ AccountError::PasswordTooShort)) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(form(&token, &input.email, Some(&short.to_string()))),
            )
        }
        _ => return unavailable(),
    };
    match state
        .db()
        .redeem_setup_link(&token, &input.email, &hash)
        .await
    {
        Ok(Some(user)) => (
            StatusCode::CREATED,
            Html(page(
                "Account created",
                &format!(
                    "<h1>Account created</h1><p>{} is the owner of this Cohort.</p>\
                     <p><a href=\"/app/sign-in\">Sign in to the admin UI</a></p>",
                    escape(&user.email)
                ),
            )),
        ),
        Ok(None) => invalid_link(),
        Err(StoreError::Invalid(reason)) => (
            StatusCode::BAD_REQUEST,
            Html(form(&token, &input.email, Some(&reason))),
        ),
        Err(_) => unavailable(),
    }
}

fn unavailable() -> (StatusCode, Html<String>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(page(
            "Unavailable",
            "<h1>Cohort's database is unavailable</h1><p>Try again shortly.</p>",
        )),
    )
}
