//! Exit codes scripts can rely on.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (`verify`: the token is valid) |
//! | 1 | `verify`: the token is not valid (the reason is printed) |
//! | 2 | bad usage, invalid input or configuration (clap's usage errors too; an ambiguous name) |
//! | 3 | not found |
//! | 4 | conflict (name taken, still in use) |
//! | 5 | forbidden or not authenticated |
//! | 69 | the database cannot be reached, or `serve` cannot listen on its address |
//! | 70 | internal error |

use tessera_app::AppError;
use tessera_store::StoreError;

pub const OK: u8 = 0;
pub const INVALID_TOKEN: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const CONFLICT: u8 = 4;
pub const DENIED: u8 = 5;
pub const UNAVAILABLE: u8 = 69;
pub const INTERNAL: u8 = 70;

/// The exit code of a failed command.
pub fn code_of(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<AppError>() {
        Some(AppError::Validation(_) | AppError::BadRequest(_)) => USAGE,
        Some(AppError::NotFound(_)) => NOT_FOUND,
        Some(AppError::Conflict(_)) => CONFLICT,
        Some(AppError::Forbidden(_) | AppError::Unauthenticated | AppError::RateLimited { .. }) => {
            DENIED
        }
        Some(AppError::Unavailable(_)) => UNAVAILABLE,
        Some(AppError::Internal(_) | AppError::StaleIndex { .. }) => INTERNAL,
        None if error.downcast_ref::<UsageError>().is_some() => USAGE,
        None if error.downcast_ref::<NotFoundError>().is_some() => NOT_FOUND,
        // EX_UNAVAILABLE: the address is taken (or not ours); the message says what to do.
        None if error.downcast_ref::<crate::listen::BindError>().is_some() => UNAVAILABLE,
        // Opening the database fails before any service runs, as a store error.
        None if matches!(
            error.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_))
        ) =>
        {
            UNAVAILABLE
        }
        None => INTERNAL,
    }
}

/// A command-line mistake found after parsing (a bad value, a missing password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Nothing has the id or name given on the command line; the text says where to look.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFoundError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_exits_69_also_when_opening_it() {
        let unreachable = || StoreError::Unavailable("connection refused".into());
        let opening = anyhow::Error::new(unreachable()).context("cannot open the database");
        assert_eq!(code_of(&opening), UNAVAILABLE);
        let serving = anyhow::Error::new(AppError::Unavailable(unreachable()));
        assert_eq!(code_of(&serving), UNAVAILABLE);
        let stale = anyhow::Error::new(AppError::StaleIndex {
            behind: std::time::Duration::from_secs(301),
        });
        assert_eq!(code_of(&stale), INTERNAL);
    }
}
