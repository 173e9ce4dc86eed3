//! The authorize page (`/setup/woocommerce?pairing=…`, connect.md §1.2):
//! the merchant signs in (or creates the first account of a fresh server),
//! checks the store and its code, picks the organisation and approves or
//! denies. Plain HTML forms, no JavaScript. Every form is CSRF-protected:
//! the sign-in and first-account forms by a double-submit cookie, the
//! decision by the session's token (see `crate::session`). The page may not
//! be framed (clickjacking an Approve button) and is never cached.

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
use utoipa::{IntoParams, ToSchema};

use crate::html::{escape, page};
use crate::session::{self, ClientAddress, Session, SignIn};
use crate::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeParams {
    /// The `pairing_id` of the request
    pub pairing: Option<String>,
}

/// Every form of the page posts here; `action` says which.
#[derive(Debug, Default, Deserialize, ToSchema)]
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
#[utoipa::path(
    get,
    path = "/setup/woocommerce",
    tag = "connect",
    params(AuthorizeParams),
    responses(
        (status = 200, description = "The sign-in, first-account or decision form", content_type = "text/html", body = String),
        (status = 404, description = "Unknown pairing", content_type = "text/html", body = String),
        (status = 410, description = "Expired or already decided", content_type = "text/html", body = String),
    )
)]
pub async fn show(
    State(state): State<AppState>,
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
#[utoipa::path(
    post,
    path = "/setup/woocommerce",
    tag = "connect",
    params(AuthorizeParams),
    request_body(content = AuthorizeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in (back to the page), or decided (to the store's return_url with `cohort_pairing=approved|denied`)"),
        (status = 400, description = "The form again with the reason", content_type = "text/html", body = String),
        (status = 401, description = "Wrong email or password", content_type = "text/html", body = String),
        (status = 403, description = "Missing or wrong CSRF token, or not allowed", content_type = "text/html", body = String),
        (status = 404, description = "Unknown pairing", content_type = "text/html", body = String),
        (status = 410, description = "Expired or already decided", content_type = "text/html", body = String),
        (status = 429, description = "Too many failed sign-ins (shared with the admin UI's limit)", content_type = "text/html", body = String),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
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
        return message(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "<h1>This form could not be read</h1><p>Go back and try again.</p>",
        );
    };
    let session = match session::current(state.db(), &headers).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let secure = session::is_secure(state.inner.settings.public_url.as_deref(), &headers);
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
        _ => message(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "<h1>This form could not be read</h1><p>Go back and try again.</p>",
        ),
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
async fn load(state: &AppState, id: Option<&str>) -> Result<Pairing, Response> {
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
            "Connection denied",
            "<h1>This connection request was denied</h1><p>Start again from WordPress to connect the store.</p>",
        )),
        PairingStatus::Approved | PairingStatus::Claimed => Err(message(
            StatusCode::GONE,
            "Already approved",
            "<h1>This connection request was already approved</h1><p>Return to WordPress: the store shows the connection.</p>",
        )),
    }
}

