//! `/v1/forward-auth` (any method): the shape nginx `auth_request`, Caddy
//! `forward_auth` and Traefik ForwardAuth call, and `/v1/forward-auth/envoy/<path>`, the
//! shape of Envoy's HTTP `ext_authz` (which keeps the original method and appends the
//! original path to a prefix). Answers 200 with `X-Tessera-*` headers for the upstream,
//! 401 with `WWW-Authenticate: Bearer`, 403, or 429 with `Retry-After`; no body to
//! parse, nothing written per request.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tessera_app::forward::{ForbiddenReason, ForwardVerdict};

use crate::AppState;
use crate::error::{ApiError, ApiResult, retry_seconds};
use crate::extract::ClientAddress;
use crate::extract::Path;
use tessera_api_types::ErrorCode;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/forward-auth", any(forward_auth))
        .route("/v1/forward-auth/envoy", any(envoy_root))
        .route("/v1/forward-auth/envoy/{*path}", any(envoy))
}

/// The presented token: `Authorization: Bearer …`, else `X-Api-Key`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
    tessera_core::token::presented_token(text(header::AUTHORIZATION.as_str()), text("x-api-key"))
}

fn header_text<'a>(headers: &'a HeaderMap, names: [&str; 2]) -> Option<&'a str> {
    names
        .into_iter()
        .find_map(|name| headers.get(name).and_then(|value| value.to_str().ok()))
}

/// nginx, Caddy, Traefik: the original request in `X-Forwarded-Method` /
/// `X-Forwarded-Uri` (Traefik, Caddy) or `X-Original-Method` / `X-Original-URI`
/// (nginx, by the usual configuration).
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/v1/forward-auth", tag = "forward-auth",
    responses(crate::openapi::ForwardAuthAnswers),
    summary = "Forward-auth for nginx, Caddy and Traefik",
    description = "Decides the original request (from the forwarded headers) with the route rules in `tessera.toml`.",
    params(
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>`"),
        ("X-Api-Key" = Option<String>, Header, description = "The token, when not in `Authorization`"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "The original method (Traefik, Caddy)"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The original path and query (Traefik, Caddy)"),
        ("X-Original-Method" = Option<String>, Header, description = "The original method (nginx)"),
        ("X-Original-URI" = Option<String>, Header, description = "The original path and query (nginx)"),
    ))]
pub(crate) async fn forward_auth(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (Some(method), Some(uri)) = (
        header_text(&headers, ["x-forwarded-method", "x-original-method"]),
        header_text(&headers, ["x-forwarded-uri", "x-original-uri"]),
    ) else {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "the gateway must send the original request as X-Forwarded-Method and \
             X-Forwarded-Uri (or X-Original-Method and X-Original-URI)",
        ));
    };
    answer(&state, presented_token(&headers), method, uri, client)
}

/// Envoy: the original method is this request's, the original path follows the prefix.
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/v1/forward-auth/envoy/{path}", tag = "forward-auth",
    responses(crate::openapi::ForwardAuthAnswers),
    summary = "Forward-auth for Envoy's HTTP ext_authz",
    description = "Envoy keeps the original method and appends the original path to this prefix.",
    params(
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>`"),
        ("X-Api-Key" = Option<String>, Header, description = "The token, when not in `Authorization`"),
        ("path" = String, Path, description = "The original path, after the prefix"),
    ))]
pub(crate) async fn envoy(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    method: Method,
    uri: Uri,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let original = match uri.query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    answer(
        &state,
        presented_token(&headers),
        method.as_str(),
        &original,
        client,
    )
}

/// Envoy, for the root of the protected API (`…/envoy` or `…/envoy/`).
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/v1/forward-auth/envoy", tag = "forward-auth",
    responses(crate::openapi::ForwardAuthAnswers),
    summary = "Forward-auth for Envoy, at the protected API's root",
    params(
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>`"),
        ("X-Api-Key" = Option<String>, Header, description = "The token, when not in `Authorization`"),
    ))]
pub(crate) async fn envoy_root(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    answer(
        &state,
        presented_token(&headers),
        method.as_str(),
        "/",
        client,
    )
}

/// A header value for the upstream: visible ASCII and spaces as they are, every other
/// byte (a non-ASCII name, say) percent-encoded.
fn header_safe(text: &str) -> HeaderValue {
    let safe = |byte: u8| (byte == b' ' || byte.is_ascii_graphic()) && byte != b'%';
    if text.bytes().all(safe) {
        // The common case: one copy, no encoding.
        if let Ok(value) = HeaderValue::from_str(text) {
            return value;
        }
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if safe(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn answer(
    state: &AppState,
    token: Option<&str>,
    method: &str,
    uri: &str,
    client: Option<std::net::IpAddr>,
) -> ApiResult<Response> {
    let response = verdict_response(state.app.forward_auth(token, method, uri, client)?);
    state
        .app
        .record()
        .forward_auth_answered(response.status().as_u16());
    Ok(response)
}

fn verdict_response(verdict: ForwardVerdict) -> Response {
    match verdict {
        ForwardVerdict::Allowed(token) => {
            let mut response = StatusCode::OK.into_response();
            let headers = response.headers_mut();
            let mut set = |name: &'static str, value: HeaderValue| {
                headers.insert(HeaderName::from_static(name), value);
            };
            set("x-tessera-token-id", header_safe(&token.id.0.to_string()));
            set("x-tessera-token-name", header_safe(token.name()));
            set("x-tessera-api-version", header_safe(&token.api_version));
            // Project and external id are always sent, empty when the token has none:
            // gateways that copy answer headers (Caddy) then replace a client's own
            // instead of keeping it.
            set(
                "x-tessera-project",
                header_safe(token.project.as_deref().unwrap_or_default()),
            );
            set(
                "x-tessera-external-id",
                header_safe(token.external_id().unwrap_or_default()),
            );
            response
        }
        ForwardVerdict::Unauthenticated => {
            let mut response = ApiError::new(
                ErrorCode::Unauthenticated,
                "present a valid API token as Authorization: Bearer or X-Api-Key",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tessera\", error=\"invalid_token\""),
            );
            response
        }
        ForwardVerdict::Forbidden(reason) => ApiError::new(
            ErrorCode::Forbidden,
            match reason {
                ForbiddenReason::MissingPermission => {
                    "this token lacks the permission this route needs"
                }
                ForbiddenReason::WrongProject => {
                    "this route is for another project than this token's"
                }
                ForbiddenReason::RouteDenied => "no rule lets a token make this request",
            },
        )
        .with_detail("reason", reason.as_str())
        .into_response(),
        ForwardVerdict::RateLimited(wait) => {
            let mut response =
                ApiError::new(ErrorCode::RateLimited, "too many requests; retry later")
                    .with_detail("retry_after_seconds", retry_seconds(wait))
                    .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_seconds(wait).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_bearer_or_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        headers.insert("x-api-key", HeaderValue::from_static(" tsr_key "));
        assert_eq!(presented_token(&headers), Some("tsr_key"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("bearer tsr_bearer"),
        );
        assert_eq!(presented_token(&headers), Some("tsr_bearer"));
        headers.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_token(&headers), Some("tsr_key"));
    }

    #[test]
    fn header_values_carry_any_name() {
        assert_eq!(header_safe("CI deploy"), "CI deploy");
        assert_eq!(header_safe("本番"), "%E6%9C%AC%E7%95%AA");
        assert_eq!(header_safe("100%\r\nX: y"), "100%25%0D%0AX: y");
    }
}
