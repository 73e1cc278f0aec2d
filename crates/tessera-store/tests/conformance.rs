#![cfg(test)]
//! The store conformance suite: what every backend must do.
//!
//! Every check runs against SQLite always, and against PostgreSQL when
//! `TESSERA_TEST_POSTGRES_URL` names a database (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); without it the PostgreSQL variants pass
//! after printing one SKIPPED line. Each run gets a fresh database (SQLite: a temporary
//! directory; PostgreSQL: a new schema, dropped afterwards), so tests run in parallel.
//!
//! `conformance!` turns each `check_*` function into a module with two tests,
//! `<name>::sqlite` and `<name>::postgres`. A check takes one store, or the test
//! database itself when it needs several store instances (separate pools, as separate
//! nodes have).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::Rng as _;
use serde_json::json;
use sqlx::Connection as _;
use tessera_core::{
    Action, ActionKind, AuditEntry, ChangeKind, Lifespan, Project, Resource, TokenDigest, TokenId,
    TokenKind, TokenRecord, TokenStatus, TokenType, UserId, UserRecord,
};
use tessera_store::{
    AuditQuery, IndexRecord, Pruned, SortField, StatusFilter, Store, StoreError, TokenQuery,
    TokenSort, UsageDelta,
};
use tessera_test_support::PgSchema;

/// How long a test waits for something that should happen at once.
const PATIENCE: StdDuration = StdDuration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test.
struct TestDb {
    backend: Backend,
    url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<PgSchema>,
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            backend: Backend::Sqlite,
            url: tessera_store::sqlite_url_in(dir.path()),
            _dir: Some(dir),
            schema: None,
        }
    }

    /// A new schema in the database `TESSERA_TEST_POSTGRES_URL` names; `None` (after
    /// saying so, once) when it is not set.
    async fn postgres() -> Option<Self> {
        let schema = PgSchema::for_tests("PostgreSQL conformance tests", "tessera_test").await?;
        Some(Self {
            backend: Backend::Postgres,
            url: schema.url(),
            _dir: None,
            schema: Some(schema),
        })
    }

    /// Another store instance on this database, with its own connection pool.
    async fn open(&self) -> Arc<dyn Store> {
        tessera_store::open(&self.url).await.unwrap()
    }
}

/// `name => check_fn(store)` runs `check_fn` with a fresh store; `name => check_fn(db)`
/// hands it the [`TestDb`] so it can open several instances.
macro_rules! conformance {
    ($($name:ident => $check:ident($arg:ident);)*) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = TestDb::sqlite().await;
                conformance!(@run db, $check, $arg);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(db) = TestDb::postgres().await else { return };
                conformance!(@run db, $check, $arg);
            }
        }
    )*};
    (@run $db:ident, $check:ident, store) => {{
        let store = $db.open().await;
        super::$check(store).await;
    }};
    (@run $db:ident, $check:ident, db) => {{
        super::$check(&$db).await;
    }};
}

conformance! {
    token_round_trip => check_token_round_trip_and_every_write_feeds_the_change_log(store);
    api_token_names => check_api_token_names_are_unique_case_insensitively(store);
    batch_insert => check_a_batch_of_tokens_is_inserted_whole_or_not_at_all(store);
    listing => check_listing_filters_sorts_and_pages(store);
    name_search => check_name_search_follows_renames_and_deletes(store);
    name_order => check_names_sort_in_byte_order(store);
    usage => check_usage_adds_up_and_last_used_only_moves_forward(store);
    catalog => check_catalog_projects_and_referential_rules(store);
    users_and_sessions => check_users_and_sessions(store);
    index_loading => check_index_loading_pages_through_every_token_in_id_order(store);
    index_records => check_index_records_page_in_id_order_and_match_the_records(store);
    concurrent_writers => check_concurrent_writers_leave_no_gap_in_the_change_feed(db);
    change_signal => check_change_signal_fires_for_another_instance_write(db);
    listener_reconnects => check_change_signal_survives_a_lost_connection(db);
    concurrent_usage => check_usage_from_two_instances_adds_up(db);
    concurrent_edits => check_concurrent_edits_of_one_revision_let_one_win(db);
    admins => check_admins_keep_a_super_admin_and_end_sessions(store);
    concurrent_demotions => check_concurrent_demotions_keep_a_super_admin(db);
    first_user => check_first_user_only_once(store);
    roles => check_roles_and_their_holders(store);
    audit_log => check_audit_rows_filter_and_page(store);
    pruning => check_pruning_removes_a_prefix_of_old_changes_never_the_newest(store);
    concurrent_pruning => check_concurrent_pruners_and_writers_lose_nothing_recent(db);
    pepper_fingerprint => check_the_first_pepper_fingerprint_claimed_wins(db);
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
        external_id: None,
        metadata: tessera_core::TokenMetadata::new(),
        revision: 0,
    }
}

