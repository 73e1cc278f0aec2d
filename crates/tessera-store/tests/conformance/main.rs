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
//! nodes have). The checks live by area in `checks/`; the fixtures
//! they share are here.

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

mod checks;
#[path = "../common/mod.rs"]
mod common;

use checks::audit::*;
use checks::catalog::*;
use checks::feed::*;
use checks::tokens::*;
use checks::usage::*;
use checks::users::*;

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
    count_limit => check_the_count_stops_at_its_limit(store);
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
    common::api_token(name, created_at, TokenDigest::from_bytes([seed; 32]))
}

/// A token with a random digest, for tests that make many.
fn random_token(name: &str) -> TokenRecord {
    TokenRecord {
        digest: TokenDigest::from_bytes(rand::thread_rng().r#gen()),
        ..token(name, t0(), 0)
    }
}

fn query(now: DateTime<Utc>) -> TokenQuery {
    common::api_tokens(now)
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
