//! `/v1/tokens`: API token management.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use tessera_api_types::{
    CreateTokenRequest, CreatedToken, DuplicateRequest, RegenerateRequest, TokenListParams,
    TokenPage, TokenView, UpdateTokenRequest, UpgradeVersionRequest, UsageParams, UsageView,
};
use tessera_core::TokenStatus;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::extract::{Caller, Json, Query};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tokens", get(list).post(create))
        .route("/v1/tokens/{id}", get(show).patch(update).delete(remove))
        .route("/v1/tokens/{id}/regenerate", post(regenerate))
        .route("/v1/tokens/{id}/duplicate", post(duplicate))
        .route("/v1/tokens/{id}/disable", post(disable))
        .route("/v1/tokens/{id}/enable", post(enable))
        .route("/v1/tokens/{id}/upgrade-version", post(upgrade_version))
        .route("/v1/tokens/{id}/usage", get(usage))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<TokenListParams>,
) -> ApiResult<AxumJson<TokenPage>> {
    Ok(AxumJson(
        state
            .app
            .list_tokens(&caller.principal, params.parse()?)
            .await?,
    ))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, AxumJson<CreatedToken>)> {
    let created = state.app.create_token(&caller.principal, request).await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(state.app.get_token(&caller.principal, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<UpdateTokenRequest>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .update_token(&caller.principal, &id, request)
            .await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_token(&caller.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn regenerate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<RegenerateRequest>,
) -> ApiResult<AxumJson<CreatedToken>> {
    Ok(AxumJson(
        state
            .app
            .regenerate_token(&caller.principal, &id, request)
            .await?,
    ))
}

async fn duplicate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<DuplicateRequest>,
) -> ApiResult<(StatusCode, AxumJson<CreatedToken>)> {
    let created = state
        .app
        .duplicate_token(&caller.principal, &id, request)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .set_token_status(&caller.principal, &id, TokenStatus::Disabled)
            .await?,
    ))
}

async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .set_token_status(&caller.principal, &id, TokenStatus::Active)
            .await?,
    ))
}

async fn upgrade_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<UpgradeVersionRequest>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .upgrade_token_version(&caller.principal, &id, request)
            .await?,
    ))
}

async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<UsageParams>,
) -> ApiResult<AxumJson<UsageView>> {
    Ok(AxumJson(
        state
            .app
            .token_usage(&caller.principal, &id, params.parse()?)
            .await?,
    ))
}
