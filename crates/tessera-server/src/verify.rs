//! `POST /v1/verify`: always 200 for a well-formed request, `valid` or a `code`.
//! No credentials needed; answered from the node's in-memory index (500 `internal`
//! only when that index is past its maximum staleness).

use axum::extract::State;
use axum::routing::post;
use axum::{Json as AxumJson, Router};
use tessera_api_types::{VerifyRequest, VerifyResponse};
use tessera_app::VerifyQuery;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ClientAddress, LenientJson};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/verify", post(verify))
}

async fn verify(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    LenientJson(request): LenientJson<VerifyRequest>,
) -> ApiResult<AxumJson<VerifyResponse>> {
    let query = VerifyQuery {
        token: &request.token,
        permission: request.permission.as_deref(),
        project: request.project.as_deref(),
    };
    Ok(AxumJson(state.app.verify(query, client)?.into_response()))
}
