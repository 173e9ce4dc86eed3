//! Browser sessions for Cohort's server-rendered pages (the admin UI and
//! the authorize page): a random secret in an `HttpOnly`,
//! `SameSite=Lax` cookie, stored as a SHA-256 digest, expiring after
//! `SESSION_LIFETIME_HOURS`. Each session has a CSRF token derived from its
//! secret, so it needs no storage and dies with the session.
//!
//! Forms shown before sign-in (sign in, create the first account) use a
//! double-submit token instead: a random value in a `SameSite=Strict`
//! cookie that the form must echo. A cross-site page can neither read nor
//! set that cookie.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use cohort_domain::ids::random_token;
use cohort_domain::secrets::{self, SecretsKey};
use cohort_store::users::User;
use cohort_store::{Db, StoreError};

pub const SESSION_COOKIE: &str = "cohort_session";
pub const LOGIN_CSRF_COOKIE: &str = "cohort_login_csrf";
/// A secret shown once after a form's redirect (a new API token, a
/// webhook's signing secret), sealed under a key only the session can
/// derive.
pub const REVEAL_COOKIE: &str = "cohort_reveal";
/// How long a sealed secret waits for the page it was redirected to.
const REVEAL_SECONDS: i64 = 300;
pub const SESSION_LIFETIME_HOURS: i64 = 12;

/// A signed-in browser.
pub struct Session {
    pub user: User,
    /// The cookie value (`ses_<id>_<secret>`); never shown or logged.
    secret: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session's id (not secret): the `<id>` of `ses_<id>_<secret>`.
    pub fn id(&self) -> Option<&str> {
        secrets::split_presented(cohort_store::sessions::SESSION_KIND, &self.secret)
            .map(|(id, _)| id)
    }

    /// The token every state-changing form of this session must carry.
    pub fn csrf_token(&self) -> String {
        secrets::digest(&format!("cohort-csrf\n{}", self.secret))
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn verify_csrf(&self, presented: &str) -> bool {
        secrets::verify(presented, &secrets::digest(&self.csrf_token()))
    }

    /// The key of this session's sealed secrets: derived from the session
    /// secret, which only the browser's cookie holds (the database keeps a
    /// digest of it), so nothing is stored and the key dies with the session.
    fn reveal_key(&self) -> SecretsKey {
        let hex = secrets::digest(&format!("cohort-reveal\n{}", self.secret));
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
        }
        SecretsKey::from_bytes(bytes)
    }

    /// Seals `secret` for the page of `what` (e.g. `token:tok_…`) that a
    /// form redirects to: the header sets a cookie of a few minutes that
    /// opens only in this session and only for `what`. A form answers with
    /// a redirect yet still shows a new secret once.
    pub fn reveal_once(&self, what: &str, secret: &str, secure: bool) -> HeaderValue {
        match self.reveal_key().encrypt(secret.as_bytes(), what) {
            Ok(sealed) => set_cookie(REVEAL_COOKIE, &sealed, REVEAL_SECONDS, "Strict", secure),
            Err(_) => set_cookie(REVEAL_COOKIE, "", 0, "Strict", secure),
        }
    }

    /// The secret [`Session::reveal_once`] sealed for `what`, if the
    /// browser brings it, with the header that clears it: a reload of the
    /// page shows it no more.
    pub fn take_revealed(
        &self,
        headers: &HeaderMap,
        what: &str,
        secure: bool,
    ) -> (Option<String>, Option<HeaderValue>) {
        let Some(sealed) = cookie(headers, REVEAL_COOKIE) else {
            return (None, None);
        };
        let secret = self
            .reveal_key()
            .decrypt(sealed, what)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if secret.is_none() {
            // Sealed for another page: left for it.
            return (None, None);
        }
        (
            secret,
            Some(set_cookie(REVEAL_COOKIE, "", 0, "Strict", secure)),
        )
    }
}

/// Failed sign-ins of one email from one address within 15 minutes
/// (`cohort_store::memberships::SIGNIN_WINDOW_MICROS`) before sign-in
/// forms answer 429.
pub const MAX_FAILURES_PER_EMAIL: i64 = 5;
/// Failed sign-ins from one address, whatever the email.
pub const MAX_FAILURES_PER_ADDRESS: i64 = 50;

/// What a sign-in form's email and password came to.
pub enum SignIn {
    Accepted(User),
    Wrong,
    /// Too many failures for this email from this address, or from this
    /// address: refused without checking the password.
    Throttled,
}

