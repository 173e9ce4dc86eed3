//! The authorize page (`/setup/woocommerce?pairing=…`, connect.md §1.2):
//! the merchant signs in (or creates the first account of a fresh server),
//! checks the store and its code, picks the organisation and approves or
//! denies. Plain HTML forms, no JavaScript. Every form is CSRF-protected:
//! the sign-in and first-account forms by a double-submit cookie, the
//! decision by the session's token (see `crate::session`). The router's
//! headers keep it from being framed (clickjacking an Approve button) or
//! cached. It renders with the UI's templates (`authorize.html`).

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use cohort_domain::accounts::{hash_password, AccountError, MIN_PASSWORD_CHARS};
use cohort_domain::connect::{PairingStatus, Platform};
use cohort_domain::ids::OrgId;
use cohort_store::connect::{DecisionOutcome, Pairing};
use cohort_store::users::Role;
use cohort_store::{now_micros, StoreError};
use serde::Deserialize;

use crate::session::{self, ClientAddress, Session, SignIn};
use crate::{html, templates, UiError, WebState};

/// Where store plugins send the merchant (the pairing's `authorize_url`).
pub(crate) const PATH: &str = "/setup/woocommerce";

#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    /// The `pairing_id` of the request
    pub pairing: Option<String>,
}

/// Every form of the page posts here; `action` says which.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeForm {
    /// `sign_in`, `create_account`, `approve`, `deny` or `sign_out`
    pub action: Option<String>,
    /// The form's CSRF token
    pub csrf: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub password_confirmation: Option<String>,
    /// The organisation that will own the store (on `approve`)
    pub org: Option<String>,
}

/// The page: sign in / create the first account, then approve or deny.
pub async fn show(
    State(state): State<WebState>,
    Query(params): Query<AuthorizeParams>,
    headers: HeaderMap,
) -> Response {
    let pairing = match load(&state, params.pairing.as_deref()).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let session = match session::current(state.db(), &headers).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    render(
        &state,
        &pairing,
        session.as_ref(),
        &headers,
        Shown::default(),
        StatusCode::OK,
        Vec::new(),
    )
    .await
}

