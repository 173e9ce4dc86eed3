//! Who is looking: the session (`Signed`), their membership of the
//! organisation in the path (`Member`), signing in and out, and the
//! organisation switcher.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use cohort_store::orgs::Organisation;
use cohort_store::users::Role;
use serde::{Deserialize, Serialize};

use crate::session::{self, ClientAddress, Session, SignIn};
use crate::templates::{self, Layout, OrgRef};
use crate::WebState;
use crate::{html, redirect, UiError, UiResult};

/// A signed-in browser. Without a session, a page redirects to sign-in.
pub(crate) struct Signed {
    pub session: Session,
    pub orgs: Vec<(Organisation, Role)>,
}

impl Signed {
    pub fn layout(&self, section: &'static str, title: impl Into<String>) -> Layout {
        Layout {
            email: self.session.user.email.clone(),
            csrf: self.session.csrf_token(),
            org: None,
            orgs: self.org_refs(),
            role: "",
            can_manage: false,
            section,
            title: title.into(),
        }
    }

    fn org_refs(&self) -> Vec<OrgRef> {
        self.orgs
            .iter()
            .map(|(o, r)| OrgRef {
                id: o.id.as_str().to_owned(),
                name: o.name.clone(),
                role: r.as_str(),
            })
            .collect()
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), UiError> {
        if self.session.verify_csrf(presented) {
            Ok(())
        } else {
            Err(UiError::expired_form())
        }
    }
}

/// Where a browser without a session goes: sign in, then come back.
fn to_sign_in(parts: &Parts) -> Response {
    let here = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/app");
    let back = if parts.method == axum::http::Method::GET {
        here
    } else {
        "/app"
    };
    redirect(&format!("/app/sign-in?next={}", urlencode(back)))
}

impl FromRequestParts<WebState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let session = match session::current(state.db(), &parts.headers).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(to_sign_in(parts)),
            Err(e) => return Err(UiError::from(e).into_response()),
        };
        let orgs = state
            .db()
            .memberships_of(&session.user.id)
            .await
            .map_err(|e| UiError::from(e).into_response())?;
        Ok(Signed { session, orgs })
    }
}

/// A signed-in member of the organisation named by the path's `{org}`.
/// Anyone else gets 404: another organisation's pages do not exist for them.
pub(crate) struct Member {
    pub signed: Signed,
    pub org: Organisation,
    pub role: Role,
}

impl Member {
    pub fn layout(&self, section: &'static str, title: impl Into<String>) -> Layout {
        let mut layout = self.signed.layout(section, title);
        layout.org = Some(OrgRef {
            id: self.org.id.as_str().to_owned(),
            name: self.org.name.clone(),
            role: self.role.as_str(),
        });
        layout.role = self.role.as_str();
        layout.can_manage = self.role.can_manage();
        layout
    }

    /// A form that changes something: the session's CSRF token, and a role
    /// that may change things.
    pub fn check_change(&self, csrf: &str) -> Result<(), UiError> {
        self.signed.check_csrf(csrf)?;
        if self.role.can_manage() {
            Ok(())
        } else {
            Err(UiError::read_only())
        }
    }

    /// `/app/o/{org}` + `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/app/o/{}{rest}", self.org.id.as_str())
    }
}

impl FromRequestParts<WebState> for Member {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, state).await?;
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| UiError::not_found().into_response())?;
        let wanted = params.get("org").map(String::as_str).unwrap_or_default();
        let Some((org, role)) = signed
            .orgs
            .iter()
            .find(|(o, _)| o.id.as_str() == wanted)
            .cloned()
        else {
            return Err(UiError::not_found().into_response());
        };
        Ok(Member { signed, org, role })
    }
}

pub(crate) fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A local path of the UI to return to after signing in; anything else
/// (another host, `//evil`) is replaced by `/app`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/app")
                && !n.starts_with("//")
                && !n.contains("\\")
                && !n.contains("://") =>
        {
            n.to_owned()
        }
        _ => "/app".into(),
    }
}

