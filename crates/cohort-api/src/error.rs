//! The one error type of the HTTP edge. Every refusal is an [`ApiError`]: a
//! status, a stable code, a message for the caller, the field at fault, and
//! the seconds after which a retry makes sense. Two surfaces show it:
//!
//! - the admin and connect APIs: the envelope `{"error":{"code","message","field"}}`
//!   (`IntoResponse`), with `Retry-After` on 429 and 503;
//! - the collect API: Segment's flat `{"success":false,"code","message","field"}`
//!   ([`ApiError::segment_response`]), with `Retry-After` and, on 429,
//!   `X-RateLimit-Reset`, as Segment's clients expect.
//!
//! `NotFound` from storage is 404; any other storage failure is 503 and its
//! text (SQL, driver messages) goes to the log, never into a body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cohort_domain::collect::CollectError;
use cohort_engine::intake::IntakeError;
use cohort_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

// The admin and connect APIs' error body (no doc comment: it would
// enter the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `invalid_rule` on a rule text: where the parser stopped (1-based
    /// line); absent when the AST was at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `invalid_rule` on a rule text: the 1-based column, in characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// `invalid_rule` on a rule text: what the grammar allowed there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

/// Where a rule text stopped parsing: line and column (1-based) and what
/// was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePosition {
    pub line: usize,
    pub column: usize,
    pub expected: String,
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
}

/// Seconds a client waits before retrying a 429 or 503 that names none.
const DEFAULT_RETRY_SECONDS: u64 = 5;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    field: Option<String>,
    /// Boxed: a `Result<_, ApiError>` stays small on every path.
    position: Option<Box<RulePosition>>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal with its own code (`plugin_update_required`, `conflict`, …).
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let retry_after = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then_some(DEFAULT_RETRY_SECONDS);
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            field: None,
            position: None,
            retry_after,
        }
    }

    /// 400 `invalid_rule`: a segment rule in `field` (`rule` or `ast`) is
    /// refused; a text that does not parse says where.
    pub fn invalid_rule(
        field: &str,
        message: impl Into<String>,
        position: Option<RulePosition>,
    ) -> Self {
        let mut error =
            Self::new(StatusCode::BAD_REQUEST, "invalid_rule", message).with_field(field);
        error.position = position.map(Box::new);
        error
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into()).filter(|f: &String| !f.is_empty());
        self
    }

    /// Sets the `Retry-After` seconds.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400: `field` is invalid (an empty `field` names none).
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_field(field)
    }

    /// 401 on the admin API: no valid API token.
    pub fn unauthorized() -> Self {
        Self::unauthorized_because("a valid API token is required: Authorization: Bearer cht_…")
    }

    /// 401 with what the caller must present.
    pub fn unauthorized_because(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404: `what` does not exist (or belongs to another organisation).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 429: the event writer's queue is full.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "Cohort is busy; retry after the Retry-After delay",
        )
    }

    /// 503: storage is unavailable.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage is unavailable; retry shortly",
        )
    }

    /// 400 `payload_too_large` (collect and connect events).
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "payload_too_large", message)
    }

    /// 401 `invalid_write_key` (collect).
    pub fn invalid_write_key(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_write_key", message)
    }

    /// 404 `invalid_write_key`: the settings document of an unknown key.
    pub fn unknown_write_key(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_write_key", message)
    }

    /// 429 `rate_limited`: the source sends faster than its limit.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "this source is sending faster than its rate limit",
        )
        .retry_after(retry_after)
    }

    /// 429 `overloaded` as Segment's clients see it: retry in a second.
    pub fn log_overloaded() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "the server is busy; retry shortly",
        )
        .retry_after(1)
    }

    /// 503 `unavailable`, retried after `retry_after` seconds.
    pub fn log_unavailable(retry_after: u64) -> Self {
        Self::unavailable().retry_after(retry_after)
    }

    /// The collect API's answer: Segment's flat body, `Retry-After`, and
    /// `X-RateLimit-Reset` on 429.
    pub(crate) fn segment_response(self) -> Response {
        let body = CollectFailure {
            success: false,
            code: self.code,
            message: self.message,
            field: self.field,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            let value = HeaderValue::from(seconds);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, value.clone());
            if self.status == StatusCode::TOO_MANY_REQUESTS {
                response.headers_mut().insert("x-ratelimit-reset", value);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(&what),
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::unavailable()
            }
        }
    }
}

impl From<CollectError> for ApiError {
    fn from(e: CollectError) -> Self {
        let error = Self::new(StatusCode::BAD_REQUEST, e.code.as_str(), e.message);
        match e.field {
            Some(field) => error.with_field(field),
            None => error,
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Invalid { field, message } => ApiError::invalid(&field, message),
            IntakeError::Overloaded => ApiError::overloaded(),
            IntakeError::Unavailable => ApiError::unavailable(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
                line: self.position.as_ref().map(|p| p.line),
                column: self.position.as_ref().map(|p| p.column),
                expected: self.position.map(|p| p.expected),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A handler that panicked answers a generic 500 and logs nothing of the
/// request (it may hold personal data).
pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(response: Response) -> (StatusCode, axum::http::HeaderMap, String) {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_missing_row_is_404_in_the_envelope() {
        let error = ApiError::from(StoreError::NotFound("destination dst_1".into()));
        let (status, headers, body) = parts(error.into_response()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!headers.contains_key(header::RETRY_AFTER));
        assert_eq!(
            body,
            r#"{"error":{"code":"not_found","message":"destination dst_1 not found"}}"#
        );
    }

    #[tokio::test]
    async fn a_storage_failure_is_503_without_its_text() {
        let internal = "SELECT secret FROM api_tokens: driver said relation missing";
        for error in [
            StoreError::Invalid(internal.into()),
            StoreError::Database(sqlx::Error::Protocol(internal.into())),
        ] {
            let (status, headers, body) = parts(ApiError::from(error).into_response()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(headers[header::RETRY_AFTER], "5");
            assert!(
                !body.contains("SELECT") && !body.contains("driver"),
                "{body}"
            );
            assert_eq!(
                body,
                r#"{"error":{"code":"unavailable","message":"storage is unavailable; retry shortly"}}"#
            );
        }
    }

    #[tokio::test]
    async fn the_collect_surface_is_segments_flat_body() {
        let (status, headers, body) = parts(ApiError::rate_limited(3).segment_response()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "3");
        assert_eq!(headers["x-ratelimit-reset"], "3");
        assert_eq!(
            body,
            r#"{"success":false,"code":"rate_limited","message":"this source is sending faster than its rate limit"}"#
        );
        let (_, headers, body) =
            parts(ApiError::invalid("", "unreadable").segment_response()).await;
        assert!(!headers.contains_key(header::RETRY_AFTER));
        assert_eq!(
            body,
            r#"{"success":false,"code":"invalid_request","message":"unreadable"}"#
        );
    }

    #[tokio::test]
    async fn validation_names_the_field_and_overload_says_when_to_retry() {
        let (status, _, body) = parts(ApiError::invalid("store_url", "bad").into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            r#"{"error":{"code":"invalid_request","message":"bad","field":"store_url"}}"#
        );
        let (status, headers, _) = parts(ApiError::overloaded().into_response()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "5");
        assert!(!headers.contains_key("x-ratelimit-reset"));
    }
}
