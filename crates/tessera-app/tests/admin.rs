#![cfg(test)]
//! Users, roles, personal tokens and the audit log, against a real SQLite store.

use std::sync::Arc;

use tessera_api_types::{
    CreatePersonalTokenRequest, CreateTokenRequest, CreateUserRequest, RegenerateRequest,
    RoleRequest, RoleUpdate, UpdateTokenRequest, UpdateUserRequest, VerifyCode,
};
use tessera_app::auth::{NewAdmin, Password};
use tessera_app::{AppError, Principal, Settings, SystemClock, Tessera, Verdict, VerifyQuery};
use tessera_core::{
    AdminPermission, AuditFilter, AuditPageSize, Lifespan, Pepper, PersonalAccess, TokenType,
};

const PASSWORD: &str = "correct horse battery";

async fn node(dir: &tempfile::TempDir) -> Arc<Tessera> {
    let store = tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
        .await
        .unwrap();
    let app = Tessera::new(
        store,
        Pepper::from_bytes([9; 32]),
        Settings::default(),
        Arc::new(SystemClock),
    )
    .expect("app");
    app.load().await.unwrap();
    Arc::new(app)
}

fn operator() -> Principal {
    Principal::operator("test")
}

async fn admin(app: &Tessera, email: &str, role: &str) -> String {
    let view = app
        .users()
        .create_admin(
            &operator(),
            NewAdmin {
                email: email.into(),
                name: None,
                role: role.into(),
                password: Password(PASSWORD.into()),
            },
        )
        .await
        .unwrap();
    view.id.to_string()
}

async fn session(app: &Tessera, email: &str) -> Principal {
    let (secret, _) = app
        .auth()
        .login(email, &Password(PASSWORD.into()), None)
        .await
        .unwrap();
    app.auth()
        .authenticate_session(&secret, None)
        .await
        .unwrap()
}

fn personal(name: &str, access: PersonalAccess) -> CreatePersonalTokenRequest {
    CreatePersonalTokenRequest {
        name: name.into(),
        description: None,
        access,
        lifespan: Some(Lifespan::Days30),
        expires_at: None,
    }
}

/// Whether a personal token signs its owner in to the management API (personal
/// tokens are unknown to the protected API's verify, by design).
async fn signs_in(app: &Tessera, token: &str) -> bool {
    app.auth().authenticate_bearer(token, None).await.is_ok()
}

fn update(f: impl FnOnce(&mut UpdateUserRequest)) -> UpdateUserRequest {
    let mut request = UpdateUserRequest::default();
    f(&mut request);
    request
}

#[tokio::test]
async fn the_last_super_admin_cannot_be_removed_demoted_or_deactivated() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let root = admin(&app, "root@example.com", "super-admin").await;
    for request in [
        update(|r| r.role = Some("viewer".into())),
        update(|r| r.active = Some(false)),
    ] {
        let refused = app.users().update(&operator(), &root, request).await;
        assert!(matches!(refused, Err(AppError::Conflict(_))), "{refused:?}");
    }
    assert!(matches!(
        app.users().delete(&operator(), &root).await,
        Err(AppError::Conflict(_))
    ));
    // With a second super-admin, one may go.
    let second = admin(&app, "second@example.com", "super-admin").await;
    app.users()
        .update(
            &operator(),
            &root,
            update(|r| r.role = Some("viewer".into())),
        )
        .await
        .unwrap();
    assert!(matches!(
        app.users().delete(&operator(), &second).await,
        Err(AppError::Conflict(_))
    ));
}

