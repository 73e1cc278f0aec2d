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

/// What a serde error says about a field, in words that never repeat the client's
/// input: a value or an unknown field's name may be a pasted secret. Only the schema's
/// own expectations ("expected one of `read-only`, …") are kept.
fn schema_message(serde_message: &str) -> String {
    let message = serde_message
        .split(" at line ")
        .next()
        .unwrap_or(serde_message);
    // The schema's part comes last; a value quoted before it may itself hold ", expected".
    let expected = message.rsplit_once(", expected ").map(|(_, e)| e);
    let with_expected = |lead: &str| match expected {
        Some(expected) => format!("{lead}; expected {expected}"),
        None => lead.to_owned(),
    };
    let kept = if message.starts_with("unknown field") {
        with_expected("is not a field of this request")
    } else if message.starts_with("missing field") {
        "is required".to_owned()
    } else if message.starts_with("unknown variant") {
        with_expected("is not one of the allowed values")
    } else if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        with_expected("has the wrong type or value")
    } else {
        // A custom message of a field's own parser (a time, say): those name no input,
        // but a secret that slipped in is shown as its hint at most.
        message.to_owned()
    };
    tessera_core::token::redact_secrets(&kept)
}

/// The field an "unknown field `x`" or "missing field `x`" message names.
fn named_field(message: &str) -> Option<&str> {
    message
        .split_once("unknown field `")
        .or_else(|| message.split_once("missing field `"))
        .and_then(|(_, rest)| rest.split('`').next())
}

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
            // "unknown field `x`, …" arrives with the path already ending at `x`;
            // "missing field `x`" arrives at the parent. Name the field either way.
            let field = named_field(&message)
                .map(|name| {
                    if path == "." || path == name {
                        name.to_owned()
                    } else if path.ends_with(&format!(".{name}")) {
                        path.clone()
                    } else {
                        format!("{path}.{name}")
                    }
                })
                .unwrap_or_else(|| if path == "." { "body".to_owned() } else { path });
            ApiError::new(
                ErrorCode::ValidationFailed,
                "the request has invalid fields",
            )
            .with_detail(
                tessera_core::token::redact_secrets(&field),
                schema_message(&message),
            )
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
    // The common case, a good body, takes the plain parser; only a failure is parsed
    // again with path tracking, to name the bad field.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
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

/// Whether the request says its body is JSON (`application/json` or `…+json`).
fn declares_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}

/// How long a request body may take to arrive, whole. The connection's header timeout
/// covers the head only; without this a client sending its body a byte a minute would
/// hold a connection (and a slot under the connection cap) for as long as it liked.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The body, read within [`BODY_TIMEOUT`] and the body limit: `Ok(Err(_))` carries
/// axum's rejection (too large, or the body broke off), `Err(())` the timeout.
pub(crate) async fn body_within<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Result<Bytes, axum::extract::rejection::BytesRejection>, ()> {
    tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(request, state))
        .await
        .map_err(|_| ())
}

/// Reads the body, answering 413 past the body limit and 400 past [`BODY_TIMEOUT`].
async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    body_within(request, state)
        .await
        .map_err(|()| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "the request body did not arrive within {} seconds",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            } else {
                ApiError::new(ErrorCode::BadRequest, rejection.body_text())
            }
        })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    /// A non-empty body must be declared JSON: a browser's cross-site form can send
    /// `text/plain` without a preflight, so this closes login CSRF and its kin.
    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = declares_json(&request);
        let bytes = read_body(request, state).await?;
        if !json && !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "send the body with Content-Type: application/json",
            ));
        }
        parse_json(&bytes).map(Self)
    }
}

/// The raw body, with the SPEC's 413 past the body limit.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(request, state).await.map(Self)
    }
}

/// A JSON body whatever its declared content type, for `POST /v1/verify`, which
/// changes nothing and is called by gateways and scripts that may not declare it.
#[derive(Debug)]
pub struct LenientJson<T>(pub T);

impl<T: DeserializeOwned> LenientJson<T> {
    /// Parses a body already read (for handlers that read it themselves).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ApiError> {
        parse_json(bytes).map(Self)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for LenientJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// A query string; an unknown or malformed parameter is a 422 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

/// Parses the query string of `uri` into `T`: an unknown or malformed parameter is a
/// 422 naming it, in words that never repeat a value (a secret at most as its hint).
/// What the [`Query`] extractor runs; public for the fuzz targets (`fuzz/`).
pub fn parse_query<T: DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|axum::extract::Query(value)| value)
        .map_err(|rejection| {
            let message = rejection.body_text();
            let message = message
                .strip_prefix("Failed to deserialize query string: ")
                .unwrap_or(&message);
            let field = named_field(message).unwrap_or("query");
            tracing::debug!(
                query_length = uri.query().unwrap_or_default().len(),
                "rejected query string"
            );
            ApiError::new(
                ErrorCode::ValidationFailed,
                "the query string has invalid parameters",
            )
            .with_detail(
                tessera_core::token::redact_secrets(field),
                schema_message(message),
            )
        })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(&parts.uri).map(Self)
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy
/// (`trusted_proxies`), the nearest address its forwarding headers name that is not
/// itself a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(Self(peer.map(|peer| {
            client_behind(peer, &parts.headers, &state.trusted_proxies)
        })))
    }
}

fn trusted(address: IpAddr, proxies: &[ipnet::IpNet]) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    proxies.iter().any(|net| net.contains(&address))
}

/// An address as forwarding headers write it: `203.0.113.7`, `203.0.113.7:4711`,
/// `[2001:db8::1]:4711`, `"[2001:db8::1]"`.
fn forwarded_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':')?.0.parse().ok()
}

