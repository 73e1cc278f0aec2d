//! `GET /graphql`: GraphiQL, from the embedded files in `assets/graphiql/`.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Caller;
use crate::ui::assets;

/// GraphiQL's content security policy: the console's, except that GraphiQL's editor
/// writes `<style>` elements and its stylesheet carries its fonts and icons as `data:`
/// URLs. Scripts stay this server's own files only.
pub const GRAPHIQL_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Debug, Template)]
#[template(path = "graphiql.html")]
struct GraphiqlPage {
    /// The CSRF token of the console session the page was opened in (empty without one).
    csrf: String,
    icon: String,
    css: String,
    react: String,
    react_dom: String,
    graphiql: String,
    start: String,
}

pub(super) async fn graphiql(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Response {
    let csrf = caller
        .ok()
        .and_then(|caller| caller.session)
        .map(|session| state.app.auth().csrf_token(&session))
        .unwrap_or_default();
    let page = GraphiqlPage {
        csrf,
        icon: assets::url("icon.svg"),
        css: assets::url("graphiql.min.css"),
        react: assets::url("react.production.min.js"),
        react_dom: assets::url("react-dom.production.min.js"),
        graphiql: assets::url("graphiql.min.js"),
        start: assets::url("graphiql-start.js"),
    };
    match page.render() {
        Ok(html) => (
            [(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(GRAPHIQL_CONTENT_SECURITY_POLICY),
            )],
            Html(html),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering the GraphiQL page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