#[tokio::test]
async fn roles_in_use_built_in_roles_and_super_admin_are_protected() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let request = RoleRequest {
        name: "auditor".into(),
        description: None,
        permissions: vec![AdminPermission::AuditRead],
    };
    app.roles()
        .create(&operator(), request.clone())
        .await
        .unwrap();
    assert!(matches!(
        app.roles().create(&operator(), request).await,
        Err(AppError::Conflict(_))
    ));
    admin(&app, "ada@example.com", "auditor").await;
    let Err(AppError::Conflict(message)) = app.roles().delete(&operator(), "auditor").await else {
        panic!("a role in use was deleted");
    };
    assert!(message.contains("ada@example.com"), "{message}");
    assert!(matches!(
        app.roles().delete(&operator(), "viewer").await,
        Err(AppError::Conflict(_))
    ));
    let edit = RoleUpdate {
        description: None,
        permissions: Some(vec![]),
    };
    assert!(matches!(
        app.roles()
            .update(&operator(), "super-admin", edit.clone())
            .await,
        Err(AppError::Conflict(_))
    ));
    app.roles()
        .update(&operator(), "viewer", edit)
        .await
        .unwrap();
    let unknown = app
        .users()
        .create(
            &operator(),
            CreateUserRequest {
                email: "x@example.com".into(),
                name: None,
                role: "nope".into(),
                password: None,
            },
        )
        .await;
    assert!(
        matches!(unknown, Err(AppError::Validation(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn permission_changes_apply_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    admin(&app, "root@example.com", "super-admin").await;
    app.roles()
        .create(
            &operator(),
            RoleRequest {
                name: "ops".into(),
                description: None,
                permissions: vec![AdminPermission::TokensRead, AdminPermission::TokensCreate],
            },
        )
        .await
        .unwrap();
    admin(&app, "ops@example.com", "ops").await;
    let (secret, _) = app
        .auth()
        .login("ops@example.com", &Password(PASSWORD.into()), None)
        .await
        .unwrap();
    let before = app
        .auth()
        .authenticate_session(&secret, None)
        .await
        .unwrap();
    assert!(before.has(AdminPermission::TokensCreate));
    let created = app
        .personal_tokens()
        .create_mine(&before, personal("laptop", PersonalAccess::Full))
        .await
        .unwrap();
    let via_token = app
        .auth()
        .authenticate_bearer(&created.token, None)
        .await
        .unwrap();
    assert!(via_token.has(AdminPermission::TokensCreate));

    app.roles()
        .update(
            &operator(),
            "ops",
            RoleUpdate {
                description: None,
                permissions: Some(vec![AdminPermission::TokensRead]),
            },
        )
        .await
        .unwrap();
    let after = app
        .auth()
        .authenticate_session(&secret, None)
        .await
        .unwrap();
    assert!(
        !after.has(AdminPermission::TokensCreate),
        "the session sees the downgrade"
    );
    let via_token = app
        .auth()
        .authenticate_bearer(&created.token, None)
        .await
        .unwrap();
    assert!(
        !via_token.has(AdminPermission::TokensCreate),
        "the personal token sees it too"
    );
    let denied = app
        .tokens()
        .create(
            &via_token,
            CreateTokenRequest {
                name: "x".into(),
                token_type: Some(TokenType::ReadOnly),
                lifespan: Some(Lifespan::Days7),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(denied, Err(AppError::Forbidden(_))));
}

#[tokio::test]
async fn read_only_personal_tokens_keep_only_reading_permissions_and_cannot_mint_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    admin(&app, "root@example.com", "super-admin").await;
    let owner = session(&app, "root@example.com").await;
    let created = app
        .personal_tokens()
        .create_mine(&owner, personal("ci", PersonalAccess::ReadOnly))
        .await
        .unwrap();
    assert!(created.token.starts_with("tsrp_"));
    assert_eq!(
        created.record.record.kind,
        tessera_core::TokenKind::Personal
    );
    let principal = app
        .auth()
        .authenticate_bearer(&created.token, None)
        .await
        .unwrap();
    let held: Vec<_> = principal.permissions.iter().copied().collect();
    assert_eq!(
        held,
        vec![AdminPermission::TokensRead, AdminPermission::AuditRead]
    );
    let full = app
        .personal_tokens()
        .create_mine(&owner, personal("full", PersonalAccess::Full))
        .await
        .unwrap();
    let full_principal = app
        .auth()
        .authenticate_bearer(&full.token, None)
        .await
        .unwrap();
    assert_eq!(full_principal.permissions.len(), AdminPermission::ALL.len());
    let minted = app
        .personal_tokens()
        .create_mine(&full_principal, personal("more", PersonalAccess::Full))
        .await;
    assert!(
        matches!(minted, Err(AppError::Forbidden(_))),
        "a personal token cannot mint another"
    );
    // API tokens never authenticate management calls.
    let api = app
        .tokens()
        .create(
            &owner,
            CreateTokenRequest {
                name: "api".into(),
                token_type: Some(TokenType::FullAccess),
                lifespan: Some(Lifespan::Days7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        app.auth().authenticate_bearer(&api.token, None).await,
        Err(AppError::Unauthenticated)
    ));
    // Personal tokens sign their owner in; regenerating stops the old secret.
    assert!(signs_in(&app, &created.token).await);
    let id = created.record.record.id.to_string();
    let renewed = app
        .personal_tokens()
        .regenerate_mine(&owner, &id, RegenerateRequest::default())
        .await
        .unwrap();
    assert!(!signs_in(&app, &created.token).await);
    assert!(signs_in(&app, &renewed.token).await);
    assert_eq!(
        app.personal_tokens().list_mine(&owner).await.unwrap().len(),
        2
    );
    // Personal tokens are not reachable as API tokens.
    assert!(matches!(
        app.tokens().get(&owner, &id).await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        app.tokens()
            .update(&owner, &id, UpdateTokenRequest::default())
            .await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn removing_or_deactivating_the_owner_stops_personal_tokens_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let other_node = node(&dir).await;
    admin(&app, "root@example.com", "super-admin").await;
    let ada = admin(&app, "ada@example.com", "token-manager").await;
    let owner = session(&app, "ada@example.com").await;
    let token = app
        .personal_tokens()
        .create_mine(&owner, personal("laptop", PersonalAccess::Full))
        .await
        .unwrap()
        .token;
    other_node.follow_changes().await.unwrap();
    assert!(signs_in(&other_node, &token).await);

    app.users()
        .update(&operator(), &ada, update(|r| r.active = Some(false)))
        .await
        .unwrap();
    assert!(!signs_in(&app, &token).await, "at once on this node");
    assert!(matches!(
        app.auth().authenticate_bearer(&token, None).await,
        Err(AppError::Unauthenticated)
    ));
    other_node.follow_changes().await.unwrap();
    assert!(
        !signs_in(&other_node, &token).await,
        "on the other node too"
    );

    app.users()
        .update(&operator(), &ada, update(|r| r.active = Some(true)))
        .await
        .unwrap();
    assert!(signs_in(&app, &token).await);
    let (secret, _) = app
        .auth()
        .login("ada@example.com", &Password(PASSWORD.into()), None)
        .await
        .unwrap();
    app.users().delete(&operator(), &ada).await.unwrap();
    assert!(!signs_in(&app, &token).await, "removal deletes them");
    assert!(matches!(
        app.auth().authenticate_session(&secret, None).await,
        Err(AppError::Unauthenticated)
    ));
    other_node.follow_changes().await.unwrap();
    assert!(!signs_in(&other_node, &token).await);
}

#[tokio::test]
async fn deactivation_and_password_reset_end_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    admin(&app, "root@example.com", "super-admin").await;
    let ada = admin(&app, "ada@example.com", "viewer").await;
    let (first, _) = app
        .auth()
        .login("ada@example.com", &Password(PASSWORD.into()), None)
        .await
        .unwrap();
    app.users()
        .update(
            &operator(),
            &ada,
            update(|r| r.password = Some("another long password".into())),
        )
        .await
        .unwrap();
    assert!(matches!(
        app.auth().authenticate_session(&first, None).await,
        Err(AppError::Unauthenticated)
    ));
    assert!(
        app.auth()
            .login("ada@example.com", &Password(PASSWORD.into()), None)
            .await
            .is_err()
    );
    let (second, _) = app
        .auth()
        .login(
            "ada@example.com",
            &Password("another long password".into()),
            None,
        )
        .await
        .unwrap();
    app.users()
        .update(&operator(), &ada, update(|r| r.active = Some(false)))
        .await
        .unwrap();
    app.users()
        .update(&operator(), &ada, update(|r| r.active = Some(true)))
        .await
        .unwrap();
    assert!(
        matches!(
            app.auth().authenticate_session(&second, None).await,
            Err(AppError::Unauthenticated)
        ),
        "reactivation does not revive old sessions"
    );
}

#[tokio::test]
async fn every_change_is_audited_with_a_diff_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let root_id = admin(&app, "root@example.com", "super-admin").await;
    let root = session(&app, "root@example.com").await;
    assert!(
        app.auth()
            .login(
                "root@example.com",
                &Password("wrong password!".into()),
                Some("192.0.2.1".parse().unwrap())
            )
            .await
            .is_err()
    );
    assert!(
        app.auth()
            .login("my secret pasted here", &Password(PASSWORD.into()), None)
            .await
            .is_err()
    );
    let created = app
        .tokens()
        .create(
            &root,
            CreateTokenRequest {
                name: "ci".into(),
                token_type: Some(TokenType::ReadOnly),
                lifespan: Some(Lifespan::Days7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let id = created.record.id.to_string();
    app.tokens()
        .update(
            &root,
            &id,
            UpdateTokenRequest {
                description: Some("deploys".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let regenerated = app
        .tokens()
        .regenerate(&root, &id, RegenerateRequest::default())
        .await
        .unwrap();
    let personal_secret = app
        .personal_tokens()
        .create_mine(&root, personal("me", PersonalAccess::Full))
        .await
        .unwrap()
        .token;
    app.tokens().delete(&root, &id).await.unwrap();
    app.roles()
        .create(
            &root,
            RoleRequest {
                name: "ops".into(),
                description: None,
                permissions: vec![AdminPermission::TokensRead],
            },
        )
        .await
        .unwrap();
    app.catalog()
        .create_project(
            &root,
            tessera_api_types::ProjectRequest {
                slug: "shop".into(),
                name: "Shop".into(),
            },
        )
        .await
        .unwrap();
    app.catalog().delete_project(&root, "shop").await.unwrap();
    app.users()
        .update(&root, &root_id, update(|r| r.name = Some("Root".into())))
        .await
        .unwrap();
    app.users()
        .update(
            &root,
            &root_id,
            update(|r| r.password = Some("a brand new password".into())),
        )
        .await
        .unwrap();

    let page = app
        .audit()
        .list(
            &operator(),
            AuditFilter {
                limit: AuditPageSize::new(500).unwrap(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = page.items.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "user.create",
        "auth.login",
        "auth.login_failed",
        "token.create",
        "token.update",
        "token.regenerate",
        "personal_token.create",
        "token.delete",
        "role.create",
        "user.update",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let update = page
        .items
        .iter()
        .find(|e| e.action == "token.update")
        .unwrap();
    assert_eq!(
        update.changes,
        serde_json::json!({"description": {"from": "", "to": "deploys"}})
    );
    assert_eq!(update.actor, "user:root@example.com");
    let failed = page
        .items
        .iter()
        .find(|e| e.client_address.as_deref() == Some("192.0.2.1"))
        .unwrap();
    assert_eq!(failed.action, "auth.login_failed");
    let renamed = page
        .items
        .iter()
        .find(|e| e.action == "user.update" && e.changes.get("name").is_some())
        .unwrap();
    assert_eq!(
        renamed.changes["name"],
        serde_json::json!({"from": "root@example.com", "to": "Root"})
    );

    let removed = page
        .items
        .iter()
        .find(|e| e.action == "project.delete")
        .unwrap();
    assert_eq!(
        removed.changes["slug"],
        serde_json::json!({"from": "shop", "to": null})
    );
    assert!(page.items.iter().any(|e| e.action == "project.create"));
    let everything = serde_json::to_string(&page).unwrap();
    for secret in [&created.token, &regenerated.token, &personal_secret] {
        assert!(
            !everything.contains(secret.as_str()),
            "a token secret reached the audit log"
        );
        assert!(!everything.contains(&secret[secret.len() - 20..]));
    }
    for needle in [
        PASSWORD,
        "wrong password!",
        "a brand new password",
        "my secret pasted here",
        "$argon2",
    ] {
        assert!(
            !everything.contains(needle),
            "{needle:?} reached the audit log"
        );
    }
    // Filters and paging.
    let only = app
        .audit()
        .list(
            &operator(),
            AuditFilter {
                action: Some("token.update".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(only.items.len(), 1);
    let first = app
        .audit()
        .list(
            &operator(),
            AuditFilter {
                limit: AuditPageSize::new(3).unwrap(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let second = app
        .audit()
        .list(
            &operator(),
            AuditFilter {
                limit: AuditPageSize::new(3).unwrap(),
                cursor: first.next_cursor.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(first.items.last().unwrap().id > second.items.first().unwrap().id);
    let viewer_denied = app
        .audit()
        .list(
            &Principal {
                permissions: Default::default(),
                ..root
            },
            AuditFilter::default(),
        )
        .await;
    assert!(matches!(viewer_denied, Err(AppError::Forbidden(_))));
}

#[tokio::test]
async fn managing_users_and_roles_never_reaches_beyond_ones_own_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let root = admin(&app, "root@example.com", "super-admin").await;
    app.roles()
        .create(
            &operator(),
            RoleRequest {
                name: "people".into(),
                description: None,
                permissions: vec![
                    AdminPermission::UsersManage,
                    AdminPermission::RolesManage,
                    AdminPermission::TokensRead,
                ],
            },
        )
        .await
        .unwrap();
    let manager_id = admin(&app, "manager@example.com", "people").await;
    let manager = session(&app, "manager@example.com").await;
    let forbidden = |result: Result<_, AppError>| matches!(result, Err(AppError::Forbidden(_)));

    // Not a path to super-admin: neither assigning it nor touching one.
    let create = |role: &str| CreateUserRequest {
        email: format!("{role}@example.com"),
        name: None,
        role: role.into(),
        password: None,
    };
    assert!(forbidden(
        app.users()
            .create(&manager, create("super-admin"))
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        app.users()
            .create(&manager, create("token-manager"))
            .await
            .map(|_| ())
    ));
    let viewer = app
        .users()
        .create(&manager, create("viewer"))
        .await
        .unwrap()
        .id
        .to_string();
    assert!(forbidden(
        app.users()
            .update(
                &manager,
                &manager_id,
                update(|r| r.role = Some("super-admin".into()))
            )
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        app.users()
            .update(&manager, &root, update(|r| r.active = Some(false)))
            .await
            .map(|_| ())
    ));
    assert!(forbidden(app.users().delete(&manager, &root).await));
    app.users()
        .update(&manager, &viewer, update(|r| r.name = Some("V".into())))
        .await
        .unwrap();

    // Not a path to more permissions through roles either.
    let widen = RoleUpdate {
        description: None,
        permissions: Some(vec![
            AdminPermission::UsersManage,
            AdminPermission::TokensCreate,
        ]),
    };
    assert!(forbidden(
        app.roles()
            .update(&manager, "people", widen)
            .await
            .map(|_| ())
    ));
    let grant = RoleRequest {
        name: "creator".into(),
        description: None,
        permissions: vec![AdminPermission::TokensCreate],
    };
    assert!(forbidden(
        app.roles().create(&manager, grant).await.map(|_| ())
    ));
    let narrow = RoleUpdate {
        description: None,
        permissions: Some(vec![AdminPermission::TokensRead]),
    };
    app.roles()
        .update(&manager, "viewer", narrow)
        .await
        .unwrap();

    // A personal token of a user manager cannot set passwords (a new sign-in).
    let owner = session(&app, "root@example.com").await;
    let token = app
        .personal_tokens()
        .create_mine(&owner, personal("ops", PersonalAccess::Full))
        .await
        .unwrap()
        .token;
    let via_token = app.auth().authenticate_bearer(&token, None).await.unwrap();
    assert!(forbidden(
        app.users()
            .update(
                &via_token,
                &viewer,
                update(|r| r.password = Some("a long new password".into()))
            )
            .await
            .map(|_| ())
    ));
    let with_password = CreateUserRequest {
        password: Some("a long new password".into()),
        ..create("viewer")
    };
    assert!(forbidden(
        app.users()
            .create(&via_token, with_password)
            .await
            .map(|_| ())
    ));
}

#[tokio::test]
async fn personal_tokens_never_pass_for_protected_api_permissions_and_api_tokens_are_not_counted_as_bearers()
 {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    admin(&app, "root@example.com", "super-admin").await;
    let owner = session(&app, "root@example.com").await;
    app.catalog()
        .create_resource(
            &owner,
            tessera_api_types::ResourceRequest {
                name: "article".into(),
                description: None,
                actions: vec![tessera_api_types::ActionView {
                    name: "find".into(),
                    kind: tessera_core::ActionKind::Read,
                }],
            },
        )
        .await
        .unwrap();
    let personal_token = app
        .personal_tokens()
        .create_mine(&owner, personal("me", PersonalAccess::Full))
        .await
        .unwrap()
        .token;
    let asked = |token: &str, permission| match app
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
    };
    // The protected API does not know personal tokens, with or without a permission.
    assert_eq!(asked(&personal_token, None), Err(VerifyCode::NotFound));
    assert_eq!(
        asked(&personal_token, Some("article.find")),
        Err(VerifyCode::NotFound)
    );

    let api = app
        .tokens()
        .create(
            &owner,
            CreateTokenRequest {
                name: "api".into(),
                token_type: Some(TokenType::ReadOnly),
                lifespan: Some(Lifespan::Days7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        app.auth().authenticate_bearer(&api.token, None).await,
        Err(AppError::Unauthenticated)
    ));
    app.flush_usage().await.unwrap();
    let view = app
        .tokens()
        .get(&owner, &api.record.id.to_string())
        .await
        .unwrap();
    assert_eq!(
        view.last_used_at, None,
        "a refused bearer is not a use of the token"
    );
}
