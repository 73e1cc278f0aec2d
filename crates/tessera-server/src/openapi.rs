//! The OpenAPI document served at `/openapi.json`: derived from the handlers'
//! `#[utoipa::path]` annotations and the DTOs' schemas, never written by hand. A test
//! compares it with the committed `docs/openapi.json`, so a change to the API shows in
//! review.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use tessera_api_types::ErrorBody;

use crate::AppState;
use crate::extract::{CSRF_HEADER, SESSION_COOKIE};

/// What every forward-auth route answers (one set, for the three routes' documents).
#[derive(Debug, utoipa::IntoResponses)]
pub enum ForwardAuthAnswers {
    /// Allowed: the upstream may be called, with these headers
    #[response(
        status = 200,
        headers(
            ("X-Tessera-Token-Id" = String, description = "The token's id"),
            ("X-Tessera-Token-Name" = String, description = "The token's name"),
            ("X-Tessera-Api-Version" = String, description = "The token's API version"),
            ("X-Tessera-Project" = String, description = "The token's project, empty when none"),
            ("X-Tessera-External-Id" = String, description = "The token's external id, empty when none"),
        )
    )]
    Allowed,
    /// The gateway did not say which request to decide (the forwarded method and URI headers)
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or a malformed, unknown, expired or disabled one (`WWW-Authenticate: Bearer`)
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// A valid token without the permission or project the route needs
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Rate-limited: retry after `Retry-After` seconds
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// `internal`: this node's token index is further behind the database than `max_staleness_seconds` allows, so it does not answer from it
    #[response(status = 500)]
    StaleIndex(ErrorBody),
}

/// Errors any management call can answer.
#[derive(Debug, IntoResponses)]
pub enum ManagementErrors {
    /// The request is not well-formed: a body that is not JSON (or not declared
    /// `application/json`), a header or path that cannot be read.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid session or personal token (`WWW-Authenticate: Bearer`); or a session
    /// request that changes something without its `X-CSRF-Token`.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Signed in, but the role lacks the permission this call needs.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The body is larger than `body_limit_bytes`.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// A parameter or a field is wrong: `details` names each.
    #[response(status = 422)]
    ValidationFailed(ErrorBody),
    /// Too many requests: retry after `Retry-After` seconds.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The database cannot be reached: retry after `Retry-After` seconds.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Answers of the path's record.
#[derive(Debug, IntoResponses)]
pub enum NotFound {
    /// The thing named in the path does not exist (or is not yours to see).
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// Answers of a change that clashes.
#[derive(Debug, IntoResponses)]
pub enum Conflict {
    /// The change conflicts with the current state: a name taken, a record still in
    /// use, an edit that others keep moving on, the last super-admin.
    #[response(status = 409)]
    Conflict(ErrorBody),
}

/// Errors of the calls that sign in (no credential yet).
#[derive(Debug, IntoResponses)]
pub enum SignInErrors {
    /// The body is not JSON, or not declared `application/json`.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The email or password is incorrect (login).
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// A field is missing or wrong, or the setup code is (register-first): `details`
    /// names each.
    #[response(status = 422)]
    ValidationFailed(ErrorBody),
    /// Too many failed attempts from this address or for this account: retry after
    /// `Retry-After` seconds.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The database cannot be reached: retry after `Retry-After` seconds.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The two ways to call the management API.
#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                &format!(
                    "The session cookie set by `POST /v1/auth/login`. Requests that change \
                     something also send the login's `csrf_token` as `{CSRF_HEADER}`."
                ),
            ))),
        );
        components.add_security_scheme(
            "personal_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A personal token of an admin (`tsrp_…` with the default \
                         `token_prefix`), with that admin's permissions (read-only tokens \
                         only read). API tokens never authenticate management calls.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Self-hosted API tokens: issue, scope, rotate, disable and revoke \
                       them, and verify them on every request.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::rest::tokens::list,
        crate::rest::tokens::create,
        crate::rest::tokens::show,
        crate::rest::tokens::update,
        crate::rest::tokens::remove,
        crate::rest::tokens::regenerate,
        crate::rest::tokens::duplicate,
        crate::rest::tokens::disable,
        crate::rest::tokens::enable,
        crate::rest::tokens::upgrade_version,
        crate::rest::tokens::usage,
        crate::rest::me::list,
        crate::rest::me::create,
        crate::rest::me::remove,
        crate::rest::me::regenerate,
        crate::rest::catalog::list_resources,
        crate::rest::catalog::create_resource,
        crate::rest::catalog::update_resource,
        crate::rest::catalog::delete_resource,
        crate::rest::catalog::list_projects,
        crate::rest::catalog::create_project,
        crate::rest::catalog::delete_project,
        crate::rest::catalog::api_versions,
        crate::rest::users::list_users,
        crate::rest::users::create_user,
        crate::rest::users::update_user,
        crate::rest::users::delete_user,
        crate::rest::users::list_user_tokens,
        crate::rest::users::revoke_user_token,
        crate::rest::users::list_roles,
        crate::rest::users::create_role,
        crate::rest::users::update_role,
        crate::rest::users::delete_role,
        crate::rest::audit::list,
        crate::rest::auth::login,
        crate::rest::auth::register_first,
        crate::rest::auth::logout,
        crate::rest::auth::me,
        crate::verify::verify,
        crate::changes::changes,
        crate::usage_reports::report,
        crate::forward_auth::forward_auth,
        crate::forward_auth::envoy,
        crate::forward_auth::envoy_root,
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "tokens", description = "API tokens: the credentials your API's callers present."),
        (name = "verify", description = "Checking a token from your API's code."),
        (name = "forward-auth", description = "Checking a token from a gateway in front of your API."),
        (name = "personal tokens", description = "Administrators' own tokens for scripting this API."),
        (name = "catalog", description = "Resources and their actions, projects, API versions."),
        (name = "users", description = "The administrators of this Tessera."),
        (name = "roles", description = "What administrators may do."),
        (name = "audit", description = "Who changed what, and when."),
        (name = "auth", description = "Signing in to this API and the console."),
        (name = "operations", description = "Health, readiness and metrics."),
    )
)]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

