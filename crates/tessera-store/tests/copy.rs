#![cfg(test)]
//! `copy_database`: every table arrives, in either direction, read back through the
//! `Store` trait; non-empty targets are refused unless forced; sequences continue
//! after the copied ids.
//!
//! SQLite ↔ SQLite always runs; the PostgreSQL legs run when `TESSERA_TEST_POSTGRES_URL`
//! names a database (each in a fresh schema, dropped afterwards), else one SKIPPED line.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::Rng as _;
use serde_json::json;
use tessera_core::{
    Action, ActionKind, AdminPermission, AuditEntry, Change, GraceDigest, Lifespan, Project,
    RateLimit, Resource, Role, TokenDigest, TokenId, TokenKind, TokenRecord, TokenStatus,
    TokenType, UserId, UserRecord,
};
use tessera_store::{
    AuditQuery, AuditRow, CopyOptions, CopyProgress, SessionRecord, Store, StoreError, TokenQuery,
    UsageDelta, UsageRow, copy_database,
};
use tessera_test_support::PgSchema;

mod common;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn audit(action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at: t0(),
        actor: "cli:test".into(),
        action: action.into(),
        target: target.into(),
        client_address: None,
        changes: json!({"name": {"from": null, "to": target}}),
    }
}

fn token(name: &str) -> TokenRecord {
    TokenRecord {
        description: format!("{name} description"),
        created_by: "cli:test".into(),
        ..common::api_token(
            name,
            t0(),
            TokenDigest::from_bytes(rand::thread_rng().r#gen()),
        )
    }
}

fn user(email: &str, role: &str, active: bool) -> UserRecord {
    UserRecord {
        id: UserId::new_at(t0(), &mut rand::rngs::OsRng),
        email: email.into(),
        name: email.split('@').next().unwrap_or_default().into(),
        role: role.into(),
        password_hash: "$argon2id$v=19$fake".into(),
        active,
        created_at: t0(),
        updated_at: t0() + Duration::seconds(1),
    }
}

/// A database for one test: a SQLite file in a temporary directory, or a fresh
/// PostgreSQL schema (dropped with everything in it when this is dropped).
struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<PgSchema>,
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: tessera_store::sqlite_url_in(dir.path()),
            _dir: Some(dir),
            _schema: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let schema =
            PgSchema::for_tests("PostgreSQL legs of the copy tests", "tessera_copy").await?;
        Some(Self {
            url: schema.url(),
            _dir: None,
            _schema: Some(schema),
        })
    }

    async fn open(&self) -> Arc<dyn Store> {
        tessera_store::open(&self.url).await.unwrap()
    }
}

/// What the fixture put in, to read back.
struct Fixture {
    session_digest: [u8; 32],
}

