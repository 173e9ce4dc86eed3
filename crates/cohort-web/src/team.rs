//! The team (members and their roles) and API tokens. Owners manage
//! everyone; admins manage admins and viewers; viewers see the list.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Form;
use cohort_domain::accounts::{hash_password, AccountError};
use cohort_store::users::Role;
use cohort_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::sources::DoneParams;
use crate::WebState;
use crate::{html, redirect, session, templates, with_cookie, Member, UiError, UiResult};

#[derive(Serialize)]
struct MemberRow {
    user_id: String,
    email: String,
    role: &'static str,
    created_at: i64,
    is_me: bool,
    /// Whether the viewer may change or remove this member.
    manageable: bool,
}

fn member_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "added" => "Member added. They sign in at /app/sign-in with their email.",
        "role" => "Role changed.",
        "removed" => "Member removed.",
        _ => return None,
    })
}

async fn members_page(
    state: &WebState,
    member: &Member,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> UiResult {
    let members: Vec<MemberRow> = state
        .db()
        .list_members(&member.org.id)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            is_me: m.user_id == member.signed.session.user.id.as_str(),
            manageable: member.role.can_manage() && member.role.can_assign(m.role),
            user_id: m.user_id,
            email: m.email,
            role: m.role.as_str(),
            created_at: m.created_at,
        })
        .collect();
    let assignable: Vec<&str> = [Role::Owner, Role::Admin, Role::Viewer]
        .into_iter()
        .filter(|r| member.role.can_assign(*r))
        .map(Role::as_str)
        .collect();
    let body = templates::render(
        "members.html",
        &member.layout("members", "Team"),
        minijinja::context! { members, assignable, notice, error },
    )?;
    Ok(html(status, body))
}