async fn approvable_orgs(
    state: &AppState,
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
            "Already decided",
            "<h1>This connection request was already decided</h1><p>Return to WordPress.</p>",
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
    state: &AppState,
    pairing: &Pairing,
    session: Option<&Session>,
    headers: &HeaderMap,
    shown: Shown<'_>,
    status: StatusCode,
    mut cookies: Vec<HeaderValue>,
) -> Response {
    let action = format!("/setup/woocommerce?pairing={}", escape(&pairing.id));
    let error = shown
        .error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let summary = summary(pairing);
    let body = match session {
        Some(session) => {
            let orgs = match approvable_orgs(state, session).await {
                Ok(orgs) => orgs,
                Err(e) => return unavailable(e),
            };
            let csrf = escape(&session.csrf_token());
            let signed_in = format!(
                "<form method=\"post\" action=\"{action}\" class=\"who\">Signed in as {} \
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\" name=\"action\" value=\"sign_out\" class=\"link\">Sign out</button></form>",
                escape(&session.user.email)
            );
            if orgs.is_empty() {
                format!(
                    "{summary}{error}<p class=\"error\">Your account administers no organisation, so it cannot \
                     approve this store. Ask an owner of the organisation.</p>{signed_in}"
                )
            } else {
                let options: String = orgs
                    .iter()
                    .map(|(id, name)| {
                        format!(
                            "<option value=\"{}\">{}</option>",
                            escape(id.as_str()),
                            escape(name)
                        )
                    })
                    .collect();
                format!(
                    "{summary}{error}<form method=\"post\" action=\"{action}\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <label for=\"org\">Organisation that will own this store</label>\
                     <select id=\"org\" name=\"org\" required>{options}</select>\
                     <div class=\"buttons\"><button type=\"submit\" name=\"action\" value=\"approve\">Approve</button> \
                     <button type=\"submit\" name=\"action\" value=\"deny\" class=\"secondary\">Deny</button></div>\
                     </form>{signed_in}"
                )
            }
        }
        None => {
            let secure = session::is_secure(state.inner.settings.public_url.as_deref(), headers);
            let (csrf, set) = session::login_csrf(headers, secure);
            cookies.extend(set);
            let csrf = escape(&csrf);
            let email = escape(shown.email);
            let fresh = match state.db().count_users().await {
                Ok(n) => n == 0,
                Err(e) => return unavailable(e),
            };
            if fresh {
                format!(
                    "{summary}<h2>Create the first account</h2><p>This Cohort has no account yet. The account you \
                     create now owns it.</p>{error}<form method=\"post\" action=\"{action}\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{email}\">\
                     <label for=\"password\">Password (at least {MIN_PASSWORD_CHARS} characters)</label>\
                     <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"{MIN_PASSWORD_CHARS}\">\
                     <label for=\"password_confirmation\">Password again</label>\
                     <input id=\"password_confirmation\" name=\"password_confirmation\" type=\"password\" autocomplete=\"new-password\" required>\
                     <button type=\"submit\" name=\"action\" value=\"create_account\">Create account</button></form>"
                )
            } else {
                format!(
                    "{summary}<h2>Sign in to Cohort</h2>{error}<form method=\"post\" action=\"{action}\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{email}\">\
                     <label for=\"password\">Password</label>\
                     <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
                     <button type=\"submit\" name=\"action\" value=\"sign_in\">Sign in</button></form>"
                )
            }
        }
    };
    html(status, page("Connect a store", &body), cookies)
}

fn summary(pairing: &Pairing) -> String {
    let store = &pairing.store;
    let name = if store.site_name.is_empty() {
        "(no site title)"
    } else {
        store.site_name.as_str()
    };
    let platform = match &store.wc_version {
        Some(wc) if store.platform == Platform::Woocommerce => {
            format!("WooCommerce {} on WordPress {}", wc, store.wp_version)
        }
        _ => format!("WordPress {}", store.wp_version),
    };
    format!(
        "<h1>Connect a store to Cohort</h1><p>A WordPress site asks to send its data to this Cohort.</p>\
         <dl><dt>Site</dt><dd>{name}</dd><dt>Address</dt><dd><code>{url}</code></dd>\
         <dt>Platform</dt><dd>{platform}</dd></dl>\
         <p>Code: <strong class=\"code\">{code}</strong><br>Check that WordPress shows the same code. \
         If it does not, deny.</p>",
        name = escape(name),
        url = escape(&store.store_url),
        platform = escape(&platform),
        code = escape(&pairing.user_code),
    )
}

fn html(status: StatusCode, body: String, cookies: Vec<HeaderValue>) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    protect(h);
    for cookie in cookies {
        h.append(header::SET_COOKIE, cookie);
    }
    response
}

fn protect(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
    );
}

fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            h.insert(header::LOCATION, value);
        }
        Err(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Invalid address",
                "<h1>The store's return address is invalid</h1>",
            )
        }
    }
    protect(h);
    for cookie in cookies {
        h.append(header::SET_COOKIE, cookie);
    }
    response
}

fn message(status: StatusCode, title: &str, body: &str) -> Response {
    html(status, page(title, body), Vec::new())
}

fn unknown() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Unknown request",
        "<h1>This connection request is unknown</h1><p>Start again from WordPress: Connect to Cohort.</p>",
    )
}

fn expired(pairing: &Pairing) -> Response {
    let back = with_outcome(&pairing.store.return_url, "expired");
    message(
        StatusCode::GONE,
        "Request expired",
        &format!(
            "<h1>This connection request expired</h1><p>Requests are valid for 15 minutes. \
             <a href=\"{}\">Return to WordPress</a> and connect again.</p>",
            escape(&back)
        ),
    )
}

fn forbidden() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Form expired",
        "<h1>This form has expired</h1><p>Reload the page and try again.</p>",
    )
}

fn unavailable(error: StoreError) -> Response {
    tracing::error!(%error, "storage error on the authorize page");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "<h1>Cohort's database is unavailable</h1><p>Try again shortly.</p>",
    )
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
