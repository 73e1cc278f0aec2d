//! Fixtures shared by the store's test binaries (`conformance`, `copy`).

use chrono::{DateTime, Utc};
use tessera_core::listing::TOKEN_COUNT_LIMIT;
use tessera_core::{
    Lifespan, TokenDigest, TokenId, TokenKind, TokenMetadata, TokenRecord, TokenStatus, TokenType,
};
use tessera_store::{TokenQuery, TokenSort};

/// An active, unlimited, read-only API token named `name`, created at `created_at`.
pub fn api_token(name: &str, created_at: DateTime<Utc>, digest: TokenDigest) -> TokenRecord {
    TokenRecord {
        id: TokenId::new_at(created_at, &mut rand::rngs::OsRng),
        kind: TokenKind::Api,
        name: name.into(),
        description: String::new(),
        token_type: TokenType::ReadOnly,
        permissions: vec![],
        project: None,
        owner_id: None,
        status: TokenStatus::Active,
        lifespan: Lifespan::Unlimited,
        expires_at: None,
        api_version: "v1".into(),
        hint: "tsr_abcd".into(),
        digest,
        grace: None,
        created_at,
        created_by: "test".into(),
        updated_at: created_at,
        last_used_at: None,
        rate_limit: None,
        external_id: None,
        metadata: TokenMetadata::new(),
        revision: 0,
    }
}

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
