//! The change subscription: changes drop cached answers within the one-second bound,
//! a dropped subscription resumes without missing a change, and it needs a credential
//! with `tokens.read`.
//!
//! These verifiers reuse valid answers for a minute whatever happens (`fallback_ttl`
//! and `max_age`), so only the subscription can make them refuse a token in time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tessera_app::Principal;
use tessera_core::TokenStatus;
use tessera_verifier::{SubscriptionState, Verifier, VerifyCode, VerifyError};

use crate::harness::{TestTessera, applied, connected, within};

fn patient(tessera: &TestTessera, credential: &str) -> tessera_verifier::VerifierBuilder {
    Verifier::builder(&tessera.base, credential)
        .fallback_ttl(Duration::from_secs(60))
        .max_age(Duration::from_secs(60))
}

fn refusal(code: VerifyCode) -> VerifyError {
    VerifyError::Refused {
        code,
        retry_after: None,
    }
}

/// Verifies `token` until its answer is cached: an answer is not cached when a change
/// about its token (its own creation, say) arrives while the question is out.
async fn cache(verifier: &Verifier, token: &str, permission: Option<&str>) {
    within("the answer cached", Duration::from_secs(2), async || {
        verifier.verify(token, permission, None).await.unwrap();
        accepted_from_cache(verifier, token, permission).then_some(())
    })
    .await;
}

/// Whether the cache still accepts `token` for `permission` (no I/O).
fn accepted_from_cache(verifier: &Verifier, token: &str, permission: Option<&str>) -> bool {
    matches!(verifier.verify_cached(token, permission, None), Some(Ok(_)))
}

#[tokio::test]
async fn deleted_regenerated_and_rescoped_tokens_stop_within_one_second() {
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    admin.article_resource().await;
    let credential = admin.personal_token().await;
    let verifier = patient(&tessera, &credential).build().unwrap();
    connected(&verifier).await;

    let before = verifier.stats().changes;
    let (deleted_id, deleted) = admin.token(json!({"type": "read-only"})).await;
    let (regenerated_id, regenerated) = admin.token(json!({"type": "read-only"})).await;
    let (rescoped_id, rescoped) = admin
        .token(json!({"type": "custom", "permissions": ["article.find"]}))
        .await;
    applied(&verifier, before, 3).await;
    for (token, permission) in [
        (&deleted, None),
        (&regenerated, None),
        (&rescoped, Some("article.find")),
    ] {
        cache(&verifier, token, permission).await;
    }

    let (status, _) = admin
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/tokens/{deleted_id}"),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let renewed = admin
        .post(
            &format!("/v1/tokens/{regenerated_id}/regenerate"),
            json!({}),
        )
        .await;
    let (status, _) = admin
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/tokens/{rescoped_id}"),
            json!({"permissions": ["article.create"]}),
        )
        .await;
    assert_eq!(status, 200);

    within("every change seen", Duration::from_secs(1), async || {
        let gone = !accepted_from_cache(&verifier, &deleted, None)
            && !accepted_from_cache(&verifier, &regenerated, None)
            && !accepted_from_cache(&verifier, &rescoped, Some("article.find"));
        gone.then_some(())
    })
    .await;
    assert_eq!(
        verifier.verify(&deleted, None, None).await.unwrap_err(),
        refusal(VerifyCode::NotFound)
    );
    assert_eq!(
        verifier.verify(&regenerated, None, None).await.unwrap_err(),
        refusal(VerifyCode::NotFound)
    );
    verifier
        .verify(renewed["token"].as_str().unwrap(), None, None)
        .await
        .unwrap();
    assert_eq!(
        verifier
            .verify(&rescoped, Some("article.find"), None)
            .await
            .unwrap_err(),
        refusal(VerifyCode::Forbidden)
    );
    verifier
        .verify(&rescoped, Some("article.create"), None)
        .await
        .unwrap();
    assert!(verifier.stats().changes >= 3);
}

#[tokio::test]
async fn a_dropped_subscription_resumes_where_it_left_off_without_missing_a_change() {
    let mut tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    let credential = admin.personal_token().await;
    let states = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&states);
    let verifier = patient(&tessera, &credential)
        .on_state_change(move |state| seen.lock().unwrap().push(state))
        .build()
        .unwrap();
    connected(&verifier).await;
    let before = verifier.stats().changes;
    let (changed_id, changed) = admin.token(json!({"type": "read-only"})).await;
    let (_, untouched) = admin.token(json!({"type": "read-only"})).await;
    applied(&verifier, before, 2).await;
    cache(&verifier, &changed, None).await;
    cache(&verifier, &untouched, None).await;

    tessera.stop_http().await;
    within(
        "the subscription to notice",
        Duration::from_secs(5),
        async || (verifier.subscription_state() == SubscriptionState::Disconnected).then_some(()),
    )
    .await;
    // Changed while the verifier cannot hear of it.
    tessera
        .app
        .tokens()
        .set_status(
            &Principal::operator("test"),
            &changed_id,
            TokenStatus::Disabled,
        )
        .await
        .unwrap();
    // Down: the cache answers for the fallback TTL (a minute here).
    assert!(accepted_from_cache(&verifier, &changed, None));

    tessera.start_http().await;
    connected(&verifier).await;
    within(
        "the missed change applied",
        Duration::from_secs(1),
        async || (!accepted_from_cache(&verifier, &changed, None)).then_some(()),
    )
    .await;
    assert_eq!(
        verifier.verify(&changed, None, None).await.unwrap_err(),
        refusal(VerifyCode::Disabled)
    );
    // Resumed, not restarted: what did not change is still cached.
    let misses = verifier.stats().misses;
    assert!(accepted_from_cache(&verifier, &untouched, None));
    assert_eq!(verifier.stats().misses, misses);
    assert_eq!(
        *states.lock().unwrap(),
        [
            SubscriptionState::Connected,
            SubscriptionState::Disconnected,
            SubscriptionState::Connected
        ]
    );
}

#[tokio::test]
async fn without_a_credential_allowed_to_read_tokens_there_is_no_subscription() {
    crate::logs::capture();
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    admin
        .post(
            "/v1/roles",
            json!({"name": "auditor", "permissions": ["audit.read"]}),
        )
        .await;
    let auditor = tessera.admin("auditor").await;
    let wrong_role = auditor.personal_token().await;
    let unknown = tessera_core::TokenFormat::default()
        .generate(tessera_core::TokenKind::Personal, &mut rand::thread_rng());
    let (_, api_token) = admin.token(json!({"type": "full-access"})).await;

    for credential in [wrong_role.as_str(), unknown.expose(), api_token.as_str()] {
        let verifier = Verifier::builder(&tessera.base, credential)
            .build()
            .unwrap();
        // Verifying still works (a verify call needs no credential), trusted briefly.
        verifier.verify(&api_token, None, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            verifier.subscription_state(),
            SubscriptionState::Disconnected
        );
    }
    let logs = crate::logs::captured();
    assert!(logs.contains("refused the subscription credential"));
    for secret in [&wrong_role, &api_token] {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
    }
    assert!(!logs.contains(unknown.expose()));
}
