//! The success answers of the collect API, exactly as Segment's clients
//! expect them (refusals: `ApiError::segment_response`).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// `{"success":true}`: the events are committed.
#[derive(Serialize, ToSchema)]
pub struct CollectSuccess {
    #[schema(example = true)]
    pub success: bool,
}

/// The exact bytes Segment's clients look for.
pub fn success() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"success":true}"#,
    )
        .into_response()
}
