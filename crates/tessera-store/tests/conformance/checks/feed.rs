//! The change feed under concurrency: no gaps, signals across instances, one winner per revision, pruning.

use crate::*;

/// Several nodes insert at once while another follows the feed the way the verify index
/// does (`sequence > last`): it must see every change exactly once. On PostgreSQL this
/// fails without the ordering lock, since sequence numbers can commit out of order.
pub(crate) async fn check_concurrent_writers_leave_no_gap_in_the_change_feed(db: &TestDb) {
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
pub(crate) async fn check_change_signal_fires_for_another_instance_write(db: &TestDb) {
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
pub(crate) async fn check_change_signal_survives_a_lost_connection(db: &TestDb) {
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

/// Two nodes edit the same revision of a token at once: one wins, the other is told
/// its copy is stale, and the feed has exactly one change for the edit.
pub(crate) async fn check_concurrent_edits_of_one_revision_let_one_win(db: &TestDb) {
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

/// Writes a token whose change-feed row is dated `at`; returns the row's sequence.
pub(crate) async fn change_at(store: &dyn Store, name: &str, at: DateTime<Utc>) -> i64 {
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

async fn sequences(store: &dyn Store) -> Vec<i64> {
    store
        .changes_after(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|change| change.sequence)
        .collect()
}

pub(crate) async fn check_pruning_removes_a_prefix_of_old_changes_never_the_newest(
    store: Arc<dyn Store>,
) {
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
pub(crate) async fn check_concurrent_pruners_and_writers_lose_nothing_recent(db: &TestDb) {
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