/// A token with a random digest, for tests that make many.
fn random_token(name: &str) -> TokenRecord {
    TokenRecord {
        digest: TokenDigest::from_bytes(rand::thread_rng().r#gen()),
        ..token(name, t0(), 0)
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
        external_id: None,
        sort: TokenSort::default(),
        limit: 50,
        after: None,
        now,
    }
}

async fn check_token_round_trip_and_every_write_feeds_the_change_log(store: Arc<dyn Store>) {
    assert_eq!(store.latest_change().await.unwrap(), 0);
    let mut record = token("ci", t0(), 1);
    record.rate_limit = Some(tessera_core::RateLimit {
        requests: 5,
        per_seconds: 60,
    });
    record.expires_at = Some(t0() + Duration::days(7));
    record.lifespan = Lifespan::Days7;
    record.external_id = Some("cus_42".into());
    record.metadata = serde_json::json!({"plan": "pro", "seats": [1, 2], "nested": {"ok": true}})
        .as_object()
        .cloned()
        .unwrap();
    store
        .insert_token(&record, &audit("token.create"))
        .await
        .unwrap();
    assert_eq!(
        store.get_token(record.id).await.unwrap(),
        Some(record.clone())
    );

    let mut edited = record.clone();
    edited.name = "ci-2".into();
    edited.status = TokenStatus::Disabled;
    edited.permissions = vec!["article.find".into()];
    edited.token_type = TokenType::Custom;
    edited.external_id = None;
    edited.metadata.insert("plan".into(), "team".into());
    store
        .update_token(&edited, &audit("token.update"))
        .await
        .unwrap();
    let stored = store.get_token(record.id).await.unwrap().unwrap();
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
    let refused = store.update_token(&late, &audit("token.update")).await;
    assert!(matches!(refused, Err(StoreError::Stale)), "{refused:?}");
    assert_eq!(
        store.get_token(record.id).await.unwrap().unwrap().status,
        TokenStatus::Disabled
    );

    store
        .delete_token(record.id, &audit("token.delete"))
        .await
        .unwrap();
    assert_eq!(store.get_token(record.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_token(record.id, &audit("x")).await,
        Err(StoreError::NotFound)
    ));

    let changes = store.changes_after(0, 100).await.unwrap();
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
        store
            .changes_after(changes[1].sequence, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn check_api_token_names_are_unique_case_insensitively(store: Arc<dyn Store>) {
    store
        .insert_token(&token("Deploy", t0(), 1), &audit("a"))
        .await
        .unwrap();
    let clash = store
        .insert_token(&token("deploy", t0(), 2), &audit("a"))
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "{clash:?}"
    );
    assert!(store.api_token_name_taken("deploy").await.unwrap());
    assert!(!store.api_token_name_taken("other").await.unwrap());
    // A failed write leaves no change behind.
    assert_eq!(store.changes_after(0, 10).await.unwrap().len(), 1);
}

async fn check_listing_filters_sorts_and_pages(store: Arc<dyn Store>) {
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
        if index == 5 || index == 6 {
            record.external_id = Some(format!("cus_{}", index / 6));
        }
        names.push(record.name.clone());
        store.insert_token(&record, &audit("a")).await.unwrap();
    }
    let all = store.list_tokens(&query(now)).await.unwrap();
    assert_eq!(all.total, 7);
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "default -created_at"
    );

    let mut q = query(now);
    q.status = Some(StatusFilter::Active);
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 5);
    q.status = Some(StatusFilter::Disabled);
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);
    q.status = Some(StatusFilter::Expired);
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);

    let mut q = query(now);
    q.external_id = Some("cus_1".into());
    let found = store.list_tokens(&q).await.unwrap();
    assert_eq!(found.total, 1, "external_id is an exact match");
    assert_eq!(found.items[0].name, "Token 6");
    q.external_id = Some("CUS_0".into());
    assert_eq!(
        store.list_tokens(&q).await.unwrap().total,
        0,
        "external ids are compared exactly, case included"
    );

    let mut q = query(now);
    q.name_contains = Some("0%_".into());
    let found = store.list_tokens(&q).await.unwrap();
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
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);

    let mut q = query(now);
    q.created_after = Some(t0() + Duration::days(30));
    q.created_before = Some(t0() + Duration::days(50));
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 2);

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
            let page = store.list_tokens(&q).await.unwrap();
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

async fn check_usage_adds_up_and_last_used_only_moves_forward(store: Arc<dyn Store>) {
    let record = token("ci", t0(), 1);
    store.insert_token(&record, &audit("a")).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let later = t0() + Duration::hours(1);
    let delta = |allowed, denied, at| UsageDelta {
        token_id: record.id,
        day,
        allowed,
        denied,
        last_used_at: at,
    };
    store
        .record_usage(&[delta(3, 1, Some(later))])
        .await
        .unwrap();
    store
        .record_usage(&[delta(2, 0, Some(t0()))])
        .await
        .unwrap();
    let rows = store.usage(record.id, day).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].allowed, rows[0].denied),
        (5, 1),
        "counts add, never overwrite"
    );
    let stored = store.get_token(record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(later),
        "an older flush does not move it back"
    );
    // Usage of a deleted token is dropped, not an error.
    store.delete_token(record.id, &audit("d")).await.unwrap();
    store
        .record_usage(&[delta(1, 0, Some(later))])
        .await
        .unwrap();
    // An edit never resets last_used_at.
    let other = token("other", t0(), 2);
    store.insert_token(&other, &audit("a")).await.unwrap();
    store
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
    store.update_token(&edited, &audit("u")).await.unwrap();
    assert_eq!(
        store
            .get_token(other.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(later)
    );
}

