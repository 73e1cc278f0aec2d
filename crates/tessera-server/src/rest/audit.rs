//! `GET /v1/audit`: the audit log, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use tessera_api_types::{AuditPage, AuditParams};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Caller, Query};
use crate::openapi::ManagementErrors;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("session" = []), ("personal_token" = [])), summary = "The audit log", description = "Newest first, paged with a cursor (`audit.read`).", params(AuditParams), responses((status = 200, description = "A page of entries", body = AuditPage), ManagementErrors))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<AuditParams>,
) -> ApiResult<AxumJson<AuditPage>> {
    Ok(AxumJson(
        state
            .app
            .audit()
            .list(&caller.principal, params.parse()?)
            .await?,
    ))
}
