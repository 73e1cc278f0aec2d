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
use crate::openapi::{Conflict, ManagementErrors, NotFound};

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

#[utoipa::path(get, path = "/v1/users", tag = "users", security(("session" = []), ("personal_token" = [])), summary = "List administrators", description = "Each with what their role grants (`users.manage`).", responses((status = 200, description = "Every administrator", body = Vec<UserView>), ManagementErrors))]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<UserView>>> {
    Ok(AxumJson(state.app.users().list(&caller.principal).await?))
}

#[utoipa::path(post, path = "/v1/users", tag = "users", security(("session" = []), ("personal_token" = [])), summary = "Add an administrator", description = "Without a password the account cannot sign in until one is set (`users.manage`; a password only from a session).", request_body = CreateUserRequest, responses((status = 201, description = "The new administrator", body = UserView), ManagementErrors, Conflict))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, AxumJson<UserView>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(state.app.users().create(&caller.principal, request).await?),
    ))
}

#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", security(("session" = []), ("personal_token" = [])), summary = "Edit an administrator", description = "Name, role, active, password (`users.manage`; never one's own role or status).", params(("id" = String, Path, description = "The user's id (a UUID)")), request_body = UpdateUserRequest, responses((status = 200, description = "The administrator as edited", body = UserView), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<UpdateUserRequest>,
) -> ApiResult<AxumJson<UserView>> {
    Ok(AxumJson(
        state
            .app
            .users()
            .update(&caller.principal, &id, request)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", security(("session" = []), ("personal_token" = [])), summary = "Remove an administrator", description = "Their sessions and personal tokens go with them (`users.manage`).", params(("id" = String, Path, description = "The user's id (a UUID)")), responses((status = 204, description = "Removed"), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.users().delete(&caller.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/users/{id}/tokens", tag = "users", security(("session" = []), ("personal_token" = [])), summary = "An administrator's personal tokens", description = "Needs `users.manage`.", params(("id" = String, Path, description = "The user's id (a UUID)")), responses((status = 200, description = "Their personal tokens, newest first", body = Vec<PersonalTokenView>), ManagementErrors, NotFound))]
pub(crate) async fn list_user_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<Vec<PersonalTokenView>>> {
    Ok(AxumJson(
        state
            .app
            .personal_tokens()
            .list_of_user(&caller.principal, &id)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/users/{id}/tokens/{token_id}", tag = "users", security(("session" = []), ("personal_token" = [])), summary = "Revoke an administrator's personal token", description = "Needs `users.manage`.", params(("id" = String, Path, description = "The user's id (a UUID)"), ("token_id" = String, Path, description = "The personal token's id (a UUID)")), responses((status = 204, description = "Revoked"), ManagementErrors, NotFound))]
pub(crate) async fn revoke_user_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .app
        .personal_tokens()
        .revoke_of_user(&caller.principal, &id, &token_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/roles", tag = "roles", security(("session" = []), ("personal_token" = [])), summary = "List roles", description = "Built-in and custom (`roles.manage` or `users.manage`).", responses((status = 200, description = "Every role", body = Vec<RoleView>), ManagementErrors))]
pub(crate) async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<RoleView>>> {
    Ok(AxumJson(state.app.roles().list(&caller.principal).await?))
}

#[utoipa::path(post, path = "/v1/roles", tag = "roles", security(("session" = []), ("personal_token" = [])), summary = "Create a custom role", description = "Needs `roles.manage`; a role cannot grant more than its creator holds.", request_body = RoleRequest, responses((status = 201, description = "The new role", body = RoleView), ManagementErrors, Conflict))]
pub(crate) async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<RoleRequest>,
) -> ApiResult<(StatusCode, AxumJson<RoleView>)> {
    Ok((
        StatusCode::CREATED,
        AxumJson(state.app.roles().create(&caller.principal, request).await?),
    ))
}

#[utoipa::path(patch, path = "/v1/roles/{id}", tag = "roles", security(("session" = []), ("personal_token" = [])), summary = "Edit a custom role", description = "Needs `roles.manage`.", params(("id" = String, Path, description = "The role's name")), request_body = RoleUpdate, responses((status = 200, description = "The role as edited", body = RoleView), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(update): Json<RoleUpdate>,
) -> ApiResult<AxumJson<RoleView>> {
    Ok(AxumJson(
        state
            .app
            .roles()
            .update(&caller.principal, &id, update)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/roles/{id}", tag = "roles", security(("session" = []), ("personal_token" = [])), summary = "Delete a custom role", description = "Only while no administrator holds it (`roles.manage`).", params(("id" = String, Path, description = "The role's name")), responses((status = 204, description = "Deleted"), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.roles().delete(&caller.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
