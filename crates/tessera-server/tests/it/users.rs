//! `/v1/users`: creating, listing, editing and removing administrators over HTTP, the
//! sessions and personal tokens that end with them, and the last super-admin.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Admin, PASSWORD, Resp, TestServer};

/// Creates a user through `POST /v1/users`; panics unless it answers 201.
async fn create_user(admin: &Admin, body: Value) -> Resp {
    let created = admin.post("/v1/users", body).await;
    created.expect(201);
    created
}

/// A login attempt that is expected to fail with 401.
async fn login_fails(server: &TestServer, email: &str, password: &str) {
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({ "email": email, "password": password })),
        )
        .await
        .expect_error(401, "unauthenticated");
}

/// A user body never carries password material.
#[track_caller]
fn no_password_material(response: &Resp) {
    for needle in ["password", "$argon2", PASSWORD] {
        assert!(
            !response.text.contains(needle),
            "{needle:?} in a response: {}",
            response.text
        );
    }
}

#[tokio::test]
async fn create_validates_and_lists_users() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;

    let created = create_user(
        &root,
        json!({"email": "Ada@Example.com", "name": "Ada", "role": "token-manager",
               "password": "ada's long password"}),
    )
    .await;
    let ada = &created.body;
    assert!(uuid::Uuid::parse_str(ada["id"].as_str().expect("id")).is_ok());
    assert_eq!(ada["email"], "Ada@Example.com");
    assert_eq!(ada["name"], "Ada");
    assert_eq!(ada["role"], "token-manager");
    assert_eq!(ada["active"], true);
    assert!(
        chrono::DateTime::parse_from_rfc3339(ada["created_at"].as_str().expect("created_at"))
            .is_ok()
    );
    let mut permissions: Vec<&str> = ada["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    permissions.sort_unstable();
    assert_eq!(
        permissions,
        [
            "audit.read",
            "tokens.create",
            "tokens.delete",
            "tokens.read",
            "tokens.regenerate",
            "tokens.update"
        ]
    );
    assert!(!created.text.contains("ada's long password"));
    no_password_material(&created);
    // She signs in with it, the email in any case.
    let signed_in = server
        .login_with("ada@example.COM", "ada's long password")
        .await;
    assert_eq!(signed_in.id, created.id());

    // The list shows each user with what their role grants, as the create did.
    let listed = root.get("/v1/users").await;
    let listed_ada = listed
        .body
        .as_array()
        .expect("a list of users")
        .iter()
        .find(|user| user["email"] == "Ada@Example.com")
        .expect("ada is listed");
    assert_eq!(listed_ada["permissions"], ada["permissions"]);

    // The password is optional: without one, nobody can sign in as the user.
    let bob = create_user(&root, json!({"email": "bob@example.com", "role": "viewer"})).await;
    assert_eq!(
        bob.body["name"], "bob@example.com",
        "the name defaults to the email"
    );
    for attempt in ["", PASSWORD, "ada's long password"] {
        login_fails(&server, "bob@example.com", attempt).await;
    }

    // Emails are unique whatever their case.
    root.post(
        "/v1/users",
        json!({"email": "ADA@example.com", "role": "viewer"}),
    )
    .await
    .expect_error(409, "conflict");
    root.post(
        "/v1/users",
        json!({"email": root.email.to_uppercase(), "role": "viewer"}),
    )
    .await
    .expect_error(409, "conflict");

    // Each bad field is named, all at once.
    let invalid = root
        .post(
            "/v1/users",
            json!({"email": "not an email", "role": "no-such-role", "password": "short"}),
        )
        .await;
    invalid
        .expect_invalid("email")
        .expect_invalid("role")
        .expect_invalid("password");
    assert!(!invalid.text.contains("short\""), "{}", invalid.text);
    root.post(
        "/v1/users",
        json!({"email": "x@example.com", "role": "nope"}),
    )
    .await
    .expect_invalid("role");
    root.post(
        "/v1/users",
        json!({"email": "x@example.com", "role": "viewer", "password": "x".repeat(9)}),
    )
    .await
    .expect_invalid("password");
    root.post("/v1/users", json!({"email": "x@example.com"}))
        .await
        .expect_invalid("role");
    root.post("/v1/users", json!({"role": "viewer"}))
        .await
        .expect_invalid("email");
    root.post(
        "/v1/users",
        json!({"email": "x@example.com", "role": "viewer", "admin": true}),
    )
    .await
    .expect_invalid("admin");

    // The list has everyone, and nothing of their passwords.
    let listed = root.get("/v1/users").await;
    listed.expect(200);
    no_password_material(&listed);
    let users = listed.body.as_array().expect("a list");
    let emails: Vec<&str> = users.iter().filter_map(|u| u["email"].as_str()).collect();
    assert_eq!(users.len(), 3, "{emails:?}");
    for email in [root.email.as_str(), "Ada@Example.com", "bob@example.com"] {
        assert!(emails.contains(&email), "{email} in {emails:?}");
    }
    let listed_ada = users
        .iter()
        .find(|u| u["id"] == created.id().as_str())
        .expect("ada listed");
    assert_eq!(listed_ada, ada, "the list shows what create answered");
}

