//! The resource catalog and projects, and the references between them and tokens.

use crate::*;

pub(crate) async fn check_catalog_projects_and_referential_rules(store: Arc<dyn Store>) {
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
