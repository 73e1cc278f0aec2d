//! Tessera unreachable: refused by default, or answered from the cache up to the
//! configured staleness; never a panic.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tessera_verifier::{
    SubscriptionState, TesseraLayer, Verifier, VerifyCode, VerifyError, WhenUnreachable,
};
use tower::ServiceExt;

use crate::harness::{TestTessera, applied, connected, within};

async fn disconnected(verifier: &Verifier) {
    within(
        "the subscription to notice",
        Duration::from_secs(5),
        async || (verifier.subscription_state() == SubscriptionState::Disconnected).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn by_default_nothing_is_let_through_once_tessera_cannot_confirm_it() {
    let mut tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    let credential = admin.personal_token().await;
    let verifier = Verifier::builder(&tessera.base, &credential)
        .fallback_ttl(Duration::from_millis(100))
        .build()
        .unwrap();
    let (_, token) = admin.token(json!({"type": "read-only"})).await;
    let (_, never_seen) = admin.token(json!({"type": "read-only"})).await;
    verifier.verify(&token, None, None).await.unwrap();

    tessera.stop_http().await;
    disconnected(&verifier).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        verifier.verify(&token, None, None).await.unwrap_err(),
        VerifyError::Unavailable
    );
    assert_eq!(
        verifier.verify(&never_seen, None, None).await.unwrap_err(),
        VerifyError::Unavailable
    );
    assert!(verifier.stats().unreachable >= 2);

    let router = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(TesseraLayer::any_valid_token(verifier.clone()));
    let response = router
        .oneshot(
            Request::get("/")
                .header("x-api-key", &token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["error"]["code"], "unavailable");

    // Back: verified again.
    tessera.start_http().await;
    within("verifying again", Duration::from_secs(10), async || {
        verifier.verify(&token, None, None).await.ok()
    })
    .await;
}

#[tokio::test]
async fn serve_stale_answers_from_the_cache_up_to_the_maximum_staleness() {
    let mut tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    let credential = admin.personal_token().await;
    let verifier = Verifier::builder(&tessera.base, &credential)
        .fallback_ttl(Duration::from_millis(100))
        .negative_ttl(Duration::from_millis(100))
        .when_unreachable(WhenUnreachable::ServeStale {
            max_staleness: Duration::from_secs(60),
        })
        .build()
        .unwrap();
    connected(&verifier).await;
    let before = verifier.stats().changes;
    let (_, token) = admin.token(json!({"type": "read-only"})).await;
    let (_, never_seen) = admin.token(json!({"type": "read-only"})).await;
    let (disabled_id, disabled) = admin.token(json!({"type": "read-only"})).await;
    admin
        .post(&format!("/v1/tokens/{disabled_id}/disable"), json!({}))
        .await;
    // Answers cached from now on are not dropped by these changes arriving late.
    applied(&verifier, before, 4).await;
    verifier.verify(&token, None, None).await.unwrap();
    assert!(verifier.verify(&disabled, None, None).await.is_err());

    tessera.stop_http().await;
    disconnected(&verifier).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Past every TTL, but within the staleness allowed: the cached answers stand.
    verifier.verify(&token, None, None).await.unwrap();
    assert_eq!(
        verifier.verify(&disabled, None, None).await.unwrap_err(),
        VerifyError::Refused {
            code: VerifyCode::Disabled,
            retry_after: None
        }
    );
    assert!(verifier.stats().stale >= 2);
    // Nothing cached: nothing to serve.
    assert_eq!(
        verifier.verify(&never_seen, None, None).await.unwrap_err(),
        VerifyError::Unavailable
    );

    // A staleness shorter than the outage: refused again.
    let strict = Verifier::builder(&tessera.base, &credential)
        .when_unreachable(WhenUnreachable::ServeStale {
            max_staleness: Duration::ZERO,
        })
        .build()
        .unwrap();
    assert_eq!(
        strict.verify(&token, None, None).await.unwrap_err(),
        VerifyError::Unavailable
    );
}

#[tokio::test]
async fn a_tessera_that_never_answered_is_reported_and_refused() {
    // Nothing listens on port 9 of the loopback (discard, unused in CI images).
    let states = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&states);
    let verifier = Verifier::builder("http://127.0.0.1:9", "tsrp_whatever")
        .on_state_change(move |state| seen.lock().unwrap().push(state))
        .build()
        .unwrap();
    let token = tessera_core::TokenFormat::default()
        .generate(tessera_core::TokenKind::Api, &mut rand::thread_rng());
    assert_eq!(
        verifier
            .verify(token.expose(), None, None)
            .await
            .unwrap_err(),
        VerifyError::Unavailable
    );
    assert_eq!(
        verifier.subscription_state(),
        SubscriptionState::Disconnected
    );
    // Never connected: no transition to report.
    assert!(states.lock().unwrap().is_empty());
    assert!(matches!(
        Verifier::builder("ftp://nowhere", "x").build(),
        Err(tessera_verifier::BuildError::BaseUrl)
    ));
    assert!(matches!(
        Verifier::builder("http://x", "x")
            .token_prefix("NO")
            .build(),
        Err(tessera_verifier::BuildError::TokenPrefix(_))
    ));
}
