//! `POST /v1/verify`: always 200 for a well-formed request, `valid` or a `code`.
//! No credentials needed; answered from the node's in-memory index (500 `internal`
//! only when that index is past its maximum staleness).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json as AxumJson, Router};
use serde::Deserialize;
use tessera_app::{RenderedVerdict, VerifyQuery};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ClientAddress, LenientJson, RawBody};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/verify", post(verify))
}

/// The body of `tessera_api_types::VerifyRequest`, borrowed from the request bytes
/// where JSON escapes allow, so the hot path allocates nothing to read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody<'a> {
    #[serde(borrow)]
    pub token: Cow<'a, str>,
    #[serde(borrow, default)]
    pub permission: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub project: Option<Cow<'a, str>>,
}

/// Reads a verify body. Fast path: borrow from the body. Anything it refuses is parsed
/// again by the general extractor, which names the bad field in the error. Public for
/// the fuzz targets.
pub fn parse_verify_body(body: &[u8]) -> ApiResult<VerifyBody<'_>> {
    match serde_json::from_slice(body) {
        Ok(parsed) => Ok(parsed),
        Err(_) => {
            let LenientJson(request) =
                LenientJson::<tessera_api_types::VerifyRequest>::from_bytes(body)?;
            Ok(VerifyBody {
                token: Cow::Owned(request.token),
                permission: request.permission.map(Cow::Owned),
                project: request.project.map(Cow::Owned),
            })
        }
    }
}

/// A rendered answer shared with the index entry: sent without copying.
struct Rendered(Arc<str>);

impl AsRef<[u8]> for Rendered {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

#[utoipa::path(post, path = "/v1/verify", tag = "verify",
    summary = "Verify a token",
    description = "For your API's own code: answers every well-formed request 200, `valid` or not, \
                   with the token's id, name, type, project, API version, `external_id`, \
                   `metadata` and `rate_limit` when valid (and `grace_ends_at` when the secret \
                   is a regenerated token's previous one, in its grace period: a cache must \
                   not reuse the answer past it, nor past `expires_at`) and a `code` when not \
                   (`Retry-After` when rate-limited). \
                   No credential: the token is the question. Personal tokens never verify.",
    request_body = tessera_api_types::VerifyRequest,
    responses(
        (status = 200, description = "The verdict", body = tessera_api_types::VerifyResponse),
        (status = 400, description = "The body is not JSON", body = tessera_api_types::ErrorBody),
        (status = 413, description = "The body is larger than `body_limit_bytes`", body = tessera_api_types::ErrorBody),
        (status = 422, description = "The body is not a verify request", body = tessera_api_types::ErrorBody),
        (status = 429, description = "Too many malformed or unknown tokens from this client", body = tessera_api_types::ErrorBody),
        (status = 500, description = "`internal`: this node's token index is further behind the database than `max_staleness_seconds` allows, so it does not answer from it", body = tessera_api_types::ErrorBody),
    ))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let parsed = parse_verify_body(&body)?;
    let query = VerifyQuery {
        token: &parsed.token,
        permission: parsed.permission.as_deref(),
        project: parsed.project.as_deref(),
    };
    Ok(match state.app.verify_rendered(query, client)? {
        RenderedVerdict::Valid(answer) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Bytes::from_owner(Rendered(answer)),
        )
            .into_response(),
        RenderedVerdict::Invalid {
            response,
            retry_after,
        } => {
            let mut answer = AxumJson(response).into_response();
            // Still 200 (verify answers every well-formed request so), but a
            // rate-limited caller learns when to come back, as from any 429.
            if let Some(wait) = retry_after
                && let Ok(value) =
                    HeaderValue::from_str(&crate::error::retry_seconds(wait).to_string())
            {
                answer.headers_mut().insert(header::RETRY_AFTER, value);
            }
            answer
        }
    })
}