/// Fills `store` with a row in every table: an edited built-in role and a custom one,
/// an active and an inactive user, a session, a resource, a project, API tokens
/// (custom, project-bound, disabled, regenerated with a grace digest, rate-limited
/// and expiring), a personal token, usage over several days, a deleted token (a gap in
/// nothing but still feed rows), and a failed-login audit row with a client address.
async fn populate(store: &dyn Store, extra_tokens: usize) -> Fixture {
    let viewer = Role {
        name: "viewer".into(),
        description: "Reads tokens and the log (edited).".into(),
        permissions: [AdminPermission::TokensRead, AdminPermission::AuditRead].into(),
        builtin: true,
    };
    store
        .update_role(&viewer, t0(), &audit("role.update", "role:viewer"))
        .await
        .unwrap();
    let auditor = Role {
        name: "auditor".into(),
        description: "Reads the log".into(),
        permissions: [AdminPermission::AuditRead].into(),
        builtin: false,
    };
    store
        .insert_role(&auditor, t0(), &audit("role.create", "role:auditor"))
        .await
        .unwrap();

    let ada = user("ada@example.com", "super-admin", true);
    let bob = user("bob@example.com", "auditor", false);
    store
        .insert_first_user(&ada, &audit("user.create", "ada"))
        .await
        .unwrap();
    store
        .insert_user(&bob, &audit("user.create", "bob"))
        .await
        .unwrap();
    let session_digest = [9; 32];
    store
        .insert_session(
            &SessionRecord {
                digest: session_digest,
                user_id: ada.id,
                created_at: t0(),
                expires_at: t0() + Duration::days(3650),
            },
            &audit("login", "ada"),
        )
        .await
        .unwrap();

    let article = Resource {
        name: "article".into(),
        description: "Articles".into(),
        actions: vec![
            Action {
                name: "find".into(),
                kind: ActionKind::Read,
            },
            Action {
                name: "create".into(),
                kind: ActionKind::Write,
            },
        ],
    };
    store
        .insert_resource(&article, t0(), &audit("resource.create", "article"))
        .await
        .unwrap();
    let shop = Project {
        slug: "shop".into(),
        name: "The shop".into(),
        created_at: t0(),
    };
    store
        .insert_project(&shop, &audit("project.create", "shop"))
        .await
        .unwrap();

    let mut tokens = Vec::new();
    let mut custom = token("custom");
    custom.token_type = TokenType::Custom;
    custom.permissions = vec!["article.find".into(), "article.create".into()];
    tokens.push(custom);
    let mut bound = token("bound");
    bound.project = Some("shop".into());
    bound.external_id = Some("cus_7".into());
    bound
        .metadata
        .insert("plan".into(), serde_json::json!({"tier": 2}));
    tokens.push(bound);
    let mut disabled = token("disabled");
    disabled.status = TokenStatus::Disabled;
    tokens.push(disabled);
    let mut rotated = token("rotated");
    rotated.grace = Some(GraceDigest {
        digest: TokenDigest::from_bytes([42; 32]),
        until: t0() + Duration::hours(1),
    });
    rotated.rate_limit = Some(RateLimit {
        requests: 100,
        per_seconds: 60,
    });
    rotated.lifespan = Lifespan::Days30;
    rotated.expires_at = Some(t0() + Duration::days(30));
    tokens.push(rotated);
    let mut personal = token("mine");
    personal.kind = TokenKind::Personal;
    personal.owner_id = Some(ada.id);
    tokens.push(personal);
    for index in 0..extra_tokens {
        tokens.push(token(&format!("extra-{index}")));
    }
    for record in &tokens {
        store
            .insert_token(record, &audit("token.create", &record.id.to_string()))
            .await
            .unwrap();
    }
    let doomed = token("doomed");
    store
        .insert_token(&doomed, &audit("token.create", "doomed"))
        .await
        .unwrap();
    store
        .delete_token(doomed.id, &audit("token.delete", "doomed"))
        .await
        .unwrap();

    let mut usage = Vec::new();
    for (index, record) in tokens.iter().enumerate().take(4) {
        for day in 1..=3 {
            usage.push(UsageDelta {
                token_id: record.id,
                day: NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
                allowed: 10 * u64::from(day) + index as u64,
                denied: u64::from(day),
                last_used_at: Some(t0() + Duration::minutes(i64::from(day))),
            });
        }
    }
    store.record_usage(&usage).await.unwrap();

    store
        .record_audit(&AuditEntry {
            client_address: Some("203.0.113.7".into()),
            ..audit("login.failed", "user:nobody@example.com")
        })
        .await
        .unwrap();
    // The database's own facts: its pepper fingerprint, and a pruned change feed.
    store
        .claim_pepper_fingerprint("source pepper")
        .await
        .unwrap();
    let pruned = store
        .prune_changes(t0() + Duration::days(1), 2)
        .await
        .unwrap();
    assert_eq!(pruned.deleted, 2);
    Fixture { session_digest }
}

/// Everything a store holds, read through the trait.
#[derive(Debug, PartialEq)]
struct Contents {
    roles: Vec<Role>,
    users: Vec<UserRecord>,
    session: Option<(SessionRecord, UserRecord)>,
    resources: Vec<Resource>,
    projects: Vec<Project>,
    tokens: Vec<TokenRecord>,
    usage: Vec<(TokenId, Vec<UsageRow>)>,
    audit: Vec<AuditRow>,
    changes: Vec<Change>,
    latest_change: i64,
    pepper_fingerprint: Option<String>,
    changes_pruned_through: i64,
}

