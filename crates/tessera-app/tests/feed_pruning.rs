#![cfg(test)]
//! The change feed is pruned, and a node that fell behind the retained range reloads
//! its verify index instead of missing what was pruned: against SQLite always, and
//! PostgreSQL when `TESSERA_TEST_POSTGRES_URL` names a database (a fresh schema per
//! test; without it the PostgreSQL variant says SKIPPED and passes).

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tessera_api_types::{CreateTokenRequest, CreatedToken, VerifyCode};
use tessera_app::{ManualClock, Principal, Settings, Tessera, Verdict, VerifyQuery};
use tessera_core::{Lifespan, Pepper, TokenStatus, TokenType};
use tessera_test_support::PgSchema;

/// A fresh database: a temporary SQLite file, or a new PostgreSQL schema dropped at
/// the end.
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
            PgSchema::for_tests("PostgreSQL change-feed pruning test", "tessera_test").await?;
        Some(Self {
            url: schema.url(),
            _dir: None,
            _schema: Some(schema),
        })
    }
}

fn operator() -> Principal {
    Principal::operator("test")
}

async fn node(db: &TestDb, clock: &Arc<ManualClock>) -> Arc<Tessera> {
    let app = Arc::new(
        Tessera::new(
            tessera_store::open(&db.url).await.unwrap(),
            Pepper::from_bytes([42; 32]),
            Settings::default(),
            clock.clone(),
        )
        .expect("app"),
    );
    app.load().await.unwrap();
    app
}

async fn create(app: &Tessera, name: &str) -> CreatedToken {
    app.tokens()
        .create(
            &operator(),
            CreateTokenRequest {
                name: name.into(),
                token_type: Some(TokenType::ReadOnly),
                lifespan: Some(Lifespan::Unlimited),
                ..CreateTokenRequest::default()
            },
        )
        .await
        .unwrap()
}

fn check(app: &Tessera, token: &str) -> Result<(), VerifyCode> {
    let query = VerifyQuery {
        token,
        permission: None,
        project: None,
    };
    match app.verify(query, None).unwrap() {
        Verdict::Valid(_) => Ok(()),
        Verdict::Invalid { code, .. } => Err(code),
    }
}

/// Node B stops following the feed (as when cut off from the database) while node A
/// revokes a token B knows, creates another and, eight days later, prunes the feed
/// (retention: the default 7 days). B's next catch-up finds the changes it missed
/// gone: it reloads, then refuses the revoked token and accepts the new ones, and
/// follows the feed as usual afterwards.
async fn a_node_behind_the_retained_feed_reloads(db: TestDb) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap(),
    ));
    let a = node(&db, &clock).await;
    let b = node(&db, &clock).await;
    let revoked = create(&a, "revoked").await;
    b.follow_changes().await.unwrap();
    assert_eq!(check(&b, &revoked.token), Ok(()));

    // B is cut off from here on.
    a.tokens()
        .delete(&operator(), &revoked.record.id.to_string())
        .await
        .unwrap();
    let old_new = create(&a, "created while B was away").await;
    clock.advance(Duration::days(8));
    let recent = create(&a, "recent").await;
    let pruned = a.prune_change_feed().await.unwrap();
    assert!(!pruned.busy, "{pruned:?}");
    assert_eq!(pruned.deleted, 3, "the three changes older than 7 days");
    assert_eq!(
        a.prune_change_feed().await.unwrap().deleted,
        0,
        "pruned once"
    );
    assert_eq!(check(&b, &revoked.token), Ok(()), "B has not caught up yet");

    b.follow_changes().await.unwrap();
    assert_eq!(
        check(&b, &revoked.token),
        Err(VerifyCode::NotFound),
        "B missed the revocation"
    );
    assert_eq!(check(&b, &old_new.token), Ok(()), "B missed a new token");
    assert_eq!(check(&b, &recent.token), Ok(()));
    assert_eq!(b.index_reloads(), 1, "B reloaded its index");
    b.ready().await.unwrap();

    // From there B follows the feed change by change again.
    a.tokens()
        .set_status(
            &operator(),
            &recent.record.id.to_string(),
            TokenStatus::Disabled,
        )
        .await
        .unwrap();
    b.follow_changes().await.unwrap();
    assert_eq!(check(&b, &recent.token), Err(VerifyCode::Disabled));
    assert_eq!(b.index_reloads(), 1, "no further reload");
    assert_eq!(a.index_reloads(), 0, "A never fell behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_retained_feed_reloads_sqlite() {
    a_node_behind_the_retained_feed_reloads(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_retained_feed_reloads_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_node_behind_the_retained_feed_reloads(db).await;
}

/// With no retention (`change_feed_retention_hours = 0`) nothing is ever pruned.
#[tokio::test]
async fn without_a_retention_nothing_is_pruned() {
    let db = TestDb::sqlite();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap(),
    ));
    let app = Tessera::new(
        tessera_store::open(&db.url).await.unwrap(),
        Pepper::from_bytes([42; 32]),
        Settings {
            change_feed_retention: None,
            ..Settings::default()
        },
        clock.clone(),
    )
    .expect("app");
    app.load().await.unwrap();
    create(&app, "one").await;
    create(&app, "two").await;
    clock.advance(Duration::days(3650));
    assert_eq!(app.prune_change_feed().await.unwrap().deleted, 0);
}
