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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/tokens", get(list).post(create))
        .route("/v1/me/tokens/{id}", delete(remove))
        .route("/v1/me/tokens/{id}/regenerate", post(regenerate))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<PersonalTokenView>>> {
    Ok(AxumJson(state.app.list_my_tokens(&caller.principal).await?))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreatePersonalTokenRequest>,
) -> ApiResult<(StatusCode, AxumJson<CreatedPersonalToken>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(
            state
                .app
                .create_my_token(&caller.principal, request)
                .await?,
        ),
    ))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_my_token(&caller.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn regenerate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<RegenerateRequest>,
) -> ApiResult<AxumJson<CreatedPersonalToken>> {
    Ok(AxumJson(
        state
            .app
            .regenerate_my_token(&caller.principal, &id, request)
            .await?,
    ))
}
