//! REST `/v1`: one module per resource, each with `routes()` beside its handlers.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod me;
pub mod tokens;
pub mod users;

use axum::Router;

use crate::AppState;

/// Every management route under `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(tokens::routes())
        .merge(catalog::routes())
        .merge(users::routes())
        .merge(me::routes())
        .merge(audit::routes())
}
