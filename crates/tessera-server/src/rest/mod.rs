//! REST `/v1`: one module per resource, each with `routes()` beside its handlers.

pub mod auth;
pub mod catalog;
pub mod tokens;

use axum::Router;

use crate::AppState;

/// Every management route under `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(tokens::routes())
        .merge(catalog::routes())
}