async fn check_catalog_projects_and_referential_rules(store: Arc<dyn Store>) {
    let resource = Resource {
        name: "article".into(),
        description: "Articles".into(),
        actions: vec![Action {
            name: "find".into(),
            kind: ActionKind::Read,
        }],
    };
    store
        .insert_resource(&resource, t0(), &audit("r"))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_resource(&resource, t0(), &audit("r")).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.list_resources().await.unwrap(),
        vec![resource.clone()]
    );
    let mut changed = resource.clone();
    changed.actions.push(Action {
        name: "create".into(),
        kind: ActionKind::Write,
    });
    store
        .update_resource(&changed, t0(), &audit("r"))
        .await
        .unwrap();
    assert_eq!(store.list_resources().await.unwrap(), vec![changed]);
    store.delete_resource("article", &audit("r")).await.unwrap();
    assert!(matches!(
        store.delete_resource("article", &audit("r")).await,
        Err(StoreError::NotFound)
    ));

    let project = Project {
        slug: "shop".into(),
        name: "Shop".into(),
        created_at: t0(),
    };
    store.insert_project(&project, &audit("p")).await.unwrap();
    assert_eq!(store.list_projects().await.unwrap(), vec![project]);
    let mut bound = token("bound", t0(), 9);
    bound.project = Some("shop".into());
    store.insert_token(&bound, &audit("a")).await.unwrap();
    let refused = store.delete_project("shop", &audit("p")).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    let mut orphan = token("orphan", t0(), 10);
    orphan.project = Some("nowhere".into());
    assert!(matches!(
        store.insert_token(&orphan, &audit("a")).await,
        Err(StoreError::Conflict { .. })
    ));
    store.delete_token(bound.id, &audit("d")).await.unwrap();
    store.delete_project("shop", &audit("p")).await.unwrap();
    let kinds: Vec<ChangeKind> = store
        .changes_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.kind)
        .collect();
    assert!(kinds.contains(&ChangeKind::Catalog) && kinds.contains(&ChangeKind::Project));
}

async fn check_users_and_sessions(store: Arc<dyn Store>) {
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
    store.insert_user(&user, &audit("u")).await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert_eq!(
        store.get_user_by_email("ada@example.com").await.unwrap(),
        Some(user.clone())
    );
    let mut twin = user.clone();
    twin.id = UserId::new_at(t0(), &mut rand::rngs::OsRng);
    twin.email = "ADA@example.com".into();
    assert!(matches!(
        store.insert_user(&twin, &audit("u")).await,
        Err(StoreError::Conflict { .. })
    ));

    let session = tessera_store::SessionRecord {
        digest: [7; 32],
        user_id: user.id,
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
    };
    store
        .insert_session(&session, &audit("login"))
        .await
        .unwrap();
    let found = store.get_session(&[7; 32], t0()).await.unwrap().unwrap();
    assert_eq!(found, (session.clone(), user));
    assert!(
        store
            .get_session(&[7; 32], t0() + Duration::hours(2))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(store.get_session(&[8; 32], t0()).await.unwrap().is_none());
    store
        .delete_session(&[7; 32], &audit("logout"))
        .await
        .unwrap();
    assert!(store.get_session(&[7; 32], t0()).await.unwrap().is_none());
}

async fn check_index_loading_pages_through_every_token_in_id_order(store: Arc<dyn Store>) {
    for index in 0..5u8 {
        store
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
    let first = store.tokens_after(None, 2).await.unwrap();
    let second = store.tokens_after(Some(first[1].id), 2).await.unwrap();
    let third = store.tokens_after(Some(second[1].id), 2).await.unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (2, 2, 1));
    let ids: Vec<TokenId> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|t| t.id)
        .collect();
    let fetched = store.get_tokens(&ids).await.unwrap();
    assert_eq!(fetched.len(), 5);
}