/// `GET /openapi.json`.
async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document as committed in `docs/openapi.json`: pretty JSON and a final newline.
pub fn pretty() -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(&ApiDoc::openapi())? + "\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    /// `docs/openapi.json` is the document the server serves: a change to a handler or
    /// a DTO shows in review. After an intended change, regenerate it with
    /// `TESSERA_WRITE_OPENAPI=1 cargo test -p tessera-server --lib openapi`.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let generated = pretty().unwrap();
        if std::env::var_os("TESSERA_WRITE_OPENAPI").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from the API the server serves: regenerate it with \
             `TESSERA_WRITE_OPENAPI=1 cargo test -p tessera-server --lib openapi` and commit it"
        );
    }

    /// Every route the router serves (read from the `.route(…)` calls of the modules
    /// that build it) is in the document with each of its methods, and nothing else is.
    #[test]
    fn every_route_is_documented_and_nothing_more() {
        let sources = [
            include_str!("rest/auth.rs"),
            include_str!("rest/tokens.rs"),
            include_str!("rest/catalog.rs"),
            include_str!("rest/users.rs"),
            include_str!("rest/me.rs"),
            include_str!("rest/audit.rs"),
            include_str!("verify.rs"),
            include_str!("changes.rs"),
            include_str!("usage_reports.rs"),
            include_str!("forward_auth.rs"),
            include_str!("ops.rs"),
        ];
        let mut served = BTreeSet::new();
        for source in sources {
            let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
            for call in compact.split(".route(\"").skip(1) {
                let Some((path, rest)) = call.split_once('"') else {
                    continue;
                };
                let path = path.replace("{*", "{");
                let methods = rest.split("),").next().unwrap_or_default();
                for method in ["get", "post", "patch", "delete", "put"] {
                    if methods.contains(&format!("{method}(")) {
                        served.insert((path.clone(), method.to_owned()));
                    }
                }
                if methods.contains("any(") {
                    for method in ["get", "post", "patch", "delete", "put", "head", "options"] {
                        served.insert((path.clone(), method.to_owned()));
                    }
                }
            }
        }
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    documented.insert((path.clone(), method.clone()));
                }
            }
        }
        assert!(
            served.len() > 40,
            "the route scan found {} routes",
            served.len()
        );
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served but not documented: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented but not served: {unserved:?}"
        );
    }

    #[test]
    fn management_calls_name_their_credentials_and_errors() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["session"]["in"], "cookie");
        assert_eq!(schemes["session"]["name"], SESSION_COOKIE);
        assert_eq!(schemes["personal_token"]["scheme"], "bearer");
        let list = &document["paths"]["/v1/tokens"]["get"];
        assert!(list["security"].as_array().is_some_and(|s| s.len() == 2));
        for status in ["200", "401", "403", "422", "429"] {
            assert!(list["responses"][status].is_object(), "{status} missing");
        }
        let error = &list["responses"]["403"]["content"]["application/json"]["schema"];
        assert_eq!(error["$ref"], "#/components/schemas/ErrorBody");
        let parameters: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in [
            "q",
            "status",
            "type",
            "sort",
            "limit",
            "cursor",
            "external_id",
        ] {
            assert!(
                parameters.contains(&name),
                "{name} not a parameter: {parameters:?}"
            );
        }
    }
}
