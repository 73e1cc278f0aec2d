//! Operations endpoints: `/healthz` (the process answers) and `/readyz` (the database
//! answers and the verify index has caught up with it since the last failure; 503
//! `unavailable` with `Retry-After` otherwise).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.app.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