/// Signs in, creates the first account, approves, denies or signs out.
pub async fn submit(
    State(state): State<WebState>,
    Query(params): Query<AuthorizeParams>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    form: Result<Form<AuthorizeForm>, FormRejection>,
) -> Response {
    let pairing = match load(&state, params.pairing.as_deref()).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let Ok(Form(form)) = form else {
        return UiError::bad_form().into_response();
    };
    let session = match session::current(state.db(), &headers).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let secure = session::is_secure(state.public_url(), &headers);
    let csrf = form.csrf.as_deref().unwrap_or_default();
    let email = form.email.as_deref().unwrap_or_default().trim();
    let password = form.password.clone().unwrap_or_default();
    let here = format!("/setup/woocommerce?pairing={}", pairing.id);

    match (form.action.as_deref().unwrap_or_default(), session) {
        ("sign_in", _) => {
            if !session::verify_login_csrf(&headers, csrf) {
                return forbidden();
            }
            let user = match session::sign_in(state.db(), email, &password, address).await {
                Ok(SignIn::Accepted(user)) => user,
                Ok(SignIn::Wrong) => {
                    let shown = Shown {
                        email,
                        error: Some("The email or the password is wrong."),
                    };
                    return render(
                        &state,
                        &pairing,
                        None,
                        &headers,
                        shown,
                        StatusCode::UNAUTHORIZED,
                        Vec::new(),
                    )
                    .await;
                }
                Ok(SignIn::Throttled) => {
                    let shown = Shown {
                        email,
                        error: Some("Too many failed sign-ins. Wait 15 minutes, then try again."),
                    };
                    return render(
                        &state,
                        &pairing,
                        None,
                        &headers,
                        shown,
                        StatusCode::TOO_MANY_REQUESTS,
                        Vec::new(),
                    )
                    .await;
                }
                Err(e) => return unavailable(e),
            };
            match session::start(state.db(), user, secure).await {
                Ok((_, cookie)) => redirect(&here, vec![cookie]),
                Err(e) => unavailable(e),
            }
        }
        ("create_account", _) => {
            if !session::verify_login_csrf(&headers, csrf) {
                return forbidden();
            }
            let again = |error: &'static str| {
                let state = state.clone();
                let pairing = pairing.clone();
                let headers = headers.clone();
                let email = email.to_owned();
                async move {
                    let shown = Shown {
                        email: &email,
                        error: Some(error),
                    };
                    render(
                        &state,
                        &pairing,
                        None,
                        &headers,
                        shown,
                        StatusCode::BAD_REQUEST,
                        Vec::new(),
                    )
                    .await
                }
            };
            if Some(&password) != form.password_confirmation.as_ref() {
                return again("The two passwords differ.").await;
            }
            let hashed = tokio::task::spawn_blocking(move || hash_password(&password)).await;
            let hash = match hashed {
                Ok(Ok(hash)) => hash,
                Ok(Err(AccountError::PasswordTooShort)) => {
                    return again("The password is too short.").await
                }
                Ok(Err(_)) | Err(_) => return unavailable(StoreError::PasswordHash),
            };
            let user = match state.db().create_first_admin(email, &hash).await {
                Ok(Some(user)) => user,
                Ok(None) => {
                    return again("An account already exists on this Cohort: sign in with it.")
                        .await
                }
                Err(StoreError::Invalid(_)) => return again("That is not an email address.").await,
                Err(e) => return unavailable(e),
            };
            match session::start(state.db(), user, secure).await {
                Ok((_, cookie)) => redirect(&here, vec![cookie]),
                Err(e) => unavailable(e),
            }
        }
        // Deciding or signing out needs a session; without one (it expired)
        // the page asks to sign in again.
        ("approve" | "deny" | "sign_out", None) => redirect(&here, Vec::new()),
        (action @ ("approve" | "deny" | "sign_out"), Some(session)) => {
            if !session.verify_csrf(csrf) {
                return forbidden();
            }
            match action {
                "sign_out" => match session::end(state.db(), &session, secure).await {
                    Ok(cookie) => redirect(&here, vec![cookie]),
                    Err(e) => unavailable(e),
                },
                "deny" => decided(
                    state.db().deny_pairing(&pairing.id, &session.user.id).await,
                    &pairing,
                ),
                _ => {
                    let orgs = match approvable_orgs(&state, &session).await {
                        Ok(orgs) => orgs,
                        Err(e) => return unavailable(e),
                    };
                    let chosen = form.org.as_deref().unwrap_or_default();
                    let Some((org, _)) = orgs.iter().find(|(id, _)| id.as_str() == chosen) else {
                        let shown = Shown {
                            email: "",
                            error: Some("Choose an organisation you administer."),
                        };
                        return render(
                            &state,
                            &pairing,
                            Some(&session),
                            &headers,
                            shown,
                            StatusCode::BAD_REQUEST,
                            Vec::new(),
                        )
                        .await;
                    };
                    decided(
                        state
                            .db()
                            .approve_pairing(&pairing.id, org, &session.user.id)
                            .await,
                        &pairing,
                    )
                }
            }
        }
        _ => UiError::bad_form().into_response(),
    }
}

/// What a re-rendered form shows back.
#[derive(Default, Clone, Copy)]
struct Shown<'a> {
    email: &'a str,
    error: Option<&'a str>,
}

/// The pairing named by the query, if it can still be decided; otherwise
/// the page that says why not.
async fn load(state: &WebState, id: Option<&str>) -> Result<Pairing, Response> {
    let id = id
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .ok_or_else(unknown)?;
    let pairing = match state.db().find_pairing(id).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(unknown()),
        Err(e) => return Err(unavailable(e)),
    };
    match pairing.status {
        PairingStatus::Pending if pairing.is_expired(now_micros()) => Err(expired(&pairing)),
        PairingStatus::Pending => Ok(pairing),
        PairingStatus::Denied => Err(message(
            StatusCode::GONE,
            "This connection request was denied",
            "Start again from WordPress to connect the store.",
        )),
        PairingStatus::Approved | PairingStatus::Claimed => Err(message(
            StatusCode::GONE,
            "This connection request was already approved",
            "Return to WordPress: the store shows the connection.",
        )),
    }
}

async fn approvable_orgs(
    state: &WebState,
    session: &Session,
) -> Result<Vec<(OrgId, String)>, StoreError> {
    Ok(state
        .db()
        .memberships_of(&session.user.id)
        .await?
        .into_iter()
        .filter(|(_, role)| matches!(role, Role::Owner | Role::Admin))
        .map(|(org, _)| (org.id, org.name))
        .collect())
}

