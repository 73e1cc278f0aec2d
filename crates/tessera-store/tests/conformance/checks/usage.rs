//! Usage counts and `last_used_at`, from one node and from two at once.

use crate::*;

pub(crate) async fn check_usage_adds_up_and_last_used_only_moves_forward(store: Arc<dyn Store>) {
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

/// Usage flushed by two nodes at once, for the same tokens (in opposite orders, so
/// lock order matters), adds up exactly; `last_used_at` ends at the newest use.
pub(crate) async fn check_usage_from_two_instances_adds_up(db: &TestDb) {
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
