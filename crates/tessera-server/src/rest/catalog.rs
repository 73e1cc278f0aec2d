//! `/v1/resources`, `/v1/projects`, `/v1/api-versions`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::{Json as AxumJson, Router};
use tessera_api_types::{
    ApiVersionsView, ProjectRequest, ProjectView, ResourceRequest, ResourceUpdate, ResourceView,
};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::extract::{Caller, Json};
use crate::openapi::{Conflict, ManagementErrors, NotFound};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/resources", get(list_resources).post(create_resource))
        .route(
            "/v1/resources/{name}",
            patch(update_resource).delete(delete_resource),
        )
        .route("/v1/projects", get(list_projects).post(create_project))
        .route("/v1/projects/{slug}", delete(delete_project))
        .route("/v1/api-versions", get(api_versions))
}

#[utoipa::path(get, path = "/v1/resources", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "The resource catalog", description = "Resources and their actions: what custom tokens may be granted (`tokens.read` or `resources.manage`).", responses((status = 200, description = "Every resource", body = Vec<ResourceView>), ManagementErrors))]
pub(crate) async fn list_resources(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<ResourceView>>> {
    Ok(AxumJson(
        state
            .app
            .catalog()
            .list_resources(&caller.principal)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/resources", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "Add a resource", description = "Needs `resources.manage`.", request_body = ResourceRequest, responses((status = 201, description = "The new resource", body = ResourceView), ManagementErrors, Conflict))]
pub(crate) async fn create_resource(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<ResourceRequest>,
) -> ApiResult<(StatusCode, AxumJson<ResourceView>)> {
    let created = state
        .app
        .catalog()
        .create_resource(&caller.principal, request)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

#[utoipa::path(patch, path = "/v1/resources/{name}", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "Edit a resource", description = "Needs `resources.manage`.", params(("name" = String, Path, description = "The resource's name")), request_body = ResourceUpdate, responses((status = 200, description = "The resource as edited", body = ResourceView), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn update_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(update): Json<ResourceUpdate>,
) -> ApiResult<AxumJson<ResourceView>> {
    Ok(AxumJson(
        state
            .app
            .catalog()
            .update_resource(&caller.principal, &name, update)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/resources/{name}", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "Delete a resource", description = "Needs `resources.manage`.", params(("name" = String, Path, description = "The resource's name")), responses((status = 204, description = "Deleted"), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn delete_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .catalog()
        .delete_resource(&caller.principal, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/projects", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "List projects", description = "Needs `tokens.read` or `projects.manage`.", responses((status = 200, description = "Every project", body = Vec<ProjectView>), ManagementErrors))]
pub(crate) async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<ProjectView>>> {
    Ok(AxumJson(
        state.app.catalog().list_projects(&caller.principal).await?,
    ))
}

#[utoipa::path(post, path = "/v1/projects", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "Create a project", description = "Needs `projects.manage`.", request_body = ProjectRequest, responses((status = 201, description = "The new project", body = ProjectView), ManagementErrors, Conflict))]
pub(crate) async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<ProjectRequest>,
) -> ApiResult<(StatusCode, AxumJson<ProjectView>)> {
    let created = state
        .app
        .catalog()
        .create_project(&caller.principal, request)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

#[utoipa::path(delete, path = "/v1/projects/{slug}", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "Delete a project", description = "Only while no token is bound to it (`projects.manage`).", params(("slug" = String, Path, description = "The project's slug")), responses((status = 204, description = "Deleted"), ManagementErrors, NotFound, Conflict))]
pub(crate) async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .catalog()
        .delete_project(&caller.principal, &slug)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/api-versions", tag = "catalog", security(("session" = []), ("personal_token" = [])), summary = "The API versions tokens can be on", description = "Needs `tokens.read`.", responses((status = 200, description = "The versions, oldest first, and the newest", body = ApiVersionsView), ManagementErrors))]
pub(crate) async fn api_versions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<ApiVersionsView>> {
    Ok(AxumJson(
        state.app.catalog().api_versions(&caller.principal)?,
    ))
}
