#![cfg(test)]
//! The store conformance suite: what every backend must do. It runs against SQLite
//! always; each test opens a fresh database, so tests run in parallel.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;
use tessera_core::{
    Action, ActionKind, AuditEntry, ChangeKind, Lifespan, Project, Resource, TokenDigest, TokenId,
    TokenKind, TokenRecord, TokenStatus, TokenType, UserId, UserRecord,
};
use tessera_store::{
    SortField, StatusFilter, Store, StoreError, TokenQuery, TokenSort, UsageDelta,
};

struct Fixture {
    store: std::sync::Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
        .await
        .unwrap();
    Fixture { store, _dir: dir }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn audit(action: &str) -> AuditEntry {
    AuditEntry {
        at: t0(),
        actor: "test".into(),
        action: action.into(),
        target: "t".into(),
        client_address: None,
        changes: json!({}),
    }
}

fn token(name: &str, created_at: DateTime<Utc>, seed: u8) -> TokenRecord {
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
        digest: TokenDigest::from_bytes([seed; 32]),
        grace: None,
        created_at,
        created_by: "test".into(),
        updated_at: created_at,
        last_used_at: None,
        rate_limit: None,
        revision: 0,
    }
}

fn query(now: DateTime<Utc>) -> TokenQuery {
    TokenQuery {
        kind: TokenKind::Api,
        owner: None,
        name_contains: None,
        created_after: None,
        created_before: None,
        status: None,
        token_type: None,
        project: None,
        sort: TokenSort::default(),
        limit: 50,
        after: None,
        now,
    }
}