#[tokio::test]
async fn patch_edits_name_role_and_password_and_a_reset_ends_sessions() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let (email, id) = server.create_admin_with_id("viewer").await;
    let ada = server.login(&email).await;
    let path = format!("/v1/users/{id}");

    // The name: her session lives on.
    let renamed = root.patch(&path, json!({"name": "Ada Lovelace"})).await;
    renamed.expect(200);
    assert_eq!(renamed.body["name"], "Ada Lovelace");
    assert_eq!(renamed.body["email"], email.as_str());
    let me = ada.get("/v1/auth/me").await;
    me.expect(200);
    assert_eq!(me.body["name"], "Ada Lovelace");

    // The role: her very next request (same cookie) has the new permissions.
    ada.post(
        "/v1/tokens",
        json!({"name": "before", "type": "read-only", "lifespan": "7d"}),
    )
    .await
    .expect_error(403, "forbidden");
    let promoted = root.patch(&path, json!({"role": "token-manager"})).await;
    promoted.expect(200);
    assert_eq!(promoted.body["role"], "token-manager");
    ada.create_token(json!({"name": "after", "type": "read-only", "lifespan": "7d"}))
        .await;
    assert_eq!(ada.get("/v1/auth/me").await.body["role"], "token-manager");

    // Bad fields are named; nothing changes.
    root.patch(&path, json!({"role": "no-such-role"}))
        .await
        .expect_invalid("role");
    root.patch(&path, json!({"password": "short"}))
        .await
        .expect_invalid("password");
    root.patch(&path, json!({"email": "nope"}))
        .await
        .expect_invalid("email");
    root.patch(&path, json!({"active": "no"}))
        .await
        .expect_invalid("active");
    root.patch(&path, json!({"password_hash": "x"}))
        .await
        .expect_invalid("password_hash");
    ada.get("/v1/auth/me").await.expect(200);
    let unknown = "/v1/users/01900000-0000-7000-8000-000000000000";
    root.patch(unknown, json!({"name": "x"}))
        .await
        .expect_error(404, "not_found");
    root.patch("/v1/users/not-a-uuid", json!({"name": "x"}))
        .await
        .expect_error(404, "not_found");

    // A password reset ends her session at once and replaces the password.
    let reset = root
        .patch(&path, json!({"password": "a brand new password"}))
        .await;
    reset.expect(200);
    no_password_material(&reset);
    assert!(!reset.text.contains("a brand new password"));
    ada.get("/v1/auth/me")
        .await
        .expect_error(401, "unauthenticated");
    ada.post(
        "/v1/tokens",
        json!({"name": "after reset", "type": "read-only", "lifespan": "7d"}),
    )
    .await
    .expect_error(401, "unauthenticated");
    login_fails(&server, &email, PASSWORD).await;
    let again = server.login_with(&email, "a brand new password").await;
    again.get("/v1/auth/me").await.expect(200);
    // Other users' sessions are untouched.
    root.get("/v1/auth/me").await.expect(200);
}