async fn contents(store: &dyn Store, fixture: &Fixture) -> Contents {
    let tokens = store.tokens_after(None, 100_000).await.unwrap();
    let mut usage = Vec::new();
    for record in &tokens {
        let rows = store
            .usage(record.id, NaiveDate::from_ymd_opt(2000, 1, 1).unwrap())
            .await
            .unwrap();
        usage.push((record.id, rows));
    }
    Contents {
        roles: store.list_roles().await.unwrap(),
        users: store.list_users().await.unwrap(),
        session: store
            .get_session(&fixture.session_digest, t0())
            .await
            .unwrap(),
        resources: store.list_resources().await.unwrap(),
        projects: store.list_projects().await.unwrap(),
        tokens,
        usage,
        audit: store
            .list_audit(&AuditQuery {
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap(),
        changes: store.changes_after(0, 100_000).await.unwrap(),
        latest_change: store.latest_change().await.unwrap(),
        pepper_fingerprint: store.pepper_fingerprint().await.unwrap(),
        changes_pruned_through: store.changes_pruned_through().await.unwrap(),
    }
}

fn quiet() -> impl FnMut(CopyProgress) {
    |_| {}
}

/// Copies `source` (already populated) into `target`, checks that everything arrived
/// and that the target keeps working (new audit rows and changes get new numbers).
async fn copy_and_compare(source: &TestDb, target: &TestDb, fixture: &Fixture) -> Contents {
    let expected = contents(&*source.open().await, fixture).await;
    assert!(expected.session.is_some() && expected.tokens.len() >= 5);
    // A `migrate` of the target (a new node with a pepper of its own) recorded its
    // fingerprint: that does not make the target hold data, and the source's replaces it.
    target
        .open()
        .await
        .claim_pepper_fingerprint("target pepper")
        .await
        .unwrap();
    let mut events = Vec::new();
    let report = copy_database(
        &source.url,
        &target.url,
        CopyOptions {
            force: false,
            batch_size: 2,
        },
        &mut |event| events.push(event),
    )
    .await
    .unwrap();
    assert!(report.mismatches().is_empty(), "{report:?}");
    let names: Vec<&str> = report.tables.iter().map(|t| t.table).collect();
    assert_eq!(
        names,
        [
            "roles",
            "users",
            "sessions",
            "projects",
            "resources",
            "tokens",
            "usage_daily",
            "audit",
            "changes",
            "meta"
        ]
    );
    let finished: Vec<(&str, u64)> = events
        .iter()
        .filter_map(|event| match event {
            CopyProgress::TableFinished { table, rows } => Some((*table, *rows)),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        report
            .tables
            .iter()
            .map(|t| (t.table, t.copied))
            .collect::<Vec<_>>()
    );
    assert!(events.contains(&CopyProgress::Checking));

    let copy = target.open().await;
    let found = contents(&*copy, fixture).await;
    assert_eq!(found, expected, "the copy differs from its source");

    // The name search (on SQLite an index the copy rebuilds) finds every copied API
    // token by its whole name.
    for record in found.tokens.iter().filter(|t| t.kind == TokenKind::Api) {
        let page = copy
            .list_tokens(&TokenQuery {
                name_contains: Some(record.name.to_lowercase()),
                ..common::api_tokens(t0())
            })
            .await
            .unwrap();
        assert!(
            page.items.iter().any(|t| t.id == record.id),
            "{:?} is not found by its name after the copy",
            record.name
        );
    }

    // New rows continue after the copied ids and sequences.
    let newest_audit = found.audit.first().map_or(0, |row| row.id);
    copy.record_audit(&audit("after.copy", "x")).await.unwrap();
    let after = copy
        .list_audit(&AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(after[0].id > newest_audit, "audit id reused after the copy");
    let extra = token("after-copy");
    copy.insert_token(&extra, &audit("token.create", "after-copy"))
        .await
        .unwrap();
    assert!(copy.latest_change().await.unwrap() > found.latest_change);
    copy.delete_token(extra.id, &audit("token.delete", "after-copy"))
        .await
        .unwrap();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_to_sqlite_copies_every_table() {
    let source = TestDb::sqlite();
    let fixture = populate(&*source.open().await, 7).await;
    let target = TestDb::sqlite();
    copy_and_compare(&source, &target, &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_to_postgres_and_back() {
    let Some(postgres) = TestDb::postgres().await else {
        return;
    };
    let source = TestDb::sqlite();
    let fixture = populate(&*source.open().await, 7).await;
    let in_postgres = copy_and_compare(&source, &postgres, &fixture).await;
    assert!(!in_postgres.tokens.is_empty());

    // And back again, into a fresh SQLite database.
    let back = TestDb::sqlite();
    copy_and_compare(&postgres, &back, &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_to_postgres_in_another_schema() {
    let (Some(source), Some(target)) = (TestDb::postgres().await, TestDb::postgres().await) else {
        return;
    };
    let fixture = populate(&*source.open().await, 3).await;
    copy_and_compare(&source, &target, &fixture).await;
}

/// A non-empty target is refused and left alone; `force` replaces its contents.
async fn check_refusal_and_force(source: &TestDb, target: &TestDb) {
    let fixture = populate(&*source.open().await, 2).await;
    // The target holds one custom role (and its audit row).
    let store = target.open().await;
    store
        .insert_role(
            &Role {
                name: "stray".into(),
                description: String::new(),
                permissions: [].into(),
                builtin: false,
            },
            t0(),
            &audit("role.create", "stray"),
        )
        .await
        .unwrap();
    let before = contents(&*store, &fixture).await;
    let refused = copy_database(
        &source.url,
        &target.url,
        CopyOptions::default(),
        &mut quiet(),
    )
    .await;
    let Err(StoreError::Conflict { what }) = refused else {
        panic!("a non-empty target was accepted: {refused:?}");
    };
    assert!(
        what.contains("roles: 1") && what.contains("--force"),
        "{what}"
    );
    assert_eq!(
        contents(&*store, &fixture).await,
        before,
        "a refused copy changed the target"
    );

    let mut cleared = None;
    let report = copy_database(
        &source.url,
        &target.url,
        CopyOptions {
            force: true,
            ..CopyOptions::default()
        },
        &mut |event| {
            if let CopyProgress::TargetCleared { rows } = event {
                cleared = Some(rows);
            }
        },
    )
    .await
    .unwrap();
    assert!(report.mismatches().is_empty(), "{report:?}");
    assert!(cleared.is_some_and(|rows| rows > 0));
    let expected = contents(&*source.open().await, &fixture).await;
    assert_eq!(contents(&*target.open().await, &fixture).await, expected);
    assert!(expected.roles.iter().all(|role| role.name != "stray"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_refuses_a_non_empty_target_unless_forced() {
    check_refusal_and_force(&TestDb::sqlite(), &TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_refuses_a_non_empty_target_unless_forced() {
    let Some(target) = TestDb::postgres().await else {
        return;
    };
    check_refusal_and_force(&TestDb::sqlite(), &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuses_the_same_database_and_a_missing_source() {
    let source = TestDb::sqlite();
    let fixture = populate(&*source.open().await, 0).await;
    let before = contents(&*source.open().await, &fixture).await;
    // The same file, spelled differently: even --force must not touch it.
    let dir = source._dir.as_ref().unwrap().path();
    let alias = format!("sqlite://{}/./tessera.db", dir.display());
    let same = copy_database(
        &source.url,
        &alias,
        CopyOptions {
            force: true,
            ..CopyOptions::default()
        },
        &mut quiet(),
    )
    .await;
    assert!(matches!(same, Err(StoreError::Conflict { .. })), "{same:?}");
    assert_eq!(contents(&*source.open().await, &fixture).await, before);

    let missing = format!("sqlite://{}/nothing-here.db", dir.display());
    let target = TestDb::sqlite();
    let result = copy_database(&missing, &target.url, CopyOptions::default(), &mut quiet()).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    assert!(
        !dir.join("nothing-here.db").exists(),
        "a missing source was created"
    );

    if let Some(postgres) = TestDb::postgres().await {
        let populated = postgres.open().await;
        populate(&*populated, 0).await;
        // The same schema reached through another spelling of the URL.
        let alias = format!("{}&application_name=alias", postgres.url);
        {
            let same = copy_database(
                &postgres.url,
                &alias,
                CopyOptions {
                    force: true,
                    ..CopyOptions::default()
                },
                &mut quiet(),
            )
            .await;
            assert!(matches!(same, Err(StoreError::Conflict { .. })), "{same:?}");
            assert!(!populated.tokens_after(None, 10).await.unwrap().is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_source_copies_nothing_but_the_roles() {
    let source = TestDb::sqlite();
    source.open().await;
    let target = TestDb::sqlite();
    let report = copy_database(
        &source.url,
        &target.url,
        CopyOptions::default(),
        &mut quiet(),
    )
    .await
    .unwrap();
    assert!(report.mismatches().is_empty());
    assert_eq!(report.total_rows(), 3, "the three built-in roles");
    let copy = target.open().await;
    assert_eq!(copy.list_roles().await.unwrap().len(), 3);
    // Empty tables and only built-in roles: a second copy is allowed without --force.
    copy_database(
        &source.url,
        &target.url,
        CopyOptions::default(),
        &mut quiet(),
    )
    .await
    .unwrap();
}
