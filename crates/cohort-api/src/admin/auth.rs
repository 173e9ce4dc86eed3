use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use cohort_domain::ids::OrgId;

use crate::{ApiError, AppState};

/// An authenticated API caller and the one organisation its token is for.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub org: OrgId,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(ApiError::unauthorized)?;
        match state.db().verify_api_token(token).await? {
            Some(org) => Ok(ApiCaller { org }),
            None => Err(ApiError::unauthorized()),
        }
    }
}