/// The UI's front door: the first organisation's overview, or sign in.
pub(crate) async fn home(signed: Signed) -> UiResult {
    match signed.orgs.first() {
        Some((org, _)) => Ok(redirect(&format!("/app/o/{}", org.id.as_str()))),
        None => {
            let layout = signed.layout("home", "No organisation");
            let body = templates::render(
                "message.html",
                &layout,
                minijinja::context! { title => "No organisation yet", message => "Your account belongs to no organisation. Ask an owner to add you." },
            )?;
            Ok(html(StatusCode::OK, body))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SignInParams {
    /// The UI path to return to after signing in
    pub next: Option<String>,
    /// `account`: the setup link just created the first owner
    pub done: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SignInForm {
    pub csrf: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub next: Option<String>,
}

#[derive(Serialize)]
struct SignInPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    no_account: bool,
}

async fn sign_in_page(
    state: &WebState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    next: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let secure = session::is_secure(state.public_url(), headers);
    let (csrf, set) = session::login_csrf(headers, secure);
    let no_account = matches!(state.db().count_users().await, Ok(0));
    let body = templates::render_bare(
        "sign_in.html",
        &SignInPage {
            title: "Sign in",
            csrf: &csrf,
            email,
            next,
            error,
            notice,
            no_account,
        },
    );
    let mut response = html(status, body);
    if let Some(cookie) = set {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("900"));
    }
    response
}

/// The sign-in form.
pub(crate) async fn show_sign_in(
    State(state): State<WebState>,
    Query(params): Query<SignInParams>,
    headers: HeaderMap,
) -> Response {
    sign_in_page(
        &state,
        &headers,
        StatusCode::OK,
        "",
        &safe_next(params.next.as_deref()),
        None,
        (params.done.as_deref() == Some("account"))
            .then_some("Account created. Sign in with its email and password."),
    )
    .await
}

/// Signs in: starts a server-side session (HttpOnly, SameSite=Lax, Secure
/// behind HTTPS) and returns to `next`. Failed attempts are counted per
/// email and address: past the limit the form answers 429 for 15 minutes.
pub(crate) async fn sign_in(
    State(state): State<WebState>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    form: Result<Form<SignInForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    if !session::verify_login_csrf(&headers, form.csrf.as_deref().unwrap_or_default()) {
        return Err(UiError::expired_form());
    }
    let email = form
        .email
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    let next = safe_next(form.next.as_deref());
    let db = state.db();
    let user =
        match session::sign_in(db, &email, &form.password.unwrap_or_default(), address).await? {
            SignIn::Accepted(user) => user,
            SignIn::Wrong => {
                let message = "The email or the password is wrong.";
                return Ok(sign_in_page(
                    &state,
                    &headers,
                    StatusCode::UNAUTHORIZED,
                    &email,
                    &next,
                    Some(message),
                    None,
                )
                .await);
            }
            SignIn::Throttled => {
                let message = "Too many failed sign-ins. Wait 15 minutes, then try again.";
                return Ok(sign_in_page(
                    &state,
                    &headers,
                    StatusCode::TOO_MANY_REQUESTS,
                    &email,
                    &next,
                    Some(message),
                    None,
                )
                .await);
            }
        };
    let secure = session::is_secure(state.public_url(), &headers);
    let (_, cookie) = session::start(db, user, secure).await?;
    let mut response = redirect(&next);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CsrfForm {
    pub csrf: Option<String>,
}

/// Signs out: ends the session on the server and clears its cookie.
pub(crate) async fn sign_out(
    State(state): State<WebState>,
    headers: HeaderMap,
    signed: Signed,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(form)) = form else {
        return Err(UiError::bad_form());
    };
    signed.check_csrf(form.csrf.as_deref().unwrap_or_default())?;
    let secure = session::is_secure(state.public_url(), &headers);
    let cookie = session::end(state.db(), &signed.session, secure).await?;
    let mut response = redirect("/app/sign-in");
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SwitchParams {
    /// The organisation to show
    pub org: Option<String>,
}

/// The organisation switcher (a GET form): to that organisation's overview.
pub(crate) async fn switch_org(signed: Signed, Query(params): Query<SwitchParams>) -> UiResult {
    let wanted = params.org.unwrap_or_default();
    match signed.orgs.iter().find(|(o, _)| o.id.as_str() == wanted) {
        Some((org, _)) => Ok(redirect(&format!("/app/o/{}", org.id.as_str()))),
        None => Err(UiError::not_found()),
    }
}
