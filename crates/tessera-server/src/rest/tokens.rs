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
use crate::openapi::{Conflict, ManagementErrors, NotFound};

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

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "List API tokens", description = "Filtered, sorted and paged with a keyset cursor (`tokens.read`).",
    params(TokenListParams),
    responses((status = 200, description = "A page of tokens", body = TokenPage), ManagementErrors))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<TokenListParams>,
) -> ApiResult<AxumJson<TokenPage>> {
    Ok(AxumJson(
        state
            .app
            .tokens()
            .list(&caller.principal, params.parse()?)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Create an API token", description = "The secret is in this response only (`tokens.create`).",
    request_body = CreateTokenRequest,
    responses((status = 201, description = "The token and its secret, shown once", body = CreatedToken), ManagementErrors, Conflict))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, AxumJson<CreatedToken>)> {
    let created = state
        .app
        .tokens()
        .create(&caller.principal, request)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Show an API token", description = "Never its secret (`tokens.read`).",
    params(("id" = String, Path, description = "The token's id (a UUID)")),
    responses((status = 200, description = "The token", body = TokenView), ManagementErrors, NotFound))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state.app.tokens().get(&caller.principal, &id).await?,
    ))
}

#[utoipa::path(patch, path = "/v1/tokens/{id}", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Edit an API token", description = "Absent fields stay; `null` clears a nullable one (`tokens.update`).",
    params(("id" = String, Path, description = "The token's id (a UUID)")), request_body = UpdateTokenRequest,
    responses((status = 200, description = "The token as edited", body = TokenView), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<UpdateTokenRequest>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .tokens()
            .update(&caller.principal, &id, request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Delete an API token", description = "It stops verifying within a second (`tokens.delete`).",
    params(("id" = String, Path, description = "The token's id (a UUID)")),
    responses((status = 204, description = "Deleted"), ManagementErrors, NotFound))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.tokens().delete(&caller.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/tokens/{id}/regenerate", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Regenerate a token's secret", description = "The old secret may keep working for a grace period of up to a day (`tokens.regenerate`).",
    params(("id" = String, Path, description = "The token's id (a UUID)")), request_body = RegenerateRequest,
    responses((status = 200, description = "The token and its new secret, shown once", body = CreatedToken), ManagementErrors, NotFound))]
pub(crate) async fn regenerate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<RegenerateRequest>,
) -> ApiResult<AxumJson<CreatedToken>> {
    Ok(AxumJson(
        state
            .app
            .tokens()
            .regenerate(&caller.principal, &id, request)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/tokens/{id}/duplicate", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Copy a token's settings into a new token", description = "Needs `tokens.create` and `tokens.read`.",
    params(("id" = String, Path, description = "The token's id (a UUID)")), request_body = DuplicateRequest,
    responses((status = 201, description = "The copy and its secret, shown once", body = CreatedToken), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn duplicate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<DuplicateRequest>,
) -> ApiResult<(StatusCode, AxumJson<CreatedToken>)> {
    let created = state
        .app
        .tokens()
        .duplicate(&caller.principal, &id, request)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

#[utoipa::path(post, path = "/v1/tokens/{id}/disable", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Disable a token", description = "It stops verifying within a second, until enabled again (`tokens.update`).",
    params(("id" = String, Path, description = "The token's id (a UUID)")),
    responses((status = 200, description = "The token, disabled", body = TokenView), ManagementErrors, NotFound))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .tokens()
            .set_status(&caller.principal, &id, TokenStatus::Disabled)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/tokens/{id}/enable", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Enable a disabled token", description = "Needs `tokens.update`.",
    params(("id" = String, Path, description = "The token's id (a UUID)")),
    responses((status = 200, description = "The token, active", body = TokenView), ManagementErrors, NotFound))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .tokens()
            .set_status(&caller.principal, &id, TokenStatus::Active)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/tokens/{id}/upgrade-version", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "Move a token to a newer API version", description = "Never backwards (`tokens.update`).",
    params(("id" = String, Path, description = "The token's id (a UUID)")), request_body = UpgradeVersionRequest,
    responses((status = 200, description = "The token on its new version", body = TokenView), ManagementErrors, NotFound))]
pub(crate) async fn upgrade_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<UpgradeVersionRequest>,
) -> ApiResult<AxumJson<TokenView>> {
    Ok(AxumJson(
        state
            .app
            .tokens()
            .upgrade_version(&caller.principal, &id, request)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/tokens/{id}/usage", tag = "tokens", security(("session" = []), ("personal_token" = [])),
    summary = "A token's daily usage", description = "Allowed and denied verifications per UTC day (`tokens.read`).",
    params(("id" = String, Path, description = "The token's id (a UUID)"), UsageParams),
    responses((status = 200, description = "One entry per day, oldest first", body = UsageView), ManagementErrors, NotFound))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<UsageParams>,
) -> ApiResult<AxumJson<UsageView>> {
    Ok(AxumJson(
        state
            .app
            .tokens()
            .usage(&caller.principal, &id, params.parse()?)
            .await?,
    ))
}
