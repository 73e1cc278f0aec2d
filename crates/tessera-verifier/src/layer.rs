//! The tower layer: takes the token from `Authorization: Bearer` or `X-Api-Key`, decides
//! what the request needs (forward-auth's route rules, or a function of yours), verifies,
//! and either calls the inner service with the token in the request's extensions or
//! answers 401 / 403 / 429 / 503 with Tessera's error body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Full};
use tessera_api_types::{ErrorBody, ErrorCode, ErrorDetail, VerifyCode};
use tessera_core::lifecycle::retry_seconds;
use tessera_core::route_rules::{RouteDecision, RouteRules};

use crate::verifier::{Verifier, VerifyError};

/// What one request needs of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A valid token that grants `permission`, and, with `project`, belongs to it.
    Permission {
        permission: String,
        project: Option<String>,
    },
    /// Any valid API token.
    AnyValidToken,
    /// Refused (403) whatever the token.
    Deny,
}

impl From<RouteDecision<'_>> for Requirement {
    fn from(decision: RouteDecision<'_>) -> Self {
        match decision {
            RouteDecision::Require {
                permission,
                project,
            } => Self::Permission {
                permission: permission.to_owned(),
                project: project.map(str::to_owned),
            },
            RouteDecision::AnyValidToken => Self::AnyValidToken,
            RouteDecision::Deny => Self::Deny,
        }
    }
}

type Decide = dyn Fn(&Method, &Uri) -> Requirement + Send + Sync;

/// A tower [`Layer`](tower::Layer) that lets through only requests with a token that
/// passes [`Verifier::verify`] for what the request needs. The verified token is in the
/// request's extensions as `Arc<VerifiedToken>`.
#[derive(Clone)]
pub struct TesseraLayer {
    verifier: Verifier,
    decide: Arc<Decide>,
}

impl std::fmt::Debug for TesseraLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TesseraLayer")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl TesseraLayer {
    /// Route rules in forward-auth's syntax (`[forward_auth]` of `tessera.toml`): the
    /// first rule that matches the method and path names the permission; unmatched
    /// requests get the rules' default.
    pub fn with_rules(verifier: Verifier, rules: RouteRules) -> Self {
        Self {
            verifier,
            decide: Arc::new(move |method: &Method, uri: &Uri| {
                rules.decide(method.as_str(), uri.path()).into()
            }),
        }
    }

    /// Your own function from method and URI to what the request needs.
    pub fn with_fn(
        verifier: Verifier,
        decide: impl Fn(&Method, &Uri) -> Requirement + Send + Sync + 'static,
    ) -> Self {
        Self {
            verifier,
            decide: Arc::new(decide),
        }
    }

    /// Any valid API token, whatever the request.
    pub fn any_valid_token(verifier: Verifier) -> Self {
        Self::with_fn(verifier, |_, _| Requirement::AnyValidToken)
    }
}

impl<S> tower::Layer<S> for TesseraLayer {
    type Service = TesseraService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TesseraService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`TesseraLayer`] wraps around yours.
#[derive(Debug, Clone)]
pub struct TesseraService<S> {
    inner: S,
    layer: TesseraLayer,
}

/// The response body: the inner service's, or an error body of ours.
pub type TesseraBody<B> = Either<B, Full<Bytes>>;

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for TesseraService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<TesseraBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let Some(token) = presented_token(request.headers()).map(str::to_owned) else {
                return Ok(refusal(Refusal::Unauthenticated));
            };
            let requirement = (layer.decide)(request.method(), request.uri());
            let (permission, project) = match &requirement {
                Requirement::Permission {
                    permission,
                    project,
                } => (Some(permission.as_str()), project.as_deref()),
                Requirement::AnyValidToken | Requirement::Deny => (None, None),
            };
            let verified = match layer.verifier.verify(&token, permission, project).await {
                Ok(verified) => verified,
                Err(error) => return Ok(refusal(Refusal::from(error))),
            };
            // A route bound to a project needs a token of that project: an unbound
            // token, which verifies for any project, does not belong to it.
            if project.is_some() && verified.project.as_deref() != project {
                return Ok(refusal(Refusal::Forbidden("wrong_project")));
            }
            if requirement == Requirement::Deny {
                return Ok(refusal(Refusal::Forbidden("route_denied")));
            }
            request.extensions_mut().insert(verified);
            let response = inner.call(request).await?;
            Ok(response.map(Either::Left))
        })
    }
}

/// The token of a request: `Authorization: Bearer …` (scheme in any case), else
/// `X-Api-Key` (the core's reading, as forward-auth's); an empty one is none.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    tessera_core::token::presented_token(text(header::AUTHORIZATION.as_str()), text("x-api-key"))
        .filter(|token| !token.is_empty())
}

/// Why the layer answers instead of the inner service.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Unauthenticated,
    Forbidden(&'static str),
    RateLimited(Duration),
    Unavailable,
}

impl From<VerifyError> for Refusal {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Unavailable => Self::Unavailable,
            VerifyError::Refused { code, retry_after } => match code {
                VerifyCode::Forbidden => Self::Forbidden("missing_permission"),
                VerifyCode::WrongProject => Self::Forbidden("wrong_project"),
                VerifyCode::RateLimited => {
                    Self::RateLimited(retry_after.unwrap_or(Duration::from_secs(1)))
                }
                VerifyCode::Malformed
                | VerifyCode::NotFound
                | VerifyCode::Expired
                | VerifyCode::Disabled => Self::Unauthenticated,
            },
        }
    }
}

/// The SPEC's error body for `refusal`, with its status and headers.
fn refusal<B>(refusal: Refusal) -> Response<TesseraBody<B>> {
    let mut details = serde_json::Map::new();
    let (code, message) = match refusal {
        Refusal::Unauthenticated => (
            ErrorCode::Unauthenticated,
            "present a valid API token as Authorization: Bearer or X-Api-Key",
        ),
        Refusal::Forbidden(reason) => {
            details.insert("reason".into(), reason.into());
            (
                ErrorCode::Forbidden,
                match reason {
                    "missing_permission" => "this token lacks the permission this route needs",
                    "wrong_project" => "this route is for another project than this token's",
                    _ => "no rule lets a token make this request",
                },
            )
        }
        Refusal::RateLimited(wait) => {
            details.insert("retry_after_seconds".into(), retry_seconds(wait).into());
            (ErrorCode::RateLimited, "too many requests; retry later")
        }
        Refusal::Unavailable => (
            ErrorCode::Unavailable,
            "the token cannot be verified right now; retry later",
        ),
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.to_owned(),
            details,
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(bytes))));
    *response.status_mut() =
        StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match refusal {
        Refusal::Unauthenticated => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tessera\", error=\"invalid_token\""),
            );
        }
        Refusal::RateLimited(wait) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_seconds(wait)));
        }
        Refusal::Unavailable => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Refusal::Forbidden(_) => {}
    }
    response
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
}
