//! Tessera's HTTP surfaces on axum: REST `/v1`, verify, the admin console `/admin` and
//! the ops endpoints, behind
//! request-id, tracing, body-limit and security-header middleware.
//!
//! **Invariant:** only this crate knows HTTP. A handler extracts, makes one
//! `tessera-app` call, converts to a DTO, and stops.

mod changes;
pub mod conn;
pub mod error;
pub mod extract;
mod forward_auth;
pub mod graphql;
pub mod openapi;
mod ops;
pub mod reference;
pub mod rest;
pub mod ui;
mod usage_reports;
mod verify;

pub use verify::{VerifyBody, parse_verify_body};

rust_i18n::i18n!("locales", fallback = "en");

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use tessera_api_types::ErrorCode;
use tessera_app::Tessera;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// The console's content security policy (sent with every response): scripts, styles
/// and images only from this server's own files, no inline script or style, no
/// framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Default largest request body, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub app: Arc<Tessera>,
    /// Mark the session cookie `Secure` (serve behind HTTPS).
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` / `Forwarded` name the real client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// `POST /graphql`'s schema, built once.
    pub graphql: graphql::SharedSchema,
}

/// HTTP options of the server.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub body_limit: usize,
    pub secure_cookies: bool,
    /// `trusted_proxies`: only from these peers is the client address taken from
    /// `X-Forwarded-For` / `Forwarded` (for throttles and the audit log).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// axum adds the `Allow` header to what this answers.
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this method is not allowed on this endpoint; see the Allow header",
    )
}

/// A client's `X-Request-Id` is kept only when it is short and plain
/// (`[A-Za-z0-9._:-]{1,64}`); any other is dropped and a new id made, so that a client
/// cannot forge log lines or smuggle text into them through it.
async fn sanitize_request_id(mut request: Request<axum::body::Body>) -> Request<axum::body::Body> {
    let plain = |value: &HeaderValue| {
        let bytes = value.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    };
    let headers = request.headers_mut();
    let all_plain = headers.get_all("x-request-id").iter().count() == 1
        && headers.get("x-request-id").is_some_and(plain);
    if !all_plain {
        headers.remove("x-request-id");
    }
    request
}

/// Request ids: a random per-process prefix and a counter (`5f3a9c1e-2a`). Unique
/// across nodes and restarts, and unlike UUIDv4 they cost no system call per request.
#[derive(Debug, Clone)]
struct SequentialRequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialRequestIds {
    fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Self {
            prefix: prefix.into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for SequentialRequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Counts every request by route template, method and status (`/metrics`).
async fn count_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    state.app.record().http_request(
        route.as_ref().map_or("<unmatched>", |route| route.as_str()),
        method.as_str(),
        response.status().as_u16(),
    );
    response
}

/// The whole router.
pub fn router(app: Arc<Tessera>, options: HttpOptions) -> Router {
    let state = AppState {
        app,
        secure_cookies: options.secure_cookies,
        trusted_proxies: options.trusted_proxies.into(),
        graphql: graphql::SharedSchema(graphql::schema()),
    };
    let request_id = HeaderName::from_static("x-request-id");
    // Spans carry the route template (`/v1/tokens/{id}`), never the raw path, query
    // or headers: any of those could hold a secret pasted in the wrong place.
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-");
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("<unmatched>", axum::extract::MatchedPath::as_str);
        tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route)
    });
    Router::new()
        .merge(rest::routes())
        .merge(verify::routes())
        .merge(graphql::routes())
        .merge(changes::routes())
        .merge(usage_reports::routes())
        .merge(forward_auth::routes())
        .merge(ops::routes())
        .merge(openapi::routes())
        .merge(reference::routes())
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.body_limit))
        // Nothing is cached unless a handler says so (only the console's hashed assets).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // Every response gets the console's policy unless its handler sets its own:
        // only GraphiQL's page does (the same, plus the inline styles and data: fonts
        // its editor needs; scripts stay this server's own).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_request,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(
            request_id,
            SequentialRequestIds::new(),
        ))
        .layer(axum::middleware::map_request(sanitize_request_id))
        .with_state(state)
}

pub use conn::{ConnectionOptions, raise_open_files_limit, serve, serve_with};
