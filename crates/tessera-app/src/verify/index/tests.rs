//! The verify index's unit tests.
use chrono::TimeZone;
use tessera_api_types::VerifyResponse;
use tessera_core::{RateLimit, TokenMetadata};

use super::*;

fn record(seed: u8) -> IndexRecord {
    IndexRecord {
        id: TokenId(uuid::Uuid::from_u128(u128::from(seed) << 64 | 7)),
        kind: TokenKind::Api,
        name: format!("token {seed}"),
        token_type: TokenType::ReadOnly,
        permissions: vec![],
        project: None,
        owner_id: None,
        status: TokenStatus::Active,
        expires_at: None,
        api_version: "v1".into(),
        digest: TokenDigest::from_bytes([seed; 32]),
        grace: None,
        rate_limit: None,
        external_id: None,
        metadata: "{}".into(),
    }
}

fn add(state: &mut IndexState, record: &IndexRecord) -> Option<IndexedToken> {
    let token = state.build(record, None).unwrap();
    state.insert(token)
}

/// The hand-written answer is byte for byte what serde writes for the DTO, for
/// every shape of field: escapes, non-ASCII, absent and empty values, metadata
/// stored with another key order and spacing.
#[test]
fn rendered_answers_are_what_serde_writes() {
    let mut state = IndexState::default();
    let mut records = vec![record(1)];
    let mut tricky = record(2);
    tricky.name = "quote \" back\\slash \u{1} tab\t é 日本 🎉 </script>".into();
    tricky.kind = TokenKind::Personal;
    tricky.token_type = TokenType::Custom;
    tricky.permissions = vec!["b.read".into(), "a.write".into()];
    tricky.project = Some("shop".into());
    tricky.api_version = "2025-01-01".into();
    tricky.expires_at = Some(Utc.timestamp_millis_opt(1_767_225_600_123).unwrap());
    tricky.external_id = Some("cus_\"42\"".into());
    tricky.metadata =
        r#"{ "z": 1, "a": {"y": [1, 2.5, null, "x"], "b": true}, "m": "\u00e9" }"#.into();
    records.push(tricky);
    let mut empty = record(3);
    empty.external_id = Some(String::new());
    empty.token_type = TokenType::FullAccess;
    empty.expires_at = Some(Utc.timestamp_opt(1_800_000_000, 0).unwrap());
    records.push(empty);
    for record in &records {
        add(&mut state, record);
        let (token, _) = state.lookup(&record.digest).unwrap();
        let metadata: TokenMetadata = serde_json::from_str(&record.metadata).unwrap();
        let expected = serde_json::to_string(&VerifyResponse::valid(VerifiedToken {
            id: record.id.0,
            name: record.name.clone(),
            kind: record.kind,
            token_type: record.token_type,
            project: record.project.clone(),
            api_version: record.api_version.clone(),
            expires_at: record.expires_at,
            external_id: record.external_id.clone(),
            metadata,
            rate_limit: None,
            grace_ends_at: None,
        }))
        .unwrap();
        assert_eq!(&*token.answer(), expected);
        // Twice: the second comes from the cache.
        assert_eq!(&*token.answer(), expected);
        assert_eq!(
            serde_json::to_string(&VerifyResponse::valid(token.summary().unwrap())).unwrap(),
            expected
        );
        // A previous secret in its grace period: the same, with its end.
        let until = Utc.timestamp_opt(1_900_000_000, 0).unwrap();
        let in_grace = VerifiedToken {
            grace_ends_at: Some(until),
            ..token.summary().unwrap()
        };
        assert_eq!(
            &*token.answer_in_grace(until),
            serde_json::to_string(&VerifyResponse::valid(in_grace)).unwrap()
        );
    }
}