/// `index_records_after`: what the verify index loads, in keyset pages by id, each
/// record equal to the full record's fields (metadata as its JSON text).
async fn check_index_records_page_in_id_order_and_match_the_records(store: Arc<dyn Store>) {
    store
        .insert_project(
            &Project {
                slug: "shop".into(),
                name: "Shop".into(),
                created_at: t0(),
            },
            &audit("project"),
        )
        .await
        .unwrap();
    let mut inserted = Vec::new();
    for index in 0..7u8 {
        let mut record = token(
            &format!("i{index}"),
            t0() + Duration::seconds(i64::from(index)),
            index + 1,
        );
        if index % 2 == 0 {
            record.project = Some("shop".into());
            record.external_id = Some(format!("cus_{index}"));
            record.metadata = json!({"plan": "pro", "n": index, "nested": {"a": [1, 2]}})
                .as_object()
                .unwrap()
                .clone();
            record.rate_limit = Some(tessera_core::RateLimit {
                requests: 10,
                per_seconds: 60,
            });
            record.expires_at = Some(t0() + Duration::days(30));
        }
        if index == 3 {
            record.grace = Some(tessera_core::GraceDigest {
                digest: TokenDigest::from_bytes([200; 32]),
                until: t0() + Duration::hours(1),
            });
            record.status = TokenStatus::Disabled;
        }
        store.insert_token(&record, &audit("a")).await.unwrap();
        inserted.push(record.id);
    }
    inserted.sort();
    let mut loaded: Vec<IndexRecord> = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.index_records_after(after, 3).await.unwrap();
        pages += 1;
        let full = page.len() == 3;
        after = page.last().map(|record| record.id);
        loaded.extend(page);
        if !full {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        loaded.iter().map(|record| record.id).collect::<Vec<_>>(),
        inserted,
        "every token once, in id order"
    );
    let records = store.get_tokens(&inserted).await.unwrap();
    for record in &records {
        let indexed = loaded.iter().find(|r| r.id == record.id).unwrap();
        assert_eq!(indexed, &IndexRecord::from(record));
        let metadata: serde_json::Value = serde_json::from_str(&indexed.metadata).unwrap();
        assert_eq!(metadata, serde_json::Value::Object(record.metadata.clone()));
    }
    assert!(
        store
            .index_records_after(loaded.last().map(|r| r.id), 3)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn check_names_sort_in_byte_order(store: Arc<dyn Store>) {
    // In a natural-language collation these would interleave (spaces and punctuation
    // ignored, accents folded); both backends order case-folded names by bytes.
    let names = [
        "beta", "Alpha", "_under", "Zed", "émile", "a-b", "a b", "aB", "A0",
    ];
    for (seed, name) in names.iter().enumerate() {
        store
            .insert_token(&token(name, t0(), seed as u8 + 1), &audit("a"))
            .await
            .unwrap();
    }
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort_by_key(|n| tessera_core::validate::name_key(n));
    for descending in [false, true] {
        let mut q = query(t0());
        q.sort = TokenSort {
            field: SortField::Name,
            descending,
        };
        q.limit = 2;
        let mut seen = Vec::new();
        loop {
            let page = store.list_tokens(&q).await.unwrap();
            seen.extend(page.items.iter().map(|t| t.name.clone()));
            match page.next {
                Some(cursor) => q.after = Some(cursor),
                None => break,
            }
        }
        let mut wanted = expected.clone();
        if descending {
            wanted.reverse();
        }
        assert_eq!(seen, wanted, "descending={descending}");
    }
    let mut q = query(t0());
    q.name_contains = Some("a b".into());
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);
}

/// The name filter is a substring match whatever its length (one or two characters
/// have no trigram for the search index; three or more go through it), and the index
/// follows renames and deletions.
async fn check_name_search_follows_renames_and_deletes(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut names = Vec::new();
    for name in ["alpha beta", "alphabet", "say \"quoted\""] {
        let token = random_token(name);
        store.insert_token(&token, &audit("a")).await.unwrap();
        names.push(token);
    }
    let total = |text: &str| {
        let mut q = query(t0());
        q.name_contains = Some(text.into());
        async move { store.list_tokens(&q).await.unwrap().total }
    };
    assert_eq!(total("p").await, 2);
    assert_eq!(total("ph").await, 2);
    assert_eq!(total("pha").await, 2);
    assert_eq!(total("alpha b").await, 1);
    assert_eq!(total("\"quo").await, 1);
    assert_eq!(total("zzz").await, 0);

    let mut renamed = names[1].clone();
    renamed.name = "omega".into();
    store.update_token(&renamed, &audit("a")).await.unwrap();
    assert_eq!(total("pha").await, 1);
    assert_eq!(total("meg").await, 1);
    store.delete_token(names[0].id, &audit("a")).await.unwrap();
    assert_eq!(total("pha").await, 0);
    assert_eq!(total("ph").await, 0);
}

/// Several nodes insert at once while another follows the feed the way the verify index
/// does (`sequence > last`): it must see every change exactly once. On PostgreSQL this
/// fails without the ordering lock, since sequence numbers can commit out of order.
async fn check_concurrent_writers_leave_no_gap_in_the_change_feed(db: &TestDb) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 50;
    let nodes = [db.open().await, db.open().await];
    let follower = db.open().await;
    let done = Arc::new(AtomicBool::new(false));

    let following = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut last = 0;
            let mut seen = Vec::new();
            loop {
                // Read `done` before the feed: the last pass starts after every write.
                let finished = done.load(Ordering::Acquire);
                let changes = follower.changes_after(last, 1_000).await.unwrap();
                for change in &changes {
                    assert!(change.sequence > last, "the feed goes forward");
                    last = change.sequence;
                    seen.push(change.key.clone());
                }
                if changes.is_empty() {
                    if finished {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                }
            }
        })
    };

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&nodes[writer % nodes.len()]);
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for index in 0..PER_WRITER {
                let record = random_token(&format!("writer {writer} token {index}"));
                store.insert_token(&record, &audit("a")).await.unwrap();
                ids.push(record.id.to_string());
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    done.store(true, Ordering::Release);
    let seen = tokio::time::timeout(PATIENCE, following)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(written.len(), WRITERS * PER_WRITER);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for key in &seen {
        *counts.entry(key.as_str()).or_default() += 1;
    }
    let missed: Vec<_> = written
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .collect();
    assert!(
        missed.is_empty(),
        "the follower skipped {} of {} changes",
        missed.len(),
        written.len()
    );
    assert!(
        counts.values().all(|&count| count == 1),
        "every change is seen once"
    );
    assert_eq!(seen.len(), written.len());
}

/// A write through one instance wakes a follower of another at once (PostgreSQL:
/// LISTEN/NOTIFY); SQLite offers no signal and relies on polling.
async fn check_change_signal_fires_for_another_instance_write(db: &TestDb) {
    let follower = db.open().await;
    let writer = db.open().await;
    let Some(signal) = follower.change_signal() else {
        assert_eq!(db.backend, Backend::Sqlite, "PostgreSQL offers a signal");
        return;
    };
    assert!(
        writer.change_signal().is_some(),
        "every PostgreSQL store does"
    );
    // The listener fires once when it starts listening (changes made before it
    // listened were not announced to it); from then on it hears every write.
    tokio::time::timeout(PATIENCE, signal.notified())
        .await
        .expect("the listener starts");

    writer
        .insert_token(&random_token("announced"), &audit("a"))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, signal.notified())
        .await
        .expect("a write through another instance fires the signal");
    assert_eq!(follower.changes_after(0, 10).await.unwrap().len(), 1);

    // A write that adds no change (a session) announces nothing; a failed write neither.
    let clash = writer
        .insert_token(&random_token("announced"), &audit("a"))
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "{clash:?}"
    );
    writer
        .insert_token(&random_token("second"), &audit("a"))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, signal.notified())
        .await
        .expect("each write fires it");
}

