//! Query strings of the management API.
//!
//! Input: a query string (what follows `?`). It is put in a request URI as the HTTP
//! layer would (inputs no URI can hold are skipped: hyper refuses them before axum),
//! then parsed by the server's own extractor (`extract::parse_query`) as each of the
//! three listings' parameters (`GET /v1/tokens`, `/v1/tokens/{id}/usage`,
//! `/v1/audit`), then typed at the boundary (`TokenListParams::parse`,
//! `AuditParams::parse`, `UsageParams::parse`) and checked by the app
//! (`tokens::token_query`, `audit::audit_query`). The answer of a route that takes no
//! query string (`rest::unexpected_query`) is checked too. A listing's cursor is opaque
//! (base64 of JSON); so that mutations reach the JSON inside, each `cursor` value is
//! also tried base64-encoded. Checked:
//! - nothing panics;
//! - refusals are 422 naming a field, and no error body repeats the secret part of a
//!   token-shaped word of the input;
//! - accepted listings keep their invariants (limits within bounds, a cursor only when
//!   it decodes, the name filter normalized);
//! - parameters that parse serialize back (urlencoded) to parameters that parse equal.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use http::Uri;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tessera_api_types::{AuditParams, ErrorCode, TokenListParams, UsageParams};
use tessera_app::AppError;
use tessera_fuzz::assert_error_body_keeps_secrets;
use tessera_server::error::ApiError;
use tessera_server::extract::parse_query;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn check_error(input: &[&str], error: &ApiError) {
    assert_eq!(error.code(), ErrorCode::ValidationFailed, "{error:?}");
    assert!(
        !error.details().is_empty(),
        "a 422 names a field: {error:?}"
    );
    assert_error_body_keeps_secrets(input, error.message(), error.details());
}

fn check_app_error(input: &[&str], error: AppError) {
    assert!(matches!(error, AppError::Validation(_)), "{error:?}");
    check_error(input, &ApiError::from(error));
}

/// Parses `uri`'s query as `T`; checks a refusal, and the urlencoded round trip.
fn parse<T>(input: &[&str], uri: &Uri) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    match parse_query::<T>(uri) {
        Ok(params) => {
            let encoded = serde_urlencoded::to_string(&params)
                .unwrap_or_else(|error| panic!("{params:?} does not serialize: {error}"));
            let again: Uri = format!("/v1/x?{encoded}")
                .parse()
                .unwrap_or_else(|error| panic!("{encoded} is no URI: {error}"));
            match parse_query::<T>(&again) {
                Ok(back) => assert_eq!(back, params, "{encoded}"),
                Err(error) => panic!("{params:?} as {encoded} does not parse back: {error:?}"),
            }
            Some(params)
        }
        Err(error) => {
            check_error(input, &error);
            None
        }
    }
}

fn token_listing(input: &[&str], params: TokenListParams) {
    let had_cursor = params.cursor.is_some();
    let filter = match params.parse() {
        Ok(filter) => filter,
        Err(errors) => return check_app_error(input, errors.into()),
    };
    match tessera_app::tokens::token_query(filter, now()) {
        Ok(query) => {
            assert!((1..=200).contains(&query.limit), "{}", query.limit);
            assert!(query.after.is_some() == had_cursor);
            if let Some(name) = &query.name_contains {
                assert!(!name.is_empty() && name.chars().count() <= 100);
            }
        }
        Err(error) => check_app_error(input, error),
    }
}

fn audit_listing(input: &[&str], params: AuditParams) {
    let filter = match params.parse() {
        Ok(filter) => filter,
        Err(errors) => return check_app_error(input, errors.into()),
    };
    match tessera_app::audit::audit_query(filter) {
        Ok(query) => {
            assert!((2..=tessera_core::AuditPageSize::MAX + 1).contains(&query.limit));
            assert!(query.before.is_none_or(|before| before > 0));
        }
        Err(error) => check_app_error(input, error),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/v1/tokens?{query}").parse::<Uri>() else {
        return;
    };
    // The query as the server sees it (a fragment, say, is not part of it).
    let seen = uri.query().unwrap_or_default();
    let decoded = tessera_fuzz::query_pairs(seen);
    let views: &[&str] = &[query, &decoded];
    let query = views;

    check_error(query, &tessera_server::rest::unexpected_query(seen));

    if let Some(params) = parse::<TokenListParams>(query, &uri) {
        // The cursor's JSON, reached directly.
        if let Some(cursor) = &params.cursor {
            let mut encoded = params.clone();
            encoded.cursor = Some(URL_SAFE_NO_PAD.encode(cursor.as_bytes()));
            token_listing(query, encoded);
        }
        token_listing(query, params);
    }
    if let Some(params) = parse::<AuditParams>(query, &uri) {
        audit_listing(query, params);
    }
    if let Some(params) = parse::<UsageParams>(query, &uri) {
        // The rule the usage route applies before any lookup.
        match params.parse() {
            Ok(days) => assert!((1..=366).contains(&days.get())),
            Err(errors) => check_app_error(query, errors.into()),
        }
    }
});
