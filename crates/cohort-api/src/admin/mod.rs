//! The admin JSON API (`/api/v1/…`), authenticated by API tokens. Every
//! handler receives the caller's organisation from `ApiCaller` and passes it
//! to storage: no handler can name another organisation's rows.

mod auth;
pub mod events;

pub use auth::ApiCaller;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events::list_events))
}
