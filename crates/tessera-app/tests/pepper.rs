#![cfg(test)]
//! The pepper's fingerprint in the database: recorded on first use, then required.

use std::sync::Arc;

use tessera_api_types::CreateTokenRequest;
use tessera_app::pepper::{self, Adoption, DatabasePepper, FingerprintCheck, PepperError};
use tessera_app::{Principal, Settings, SystemClock, Tessera};
use tessera_core::{Lifespan, Pepper, TokenType};

async fn store(dir: &tempfile::TempDir) -> Arc<dyn tessera_store::Store> {
    tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_first_pepper_is_recorded_and_any_other_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (first, second) = (Pepper::from_bytes([1; 32]), Pepper::from_bytes([2; 32]));
    let fresh = DatabasePepper::read(store.as_ref()).await.unwrap();
    assert!(fresh.may_take_a_new_pepper(), "{fresh:?}");

    assert_eq!(
        pepper::check_fingerprint(store.as_ref(), &first, Adoption::NotOverTokens)
            .await
            .unwrap(),
        FingerprintCheck::Recorded
    );
    assert_eq!(
        store.pepper_fingerprint().await.unwrap(),
        Some(pepper::fingerprint(&first)),
        "the fingerprint is recorded, never the pepper"
    );
    assert_eq!(
        pepper::check_fingerprint(store.as_ref(), &first, Adoption::NotOverTokens)
            .await
            .unwrap(),
        FingerprintCheck::Matches
    );
    let refused = pepper::check_fingerprint(store.as_ref(), &second, Adoption::NotOverTokens).await;
    let Err(PepperError::Mismatch { ours, recorded }) = refused else {
        panic!("another pepper was accepted: {refused:?}");
    };
    assert_eq!(ours, pepper::fingerprint(&second));
    assert_eq!(recorded, pepper::fingerprint(&first));
    let recorded_now = DatabasePepper::read(store.as_ref()).await.unwrap();
    assert!(!recorded_now.may_take_a_new_pepper());
}

/// A database with tokens from before fingerprints: the pepper that opens it first is
/// recorded (nothing stored can tell whether it is the right one), and the caller hears
/// that it was recorded over existing tokens. A new pepper is never made for it.
#[tokio::test]
async fn a_database_with_tokens_and_no_fingerprint_takes_the_pepper_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let pepper = Pepper::from_bytes([7; 32]);
    let app = Tessera::new(
        Arc::clone(&store),
        pepper.clone(),
        Settings::default(),
        Arc::new(SystemClock),
    )
    .expect("app");
    app.tokens()
        .create(
            &Principal::operator("test"),
            CreateTokenRequest {
                name: "old".into(),
                token_type: Some(TokenType::ReadOnly),
                lifespan: Some(Lifespan::Unlimited),
                ..CreateTokenRequest::default()
            },
        )
        .await
        .unwrap();
    let before = DatabasePepper::read(store.as_ref()).await.unwrap();
    assert_eq!(
        before,
        DatabasePepper {
            fingerprint: None,
            holds_tokens: true
        }
    );
    assert!(!before.may_take_a_new_pepper());
    // A command that may not adopt a pepper (a listing, say) refuses and records nothing.
    assert!(matches!(
        pepper::check_fingerprint(store.as_ref(), &pepper, Adoption::NotOverTokens).await,
        Err(pepper::PepperError::Unrecorded)
    ));
    assert_eq!(store.pepper_fingerprint().await.unwrap(), None);
    assert_eq!(
        pepper::check_fingerprint(store.as_ref(), &pepper, Adoption::OverTokens)
            .await
            .unwrap(),
        FingerprintCheck::RecordedOverTokens
    );
    assert_eq!(
        pepper::check_fingerprint(store.as_ref(), &pepper, Adoption::NotOverTokens)
            .await
            .unwrap(),
        FingerprintCheck::Matches
    );
}
