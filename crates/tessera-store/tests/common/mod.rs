//! Fixtures shared by the store's test binaries (`conformance`, `copy`).

use chrono::{DateTime, Utc};
use tessera_core::TokenKind;
use tessera_core::listing::TOKEN_COUNT_LIMIT;
use tessera_store::{TokenQuery, TokenSort};

/// Every API token as the list asks by default: newest first, 50 a page, counted up to
/// the list's limit; `now` decides what has expired.
pub fn api_tokens(now: DateTime<Utc>) -> TokenQuery {
    TokenQuery {
        kind: TokenKind::Api,
        owner: None,
        name_contains: None,
        created_after: None,
        created_before: None,
        status: None,
        token_type: None,
        project: None,
        external_id: None,
        sort: TokenSort::default(),
        limit: 50,
        after: None,
        now,
        count_limit: TOKEN_COUNT_LIMIT,
    }
}
