//! The application's error type. Its variants mirror the SPEC's error codes; the server
//! maps them to HTTP once, in `tessera-server/src/error.rs`.

use std::time::Duration;

use tessera_core::{FieldErrors, ValidationError};
use tessera_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("too many attempts; retry later")]
    RateLimited { retry_after: Duration },
    #[error("the database cannot be reached")]
    Unavailable(#[source] StoreError),
    /// The verify index has not caught up with the database for `behind`, longer than
    /// the configured maximum staleness: verification refuses rather than answer from
    /// it. Answered as `internal`, with a message that says so.
    #[error("the token index is stale: it has not caught up with the database for {}s", behind.as_secs())]
    StaleIndex { behind: Duration },
    /// Something that is our fault. The message never reaches the client.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A validation failure of one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationError(FieldErrors::single(field, message)))
    }
}

impl From<FieldErrors> for AppError {
    fn from(errors: FieldErrors) -> Self {
        Self::Validation(ValidationError(errors))
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound("record".into()),
            StoreError::Conflict { what } => Self::Conflict(what),
            StoreError::Stale => Self::Conflict("the record changed meanwhile; retry".into()),
            StoreError::Unavailable(_) => Self::Unavailable(error),
            StoreError::Backend(source) => Self::Internal(source.to_string()),
        }
    }
}

/// Turns the store's `NotFound` into a named one (`token 0190…`).
pub(crate) fn not_found(what: impl Into<String>) -> impl FnOnce(StoreError) -> AppError {
    let what = what.into();
    move |error| match error {
        StoreError::NotFound => AppError::NotFound(what),
        other => other.into(),
    }
}
