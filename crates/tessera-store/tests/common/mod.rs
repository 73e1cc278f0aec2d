//! Fixtures shared by the store's test binaries (`conformance`, `copy`).

use chrono::{DateTime, Utc};
use tessera_core::TokenKind;
use tessera_store::TokenQuery;

pub use tessera_test_support::api_token;

/// Every API token as the list asks by default: newest first, 50 a page, counted up to
/// the list's limit; `now` decides what has expired.
pub fn api_tokens(now: DateTime<Utc>) -> TokenQuery {
    TokenQuery::every(TokenKind::Api, now)
}