/// When the listening connection dies (here: the server ends it), the listener
/// reconnects by itself, fires the signal once (announcements made in between are
/// lost, so the follower must look), and hears writes again.
async fn check_change_signal_survives_a_lost_connection(db: &TestDb) {
    let follower = db.open().await;
    let writer = db.open().await;
    let Some(signal) = follower.change_signal() else {
        assert_eq!(db.backend, Backend::Sqlite, "PostgreSQL offers a signal");
        return;
    };
    tokio::time::timeout(PATIENCE, signal.notified())
        .await
        .expect("the listener starts");

    let schema = db.schema.as_ref().unwrap().name();
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(format!("tessera listener {schema}"))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(ended, [true], "one listening connection, ended");
    admin.close().await.unwrap();

    tokio::time::timeout(PATIENCE, signal.notified())
        .await
        .expect("the listener reconnects and fires once");
    writer
        .insert_token(&random_token("after the outage"), &audit("a"))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, signal.notified())
        .await
        .expect("writes are heard again");
}

/// Usage flushed by two nodes at once, for the same tokens (in opposite orders, so
/// lock order matters), adds up exactly; `last_used_at` ends at the newest use.
async fn check_usage_from_two_instances_adds_up(db: &TestDb) {
    const FLUSHES: u64 = 25;
    let nodes = [db.open().await, db.open().await];
    let first = random_token("first");
    let second = random_token("second");
    nodes[0].insert_token(&first, &audit("a")).await.unwrap();
    nodes[0].insert_token(&second, &audit("a")).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let newest = t0() + Duration::hours(2);

    let mut flushes = Vec::new();
    for (node, store) in nodes.iter().enumerate() {
        let store = Arc::clone(store);
        let (first, second) = (first.id, second.id);
        flushes.push(tokio::spawn(async move {
            for flush in 0..FLUSHES {
                let at = t0() + Duration::minutes(flush as i64 + node as i64 * 60);
                let at = if node == 1 && flush == FLUSHES / 2 {
                    newest
                } else {
                    at
                };
                let delta = |token_id, allowed, denied| UsageDelta {
                    token_id,
                    day,
                    allowed,
                    denied,
                    last_used_at: Some(at),
                };
                let mut batch = vec![delta(first, 3, 1), delta(second, 1, 0)];
                if node == 1 {
                    batch.reverse();
                }
                store.record_usage(&batch).await.unwrap();
            }
        }));
    }
    for flush in flushes {
        flush.await.unwrap();
    }

    let rows = nodes[1].usage(first.id, day).await.unwrap();
    assert_eq!(
        (rows[0].allowed, rows[0].denied),
        (2 * FLUSHES * 3, 2 * FLUSHES)
    );
    let rows = nodes[0].usage(second.id, day).await.unwrap();
    assert_eq!((rows[0].allowed, rows[0].denied), (2 * FLUSHES, 0));
    for id in [first.id, second.id] {
        let stored = nodes[0].get_token(id).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, Some(newest));
    }
    // A batch naming the same token and day twice adds both.
    nodes[0]
        .record_usage(&[
            UsageDelta {
                token_id: first.id,
                day,
                allowed: 1,
                denied: 0,
                last_used_at: None,
            },
            UsageDelta {
                token_id: first.id,
                day,
                allowed: 1,
                denied: 1,
                last_used_at: None,
            },
        ])
        .await
        .unwrap();
    let rows = nodes[0].usage(first.id, day).await.unwrap();
    assert_eq!(
        (rows[0].allowed, rows[0].denied),
        (2 * FLUSHES * 3 + 2, 2 * FLUSHES + 1)
    );
}

/// Two nodes edit the same revision of a token at once: one wins, the other is told
/// its copy is stale, and the feed has exactly one change for the edit.
async fn check_concurrent_edits_of_one_revision_let_one_win(db: &TestDb) {
    let nodes = [db.open().await, db.open().await];
    let record = random_token("contested");
    nodes[0].insert_token(&record, &audit("a")).await.unwrap();
    for round in 0..5 {
        let current = nodes[0].get_token(record.id).await.unwrap().unwrap();
        let mut left = current.clone();
        left.description = format!("left {round}");
        let mut right = current.clone();
        right.description = format!("right {round}");
        let entry = audit("u");
        let (a, b) = tokio::join!(
            nodes[0].update_token(&left, &entry),
            nodes[1].update_token(&right, &entry)
        );
        let outcomes = [a.is_ok(), b.is_ok()];
        assert_eq!(
            outcomes.iter().filter(|ok| **ok).count(),
            1,
            "one edit wins: {a:?} {b:?}"
        );
        let loser = if a.is_ok() { b } else { a };
        assert!(matches!(loser, Err(StoreError::Stale)), "{loser:?}");
        let stored = nodes[1].get_token(record.id).await.unwrap().unwrap();
        assert_eq!(stored.revision, current.revision + 1);
    }
    assert_eq!(nodes[1].changes_after(0, 100).await.unwrap().len(), 6);
}

