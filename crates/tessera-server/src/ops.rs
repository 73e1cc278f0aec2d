//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the database
//! answers and the verify index has caught up with it since the last failure; 503
//! `unavailable` with `Retry-After` otherwise) and `/metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tessera_app::AppError;
use tessera_app::metrics::Metrics;

use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Counts, durations and state gauges; no label names a token or a caller.
async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let text = state
        .app
        .metrics()
        .render()
        .map_err(|error| AppError::Internal(error.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(Metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.app.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
