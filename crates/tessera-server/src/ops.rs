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
#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    description = "The text exposition format; no label ever holds a token or a caller.",
    responses((status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
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

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process answers", body = Object, example = json!({"status": "ok"}))))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", summary = "Readiness",
    description = "Ready when the database answers and the verify index is fresh.",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready", body = tessera_api_types::ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.app.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
