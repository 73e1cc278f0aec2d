//! `POST /graphql`: the REST management API's queries and mutations, and `verifyToken`,
//! over GraphQL (async-graphql); `GET /graphql` serves GraphiQL from embedded files.
//!
//! Thin like the REST handlers: every resolver makes the same `tessera-app` call the
//! matching REST handler makes, with the same [`Principal`], so authentication (session
//! cookie + CSRF token, or a personal token) and every permission check are the
//! application's, written once. The object and input types are the REST DTOs themselves
//! (derived under `tessera-api-types`' `graphql` feature). Errors carry the SPEC's error
//! code in `extensions.code` and, for invalid fields, `extensions.details`.

mod mutation;
mod page;
mod query;

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{EmptySubscription, ErrorExtensions, Schema};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tessera_app::{Principal, Tessera};

use crate::AppState;
use crate::error::{ApiError, retry_seconds};
use crate::extract::{Caller, ClientAddress, Json};

pub use mutation::MutationRoot;
pub use query::QueryRoot;

/// Tessera's GraphQL schema.
pub type TesseraSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest selection a query may make. The deepest real query (GraphiQL's introspection
/// query) nests 13 levels; the bound stops a hostile query from nesting without end.
pub const MAX_DEPTH: usize = 16;
/// Largest complexity (one per field selected, lists counted once) a query may have:
/// ample for any screen's worth of data and for introspection, small enough that one
/// request cannot ask for the same page thousands of times through aliases.
pub const MAX_COMPLEXITY: usize = 1_000;

/// The schema as the router's state holds it (cheap to clone: one `Arc` inside).
#[derive(Clone)]
pub struct SharedSchema(pub TesseraSchema);

impl std::fmt::Debug for SharedSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSchema")
    }
}

/// The schema, with its depth and complexity limits.
pub fn schema() -> TesseraSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in GraphQL's schema language (committed as `docs/schema.graphql`).
pub fn sdl() -> String {
    schema().sdl()
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/graphql", get(page::graphiql).post(execute))
}

/// What every resolver sees of the request.
struct RequestContext {
    app: Arc<Tessera>,
    /// The signed-in caller, or why the request has none (asked of it only by the
    /// fields that need one: `verifyToken` needs no credential, as `/v1/verify`).
    caller: Result<Principal, ApiError>,
    client: Option<IpAddr>,
}

impl RequestContext {
    fn principal(&self) -> async_graphql::Result<&Principal> {
        self.caller.as_ref().map_err(graphql_error)
    }
}

/// The SPEC error as a GraphQL error: the same message, the code in `extensions.code`,
/// invalid fields in `extensions.details`, and `retryAfterSeconds` when there is a wait.
fn graphql_error(error: &ApiError) -> async_graphql::Error {
    let code = serde_json::to_value(error.code())
        .ok()
        .and_then(|code| code.as_str().map(str::to_owned))
        .unwrap_or_else(|| "internal".to_owned());
    let details =
        async_graphql::Value::from_json(serde_json::Value::Object(error.details().clone())).ok();
    let retry_after = error.retry_after().map(retry_seconds);
    async_graphql::Error::new(error.message()).extend_with(|_, extensions| {
        extensions.set("code", code);
        if let Some(details) = details.filter(|_| !error.details().is_empty()) {
            extensions.set("details", details);
        }
        if let Some(seconds) = retry_after {
            extensions.set("retryAfterSeconds", seconds);
        }
    })
}

/// `?` on an application or parse error inside a resolver.
trait OrGraphqlError<T> {
    fn or_graphql_error(self) -> async_graphql::Result<T>;
}

impl<T, E: Into<ApiError>> OrGraphqlError<T> for Result<T, E> {
    fn or_graphql_error(self) -> async_graphql::Result<T> {
        self.map_err(|error| graphql_error(&error.into()))
    }
}

/// The context of a resolver.
fn context<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a RequestContext> {
    ctx.data::<RequestContext>()
}

/// `POST /graphql` with `{"query", "variables", "operationName"}` (JSON, within the body
/// limit). Always 200 once the body is a GraphQL request: failures are in `errors`.
async fn execute(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    ClientAddress(client): ClientAddress,
    Json(request): Json<async_graphql::Request>,
) -> Response {
    let context = RequestContext {
        app: Arc::clone(&state.app),
        caller: caller.map(|caller| caller.principal),
        client,
    };
    let mut response = state.graphql.0.execute(request.data(context)).await;
    // A value the client put where a name or an enum belongs may come back inside a
    // parser's message ("… does not contain the value …"); a secret never does.
    for error in &mut response.errors {
        error.message = tessera_core::token::redact_secrets(&error.message);
    }
    axum::Json(response).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema.graphql");

    /// `docs/schema.graphql` is the schema the server serves: a change to a resolver or
    /// a DTO shows in review. After an intended change, regenerate it with
    /// `TESSERA_WRITE_OPENAPI=1 cargo test -p tessera-server --lib graphql`.
    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let generated = sdl();
        if std::env::var_os("TESSERA_WRITE_OPENAPI").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/schema.graphql differs from the schema the server serves: regenerate it \
             with `TESSERA_WRITE_OPENAPI=1 cargo test -p tessera-server --lib graphql` and \
             commit it"
        );
    }

    #[test]
    fn errors_carry_the_spec_code_and_the_fields() {
        let error = graphql_error(
            &ApiError::new(
                tessera_api_types::ErrorCode::ValidationFailed,
                "the request has invalid fields",
            )
            .with_detail("name", "is required"),
        );
        let extensions = serde_json::to_value(error.extensions.unwrap()).unwrap();
        assert_eq!(extensions["code"], "validation_failed");
        assert_eq!(extensions["details"]["name"], "is required");
    }
}
