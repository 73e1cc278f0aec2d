//! What no change announces: a regenerated token's previous secret at the end of its
//! grace period, and a token at its `expires_at`. Tessera's answers say when (the
//! verifier reads those times on its own clock), so the cache stops answering within
//! the one-second bound, although these verifiers would otherwise reuse a valid
//! answer for a minute.
//!
//! Tessera's clock follows the real one here: the verifier's cache counts real time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::StatusCode;
use serde_json::json;
use tessera_verifier::{TesseraLayer, Verifier};

use crate::harness::{TestTessera, applied, connected, within};
use crate::layer::call;

/// Reuses valid answers for a minute, so only the answer's own end can stop them.
fn patient(tessera: &TestTessera, credential: &str) -> Verifier {
    Verifier::builder(&tessera.base, credential)
        .fallback_ttl(Duration::from_secs(60))
        .max_age(Duration::from_secs(60))
        .without_usage_reports()
        .build()
        .unwrap()
}

fn router(verifier: Verifier) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(TesseraLayer::any_valid_token(verifier))
}

/// Waits until `verifier` answers `token` from its cache.
async fn cached(verifier: &Verifier, token: &str) {
    within("the answer cached", Duration::from_secs(2), async || {
        verifier.verify(token, None, None).await.unwrap();
        matches!(verifier.verify_cached(token, None, None), Some(Ok(_))).then_some(())
    })
    .await;
}

/// Calls the layer until it refuses `token`; answers when it first did. Until then
/// every answer must be 200.
async fn refused_at(router: &axum::Router, token: &str) -> DateTime<Utc> {
    within("the token refused", Duration::from_secs(5), async || {
        let answer = call(router, "GET", "/", &[("x-api-key", token)]).await;
        match answer.status {
            StatusCode::OK => None,
            StatusCode::UNAUTHORIZED => Some(Utc::now()),
            other => panic!("unexpected {other}: {}", answer.body),
        }
    })
    .await
}

#[tokio::test]
async fn the_previous_secret_is_refused_within_a_second_of_its_grace_end() {
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    let credential = admin.personal_token().await;
    let verifier = patient(&tessera, &credential);
    let router = router(verifier.clone());
    connected(&verifier).await;
    let _clock = tessera.follow_real_time();

    let before = verifier.stats().changes;
    let (id, old) = admin.token(json!({"type": "read-only"})).await;
    applied(&verifier, before, 1).await;
    let before = verifier.stats().changes;
    let renewed = admin
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            json!({"grace_period_seconds": 3}),
        )
        .await;
    applied(&verifier, before, 1).await;
    let new = renewed["token"].as_str().unwrap();

    // During the grace, the old secret's answer says when it ends; the new secret's
    // answer has no grace end.
    cached(&verifier, &old).await;
    let answer = verifier.verify(&old, None, None).await.unwrap();
    let grace_end = answer
        .grace_ends_at
        .expect("the answer carries the grace end");
    assert!(grace_end > Utc::now(), "{grace_end}");
    assert!(grace_end <= Utc::now() + chrono::Duration::seconds(3));
    assert_eq!(
        verifier
            .verify(new, None, None)
            .await
            .unwrap()
            .grace_ends_at,
        None
    );
    // Answered from the cache until then.
    let misses = verifier.stats().misses;
    let ok = call(&router, "GET", "/", &[("x-api-key", &old)]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(verifier.stats().misses, misses);

    let refused = refused_at(&router, &old).await;
    let late = refused - grace_end;
    assert!(
        late <= chrono::Duration::seconds(1),
        "the old secret was refused {late} after its grace end"
    );
    assert!(refused >= grace_end, "refused before the grace ended");
    assert!(!matches!(
        verifier.verify_cached(&old, None, None),
        Some(Ok(_))
    ));
    // The new secret goes on.
    let ok = call(&router, "GET", "/", &[("x-api-key", new)]).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_cached_token_is_refused_within_a_second_of_its_expiry() {
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    let credential = admin.personal_token().await;
    let verifier = patient(&tessera, &credential);
    let router = router(verifier.clone());
    connected(&verifier).await;
    let _clock = tessera.follow_real_time();

    let expires_at = Utc::now() + chrono::Duration::seconds(3);
    let before = verifier.stats().changes;
    let (_, token) = admin
        .token(json!({"type": "read-only", "expires_at": expires_at.to_rfc3339()}))
        .await;
    applied(&verifier, before, 1).await;
    cached(&verifier, &token).await;

    let refused = refused_at(&router, &token).await;
    let late = refused - expires_at;
    assert!(
        late <= chrono::Duration::seconds(1),
        "the token was refused {late} after it expired"
    );
    assert!(refused >= expires_at, "refused before it expired");
}
