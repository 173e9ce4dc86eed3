//! The answers of the collect API, exactly as Segment's clients expect them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cohort_domain::collect::CollectError;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"success":true}`: the events are committed.
#[derive(Serialize, ToSchema)]
pub struct CollectSuccess {
    #[schema(example = true)]
    pub success: bool,
}

/// A refused collect request. Clients drop 4xx answers and retry 429/5xx.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectFailure {
    #[schema(example = false)]
    pub success: bool,
    /// `invalid_request`, `payload_too_large`, `invalid_write_key`,
    /// `rate_limited`, `overloaded` or `unavailable`.
    pub code: String,
    pub message: String,
    /// The exact field at fault, such as `batch[3].event`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip)]
    status: u16,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl CollectFailure {
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    pub(crate) fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        Self {
            success: false,
            code: code.into(),
            message: message.into(),
            field,
            status: status.as_u16(),
            retry_after: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message,
            Some(field.to_owned()).filter(|f| !f.is_empty()),
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "payload_too_large", message, None)
    }

    pub fn invalid_write_key(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_write_key", message, None)
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut f = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "this source is sending faster than its rate limit",
            None,
        );
        f.retry_after = Some(retry_after);
        f
    }

    pub fn overloaded() -> Self {
        let mut f = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "the server is busy; retry shortly",
            None,
        );
        f.retry_after = Some(1);
        f
    }

    pub fn unavailable(retry_after: u64) -> Self {
        let mut f = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage is unavailable; retry shortly",
            None,
        );
        f.retry_after = Some(retry_after);
        f
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_write_key", message, None)
    }
}

impl From<CollectError> for CollectFailure {
    fn from(e: CollectError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, e.code.as_str(), e.message, e.field)
    }
}

impl IntoResponse for CollectFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let retry_after = self.retry_after;
        let mut response = (status, axum::Json(self)).into_response();
        if let Some(seconds) = retry_after {
            let value = HeaderValue::from(seconds);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, value.clone());
            if status == StatusCode::TOO_MANY_REQUESTS {
                response.headers_mut().insert("x-ratelimit-reset", value);
            }
        }
        response
    }
}

/// The exact bytes Segment's clients look for.
pub fn success() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"success":true}"#,
    )
        .into_response()
}
