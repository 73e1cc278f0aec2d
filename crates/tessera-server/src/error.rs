//! The only place that maps errors to HTTP: every failure answers with the SPEC's body
//! `{"error": {"code", "message", "details"}}`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tessera_api_types::{ErrorBody, ErrorCode, ErrorDetail};
use tessera_app::AppError;

/// How long clients are told to wait when the database is unreachable.
const UNAVAILABLE_RETRY_SECONDS: u64 = 5;

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Map<String, Value>,
    retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such endpoint")
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message the client may see (never an internal cause).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `details` object of the body (for a 422: each bad field and its problem).
    pub fn details(&self) -> &Map<String, Value> {
        &self.details
    }

    /// How long the client should wait, for `rate_limited` and `unavailable`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

pub use tessera_core::lifecycle::retry_seconds;

/// Parameters that did not parse: the same answer as the application's validation.
impl From<tessera_core::FieldErrors> for ApiError {
    fn from(errors: tessera_core::FieldErrors) -> Self {
        AppError::from(errors).into()
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::BadRequest(message) => Self::new(ErrorCode::BadRequest, message),
            AppError::Unauthenticated => Self::new(
                ErrorCode::Unauthenticated,
                "sign in, or present a personal token",
            ),
            AppError::Forbidden(message) => Self::new(ErrorCode::Forbidden, message),
            AppError::NotFound(what) => Self::new(ErrorCode::NotFound, format!("{what} not found")),
            AppError::Conflict(message) => Self::new(ErrorCode::Conflict, message),
            AppError::Validation(errors) => {
                let mut api = Self::new(
                    ErrorCode::ValidationFailed,
                    "the request has invalid fields",
                );
                for (field, message) in errors.0.iter() {
                    api.details.insert(field.to_owned(), Value::from(message));
                }
                api
            }
            AppError::RateLimited { retry_after } => {
                let mut api = Self::new(ErrorCode::RateLimited, "too many attempts; retry later")
                    .with_detail("retry_after_seconds", retry_seconds(retry_after));
                api.retry_after = Some(retry_after);
                api
            }
            AppError::Unavailable(source) => {
                tracing::error!(error = %source, "database unavailable");
                let mut api = Self::new(
                    ErrorCode::Unavailable,
                    "the database cannot be reached; retry later",
                );
                api.retry_after = Some(Duration::from_secs(UNAVAILABLE_RETRY_SECONDS));
                api
            }
            // Not logged per request (it would flood the log at verify rates): the
            // feed follower logs once when the index goes past its maximum staleness.
            stale @ AppError::StaleIndex { .. } => Self::new(
                ErrorCode::Internal,
                format!("{stale}; refusing to verify until it catches up"),
            ),
            AppError::Internal(cause) => {
                // Logged once, inside the request's span; the client learns nothing of it.
                tracing::error!(%cause, "internal error");
                Self::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&retry_seconds(wait).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.code == ErrorCode::Unauthenticated {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_seconds(Duration::from_secs(30)), 30);
    }
}
