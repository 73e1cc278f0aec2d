#![cfg(test)]
//! Application services against a real SQLite store and a manual clock: lifecycle
//! rules over time, the verify index following the change feed, usage batching.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tessera_api_types::{
    ActionView, CreateTokenRequest, RegenerateRequest, ResourceRequest, ResourceUpdate, VerifyCode,
};
use tessera_app::{ManualClock, Principal, Settings, Tessera, Verdict, VerifyQuery};
use tessera_core::{ActionKind, Lifespan, Pepper, TokenType, UsageDays};

struct Node {
    app: Arc<Tessera>,
    clock: Arc<ManualClock>,
}

/// Two nodes (think: the server and the CLI) on one database and one pepper.
async fn cluster(dir: &tempfile::TempDir, nodes: usize) -> Vec<Node> {
    let url = tessera_store::sqlite_url_in(dir.path());
    let pepper = Pepper::from_bytes([42; 32]);
    let start = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
    let mut out = Vec::new();
    for _ in 0..nodes {
        let store = tessera_store::open(&url).await.unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let app = Arc::new(
            Tessera::new(store, pepper.clone(), Settings::default(), clock.clone()).expect("app"),
        );
        app.load().await.unwrap();
        out.push(Node { app, clock });
    }
    out
}

fn operator() -> Principal {
    Principal::operator("test")
}

fn create(name: &str, token_type: TokenType, permissions: &[&str]) -> CreateTokenRequest {
    CreateTokenRequest {
        name: name.into(),
        token_type: Some(token_type),
        permissions: (!permissions.is_empty())
            .then(|| permissions.iter().map(|p| p.to_string()).collect()),
        lifespan: Some(Lifespan::Days7),
        ..CreateTokenRequest::default()
    }
}

fn check(app: &Tessera, token: &str, permission: Option<&str>) -> Result<(), VerifyCode> {
    match app
        .verify(
            VerifyQuery {
                token,
                permission,
                project: None,
            },
            None,
        )
        .unwrap()
    {
        Verdict::Valid(_) => Ok(()),
        Verdict::Invalid { code, .. } => Err(code),
    }
}

async fn add_article(app: &Tessera) {
    let actions = vec![
        ActionView {
            name: "find".into(),
            kind: ActionKind::Read,
        },
        ActionView {
            name: "create".into(),
            kind: ActionKind::Write,
        },
    ];
    app.catalog()
        .create_resource(
            &operator(),
            ResourceRequest {
                name: "article".into(),
                description: None,
                actions,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn tokens_expire_by_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(&dir, 1).await;
    let node = &nodes[0];
    let created = node
        .app
        .tokens()
        .create(&operator(), create("ci", TokenType::ReadOnly, &[]))
        .await
        .unwrap();
    assert_eq!(check(&node.app, &created.token, None), Ok(()));
    node.clock.advance(Duration::days(7) - Duration::seconds(1));
    assert_eq!(check(&node.app, &created.token, None), Ok(()));
    node.clock.advance(Duration::seconds(1));
    assert_eq!(
        check(&node.app, &created.token, None),
        Err(VerifyCode::Expired)
    );
    let view = node
        .app
        .tokens()
        .get(&operator(), &created.record.id.to_string())
        .await
        .unwrap();
    assert!(view.expired);
}

#[tokio::test]
async fn a_regenerated_secret_keeps_working_for_its_grace_period_only() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(&dir, 1).await;
    let node = &nodes[0];
    let old = node
        .app
        .tokens()
        .create(&operator(), create("ci", TokenType::ReadOnly, &[]))
        .await
        .unwrap();
    let id = old.record.id.to_string();
    let new = node
        .app
        .tokens()
        .regenerate(
            &operator(),
            &id,
            RegenerateRequest {
                grace_period_seconds: Some(60),
            },
        )
        .await
        .unwrap();
    assert_ne!(old.token, new.token);
    assert_eq!(check(&node.app, &old.token, None), Ok(()));
    assert_eq!(check(&node.app, &new.token, None), Ok(()));
    node.clock.advance(Duration::seconds(60));
    assert_eq!(
        check(&node.app, &old.token, None),
        Err(VerifyCode::NotFound)
    );
    assert_eq!(check(&node.app, &new.token, None), Ok(()));
    // Without a grace period the old secret stops at once.
    let newest = node
        .app
        .tokens()
        .regenerate(&operator(), &id, RegenerateRequest::default())
        .await
        .unwrap();
    assert_eq!(
        check(&node.app, &new.token, None),
        Err(VerifyCode::NotFound)
    );
    assert_eq!(check(&node.app, &newest.token, None), Ok(()));
}

#[tokio::test]
async fn read_only_and_full_access_follow_the_catalog_as_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(&dir, 1).await;
    let app = &nodes[0].app;
    add_article(app).await;
    let read = app
        .tokens()
        .create(&operator(), create("read", TokenType::ReadOnly, &[]))
        .await
        .unwrap();
    let full = app
        .tokens()
        .create(&operator(), create("full", TokenType::FullAccess, &[]))
        .await
        .unwrap();
    let custom = app
        .tokens()
        .create(
            &operator(),
            create("custom", TokenType::Custom, &["article.create"]),
        )
        .await
        .unwrap();
    let table = [
        (&read.token, "article.find", Ok(())),
        (&read.token, "article.create", Err(VerifyCode::Forbidden)),
        (&full.token, "article.create", Ok(())),
        (&custom.token, "article.create", Ok(())),
        (&custom.token, "article.find", Err(VerifyCode::Forbidden)),
        (&full.token, "comment.find", Err(VerifyCode::Forbidden)),
    ];
    for (token, permission, expected) in table {
        assert_eq!(
            check(app, token, Some(permission)),
            expected,
            "{permission}"
        );
    }
    // A new action is granted to read-only tokens at once; a removed one is revoked.
    let update = ResourceUpdate {
        description: None,
        actions: Some(vec![ActionView {
            name: "findOne".into(),
            kind: ActionKind::Read,
        }]),
    };
    app.catalog()
        .update_resource(&operator(), "article", update)
        .await
        .unwrap();
    assert_eq!(check(app, &read.token, Some("article.findOne")), Ok(()));
    assert_eq!(
        check(app, &read.token, Some("article.find")),
        Err(VerifyCode::Forbidden)
    );
    assert_eq!(
        check(app, &custom.token, Some("article.create")),
        Err(VerifyCode::Forbidden)
    );
}