/// Checks an email and password for every sign-in form (the admin UI, the
/// authorize page), counting failures per email and address in the
/// database so the limit holds across nodes.
pub async fn sign_in(
    db: &Db,
    email: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<SignIn, StoreError> {
    let email = email.trim().to_lowercase();
    let ip = address
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let by_email = format!("email|{email}|{ip}");
    let by_address = format!("ip|{ip}");
    if db.signin_failures(&[&by_email]).await? >= MAX_FAILURES_PER_EMAIL
        || db.signin_failures(&[&by_address]).await? >= MAX_FAILURES_PER_ADDRESS
    {
        tracing::warn!("sign-in refused: too many failed attempts");
        return Ok(SignIn::Throttled);
    }
    match db.authenticate_user(&email, password).await? {
        Some(user) => {
            db.clear_signin_failures(&by_email).await?;
            Ok(SignIn::Accepted(user))
        }
        None => {
            db.record_signin_failure(&[&by_email, &by_address]).await?;
            Ok(SignIn::Wrong)
        }
    }
}

/// The peer's address, when the server runs with connect info (`cohort
/// serve` does; the in-process test router does not).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The session the request's cookie names, if it is live.
pub async fn current(db: &Db, headers: &HeaderMap) -> Result<Option<Session>, StoreError> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(db.find_session(secret).await?.map(|user| Session {
        user,
        secret: secret.to_owned(),
    }))
}

/// Starts a session for `user`; the header value sets its cookie.
pub async fn start(
    db: &Db,
    user: User,
    secure: bool,
) -> Result<(Session, HeaderValue), StoreError> {
    let issued = db
        .create_session(&user.id, SESSION_LIFETIME_HOURS * 3600 * 1_000_000)
        .await?;
    let cookie = set_cookie(
        SESSION_COOKIE,
        issued.reveal(),
        SESSION_LIFETIME_HOURS * 3600,
        "Lax",
        secure,
    );
    Ok((
        Session {
            user,
            secret: issued.reveal().to_owned(),
        },
        cookie,
    ))
}

/// Ends the session; the header value clears its cookie.
pub async fn end(db: &Db, session: &Session, secure: bool) -> Result<HeaderValue, StoreError> {
    db.delete_session(&session.secret).await?;
    Ok(set_cookie(SESSION_COOKIE, "", 0, "Lax", secure))
}

/// The double-submit token of a sign-in form: the browser's existing one,
/// or a new one with the header that sets it.
pub fn login_csrf(headers: &HeaderMap, secure: bool) -> (String, Option<HeaderValue>) {
    match cookie(headers, LOGIN_CSRF_COOKIE).filter(|v| v.len() >= 32) {
        Some(token) => (token.to_owned(), None),
        None => {
            let token = random_token(40);
            let set = set_cookie(
                LOGIN_CSRF_COOKIE,
                &token,
                SESSION_LIFETIME_HOURS * 3600,
                "Strict",
                secure,
            );
            (token, Some(set))
        }
    }
}

/// Whether a sign-in form echoes its browser's double-submit cookie.
pub fn verify_login_csrf(headers: &HeaderMap, presented: &str) -> bool {
    match cookie(headers, LOGIN_CSRF_COOKIE).filter(|v| v.len() >= 32) {
        Some(expected) => secrets::verify(presented, &secrets::digest(expected)),
        None => false,
    }
}

/// Whether the browser reached Cohort over HTTPS: the configured public
/// URL says so, or a proxy's `X-Forwarded-Proto`. Cookies are then `Secure`.
pub fn is_secure(public_url: Option<&str>, headers: &HeaderMap) -> bool {
    if let Some(url) = public_url.filter(|u| !u.is_empty()) {
        return url.to_ascii_lowercase().starts_with("https://");
    }
    cohort_domain::public_url::forwarded_https(
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok()),
    )
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn set_cookie(
    name: &str,
    value: &str,
    max_age_seconds: i64,
    same_site: &str,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite={same_site}{secure}"
    );
    // Names and values are ASCII letters, digits, `_` and base64's `+/=`.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("cohort_invalid=1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_several() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; cohort_session=ses_x_y"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("ses_x_y"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_and_lax() {
        let value = set_cookie(SESSION_COOKIE, "v", 60, "Lax", true);
        let text = value.to_str().unwrap_or_default();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax") && text.contains("Secure")
        );
    }

    fn session(secret: &str) -> Session {
        Session {
            user: User {
                id: cohort_domain::ids::UserId::generate(),
                email: "a@example.com".into(),
            },
            secret: secret.into(),
        }
    }

    #[test]
    fn a_revealed_secret_opens_once_in_its_own_session_and_page_only() {
        let mine = session("ses_a_one");
        let set = mine.reveal_once("token:tok_1", "cht_secret", false);
        let set = set.to_str().unwrap_or_default().to_owned();
        assert!(!set.contains("cht_secret"), "{set}");
        let value = set.split(';').next().unwrap_or_default().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        let (secret, clear) = mine.take_revealed(&headers, "token:tok_1", false);
        assert_eq!(secret.as_deref(), Some("cht_secret"));
        assert!(clear
            .map(|c| c.to_str().unwrap_or_default().contains("Max-Age=0"))
            .unwrap_or(false));
        assert_eq!(
            mine.take_revealed(&headers, "token:tok_2", false),
            (None, None)
        );
        let other = session("ses_b_two");
        assert_eq!(
            other.take_revealed(&headers, "token:tok_1", false),
            (None, None)
        );
    }
}