fn user(email: &str, role: &str) -> UserRecord {
    UserRecord {
        id: UserId::new_at(t0(), &mut rand::rngs::OsRng),
        email: email.into(),
        name: email.into(),
        role: role.into(),
        password_hash: "$argon2id$fake".into(),
        active: true,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn check_admins_keep_a_super_admin_and_end_sessions(store: Arc<dyn Store>) {
    let root = user("root@example.com", "super-admin");
    store.insert_user(&root, &audit("u")).await.unwrap();
    let mut demoted = root.clone();
    demoted.role = "viewer".into();
    assert!(matches!(
        store.update_user(&demoted, false, &audit("u")).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut inactive = root.clone();
    inactive.active = false;
    assert!(matches!(
        store.update_user(&inactive, true, &audit("u")).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.delete_user(root.id, &audit("u")).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.get_user(root.id).await.unwrap(),
        Some(root.clone()),
        "refused writes change nothing"
    );

    let ada = user("ada@example.com", "viewer");
    store.insert_user(&ada, &audit("u")).await.unwrap();
    let session = tessera_store::SessionRecord {
        digest: [3; 32],
        user_id: ada.id,
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
    };
    store
        .insert_session(&session, &audit("login"))
        .await
        .unwrap();
    let mut renamed = ada.clone();
    renamed.name = "Ada".into();
    store
        .update_user(&renamed, false, &audit("u"))
        .await
        .unwrap();
    assert!(
        store.get_session(&[3; 32], t0()).await.unwrap().is_some(),
        "a rename keeps sessions"
    );
    store
        .update_user(&renamed, true, &audit("u"))
        .await
        .unwrap();
    assert!(
        store.get_session(&[3; 32], t0()).await.unwrap().is_none(),
        "end_sessions ends them"
    );

    let mut owned = token("laptop", t0(), 77);
    owned.kind = TokenKind::Personal;
    owned.owner_id = Some(ada.id);
    store.insert_token(&owned, &audit("t")).await.unwrap();
    assert_eq!(store.tokens_of_owner(ada.id).await.unwrap().len(), 1);
    let seen = store.latest_change().await.unwrap();
    store.delete_user(ada.id, &audit("u")).await.unwrap();
    assert_eq!(
        store.get_token(owned.id).await.unwrap(),
        None,
        "personal tokens go with their owner"
    );
    let changes = store.changes_after(seen, 10).await.unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::Token && c.key == owned.id.to_string())
    );
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::User && c.key == ada.id.to_string())
    );
    assert_eq!(store.list_users().await.unwrap(), vec![root]);
}

async fn check_concurrent_demotions_keep_a_super_admin(db: &TestDb) {
    let nodes = [db.open().await, db.open().await];
    let first = user("first@example.com", "super-admin");
    let second = user("second@example.com", "super-admin");
    nodes[0].insert_user(&first, &audit("u")).await.unwrap();
    nodes[0].insert_user(&second, &audit("u")).await.unwrap();
    let demote = |u: &UserRecord| UserRecord {
        role: "viewer".into(),
        ..u.clone()
    };
    let (first_demoted, second_demoted, entry) = (demote(&first), demote(&second), audit("u"));
    let (a, b) = tokio::join!(
        nodes[0].update_user(&first_demoted, false, &entry),
        nodes[1].update_user(&second_demoted, false, &entry)
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let supers = nodes[0]
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.role == "super-admin")
        .count();
    assert_eq!(supers, 1);
}

async fn check_first_user_only_once(store: Arc<dyn Store>) {
    store
        .insert_first_user(&user("first@example.com", "super-admin"), &audit("u"))
        .await
        .unwrap();
    let again = store
        .insert_first_user(&user("second@example.com", "super-admin"), &audit("u"))
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn check_roles_and_their_holders(store: Arc<dyn Store>) {
    let builtin: Vec<String> = store
        .list_roles()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(builtin, ["super-admin", "token-manager", "viewer"]);
    let viewer = store.get_role("viewer").await.unwrap().unwrap();
    assert!(viewer.builtin);
    assert_eq!(
        viewer.permissions,
        [tessera_core::AdminPermission::TokensRead].into()
    );
    let auditor = tessera_core::Role {
        name: "auditor".into(),
        description: "Reads the log".into(),
        permissions: [tessera_core::AdminPermission::AuditRead].into(),
        builtin: false,
    };
    store
        .insert_role(&auditor, t0(), &audit("r"))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_role(&auditor, t0(), &audit("r")).await,
        Err(StoreError::Conflict { .. })
    ));
    let wider = tessera_core::Role {
        permissions: [
            tessera_core::AdminPermission::AuditRead,
            tessera_core::AdminPermission::TokensRead,
        ]
        .into(),
        ..auditor.clone()
    };
    store.update_role(&wider, t0(), &audit("r")).await.unwrap();
    assert_eq!(store.get_role("auditor").await.unwrap(), Some(wider));
    store
        .insert_user(&user("ada@example.com", "auditor"), &audit("u"))
        .await
        .unwrap();
    let Err(StoreError::Conflict { what }) = store.delete_role("auditor", &audit("r")).await else {
        panic!("a held role was deleted");
    };
    assert!(what.contains("ada@example.com"), "{what}");
    assert!(matches!(
        store.delete_role("nobody", &audit("r")).await,
        Err(StoreError::NotFound)
    ));
}

