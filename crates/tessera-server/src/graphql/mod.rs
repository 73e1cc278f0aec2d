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
/// Largest complexity a request may have. A plain field costs 1; a field that reads the
/// database costs [`READ_COST`] or [`LIST_COST`] and a mutation [`MUTATION_COST`], so one
/// request holds a screen's worth of lists (about 18) or 9 mutations, not hundreds of
/// aliased queries all running at once against the connection pool, or hundreds of
/// argon2 hashes in a row. Introspection (no database) fits easily.
pub const MAX_COMPLEXITY: usize = 1_000;
/// What a field that reads one object from the database costs.
pub const READ_COST: usize = 10;
/// What a field that reads a list or page from the database costs.
pub const LIST_COST: usize = 50;
/// What a mutation costs.
pub const MUTATION_COST: usize = 100;
/// Most directives a request may carry.
pub const MAX_DIRECTIVES: usize = 32;

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
        .limit_directives(MAX_DIRECTIVES)
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
    // A parser's message quotes the line it stopped at, and a value put where a name or
    // an enum belongs comes back in "… does not contain the value …": neither may carry a
    // password or a token back.
    for error in &mut response.errors {
        error.message = tessera_core::token::redact_secrets(&without_source_line(&error.message));
    }
    axum::Json(response).into_response()
}

/// pest's syntax errors (` --> 1:5 | <the line> | ^--- = expected …`) as
/// "syntax error at line 1, column 5: expected …", without the quoted line.
fn without_source_line(message: &str) -> String {
    let Some(position) = message
        .trim_start()
        .strip_prefix("--> ")
        .and_then(|rest| rest.lines().next())
    else {
        return message.to_owned();
    };
    let (line, column) = position.split_once(':').unwrap_or((position, "?"));
    let expected = message
        .lines()
        .rev()
        .find_map(|line| line.trim_start().strip_prefix("= "))
        .unwrap_or("the query does not parse");
    format!("syntax error at line {line}, column {column}: {expected}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_keep_the_place_and_drop_the_line() {
        let pest = " --> 1:12\n  |\n1 | { me { pw: \"secret\" }\n  |            ^---\n  |\n  = expected selection";
        assert_eq!(
            without_source_line(pest),
            "syntax error at line 1, column 12: expected selection"
        );
        assert_eq!(
            without_source_line("Unknown field \"x\""),
            "Unknown field \"x\""
        );
    }

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