#[tokio::test]
async fn deactivation_ends_sessions_and_personal_tokens_and_reactivation_revives_neither_session() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let (email, id) = server.create_admin_with_id("token-manager").await;
    let ada = server.login(&email).await;
    let (_, personal) = ada.personal_token("laptop", "full").await;
    server
        .bearer(&personal, Method::GET, "/v1/tokens", None)
        .await
        .expect(200);
    assert!(server.signs_in(&personal).await);

    let path = format!("/v1/users/{id}");
    let deactivated = root.patch(&path, json!({"active": false})).await;
    deactivated.expect(200);
    assert_eq!(deactivated.body["active"], false);
    // At once: the session, the personal token on management routes and on verify.
    ada.get("/v1/auth/me")
        .await
        .expect_error(401, "unauthenticated");
    for (method, route) in [(Method::GET, "/v1/tokens"), (Method::GET, "/v1/auth/me")] {
        server
            .bearer(&personal, method, route, None)
            .await
            .expect_error(401, "unauthenticated");
    }
    assert!(!server.signs_in(&personal).await);
    login_fails(&server, &email, PASSWORD).await;
    let listed = root.get("/v1/users").await;
    let listed_ada = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["id"] == id.as_str())
        .cloned()
        .expect("a deactivated user is still listed");
    assert_eq!(listed_ada["active"], false);

    // Reactivation: the old session stays dead; she signs in again; the personal
    // token (never revoked) acts again.
    root.patch(&path, json!({"active": true})).await.expect(200);
    ada.get("/v1/auth/me")
        .await
        .expect_error(401, "unauthenticated");
    let again = server.login(&email).await;
    again.get("/v1/auth/me").await.expect(200);
    assert!(server.signs_in(&personal).await);
    server
        .bearer(&personal, Method::GET, "/v1/tokens", None)
        .await
        .expect(200);
}

#[tokio::test]
async fn delete_ends_sessions_and_removes_personal_tokens() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let (email, id) = server.create_admin_with_id("token-manager").await;
    let ada = server.login(&email).await;
    let (_, personal) = ada.personal_token("laptop", "full").await;
    let (_, read_only) = ada.personal_token("ci", "read-only").await;
    // Her API token outlives her: API tokens belong to the service, not the person.
    let (_, api_secret) = ada.token("made by ada").await;

    let path = format!("/v1/users/{id}");
    let deleted = root.delete(&path).await;
    deleted.expect(204);
    assert!(deleted.text.is_empty());
    ada.get("/v1/auth/me")
        .await
        .expect_error(401, "unauthenticated");
    for secret in [&personal, &read_only] {
        assert_eq!(server.code(secret, None, None).await, "not_found");
        for (method, route) in [(Method::GET, "/v1/tokens"), (Method::GET, "/v1/auth/me")] {
            server
                .bearer(secret, method, route, None)
                .await
                .expect_error(401, "unauthenticated");
        }
    }
    assert_eq!(server.code(&api_secret, None, None).await, "valid");
    login_fails(&server, &email, PASSWORD).await;
    root.delete(&path).await.expect_error(404, "not_found");
    root.get(&format!("/v1/users/{id}/tokens"))
        .await
        .expect_error(404, "not_found");
    let listed = root.get("/v1/users").await;
    assert!(
        !listed.text.contains(&id),
        "a deleted user is not listed: {}",
        listed.text
    );
    // The email is free again.
    create_user(&root, json!({"email": email, "role": "viewer"})).await;
}

