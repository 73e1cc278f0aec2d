//! REST `/v1`: one module per resource, each with `routes()` beside its handlers.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod me;
pub mod tokens;
pub mod users;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tessera_api_types::ErrorCode;

use crate::AppState;
use crate::error::ApiError;

/// Every management route under `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(tokens::routes())
        .merge(catalog::routes())
        .merge(users::routes())
        .merge(me::routes())
        .merge(audit::routes())
        .route_layer(middleware::from_fn(refuse_unexpected_query))
}

/// The routes whose handlers read a query string (with `deny_unknown_fields`).
const QUERY_ROUTES: [(Method, &str); 3] = [
    (Method::GET, "/v1/tokens"),
    (Method::GET, "/v1/tokens/{id}/usage"),
    (Method::GET, "/v1/audit"),
];

/// Every other route refuses a query string (422 naming the first parameter), so a
/// mistyped filter is never silently ignored and the list is not quietly unfiltered.
async fn refuse_unexpected_query(request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or_default();
    if query.is_empty() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    // HEAD is a GET without the body: it reads the same parameters.
    let asked = if request.method() == Method::HEAD {
        &Method::GET
    } else {
        request.method()
    };
    let reads_query = QUERY_ROUTES
        .iter()
        .any(|(method, path)| asked == method && route == Some(*path));
    if reads_query {
        return next.run(request).await;
    }
    unexpected_query(query).into_response()
}

/// The 422 for a query string sent to a route that takes none: names the first
/// parameter (a secret-shaped name as its hint). Public for the fuzz targets.
pub fn unexpected_query(query: &str) -> ApiError {
    let first = form_urlencoded::parse(query.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_else(|| "query".to_owned());
    ApiError::new(
        ErrorCode::ValidationFailed,
        "this request takes no query parameters",
    )
    .with_detail(
        tessera_core::token::redact_secrets(&first),
        "is not a parameter of this request",
    )
}