#[tokio::test]
async fn token_round_trip_and_every_write_feeds_the_change_log() {
    let f = sqlite().await;
    assert_eq!(f.store.latest_change().await.unwrap(), 0);
    let mut record = token("ci", t0(), 1);
    record.rate_limit = Some(tessera_core::RateLimit {
        requests: 5,
        per_seconds: 60,
    });
    record.expires_at = Some(t0() + Duration::days(7));
    record.lifespan = Lifespan::Days7;
    f.store
        .insert_token(&record, &audit("token.create"))
        .await
        .unwrap();
    assert_eq!(
        f.store.get_token(record.id).await.unwrap(),
        Some(record.clone())
    );

    let mut edited = record.clone();
    edited.name = "ci-2".into();
    edited.status = TokenStatus::Disabled;
    edited.permissions = vec!["article.find".into()];
    edited.token_type = TokenType::Custom;
    f.store
        .update_token(&edited, &audit("token.update"))
        .await
        .unwrap();
    let stored = f.store.get_token(record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.revision,
        edited.revision + 1,
        "an edit moves the revision on"
    );
    assert_eq!(
        stored,
        TokenRecord {
            revision: stored.revision,
            ..edited.clone()
        }
    );
    // An edit made from the old revision is refused: it would undo the one above.
    let mut late = record.clone();
    late.status = TokenStatus::Active;
    let refused = f.store.update_token(&late, &audit("token.update")).await;
    assert!(matches!(refused, Err(StoreError::Stale)), "{refused:?}");
    assert_eq!(
        f.store.get_token(record.id).await.unwrap().unwrap().status,
        TokenStatus::Disabled
    );

    f.store
        .delete_token(record.id, &audit("token.delete"))
        .await
        .unwrap();
    assert_eq!(f.store.get_token(record.id).await.unwrap(), None);
    assert!(matches!(
        f.store.delete_token(record.id, &audit("x")).await,
        Err(StoreError::NotFound)
    ));

    let changes = f.store.changes_after(0, 100).await.unwrap();
    assert_eq!(
        changes.len(),
        3,
        "insert, update, delete each add one change"
    );
    assert!(changes.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert!(
        changes
            .iter()
            .all(|c| c.kind == ChangeKind::Token && c.key == record.id.to_string())
    );
    assert_eq!(
        f.store
            .changes_after(changes[1].sequence, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn api_token_names_are_unique_case_insensitively() {
    let f = sqlite().await;
    f.store
        .insert_token(&token("Deploy", t0(), 1), &audit("a"))
        .await
        .unwrap();
    let clash = f
        .store
        .insert_token(&token("deploy", t0(), 2), &audit("a"))
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "{clash:?}"
    );
    assert!(f.store.api_token_name_taken("deploy").await.unwrap());
    assert!(!f.store.api_token_name_taken("other").await.unwrap());
    // A failed write leaves no change behind.
    assert_eq!(f.store.changes_after(0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn listing_filters_sorts_and_pages() {
    let f = sqlite().await;
    let now = t0() + Duration::days(60);
    let mut names = Vec::new();
    for index in 0..7u8 {
        let mut record = token(
            &format!("Token {index}"),
            t0() + Duration::days(i64::from(index) * 10),
            index + 1,
        );
        if index == 2 {
            record.status = TokenStatus::Disabled;
        }
        if index == 3 {
            record.expires_at = Some(now - Duration::days(1));
        }
        if index == 4 {
            record.token_type = TokenType::FullAccess;
            record.name = "100%_match".into();
        }
        names.push(record.name.clone());
        f.store.insert_token(&record, &audit("a")).await.unwrap();
    }
    let all = f.store.list_tokens(&query(now)).await.unwrap();
    assert_eq!(all.total, 7);
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "default -created_at"
    );

    let mut q = query(now);
    q.status = Some(StatusFilter::Active);
    assert_eq!(f.store.list_tokens(&q).await.unwrap().total, 5);
    q.status = Some(StatusFilter::Disabled);
    assert_eq!(f.store.list_tokens(&q).await.unwrap().total, 1);
    q.status = Some(StatusFilter::Expired);
    assert_eq!(f.store.list_tokens(&q).await.unwrap().total, 1);

    let mut q = query(now);
    q.name_contains = Some("0%_".into());
    let found = f.store.list_tokens(&q).await.unwrap();
    assert_eq!(
        found
            .items
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["100%_match"],
        "LIKE wildcards are literal"
    );

    let mut q = query(now);
    q.token_type = Some(TokenType::FullAccess);
    assert_eq!(f.store.list_tokens(&q).await.unwrap().total, 1);

    let mut q = query(now);
    q.created_after = Some(t0() + Duration::days(30));
    q.created_before = Some(t0() + Duration::days(50));
    assert_eq!(f.store.list_tokens(&q).await.unwrap().total, 2);

    for (field, descending) in [
        (SortField::Name, false),
        (SortField::Name, true),
        (SortField::CreatedAt, false),
        (SortField::LastUsedAt, true),
    ] {
        let mut q = query(now);
        q.sort = TokenSort { field, descending };
        q.limit = 3;
        let mut seen = Vec::new();
        loop {
            let page = f.store.list_tokens(&q).await.unwrap();
            assert_eq!(page.total, 7);
            seen.extend(page.items.iter().map(|t| t.name.clone()));
            match page.next {
                Some(cursor) => q.after = Some(cursor),
                None => break,
            }
        }
        let mut expected = names.clone();
        expected.sort();
        let mut sorted_seen = seen.clone();
        sorted_seen.sort();
        assert_eq!(sorted_seen, expected, "{field:?}: every token exactly once");
        if field == SortField::Name {
            let mut by_key = seen.clone();
            by_key.sort_by_key(|n| n.to_lowercase());
            if descending {
                by_key.reverse();
            }
            assert_eq!(seen, by_key, "name order, descending={descending}");
        }
    }
}

#[tokio::test]
async fn usage_adds_up_and_last_used_only_moves_forward() {
    let f = sqlite().await;
    let record = token("ci", t0(), 1);
    f.store.insert_token(&record, &audit("a")).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let later = t0() + Duration::hours(1);
    let delta = |allowed, denied, at| UsageDelta {
        token_id: record.id,
        day,
        allowed,
        denied,
        last_used_at: at,
    };
    f.store
        .record_usage(&[delta(3, 1, Some(later))])
        .await
        .unwrap();
    f.store
        .record_usage(&[delta(2, 0, Some(t0()))])
        .await
        .unwrap();
    let rows = f.store.usage(record.id, day).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].allowed, rows[0].denied),
        (5, 1),
        "counts add, never overwrite"
    );
    let stored = f.store.get_token(record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(later),
        "an older flush does not move it back"
    );
    // Usage of a deleted token is dropped, not an error.
    f.store.delete_token(record.id, &audit("d")).await.unwrap();
    f.store
        .record_usage(&[delta(1, 0, Some(later))])
        .await
        .unwrap();
    // An edit never resets last_used_at.
    let other = token("other", t0(), 2);
    f.store.insert_token(&other, &audit("a")).await.unwrap();
    f.store
        .record_usage(&[UsageDelta {
            token_id: other.id,
            day,
            allowed: 1,
            denied: 0,
            last_used_at: Some(later),
        }])
        .await
        .unwrap();
    let mut edited = other.clone();
    edited.description = "x".into();
    f.store.update_token(&edited, &audit("u")).await.unwrap();
    assert_eq!(
        f.store
            .get_token(other.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(later)
    );
}

#[tokio::test]
async fn catalog_projects_and_referential_rules() {
    let f = sqlite().await;
    let resource = Resource {
        name: "article".into(),
        description: "Articles".into(),
        actions: vec![Action {
            name: "find".into(),
            kind: ActionKind::Read,
        }],
    };
    f.store
        .insert_resource(&resource, t0(), &audit("r"))
        .await
        .unwrap();
    assert!(matches!(
        f.store.insert_resource(&resource, t0(), &audit("r")).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        f.store.list_resources().await.unwrap(),
        vec![resource.clone()]
    );
    let mut changed = resource.clone();
    changed.actions.push(Action {
        name: "create".into(),
        kind: ActionKind::Write,
    });
    f.store
        .update_resource(&changed, t0(), &audit("r"))
        .await
        .unwrap();
    assert_eq!(f.store.list_resources().await.unwrap(), vec![changed]);
    f.store
        .delete_resource("article", &audit("r"))
        .await
        .unwrap();
    assert!(matches!(
        f.store.delete_resource("article", &audit("r")).await,
        Err(StoreError::NotFound)
    ));

    let project = Project {
        slug: "shop".into(),
        name: "Shop".into(),
        created_at: t0(),
    };
    f.store.insert_project(&project, &audit("p")).await.unwrap();
    assert_eq!(f.store.list_projects().await.unwrap(), vec![project]);
    let mut bound = token("bound", t0(), 9);
    bound.project = Some("shop".into());
    f.store.insert_token(&bound, &audit("a")).await.unwrap();
    let refused = f.store.delete_project("shop", &audit("p")).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    let mut orphan = token("orphan", t0(), 10);
    orphan.project = Some("nowhere".into());
    assert!(matches!(
        f.store.insert_token(&orphan, &audit("a")).await,
        Err(StoreError::Conflict { .. })
    ));
    f.store.delete_token(bound.id, &audit("d")).await.unwrap();
    f.store.delete_project("shop", &audit("p")).await.unwrap();
    let kinds: Vec<ChangeKind> = f
        .store
        .changes_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.kind)
        .collect();
    assert!(kinds.contains(&ChangeKind::Catalog) && kinds.contains(&ChangeKind::Project));
}

#[tokio::test]
async fn users_and_sessions() {
    let f = sqlite().await;
    let user = UserRecord {
        id: UserId::new_at(t0(), &mut rand::rngs::OsRng),
        email: "Ada@Example.com".into(),
        name: "Ada".into(),
        role: "viewer".into(),
        password_hash: "$argon2id$fake".into(),
        active: true,
        created_at: t0(),
        updated_at: t0(),
    };
    f.store.insert_user(&user, &audit("u")).await.unwrap();
    assert_eq!(f.store.count_users().await.unwrap(), 1);
    assert_eq!(
        f.store.get_user_by_email("ada@example.com").await.unwrap(),
        Some(user.clone())
    );
    let mut twin = user.clone();
    twin.id = UserId::new_at(t0(), &mut rand::rngs::OsRng);
    twin.email = "ADA@example.com".into();
    assert!(matches!(
        f.store.insert_user(&twin, &audit("u")).await,
        Err(StoreError::Conflict { .. })
    ));

    let session = tessera_store::SessionRecord {
        digest: [7; 32],
        user_id: user.id,
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
    };
    f.store
        .insert_session(&session, &audit("login"))
        .await
        .unwrap();
    let found = f.store.get_session(&[7; 32], t0()).await.unwrap().unwrap();
    assert_eq!(found, (session.clone(), user));
    assert!(
        f.store
            .get_session(&[7; 32], t0() + Duration::hours(2))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(f.store.get_session(&[8; 32], t0()).await.unwrap().is_none());
    f.store
        .delete_session(&[7; 32], &audit("logout"))
        .await
        .unwrap();
    assert!(f.store.get_session(&[7; 32], t0()).await.unwrap().is_none());
}

#[tokio::test]
async fn index_loading_pages_through_every_token_in_id_order() {
    let f = sqlite().await;
    for index in 0..5u8 {
        f.store
            .insert_token(
                &token(
                    &format!("t{index}"),
                    t0() + Duration::seconds(i64::from(index)),
                    index,
                ),
                &audit("a"),
            )
            .await
            .unwrap();
    }
    let first = f.store.tokens_after(None, 2).await.unwrap();
    let second = f.store.tokens_after(Some(first[1].id), 2).await.unwrap();
    let third = f.store.tokens_after(Some(second[1].id), 2).await.unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (2, 2, 1));
    let ids: Vec<TokenId> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|t| t.id)
        .collect();
    let fetched = f.store.get_tokens(&ids).await.unwrap();
    assert_eq!(fetched.len(), 5);
}

#[test]
fn migrations_are_numbered_without_gaps() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut versions: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.split('_').next().and_then(|v| v.parse().ok()))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=versions.len() as u32).collect::<Vec<_>>());
}