#[tokio::test]
async fn no_one_locks_themselves_out_and_the_last_super_admin_stays() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let me = format!("/v1/users/{}", root.id);
    // A custom role that manages users, but is not a super-admin.
    root.post(
        "/v1/roles",
        json!({"name": "user-admin", "permissions": ["users.manage"]}),
    )
    .await
    .expect(201);
    let user_admin = server.admin("user-admin").await;

    // A user manager without every permission cannot touch a super-admin at all.
    for body in [json!({"role": "viewer"}), json!({"active": false})] {
        user_admin
            .patch(&me, body)
            .await
            .expect_error(403, "forbidden");
    }
    user_admin.delete(&me).await.expect_error(403, "forbidden");
    // Nobody deactivates, demotes or deletes themselves: they would be locked out.
    for body in [json!({"role": "viewer"}), json!({"active": false})] {
        let refused = root.patch(&me, body.clone()).await;
        refused.expect_error(409, "conflict");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("yourself") || m.contains("your own")),
            "the message says why: {}",
            refused.text
        );
    }
    root.delete(&me).await.expect_error(409, "conflict");
    // A role holding every permission reaches a super-admin, but not the last one.
    root.post(
        "/v1/roles",
        json!({"name": "everything", "permissions": [
            "tokens.read", "tokens.create", "tokens.update", "tokens.regenerate",
            "tokens.delete", "resources.manage", "projects.manage", "users.manage",
            "roles.manage", "audit.read"]}),
    )
    .await
    .expect(201);
    let everything = server.admin("everything").await;
    for body in [json!({"role": "viewer"}), json!({"active": false})] {
        let refused = everything.patch(&me, body.clone()).await;
        refused.expect_error(409, "conflict");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("super-admin")),
            "the message says why: {}",
            refused.text
        );
    }
    everything.delete(&me).await.expect_error(409, "conflict");
    // Nothing changed: still the one active super-admin, signed in.
    let still = root.get("/v1/auth/me").await;
    still.expect(200);
    assert_eq!(still.body["role"], "super-admin");
    assert_eq!(still.body["active"], true);
    // A harmless edit of oneself is fine.
    root.patch(
        &me,
        json!({"name": "Root", "role": "super-admin", "active": true}),
    )
    .await
    .expect(200);

    // With a second super-admin, one of them may go; then the other is the last.
    let (second_email, second_id) = server.create_admin_with_id("super-admin").await;
    let second = format!("/v1/users/{second_id}");
    // A deactivated super-admin does not count.
    root.patch(&second, json!({"active": false}))
        .await
        .expect(200);
    everything
        .patch(&me, json!({"role": "viewer"}))
        .await
        .expect_error(409, "conflict");
    everything.delete(&me).await.expect_error(409, "conflict");
    root.patch(&second, json!({"active": true}))
        .await
        .expect(200);
    let second_admin = server.login(&second_email).await;
    let demoted = second_admin.patch(&me, json!({"role": "viewer"})).await;
    demoted.expect(200);
    assert_eq!(demoted.body["role"], "viewer");
    for body in [json!({"role": "token-manager"}), json!({"active": false})] {
        everything
            .patch(&second, body)
            .await
            .expect_error(409, "conflict");
    }
    everything
        .delete(&second)
        .await
        .expect_error(409, "conflict");
    // The demoted one may now be deleted.
    second_admin.delete(&me).await.expect(204);
}

#[tokio::test]
async fn a_user_manager_cannot_revoke_the_personal_tokens_of_a_stronger_role() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.post(
        "/v1/roles",
        json!({"name": "user-admin", "permissions": ["users.manage", "tokens.read"]}),
    )
    .await
    .expect(201);
    let user_admin = server.admin("user-admin").await;
    let (root_token, root_secret) = root.personal_token("root laptop", "full").await;
    let viewer = server.admin("viewer").await;
    let (viewer_token, viewer_secret) = viewer.personal_token("viewer laptop", "read-only").await;

    let refused = user_admin
        .delete(&format!("/v1/users/{}/tokens/{root_token}", root.id))
        .await;
    refused.expect_error(403, "forbidden");
    assert!(server.signs_in(&root_secret).await, "the token still works");
    // Within reach, it works.
    user_admin
        .delete(&format!("/v1/users/{}/tokens/{viewer_token}", viewer.id))
        .await
        .expect(204);
    assert!(!server.signs_in(&viewer_secret).await);
}
