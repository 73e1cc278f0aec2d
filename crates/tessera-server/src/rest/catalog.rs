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

async fn list_resources(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<ResourceView>>> {
    Ok(AxumJson(state.app.list_resources(&caller.principal).await?))
}

async fn create_resource(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<ResourceRequest>,
) -> ApiResult<(StatusCode, AxumJson<ResourceView>)> {
    let created = state
        .app
        .create_resource(&caller.principal, request)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

async fn update_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(update): Json<ResourceUpdate>,
) -> ApiResult<AxumJson<ResourceView>> {
    Ok(AxumJson(
        state
            .app
            .update_resource(&caller.principal, &name, update)
            .await?,
    ))
}

async fn delete_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_resource(&caller.principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<Vec<ProjectView>>> {
    Ok(AxumJson(state.app.list_projects(&caller.principal).await?))
}

async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<ProjectRequest>,
) -> ApiResult<(StatusCode, AxumJson<ProjectView>)> {
    let created = state.app.create_project(&caller.principal, request).await?;
    Ok((StatusCode::CREATED, AxumJson(created)))
}

async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_project(&caller.principal, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_versions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<ApiVersionsView>> {
    Ok(AxumJson(state.app.api_versions(&caller.principal)?))
}
