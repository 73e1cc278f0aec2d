//! Administrators, sessions, the first user and roles.

use crate::*;

/// A session of `user_id` from `t0()` for an hour, stored.
async fn signed_in(
    store: &dyn Store,
    user_id: UserId,
    digest: [u8; 32],
) -> tessera_store::SessionRecord {
    let session = tessera_store::SessionRecord {
        digest,
        user_id,
        created_at: t0(),
        expires_at: t0() + Duration::hours(1),
    };
    store
        .insert_session(&session, &audit("login"))
        .await
        .unwrap();
    session
}

pub(crate) async fn check_users_and_sessions(store: Arc<dyn Store>) {
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

    let session = signed_in(store.as_ref(), user.id, [7; 32]).await;
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

pub(crate) fn user(email: &str, role: &str) -> UserRecord {
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

pub(crate) async fn check_admins_keep_a_super_admin_and_end_sessions(store: Arc<dyn Store>) {
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
    signed_in(store.as_ref(), ada.id, [3; 32]).await;
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

pub(crate) async fn check_concurrent_demotions_keep_a_super_admin(db: &TestDb) {
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

pub(crate) async fn check_first_user_only_once(store: Arc<dyn Store>) {
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

pub(crate) async fn check_roles_and_their_holders(store: Arc<dyn Store>) {
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
