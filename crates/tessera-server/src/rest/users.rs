//! `/v1/users` and `/v1/roles`: administrators and their roles.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::{Json as AxumJson, Router};
use tessera_api_types::{
    CreateUserRequest, PersonalTokenView, RoleRequest, RoleUpdate, RoleView, UpdateUserRequest,
    UserView,
};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::extract::{Caller, Json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{id}", patch(update_user).delete(delete_user))
        .route("/v1/users/{id}/tokens", get(list_user_tokens))
        .route(
            "/v1/users/{id}/tokens/{token_id}",
            delete(revoke_user_token),
        )
        .route("/v1/roles", get(list_roles).post(create_role))
        .route("/v1/roles/{id}", patch(update_role).delete(delete_role))
}

async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<UserView>>> {
    Ok(AxumJson(state.app.list_users(&caller.principal).await?))
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, AxumJson<UserView>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(state.app.create_user(&caller.principal, request).await?),
    ))
}

async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<UpdateUserRequest>,
) -> ApiResult<AxumJson<UserView>> {
    Ok(AxumJson(
        state
            .app
            .update_user(&caller.principal, &id, request)
            .await?,
    ))
}

async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_user(&caller.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_user_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<Vec<PersonalTokenView>>> {
    Ok(AxumJson(
        state.app.list_user_tokens(&caller.principal, &id).await?,
    ))
}

async fn revoke_user_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .app
        .revoke_user_token(&caller.principal, &id, &token_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<RoleView>>> {
    Ok(AxumJson(state.app.list_roles(&caller.principal).await?))
}

async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<RoleRequest>,
) -> ApiResult<(StatusCode, AxumJson<RoleView>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(state.app.create_role(&caller.principal, request).await?),
    ))
}

async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(update): Json<RoleUpdate>,
) -> ApiResult<AxumJson<RoleView>> {
    Ok(AxumJson(
        state
            .app
            .update_role(&caller.principal, &id, update)
            .await?,
    ))
}

async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_role(&caller.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
