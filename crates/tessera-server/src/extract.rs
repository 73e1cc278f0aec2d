//! Extractors with the SPEC's error body: JSON bodies and query strings that name the
//! bad field, the calling admin (session cookie + CSRF, never an API token), and the
//! client address.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::de::DeserializeOwned;
use tessera_api_types::ErrorCode;
use tessera_app::auth::SessionSecret;
use tessera_app::{AppError, Principal};

use crate::AppState;
use crate::error::ApiError;

/// The admin session cookie's name.
pub const SESSION_COOKIE: &str = "tessera_session";
/// The header cookie-authenticated unsafe requests carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body. An empty body reads as `{}`, so `POST …/regenerate` needs none.
#[derive(Debug)]
pub struct Json<T>(pub T);

/// Turns a serde error into 400 (not JSON at all) or 422 naming the field.
fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => ApiError::new(
            ErrorCode::BadRequest,
            format!("the body is not valid JSON: {inner}"),
        ),
        serde_json::error::Category::Io | serde_json::error::Category::Data => {
            let message = inner.to_string();
            // "unknown field `x`, expected …" is reported at the parent; name the field.
            let field = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
                .map(|name| {
                    if path == "." {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    }
                })
                .unwrap_or_else(|| if path == "." { "body".to_owned() } else { path });
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ApiError::new(
                ErrorCode::ValidationFailed,
                "the request has invalid fields",
            )
            .with_detail(field, message)
        }
    }
}

/// Parses JSON from `bytes`, treating an empty body as `{}`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|error| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    Ok(value)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
                } else {
                    ApiError::new(ErrorCode::BadRequest, rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// A query string; an unknown or malformed parameter is a 422 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| {
                let message = rejection.body_text();
                let field = message
                    .split("unknown field `")
                    .nth(1)
                    .and_then(|rest| rest.split('`').next())
                    .unwrap_or("query")
                    .to_owned();
                tracing::debug!(query_length = query.len(), "rejected query string");
                ApiError::new(
                    ErrorCode::ValidationFailed,
                    "the query string has invalid parameters",
                )
                .with_detail(
                    field,
                    message.replace("Failed to deserialize query string: ", ""),
                )
            })
    }
}

/// The client's address: the TCP peer.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

/// Reads one cookie's value from the request headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The admin calling a management endpoint.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The session behind a cookie-authenticated caller (for logout).
    pub session: Option<SessionSecret>,
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientAddress(client) = ClientAddress::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientAddress(None));
        if parts.headers.contains_key(header::AUTHORIZATION) {
            // API tokens never authenticate management endpoints.
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "API tokens cannot call management endpoints; sign in instead",
            ));
        }
        let Some(value) = cookie(parts, SESSION_COOKIE) else {
            return Err(AppError::Unauthenticated.into());
        };
        let session = SessionSecret(value.to_owned());
        let principal = state.app.authenticate_session(&session, client).await?;
        if !is_safe(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !state.app.csrf_matches(&session, presented) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "missing or wrong X-CSRF-Token header for a cookie-authenticated request",
                ));
            }
        }
        Ok(Self {
            principal,
            session: Some(session),
        })
    }
}