#[tokio::test]
async fn another_process_change_reaches_this_node_through_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(&dir, 2).await;
    let (server, cli) = (&nodes[0].app, &nodes[1].app);
    let created = cli
        .tokens()
        .create(&operator(), create("ci", TokenType::ReadOnly, &[]))
        .await
        .unwrap();
    assert_eq!(
        check(server, &created.token, None),
        Err(VerifyCode::NotFound),
        "not followed yet"
    );
    server.follow_changes().await.unwrap();
    assert_eq!(check(server, &created.token, None), Ok(()));

    let id = created.record.id.to_string();
    cli.tokens()
        .set_status(&operator(), &id, tessera_core::TokenStatus::Disabled)
        .await
        .unwrap();
    server.follow_changes().await.unwrap();
    assert_eq!(
        check(server, &created.token, None),
        Err(VerifyCode::Disabled)
    );

    cli.tokens().delete(&operator(), &id).await.unwrap();
    server.follow_changes().await.unwrap();
    assert_eq!(
        check(server, &created.token, None),
        Err(VerifyCode::NotFound)
    );
}

#[tokio::test]
async fn usage_is_counted_in_memory_and_written_in_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(&dir, 2).await;
    let app = &nodes[0].app;
    add_article(app).await;
    let created = app
        .tokens()
        .create(&operator(), create("ci", TokenType::ReadOnly, &[]))
        .await
        .unwrap();
    let id = created.record.id.to_string();
    for _ in 0..5 {
        assert_eq!(check(app, &created.token, Some("article.find")), Ok(()));
    }
    for _ in 0..2 {
        assert_eq!(
            check(app, &created.token, Some("article.create")),
            Err(VerifyCode::Forbidden)
        );
    }
    let before = app.tokens().get(&operator(), &id).await.unwrap();
    assert_eq!(
        before.last_used_at, None,
        "nothing is written per verification"
    );
    assert_eq!(app.flush_usage().await.unwrap(), 1);
    assert_eq!(
        app.flush_usage().await.unwrap(),
        0,
        "counters were reset by the flush"
    );
    let after = app.tokens().get(&operator(), &id).await.unwrap();
    assert_eq!(
        after.last_used_at,
        Some(tessera_app::Clock::now(nodes[0].clock.as_ref()))
    );
    let usage = app
        .tokens()
        .usage(&operator(), &id, UsageDays::new(3).unwrap())
        .await
        .unwrap();
    assert_eq!(usage.days.len(), 3);
    let today = usage.days.last().unwrap();
    assert_eq!((today.allowed, today.denied), (5, 2));

    // A second node's counts add to the first's.
    let other = &nodes[1].app;
    other.follow_changes().await.unwrap();
    assert_eq!(check(other, &created.token, None), Ok(()));
    other.flush_usage().await.unwrap();
    let usage = app
        .tokens()
        .usage(&operator(), &id, UsageDays::default())
        .await
        .unwrap();
    assert_eq!(usage.days.len(), 30);
    assert_eq!(usage.days.last().unwrap().allowed, 6);
}