/// The organisation's members and their roles.
pub(crate) async fn list_members(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<DoneParams>,
) -> UiResult {
    members_page(
        &state,
        &member,
        StatusCode::OK,
        member_notice(params.done.as_deref()),
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AddMemberForm {
    pub csrf: Option<String>,
    pub email: Option<String>,
    /// owner, admin or viewer
    pub role: Option<String>,
    /// A first password, for a person without an account yet
    pub password: Option<String>,
}

/// Adds a member: an existing account, or a new one with a first password.
pub(crate) async fn add_member(
    State(state): State<WebState>,
    member: Member,
    form: Result<Form<AddMemberForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let again = |message: String| {
        members_page(
            &state,
            &member,
            StatusCode::BAD_REQUEST,
            None,
            Some(message),
        )
    };
    let Some(role) = form.role.as_deref().and_then(Role::parse) else {
        return again("Choose a role: owner, admin or viewer.".into()).await;
    };
    if !member.role.can_assign(role) {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only an owner can make someone an owner.",
        ));
    }
    let email = form.email.unwrap_or_default();
    let hash = match form.password.filter(|p| !p.is_empty()) {
        Some(password) => match tokio::task::spawn_blocking(move || hash_password(&password)).await
        {
            Ok(Ok(hash)) => Some(hash),
            Ok(Err(short @ AccountError::PasswordTooShort)) => {
                return again(format!("The first password is too short: {short}.")).await
            }
            _ => return Err(UiError::from(StoreError::PasswordHash)),
        },
        None => None,
    };
    match state
        .db()
        .add_member(&member.org.id, &email, role, hash.as_deref())
        .await
    {
        Ok(_) => Ok(redirect(&member.path("/members?done=added"))),
        Err(StoreError::Invalid(reason)) => again(reason).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MemberActionForm {
    pub csrf: Option<String>,
    /// `role` (change to `role`) or `remove`
    pub action: Option<String>,
    pub role: Option<String>,
}

/// Changes a member's role, or removes them from the organisation.
pub(crate) async fn member_action(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    form: Result<Form<MemberActionForm>, FormRejection>,
) -> UiResult {
    let user = ids.1;
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let db = state.db();
    let target = db
        .list_members(&member.org.id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user)
        .ok_or_else(UiError::not_found)?;
    let forbidden = || {
        UiError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only an owner can change or remove an owner.",
        )
    };
    if !member.role.can_assign(target.role) {
        return Err(forbidden());
    }
    let result = match form.action.as_deref() {
        Some("role") => {
            let role = form
                .role
                .as_deref()
                .and_then(Role::parse)
                .ok_or_else(UiError::bad_form)?;
            if !member.role.can_assign(role) {
                return Err(forbidden());
            }
            db.set_member_role(&member.org.id, &user, role)
                .await
                .map(|_| "role")
        }
        Some("remove") => db
            .remove_member(&member.org.id, &user)
            .await
            .map(|_| "removed"),
        _ => return Err(UiError::bad_form()),
    };
    match result {
        Ok(done) => Ok(redirect(&member.path(&format!("/members?done={done}")))),
        Err(StoreError::Invalid(reason)) => {
            members_page(&state, &member, StatusCode::BAD_REQUEST, None, Some(reason)).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn tokens_page(
    state: &WebState,
    member: &Member,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> UiResult {
    let tokens = state.db().list_api_tokens(&member.org.id).await?;
    let body = templates::render(
        "tokens.html",
        &member.layout("tokens", "API tokens"),
        minijinja::context! { tokens, notice, error },
    )?;
    Ok(html(status, body))
}

/// The organisation's API tokens (for the admin JSON API).
pub(crate) async fn list_tokens(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<DoneParams>,
) -> UiResult {
    let notice = (params.done.as_deref() == Some("revoked"))
        .then_some("Token revoked. Requests with it are refused from now on.");
    tokens_page(&state, &member, StatusCode::OK, notice, None).await
}

/// What a token's secret is sealed for between its creation and its page.
fn reveal_for(token: &str) -> String {
    format!("token:{token}")
}

/// One API token: its name, use and status; right after its creation, its
/// secret, once (sealed in a cookie of the session by [`create_token`]: a
/// reload shows it no more and creates nothing).
pub(crate) async fn show_token(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
) -> UiResult {
    let token = state
        .db()
        .list_api_tokens(&member.org.id)
        .await?
        .into_iter()
        .find(|t| t.id == ids.1)
        .ok_or_else(UiError::not_found)?;
    let secure = session::is_secure(state.public_url(), &headers);
    let (secret, clear) =
        member
            .signed
            .session
            .take_revealed(&headers, &reveal_for(&token.id), secure);
    let body = templates::render(
        "token.html",
        &member.layout("tokens", token.name.clone()),
        minijinja::context! { token, secret },
    )?;
    Ok(with_cookie(html(StatusCode::OK, body), clear))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewTokenForm {
    pub csrf: Option<String>,
    /// What the token is for, e.g. "Reporting script"
    pub name: Option<String>,
}

/// Creates an API token and redirects to its page, which shows it once.
pub(crate) async fn create_token(
    State(state): State<WebState>,
    member: Member,
    headers: HeaderMap,
    form: Result<Form<NewTokenForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    let name = form.name.unwrap_or_default();
    if name.trim().is_empty() || name.chars().count() > 100 {
        return tokens_page(
            &state,
            &member,
            StatusCode::BAD_REQUEST,
            None,
            Some("Give the token a name of 1 to 100 characters.".into()),
        )
        .await;
    }
    let (info, secret) = state.db().create_api_token(&member.org.id, &name).await?;
    tracing::info!(token = %info.id, "API token created from the admin UI");
    let secure = session::is_secure(state.public_url(), &headers);
    let sealed = member
        .signed
        .session
        .reveal_once(&reveal_for(&info.id), secret.reveal(), secure);
    Ok(with_cookie(
        redirect(&member.path(&format!("/tokens/{}?done=created", info.id))),
        Some(sealed),
    ))
}

/// Revokes an API token.
pub(crate) async fn revoke_token(
    State(state): State<WebState>,
    member: Member,
    Path(ids): Path<(String, String)>,
    form: Result<Form<super::auth::CsrfForm>, FormRejection>,
) -> UiResult {
    let token = ids.1;
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(form.csrf.as_deref().unwrap_or_default())?;
    state.db().revoke_api_token(&member.org.id, &token).await?;
    tracing::info!(token = %token, "API token revoked from the admin UI");
    Ok(redirect(&member.path("/tokens?done=revoked")))
}