#[test]
fn entries_are_found_by_digest_grace_digest_and_id_and_replaced_whole() {
    let mut state = IndexState::default();
    for seed in 1..=50 {
        add(&mut state, &record(seed));
    }
    assert_eq!(state.len(), 50);
    let mut regenerated = record(7);
    regenerated.digest = TokenDigest::from_bytes([207; 32]);
    let until = Utc.timestamp_opt(1_900_000_000, 0).unwrap();
    regenerated.grace = Some(GraceDigest {
        digest: TokenDigest::from_bytes([7; 32]),
        until,
    });
    regenerated.name = "renamed".into();
    let previous = add(&mut state, &regenerated).unwrap();
    assert_eq!(previous.name(), "token 7");
    assert_eq!(state.len(), 50);
    let (token, grace) = state.lookup(&TokenDigest::from_bytes([207; 32])).unwrap();
    assert_eq!((token.name(), grace), ("renamed", None));
    let (token, grace) = state.lookup(&TokenDigest::from_bytes([7; 32])).unwrap();
    assert_eq!((token.name(), grace), ("renamed", Some(until)));
    // Without its grace, the old digest is gone.
    let mut settled = regenerated.clone();
    settled.grace = None;
    add(&mut state, &settled);
    assert!(state.lookup(&TokenDigest::from_bytes([7; 32])).is_none());
    assert!(state.lookup(&TokenDigest::from_bytes([207; 32])).is_some());
    // Removal frees the slot for the next entry.
    let removed = state.remove(record(9).id).unwrap();
    assert_eq!(removed.name(), "token 9");
    assert!(!state.contains(record(9).id));
    assert!(state.lookup(&TokenDigest::from_bytes([9; 32])).is_none());
    let slots = state.entries.len();
    add(&mut state, &record(60));
    assert_eq!(state.entries.len(), slots, "the freed slot is reused");
    assert_eq!(state.len(), 50);
    for seed in (1..=50).filter(|seed| *seed != 9 && *seed != 7) {
        let (token, _) = state.lookup(&TokenDigest::from_bytes([seed; 32])).unwrap();
        assert_eq!(token.id, record(seed).id);
        assert!(state.contains(token.id));
    }
    assert_eq!(state.entries().count(), 50);
}

#[test]
fn shared_values_are_held_once_and_dropped_when_unused() {
    let mut state = IndexState::default();
    let mut first = record(1);
    first.project = Some("shop".into());
    first.metadata = r#"{"plan":"pro"}"#.into();
    first.token_type = TokenType::Custom;
    first.permissions = vec!["a.read".into(), "b.read".into()];
    first.rate_limit = Some(RateLimit {
        requests: 1,
        per_seconds: 1,
    });
    let mut second = first.clone();
    second.id = record(2).id;
    second.digest = record(2).digest;
    second.metadata = r#"{ "plan" : "pro" }"#.into();
    second.permissions = vec!["b.read".into(), "a.read".into()];
    add(&mut state, &first);
    add(&mut state, &second);
    let one = state.lookup(&first.digest).unwrap().0.clone();
    let two = state.lookup(&second.digest).unwrap().0.clone();
    assert!(Arc::ptr_eq(
        &one.project.as_ref().unwrap().0,
        &two.project.as_ref().unwrap().0
    ));
    assert!(Arc::ptr_eq(&one.api_version.0, &two.api_version.0));
    assert!(Arc::ptr_eq(&one.metadata.0, &two.metadata.0));
    assert!(Arc::ptr_eq(
        &one.permissions.as_ref().unwrap().0,
        &two.permissions.as_ref().unwrap().0
    ));
    let catalog = Catalog::default();
    assert!(!one.grants(&catalog, "a.read"), "not in the catalog");
    assert!(one.permissions.as_ref().unwrap().contains("b.read"));
    assert!(!one.permissions.as_ref().unwrap().contains("c.read"));
    drop((one, two));
    state.remove(first.id);
    state.remove(second.id);
    state.interner.kept = 0;
    for seed in 10..80 {
        let mut other = record(seed);
        other.project = Some(format!("p{seed}"));
        add(&mut state, &other);
        state.remove(other.id);
    }
    state.interner.prune();
    assert!(!state.interner.strings.contains("shop"));
    assert!(state.interner.permissions.is_empty());
}

/// A million entries fit the memory goal (300 bytes a token, ARCHITECTURE.md "The verify
/// index") only while a token's facts stay this small: a field added here costs a
/// megabyte per million tokens per byte, and past 152 bytes each entry's allocation
/// moves up a malloc size class. Rare values belong in `RareFacts`.
#[test]
fn an_entry_keeps_its_facts_small() {
    assert!(
        std::mem::size_of::<TokenFacts>() <= 152,
        "TokenFacts is {} bytes",
        std::mem::size_of::<TokenFacts>()
    );
    let mut personal = record(9);
    personal.kind = TokenKind::Personal;
    personal.owner_id = Some(UserId(uuid::Uuid::from_u128(99)));
    personal.external_id = Some("cus_9".into());
    let mut state = IndexState::default();
    add(&mut state, &personal);
    let (token, _) = state.lookup(&personal.digest).unwrap();
    assert_eq!(token.owner_id(), personal.owner_id);
    assert_eq!(
        (token.name(), token.external_id()),
        ("token 9", Some("cus_9"))
    );
    assert_eq!(add(&mut state, &record(10)).map(|t| t.id), None);
    let (plain, _) = state.lookup(&record(10).digest).unwrap();
    assert_eq!((plain.owner_id(), plain.external_id()), (None, None));
}
