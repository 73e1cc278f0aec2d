//! `/v1/me/tokens`: the signed-in user's personal tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json as AxumJson, Router};
use tessera_api_types::{
    CreatePersonalTokenRequest, CreatedPersonalToken, PersonalTokenView, RegenerateRequest,
};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::extract::{Caller, Json};
use crate::openapi::{Conflict, ManagementErrors, NotFound};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/tokens", get(list).post(create))
        .route("/v1/me/tokens/{id}", delete(remove))
        .route("/v1/me/tokens/{id}/regenerate", post(regenerate))
}

#[utoipa::path(get, path = "/v1/me/tokens", tag = "personal tokens", security(("session" = []), ("personal_token" = [])), summary = "Your personal tokens", responses((status = 200, description = "Your personal tokens, newest first", body = Vec<PersonalTokenView>), ManagementErrors))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<PersonalTokenView>>> {
    Ok(AxumJson(
        state
            .app
            .personal_tokens()
            .list_mine(&caller.principal)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/me/tokens", tag = "personal tokens", security(("session" = [])), summary = "Create a personal token", description = "From a signed-in session only; the secret is in this response only.", request_body = CreatePersonalTokenRequest, responses((status = 201, description = "The token and its secret, shown once", body = CreatedPersonalToken), ManagementErrors, Conflict))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreatePersonalTokenRequest>,
) -> ApiResult<(StatusCode, AxumJson<CreatedPersonalToken>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(
            state
                .app
                .personal_tokens()
                .create_mine(&caller.principal, request)
                .await?,
        ),
    ))
}

#[utoipa::path(delete, path = "/v1/me/tokens/{id}", tag = "personal tokens", security(("session" = [])), summary = "Revoke one of your personal tokens", description = "From a signed-in session only.", params(("id" = String, Path, description = "The token's id (a UUID)")), responses((status = 204, description = "Revoked"), ManagementErrors, NotFound))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .personal_tokens()
        .delete_mine(&caller.principal, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/me/tokens/{id}/regenerate", tag = "personal tokens", security(("session" = [])), summary = "Regenerate one of your personal tokens", description = "From a signed-in session only.", params(("id" = String, Path, description = "The token's id (a UUID)")), request_body = RegenerateRequest, responses((status = 200, description = "The token and its new secret, shown once", body = CreatedPersonalToken), ManagementErrors, NotFound))]
pub(crate) async fn regenerate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<RegenerateRequest>,
) -> ApiResult<AxumJson<CreatedPersonalToken>> {
    Ok(AxumJson(
        state
            .app
            .personal_tokens()
            .regenerate_mine(&caller.principal, &id, request)
            .await?,
    ))
}
