//! `GET /v1/audit`: the audit log, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use tessera_api_types::{AuditPage, AuditParams};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Caller, Query};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<AuditParams>,
) -> ApiResult<AxumJson<AuditPage>> {
    Ok(AxumJson(
        state
            .app
            .list_audit(&caller.principal, params.parse()?)
            .await?,
    ))
}
