//! The audit log: filters and pages.

use crate::*;

pub(crate) async fn check_audit_rows_filter_and_page(store: Arc<dyn Store>) {
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