/// The client behind `peer`: from the right of `X-Forwarded-For` (else the `for=`
/// parameters of `Forwarded`), the first address that is not a trusted proxy. Only a
/// trusted peer is believed; an unreadable chain leaves the peer.
pub fn client_behind(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    proxies: &[ipnet::IpNet],
) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|part| part.trim().to_owned())
            .collect()
    };
    let mut chain: Vec<String> = values("x-forwarded-for");
    if chain.is_empty() {
        chain = values("forwarded")
            .iter()
            .flat_map(|element| element.split(';'))
            .filter_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for").then(|| value.to_owned())
            })
            .collect();
    }
    for entry in chain.iter().rev() {
        match forwarded_address(entry) {
            Some(address) if trusted(address, proxies) => {}
            Some(address) => return address,
            None => return peer,
        }
    }
    peer
}

/// Reads one cookie's value from the request headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// Reads one cookie's value from `headers`.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
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

/// Why an `Authorization` header did not sign its caller in.
#[derive(Debug, Clone, Copy)]
enum BearerProblem {
    /// Not `Bearer <token>`, or the token is empty.
    Malformed,
    /// An API token: those are for your API's callers, never for Tessera's own.
    ApiToken,
    /// Not a personal token that is known, active and unexpired.
    NotAccepted,
}

/// The 401 for a refused `Authorization` header, saying which of the problems it was.
fn bearer_refused(problem: BearerProblem, personal_prefix: &str) -> ApiError {
    let message = match problem {
        BearerProblem::Malformed => format!(
            "the Authorization header has no token: send `Authorization: Bearer \
             {personal_prefix}_…` with a personal token, or sign in"
        ),
        BearerProblem::ApiToken => format!(
            "an API token cannot call management endpoints: use a personal token \
             ({personal_prefix}_…) or sign in"
        ),
        BearerProblem::NotAccepted => format!(
            "the bearer token is not a valid personal token (unknown, expired, disabled or \
             revoked): use a personal token ({personal_prefix}_…) or sign in"
        ),
    };
    ApiError::new(ErrorCode::Unauthenticated, message)
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
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            // Only personal tokens authenticate here; API tokens never do. A bearer
            // token is not sent by browsers on their own, so it needs no CSRF token.
            let format = &state.app.settings().token_format;
            let personal = format.prefix_for(tessera_core::TokenKind::Personal);
            let token = value
                .to_str()
                .ok()
                .and_then(|text| text.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|token| !token.is_empty())
                .ok_or_else(|| bearer_refused(BearerProblem::Malformed, personal))?;
            let problem = match format.parse(token) {
                Ok(parsed) if parsed.kind == tessera_core::TokenKind::Api => {
                    BearerProblem::ApiToken
                }
                _ => BearerProblem::NotAccepted,
            };
            let principal = state
                .app
                .auth()
                .authenticate_bearer(token, client)
                .await
                .map_err(|error| match error {
                    AppError::Unauthenticated => bearer_refused(problem, personal),
                    other => other.into(),
                })?;
            return Ok(Self {
                principal,
                session: None,
            });
        }
        let Some(value) = cookie(parts, SESSION_COOKIE) else {
            return Err(AppError::Unauthenticated.into());
        };
        let session = SessionSecret(value.to_owned());
        let principal = state
            .app
            .auth()
            .authenticate_session(&session, client)
            .await?;
        if !is_safe(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !state.app.auth().csrf_matches(&session, presented) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    /// The leak the `token` fuzz target found, through the two parsers that echo field
    /// names: a secret glued to other characters is shown as its hint only.
    #[test]
    fn unknown_fields_glued_to_a_secret_are_named_by_their_hint() {
        let secret = tessera_core::TokenFormat::default()
            .generate(tessera_core::TokenKind::Api, &mut rand::rngs::OsRng);
        let secret = secret.expose();
        let name = format!("x_{secret}_old");
        let hinted = format!("x_{}…_old", &secret[..8]);
        let body = format!(r#"{{"token":"t","{name}":1}}"#);
        let error = parse_json::<tessera_api_types::VerifyRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(error.details().keys().collect::<Vec<_>>(), [&hinted]);
        let uri: axum::http::Uri = format!("/v1/audit?{name}=1").parse().unwrap();
        let error = parse_query::<tessera_api_types::AuditParams>(&uri).unwrap_err();
        assert_eq!(error.details().keys().collect::<Vec<_>>(), [&hinted]);
        let error = crate::rest::unexpected_query(&format!("{name}=1"));
        assert_eq!(error.details().keys().collect::<Vec<_>>(), [&hinted]);
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_peers() {
        let proxies: Vec<ipnet::IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        assert_eq!(
            client_behind(local, &xff, &proxies).to_string(),
            "203.0.113.7"
        );
        assert_eq!(client_behind(stranger, &xff, &proxies), stranger);
        assert_eq!(client_behind(local, &HeaderMap::new(), &proxies), local);
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.8:4711"),
        ]);
        assert_eq!(
            client_behind(local, &split, &proxies).to_string(),
            "203.0.113.8"
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.9",
        )]);
        assert_eq!(
            client_behind(local, &forwarded, &proxies).to_string(),
            "2001:db8::1"
        );
        let garbage = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(client_behind(local, &garbage, &proxies), local);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            client_behind(mapped, &xff, &proxies).to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            client_behind(local, &xff, &[]),
            local,
            "nothing trusted by default"
        );
    }
}

/// Path parameters; a path that cannot be decoded (not UTF-8 once percent-decoded) is
/// a 400 with the SPEC error body rather than axum's plain-text rejection.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    "the path cannot be read: it must be UTF-8 once percent-decoded",
                )
            })
    }
}
