//! Cache hits reach Tessera's usage: the verifier reports them by token id, and
//! `last_used_at` and the daily counts move although Tessera never saw the requests.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tessera_verifier::{ReportError, Verifier};

use crate::harness::{Admin, TestTessera, applied, connected, within};
use crate::layer::call;

fn router(verifier: Verifier) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(tessera_verifier::TesseraLayer::any_valid_token(verifier))
}

/// The token's record and its usage today, once written.
async fn usage(tessera: &TestTessera, admin: &Admin, id: &str) -> (Value, (u64, u64)) {
    tessera.app.flush_usage().await.unwrap();
    let (status, record) = admin.get(&format!("/v1/tokens/{id}")).await;
    assert_eq!(status, 200, "{record}");
    let (status, usage) = admin.get(&format!("/v1/tokens/{id}/usage?days=1")).await;
    assert_eq!(status, 200, "{usage}");
    let today = tessera.app.now().date_naive().to_string();
    let counts = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|day| day["date"] == today.as_str())
        .map_or((0, 0), |day| {
            (
                day["allowed"].as_u64().unwrap(),
                day["denied"].as_u64().unwrap(),
            )
        });
    (record, counts)
}

#[tokio::test]
async fn cache_hits_move_usage_and_last_used_at() {
    let tessera = TestTessera::start().await;
    let manager = tessera.admin("token-manager").await;
    // Subscription (tokens.read) and reports (tokens.update).
    let credential = manager.personal_token_with("full").await;
    let verifier = Verifier::builder(&tessera.base, &credential)
        .report_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let router = router(verifier.clone());
    connected(&verifier).await;

    let before = verifier.stats().changes;
    let (id, token) = manager
        .token(json!({"type": "read-only", "rate_limit": {"requests": 5, "per_seconds": 3600}}))
        .await;
    applied(&verifier, before, 1).await;
    let (record, counts) = usage(&tessera, &manager, &id).await;
    assert_eq!(record["last_used_at"], Value::Null);
    assert_eq!(counts, (0, 0));

    // One miss (Tessera counts it), four hits, and two refused by the rate limit here.
    for _ in 0..5 {
        let ok = call(&router, "GET", "/", &[("x-api-key", &token)]).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    }
    for _ in 0..2 {
        let over = call(&router, "GET", "/", &[("x-api-key", &token)]).await;
        assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(verifier.stats().misses, 1);
    // The report task sends the hits within its interval.
    let record = within("the hits reported", Duration::from_secs(3), async || {
        let (record, counts) = usage(&tessera, &manager, &id).await;
        assert!(counts.0 <= 5 && counts.1 <= 2, "{counts:?}");
        (counts == (5, 2)).then_some(record)
    })
    .await;
    assert!(record["last_used_at"].is_string(), "{record}");

    // Cache hits alone move last_used_at: a token Tessera answers once (a miss, at
    // its clock's time then), then only from the cache an hour later.
    let before = verifier.stats().changes;
    let (other_id, other) = manager.token(json!({"type": "read-only"})).await;
    applied(&verifier, before, 1).await;
    let ok = call(&router, "GET", "/", &[("x-api-key", &other)]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let (record, counts) = usage(&tessera, &manager, &other_id).await;
    assert_eq!(counts, (1, 0));
    let missed_at = record["last_used_at"].as_str().unwrap().to_owned();
    tessera.clock.advance(chrono::Duration::hours(1));
    let misses = verifier.stats().misses;
    for _ in 0..3 {
        let ok = call(&router, "GET", "/", &[("x-api-key", &other)]).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    assert_eq!(verifier.stats().misses, misses, "cache hits only");
    let record = within("the hits reported", Duration::from_secs(3), async || {
        let (record, counts) = usage(&tessera, &manager, &other_id).await;
        assert!(counts.0 <= 4, "{counts:?}");
        (counts == (4, 0)).then_some(record)
    })
    .await;
    let last_used = record["last_used_at"].as_str().unwrap();
    assert_ne!(last_used, missed_at);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(last_used)
            .unwrap()
            .timestamp_millis(),
        tessera.app.now().timestamp_millis(),
        "stamped with Tessera's clock when the report arrived"
    );
    // Nothing was counted twice.
    let (_, counts) = usage(&tessera, &manager, &id).await;
    assert_eq!(counts, (5, 2));
}

#[tokio::test]
async fn a_credential_without_tokens_update_cannot_report() {
    crate::logs::capture();
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    // Read-only: the subscription works, reports are refused.
    let credential = admin.personal_token().await;
    // Reporting on, but the test sends the report itself.
    let verifier = Verifier::builder(&tessera.base, &credential)
        .report_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    connected(&verifier).await;
    let before = verifier.stats().changes;
    let (id, token) = admin.token(json!({"type": "read-only"})).await;
    applied(&verifier, before, 1).await;
    within("a cache hit", Duration::from_secs(2), async || {
        verifier.verify(&token, None, None).await.unwrap();
        let misses = verifier.stats().misses;
        verifier.verify(&token, None, None).await.unwrap();
        (verifier.stats().misses == misses).then_some(())
    })
    .await;
    let refused = verifier.report_usage().await.unwrap_err();
    assert!(
        matches!(&refused, ReportError::Refused { status: 403, message } if message.contains("tokens.update")),
        "{refused:?}"
    );
    // Dropped, not retried: the next report has nothing to send.
    assert_eq!(verifier.report_usage().await, Ok(0));
    let (record, _) = usage(&tessera, &admin, &id).await;
    // Tessera's own answers (the misses) still count.
    assert!(record["last_used_at"].is_string());
    assert!(!crate::logs::captured().contains(credential.as_str()));
}

#[tokio::test]
async fn hits_counted_while_tessera_is_unreachable_are_reported_once_it_is_back() {
    let mut tessera = TestTessera::start().await;
    let manager = tessera.admin("token-manager").await;
    let credential = manager.personal_token_with("full").await;
    let (id, token) = manager.token(json!({"type": "read-only"})).await;
    // Trusts its cache for a minute when it cannot follow Tessera; reports by hand (the
    // interval never comes within the test).
    let verifier = Verifier::builder(&tessera.base, &credential)
        .fallback_ttl(Duration::from_secs(60))
        .report_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    connected(&verifier).await;
    verifier.verify(&token, None, None).await.unwrap();
    let misses = verifier.stats().misses;

    tessera.stop_http().await;
    for _ in 0..3 {
        verifier.verify(&token, None, None).await.unwrap();
    }
    assert_eq!(verifier.stats().misses, misses, "cache hits");
    assert!(matches!(
        verifier.report_usage().await,
        Err(ReportError::Unreachable(_))
    ));
    tessera.start_http().await;
    // Kept, and sent with the next report.
    assert_eq!(verifier.report_usage().await, Ok(1));
    let (record, counts) = usage(&tessera, &manager, &id).await;
    assert_eq!(counts, (4, 0), "one miss and three hits");
    assert!(record["last_used_at"].is_string());
}