async fn check_audit_rows_filter_and_page(store: Arc<dyn Store>) {
    for index in 0..5 {
        let entry = AuditEntry {
            at: t0() + Duration::minutes(index),
            actor: if index % 2 == 0 {
                "user:a".into()
            } else {
                "cli:root".into()
            },
            action: format!("thing.{}", if index < 3 { "create" } else { "delete" }),
            target: format!("thing:{index}"),
            client_address: Some("192.0.2.1".into()),
            changes: json!({"name": {"from": null, "to": index}}),
        };
        store.record_audit(&entry).await.unwrap();
    }
    let all = store
        .list_audit(&tessera_store::AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(
        all[0].entry.changes,
        json!({"name": {"from": null, "to": 4}})
    );
    let by = |query: tessera_store::AuditQuery| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_audit(&tessera_store::AuditQuery {
                    limit: 100,
                    ..query
                })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(
        by(tessera_store::AuditQuery {
            actor: Some("user:a".into()),
            ..Default::default()
        })
        .await,
        3
    );
    assert_eq!(
        by(tessera_store::AuditQuery {
            action: Some("thing.delete".into()),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        by(tessera_store::AuditQuery {
            target: Some("thing:1".into()),
            ..Default::default()
        })
        .await,
        1
    );
    let window = tessera_store::AuditQuery {
        since: Some(t0() + Duration::minutes(1)),
        until: Some(t0() + Duration::minutes(3)),
        ..Default::default()
    };
    assert_eq!(by(window).await, 2, "since inclusive, until exclusive");
    let page = store
        .list_audit(&tessera_store::AuditQuery {
            limit: 2,
            before: Some(all[1].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![all[2].id, all[3].id]
    );
}

/// Writes a token whose change-feed row is dated `at`; returns the row's sequence.
async fn change_at(store: &dyn Store, name: &str, at: DateTime<Utc>) -> i64 {
    let entry = AuditEntry {
        at,
        ..audit("token.create")
    };
    store
        .insert_token(&random_token(name), &entry)
        .await
        .unwrap();
    store.latest_change().await.unwrap()
}

async fn check_a_batch_of_tokens_is_inserted_whole_or_not_at_all(store: Arc<dyn Store>) {
    let batch: Vec<(TokenRecord, AuditEntry)> = (0..3)
        .map(|n| {
            (
                token(&format!("import {n}"), t0(), n),
                audit("token.create"),
            )
        })
        .collect();
    store.insert_tokens(&batch).await.unwrap();
    for (token, _) in &batch {
        assert_eq!(
            store.get_token(token.id).await.unwrap().as_ref(),
            Some(token)
        );
    }
    // One change-feed row per token, in the batch's order, and one audit row each.
    let changes = store.changes_after(0, 10).await.unwrap();
    let keys: Vec<String> = changes.iter().map(|change| change.key.clone()).collect();
    let ids: Vec<String> = batch
        .iter()
        .map(|(token, _)| token.id.to_string())
        .collect();
    assert_eq!(keys, ids);
    let audited = store
        .list_audit(&AuditQuery {
            actor: None,
            action: Some("token.create".into()),
            target: None,
            since: None,
            until: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), 3);

    // A name already taken (here in another case) fails the whole batch: the new tokens
    // before and after it are not inserted, and nothing reaches the change feed.
    let clashing = vec![
        (token("fresh a", t0(), 10), audit("token.create")),
        (token("IMPORT 1", t0(), 11), audit("token.create")),
        (token("fresh b", t0(), 12), audit("token.create")),
    ];
    let refused = store.insert_tokens(&clashing).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    for (token, _) in &clashing {
        assert_eq!(store.get_token(token.id).await.unwrap(), None);
    }
    assert_eq!(store.changes_after(0, 10).await.unwrap().len(), 3);
    // Two of the same name within one batch clash with each other.
    let twins = vec![
        (token("twin", t0(), 20), audit("token.create")),
        (token("Twin", t0(), 21), audit("token.create")),
    ];
    assert!(matches!(
        store.insert_tokens(&twins).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(!store.api_token_name_taken("twin").await.unwrap());
    store.insert_tokens(&[]).await.unwrap();

    // A batch larger than one statement's worth of rows (the store splits it under the
    // databases' bound-parameter limits): every token, audit row and change lands, the
    // changes still in the batch's order.
    let large: Vec<(TokenRecord, AuditEntry)> = (0..2_500)
        .map(|n| (random_token(&format!("bulk {n}")), audit("token.create")))
        .collect();
    let before = store.latest_change().await.unwrap();
    store.insert_tokens(&large).await.unwrap();
    let changes = store.changes_after(before, 5_000).await.unwrap();
    let keys: Vec<String> = changes.iter().map(|change| change.key.clone()).collect();
    let ids: Vec<String> = large
        .iter()
        .map(|(token, _)| token.id.to_string())
        .collect();
    assert_eq!(keys, ids);
    let ids: Vec<TokenId> = large.iter().map(|(token, _)| token.id).collect();
    let mut stored = store.get_tokens(&ids).await.unwrap();
    stored.sort_by_key(|token| token.id);
    let mut expected: Vec<TokenRecord> = large.into_iter().map(|(token, _)| token).collect();
    expected.sort_by_key(|token| token.id);
    assert_eq!(stored, expected);
}

async fn sequences(store: &dyn Store) -> Vec<i64> {
    store
        .changes_after(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|change| change.sequence)
        .collect()
}

async fn check_pruning_removes_a_prefix_of_old_changes_never_the_newest(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let nothing = Pruned {
        deleted: 0,
        through: 0,
        busy: false,
    };
    assert_eq!(
        store.prune_changes(t0(), 100).await.unwrap(),
        nothing,
        "an empty feed"
    );
    assert_eq!(store.changes_pruned_through().await.unwrap(), 0);

    let mut old = Vec::new();
    for index in 0..5 {
        old.push(change_at(store, &format!("old {index}"), t0() - Duration::days(10)).await);
    }
    let mut recent = Vec::new();
    for index in 0..3 {
        recent.push(change_at(store, &format!("recent {index}"), t0()).await);
    }
    let cutoff = t0() - Duration::days(7);

    // Oldest first, about `limit` at a time.
    let pruned = store.prune_changes(cutoff, 2).await.unwrap();
    assert_eq!((pruned.deleted, pruned.through), (2, old[1]));
    assert_eq!(store.changes_pruned_through().await.unwrap(), old[1]);
    assert_eq!(sequences(store).await[0], old[2]);
    let pruned = store.prune_changes(cutoff, 100).await.unwrap();
    assert_eq!((pruned.deleted, pruned.through), (3, old[4]));
    assert_eq!(sequences(store).await, recent, "recent changes stay");
    let pruned = store.prune_changes(cutoff, 100).await.unwrap();
    assert_eq!(
        (pruned.deleted, pruned.through),
        (0, old[4]),
        "nothing more"
    );

    // Past every change: all but the newest go, so the feed's position survives.
    let pruned = store
        .prune_changes(t0() + Duration::days(1), 100)
        .await
        .unwrap();
    assert_eq!((pruned.deleted, pruned.through), (2, recent[1]));
    assert_eq!(sequences(store).await, [recent[2]]);
    assert_eq!(store.latest_change().await.unwrap(), recent[2]);
    assert_eq!(
        store
            .prune_changes(t0() + Duration::days(1), 100)
            .await
            .unwrap()
            .deleted,
        0,
        "the newest change is never pruned"
    );

    // The feed goes on after the pruned range; the recorded boundary never goes back.
    let next = change_at(store, "next", t0()).await;
    assert!(next > recent[2], "sequences are not reused");
    assert_eq!(
        store.changes_after(recent[2], 10).await.unwrap()[0].sequence,
        next
    );
    assert_eq!(store.changes_pruned_through().await.unwrap(), recent[1]);
}

/// Two nodes prune at once while others write: every old change goes exactly once
/// (PostgreSQL: one pruner at a time, the other told `busy`), the boundary ends at the
/// last old change, and no recent change is lost.
async fn check_concurrent_pruners_and_writers_lose_nothing_recent(db: &TestDb) {
    const OLD: usize = 120;
    const NEW: usize = 40;
    let writer = db.open().await;
    let mut last_old = 0;
    for index in 0..OLD {
        last_old = change_at(
            writer.as_ref(),
            &format!("old {index}"),
            t0() - Duration::days(30),
        )
        .await;
    }
    // A recent change first: the newest change is never pruned.
    let first_new = change_at(writer.as_ref(), "new", t0()).await;
    let cutoff = t0() - Duration::days(7);
    let mut pruners = Vec::new();
    for _ in 0..2 {
        let store = db.open().await;
        pruners.push(tokio::spawn(async move {
            let mut deleted = 0;
            loop {
                let pruned = store.prune_changes(cutoff, 10).await.unwrap();
                deleted += pruned.deleted;
                if pruned.busy {
                    tokio::task::yield_now().await;
                } else if pruned.deleted == 0 {
                    return deleted;
                }
            }
        }));
    }
    let adding = {
        let writer = Arc::clone(&writer);
        tokio::spawn(async move {
            let mut written = vec![first_new];
            for index in 1..NEW {
                written.push(change_at(writer.as_ref(), &format!("new {index}"), t0()).await);
            }
            written
        })
    };
    let mut deleted = 0;
    for pruner in pruners {
        deleted += tokio::time::timeout(PATIENCE, pruner)
            .await
            .unwrap()
            .unwrap();
    }
    let written = adding.await.unwrap();
    assert_eq!(deleted, OLD as u64, "every old change deleted once");
    assert_eq!(writer.changes_pruned_through().await.unwrap(), last_old);
    assert_eq!(
        sequences(writer.as_ref()).await,
        written,
        "recent changes all kept"
    );
}

async fn check_the_first_pepper_fingerprint_claimed_wins(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.pepper_fingerprint().await.unwrap(), None);
    let mut claims = Vec::new();
    for index in 0..4 {
        let store = db.open().await;
        claims.push(tokio::spawn(async move {
            store
                .claim_pepper_fingerprint(&format!("fingerprint {index}"))
                .await
                .unwrap()
        }));
    }
    let mut recorded = Vec::new();
    for claim in claims {
        recorded.push(claim.await.unwrap());
    }
    let winner = recorded[0].clone();
    assert!(winner.starts_with("fingerprint "), "{winner}");
    assert!(
        recorded.iter().all(|claim| *claim == winner),
        "every claimant sees the one recorded: {recorded:?}"
    );
    assert_eq!(
        store.pepper_fingerprint().await.unwrap(),
        Some(winner.clone())
    );
    assert_eq!(
        store.claim_pepper_fingerprint("another").await.unwrap(),
        winner,
        "a later claim never replaces it"
    );
}

fn migration_versions(backend: &str) -> Vec<u32> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut versions: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| {
            name.split('_')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{backend}/{name}: no version number"))
        })
        .collect();
    versions.sort_unstable();
    versions
}

#[test]
fn migrations_have_the_same_versions_for_every_backend_without_gaps() {
    let sqlite = migration_versions("sqlite");
    let postgres = migration_versions("postgres");
    assert_eq!(sqlite, (1..=sqlite.len() as u32).collect::<Vec<_>>());
    assert_eq!(
        sqlite, postgres,
        "every migration exists for both backends, under the same number"
    );
}