fn decided(outcome: Result<DecisionOutcome, StoreError>, pairing: &Pairing) -> Response {
    match outcome {
        Ok(DecisionOutcome::Approved { return_url, .. }) => {
            redirect(&with_outcome(&return_url, "approved"), Vec::new())
        }
        Ok(DecisionOutcome::Denied { return_url }) => {
            redirect(&with_outcome(&return_url, "denied"), Vec::new())
        }
        Ok(DecisionOutcome::Expired { .. }) => expired(pairing),
        Ok(DecisionOutcome::AlreadyDecided) => message(
            StatusCode::GONE,
            "This connection request was already decided",
            "Return to WordPress.",
        ),
        Ok(DecisionOutcome::NotFound) => unknown(),
        Err(e) => unavailable(e),
    }
}

/// `return_url` with `cohort_pairing=<outcome>` added to its query.
pub(crate) fn with_outcome(return_url: &str, outcome: &str) -> String {
    let (base, fragment) = match return_url.find('#') {
        Some(i) => return_url.split_at(i),
        None => (return_url, ""),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}cohort_pairing={outcome}{fragment}")
}

async fn render(
    state: &WebState,
    pairing: &Pairing,
    session: Option<&Session>,
    headers: &HeaderMap,
    shown: Shown<'_>,
    status: StatusCode,
    mut cookies: Vec<HeaderValue>,
) -> Response {
    let store = &pairing.store;
    let platform = match &store.wc_version {
        Some(wc) if store.platform == Platform::Woocommerce => {
            format!("WooCommerce {} on WordPress {}", wc, store.wp_version)
        }
        _ => format!("WordPress {}", store.wp_version),
    };
    let summary = minijinja::context! {
        title => "Connect a store",
        action => format!("/setup/woocommerce?pairing={}", pairing.id),
        site_name => store.site_name,
        store_url => store.store_url,
        platform,
        code => pairing.user_code,
        error => shown.error,
    };
    let form = match session {
        Some(session) => {
            let orgs = match approvable_orgs(state, session).await {
                Ok(orgs) => orgs,
                Err(e) => return unavailable(e),
            };
            let orgs: Vec<_> = orgs
                .iter()
                .map(|(id, name)| minijinja::context! { id => id.as_str(), name })
                .collect();
            minijinja::context! {
                form => "decide",
                csrf => session.csrf_token(),
                signed_in_as => session.user.email,
                orgs,
            }
        }
        None => {
            let secure = session::is_secure(state.public_url(), headers);
            let (csrf, set) = session::login_csrf(headers, secure);
            cookies.extend(set);
            let fresh = match state.db().count_users().await {
                Ok(n) => n == 0,
                Err(e) => return unavailable(e),
            };
            minijinja::context! {
                form => if fresh { "create_account" } else { "sign_in" },
                csrf,
                email => shown.email,
                min_password_chars => MIN_PASSWORD_CHARS,
            }
        }
    };
    let body = templates::render_bare("authorize.html", minijinja::context! { ..summary, ..form });
    with_cookies(html(status, body), cookies)
}

fn with_cookies(mut response: Response, cookies: Vec<HeaderValue>) -> Response {
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A `303 See Other` to `location` (this page, or the store's return URL),
/// setting `cookies`.
fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return message(
            StatusCode::BAD_REQUEST,
            "The store's return address is invalid",
            "Start again from WordPress to connect the store.",
        );
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, value);
    with_cookies(response, cookies)
}

fn message(status: StatusCode, title: &'static str, text: &str) -> Response {
    UiError::new(status, title, text).into_response()
}

fn unknown() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "This connection request is unknown",
        "Start again from WordPress: Connect to Cohort.",
    )
}

fn expired(pairing: &Pairing) -> Response {
    let body = templates::render_bare(
        "authorize_expired.html",
        minijinja::context! {
            title => "Request expired",
            back => with_outcome(&pairing.store.return_url, "expired"),
        },
    );
    html(StatusCode::GONE, body)
}

fn forbidden() -> Response {
    UiError::expired_form().into_response()
}

fn unavailable(error: StoreError) -> Response {
    UiError::unavailable(error).into_response()
}

#[cfg(test)]
mod tests {
    use super::with_outcome;

    #[test]
    fn the_outcome_is_added_to_the_return_url() {
        assert_eq!(
            with_outcome(
                "https://s.example/wp-admin/admin.php?page=cohort",
                "approved"
            ),
            "https://s.example/wp-admin/admin.php?page=cohort&cohort_pairing=approved"
        );
        assert_eq!(
            with_outcome("https://s.example/back#top", "denied"),
            "https://s.example/back?cohort_pairing=denied#top"
        );
    }
}