#[tokio::test]
async fn failures_from_one_address_are_throttled_but_valid_tokens_still_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
        .await
        .unwrap();
    let settings = Settings {
        verify_failures_per_address: 3,
        ..Settings::default()
    };
    let app = Tessera::new(
        store,
        Pepper::from_bytes([1; 32]),
        settings,
        Arc::new(tessera_app::SystemClock),
    )
    .expect("app");
    app.load().await.unwrap();
    let created = app
        .tokens()
        .create(&operator(), create("ci", TokenType::ReadOnly, &[]))
        .await
        .unwrap();
    let address = Some("192.0.2.7".parse().unwrap());
    let bad = VerifyQuery {
        token: "tsr_nope",
        permission: None,
        project: None,
    };
    let codes: Vec<_> = (0..4)
        .map(|_| match app.verify(bad, address).unwrap() {
            Verdict::Invalid { code, .. } => code,
            Verdict::Valid(_) => panic!("a malformed token verified"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            VerifyCode::Malformed,
            VerifyCode::Malformed,
            VerifyCode::Malformed,
            VerifyCode::RateLimited
        ]
    );
    let good = VerifyQuery {
        token: &created.token,
        permission: None,
        project: None,
    };
    assert!(matches!(
        app.verify(good, address).unwrap(),
        Verdict::Valid(_)
    ));
    let other = Some("192.0.2.8".parse().unwrap());
    assert!(matches!(
        app.verify(bad, other).unwrap(),
        Verdict::Invalid {
            code: VerifyCode::Malformed,
            ..
        }
    ));
}

/// A node whose index stops catching up (here: nobody calls `follow_changes`, as when
/// the database is unreachable) verifies from memory until the maximum staleness, then
/// refuses with `StaleIndex`; one catch-up makes it answer again. Without a maximum it
/// never refuses. Staleness runs on the monotonic clock, not the manual one.
#[tokio::test]
async fn a_stale_index_refuses_to_verify_until_it_catches_up() {
    use std::time::{Duration as StdDuration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let url = tessera_store::sqlite_url_in(dir.path());
    let pepper = Pepper::from_bytes([42; 32]);
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap(),
    ));
    let max = StdDuration::from_millis(400);
    let mut apps = Vec::new();
    for max_staleness in [Some(max), None] {
        let app = Tessera::new(
            tessera_store::open(&url).await.unwrap(),
            pepper.clone(),
            Settings {
                max_staleness,
                ..Settings::default()
            },
            clock.clone(),
        )
        .expect("app");
        assert!(
            matches!(
                app.ready().await,
                Err(tessera_app::AppError::Unavailable(_))
            ),
            "not ready before the index is loaded"
        );
        apps.push(app);
    }
    let (strict, lenient) = (&apps[0], &apps[1]);
    let created = strict
        .tokens()
        .create(&operator(), create("ci", TokenType::ReadOnly, &[]))
        .await
        .unwrap();
    for app in [strict, lenient] {
        app.load().await.unwrap();
        app.ready().await.unwrap();
        assert_eq!(check(app, &created.token, None), Ok(()));
    }
    // The manual clock moving does not make the index stale. (Caught up again just
    // before: loading the second app may itself take longer than `max` on a busy
    // machine.)
    strict.ready().await.unwrap();
    clock.advance(Duration::hours(1));
    assert_eq!(check(strict, &created.token, None), Ok(()));

    let query = VerifyQuery {
        token: &created.token,
        permission: None,
        project: None,
    };
    let deadline = Instant::now() + StdDuration::from_secs(10);
    let behind = loop {
        match strict.verify(query, None) {
            Err(tessera_app::AppError::StaleIndex { behind }) => break behind,
            Ok(Verdict::Valid(_)) => {}
            other => panic!("unexpected answer {other:?}"),
        }
        assert!(Instant::now() < deadline, "the index never became stale");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    };
    assert!(behind > max, "{behind:?}");
    assert!(strict.index_staleness() > max);
    let message = strict.verify(query, None).unwrap_err().to_string();
    assert!(message.contains("stale"), "{message}");
    assert_eq!(
        check(lenient, &created.token, None),
        Ok(()),
        "max_staleness = None never refuses"
    );

    strict.follow_changes().await.unwrap();
    assert!(strict.index_staleness() < max);
    assert_eq!(check(strict, &created.token, None), Ok(()));
}
