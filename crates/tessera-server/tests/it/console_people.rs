//! The console's users, roles and audit pages over HTTP: form posts with the session
//! cookie and the CSRF field, redirects not followed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Admin, TestServer};

/// What a page or a form post answered.
struct Page {
    status: u16,
    location: Option<String>,
    text: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn read(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    Page {
        status,
        location,
        text,
    }
}

async fn get_page(server: &TestServer, admin: &Admin, path: &str) -> Page {
    let response = client()
        .get(server.url(path))
        .header("cookie", format!("tessera_session={}", admin.session))
        .send()
        .await
        .expect("request");
    read(response).await
}

/// Posts `pairs` with the admin's CSRF token added.
async fn post_form(server: &TestServer, admin: &Admin, path: &str, pairs: &[(&str, &str)]) -> Page {
    let mut form: Vec<(&str, &str)> = vec![("csrf", admin.csrf.as_str())];
    form.extend_from_slice(pairs);
    post_raw(server, admin, path, &form).await
}

/// Posts exactly `pairs` (no CSRF token added).
async fn post_raw(server: &TestServer, admin: &Admin, path: &str, pairs: &[(&str, &str)]) -> Page {
    let response = client()
        .post(server.url(path))
        .header("cookie", format!("tessera_session={}", admin.session))
        .form(pairs)
        .send()
        .await
        .expect("request");
    read(response).await
}

#[track_caller]
fn redirected(page: &Page, to: &str) {
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.location.as_deref(), Some(to));
}

async fn user_by_email(admin: &Admin, email: &str) -> Option<Value> {
    let listed = admin.get("/v1/users").await;
    listed.expect(200);
    listed
        .body
        .as_array()
        .expect("a list")
        .iter()
        .find(|user| user["email"] == email)
        .cloned()
}

async fn role(admin: &Admin, id: &str) -> Option<Value> {
    let listed = admin.get("/v1/roles").await;
    listed.expect(200);
    let roles = listed.body.as_array().cloned().unwrap_or_default();
    roles.into_iter().find(|role| role["id"] == id)
}

#[tokio::test]
async fn a_super_admin_invites_changes_deactivates_and_deletes_a_user() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;

    let page = get_page(&server, &root, "/admin/users").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains(&root.email));

    let invited = post_form(
        &server,
        &root,
        "/admin/users",
        &[
            ("email", "grace@example.com"),
            ("name", "Grace Hopper"),
            ("role", "viewer"),
            ("password", "grace's long password"),
        ],
    )
    .await;
    redirected(&invited, "/admin/users?done=invited");
    let grace = user_by_email(&root, "grace@example.com")
        .await
        .expect("the invited user is listed");
    assert_eq!(grace["name"], "Grace Hopper");
    assert_eq!(grace["role"], "viewer");
    let id = grace["id"].as_str().expect("id").to_owned();
    let page = get_page(&server, &root, "/admin/users?done=invited").await;
    assert!(page.text.contains("The user is invited."));
    assert!(page.text.contains("Grace Hopper"));
    assert!(
        page.text
            .contains("data-confirm=\"Delete the user “Grace Hopper”?")
    );
    // One's own row offers no way to lock oneself out.
    assert!(page.text.contains("This is you"));
    assert_eq!(page.text.matches("data-action=\"deactivate\"").count(), 1);
    assert_eq!(page.text.matches("data-action=\"delete\"").count(), 1);

    // Grace can sign in with the initial password.
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": "grace@example.com", "password": "grace's long password"})),
        )
        .await
        .expect(200);

    let path = format!("/admin/users/{id}");
    let changed = post_form(
        &server,
        &root,
        &path,
        &[("op", "role"), ("role", "token-manager")],
    )
    .await;
    redirected(&changed, "/admin/users?done=role");
    let grace = user_by_email(&root, "grace@example.com")
        .await
        .expect("listed");
    assert_eq!(grace["role"], "token-manager");

    let deactivated = post_form(
        &server,
        &root,
        &path,
        &[("op", "active"), ("active", "false")],
    )
    .await;
    redirected(&deactivated, "/admin/users?done=deactivated");
    let grace = user_by_email(&root, "grace@example.com")
        .await
        .expect("listed");
    assert_eq!(grace["active"], false);
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": "grace@example.com", "password": "grace's long password"})),
        )
        .await
        .expect_error(401, "unauthenticated");

    let reactivated = post_form(
        &server,
        &root,
        &path,
        &[("op", "active"), ("active", "true")],
    )
    .await;
    redirected(&reactivated, "/admin/users?done=reactivated");

    // A too-short password comes back on the page, in the user's row.
    let short = post_form(
        &server,
        &root,
        &path,
        &[("op", "password"), ("password", "short")],
    )
    .await;
    assert_eq!(short.status, 422, "{}", short.text);
    assert!(short.text.contains(&format!("row-error-{id}")));
    let reset = post_form(
        &server,
        &root,
        &path,
        &[("op", "password"), ("password", "a brand new password")],
    )
    .await;
    redirected(&reset, "/admin/users?done=password");
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": "grace@example.com", "password": "a brand new password"})),
        )
        .await
        .expect(200);

    let deleted = post_form(&server, &root, &format!("{path}/delete"), &[]).await;
    redirected(&deleted, "/admin/users?done=deleted");
    assert!(user_by_email(&root, "grace@example.com").await.is_none());
}

#[tokio::test]
async fn a_bad_email_comes_back_with_the_form_as_typed() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let page = post_form(
        &server,
        &root,
        "/admin/users",
        &[
            ("email", "not-an-email"),
            ("name", "Typed Name"),
            ("role", "token-manager"),
            ("password", ""),
        ],
    )
    .await;
    assert_eq!(page.status, 422, "{}", page.text);
    assert!(page.text.contains("id=\"email-error\""), "{}", page.text);
    assert!(page.text.contains("value=\"Typed Name\""));
    assert!(page.text.contains("value=\"not-an-email\""));
    assert!(page.text.contains("id=\"form-errors\""));
    assert!(user_by_email(&root, "not-an-email").await.is_none());
}

#[tokio::test]
async fn roles_are_created_edited_and_deleted() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;

    let page = get_page(&server, &root, "/admin/roles").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("data-role=\"super-admin\""));
    assert!(page.text.contains("Read the audit log"));

    let created = post_form(
        &server,
        &root,
        "/admin/roles",
        &[
            ("name", "auditors"),
            ("description", "Read-only reviewers"),
            ("permissions", "tokens.read"),
            ("permissions", "audit.read"),
        ],
    )
    .await;
    redirected(&created, "/admin/roles?done=created");
    let auditors = role(&root, "auditors").await.expect("the role exists");
    assert_eq!(auditors["description"], "Read-only reviewers");
    assert_eq!(
        auditors["permissions"],
        json!(["tokens.read", "audit.read"])
    );

    let saved = post_form(
        &server,
        &root,
        "/admin/roles/auditors",
        &[
            ("description", "Reviewers"),
            ("permissions", "audit.read"),
            ("permissions", "projects.manage"),
        ],
    )
    .await;
    redirected(&saved, "/admin/roles?done=saved");
    let auditors = role(&root, "auditors").await.expect("the role exists");
    assert_eq!(auditors["description"], "Reviewers");
    assert_eq!(
        auditors["permissions"],
        json!(["projects.manage", "audit.read"])
    );

    // A bad name comes back with what was typed.
    let bad = post_form(
        &server,
        &root,
        "/admin/roles",
        &[("name", "Bad Name"), ("permissions", "tokens.read")],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.text.contains("role-name-error"));
    assert!(bad.text.contains("value=\"Bad Name\""));

    let deleted = post_form(&server, &root, "/admin/roles/auditors/delete", &[]).await;
    redirected(&deleted, "/admin/roles?done=deleted");
    assert!(role(&root, "auditors").await.is_none());
}

#[tokio::test]
async fn the_audit_page_lists_and_filters_entries() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.post(
        "/v1/tokens",
        json!({"name": "audited", "type": "read-only", "lifespan": "7d"}),
    )
    .await
    .expect(201);
    root.post(
        "/v1/users",
        json!({"email": "ada@example.com", "role": "viewer"}),
    )
    .await
    .expect(201);

    let page = get_page(&server, &root, "/admin/audit").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("data-action=\"token.create\""));
    assert!(page.text.contains("data-action=\"user.create\""));
    assert!(page.text.contains("<time datetime=\""));

    let filtered = get_page(&server, &root, "/admin/audit?action=token.create").await;
    assert_eq!(filtered.status, 200);
    assert!(filtered.text.contains("data-action=\"token.create\""));
    assert!(!filtered.text.contains("data-action=\"user.create\""));
    assert!(filtered.text.contains("value=\"token.create\""));
    assert!(filtered.text.contains("id=\"clear-filters\""));

    let bad = get_page(&server, &root, "/admin/audit?since=yesterday").await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("since-error"));
}

#[tokio::test]
async fn a_viewer_is_refused_every_page_and_post() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let viewer = server.admin("viewer").await;
    for path in ["/admin/users", "/admin/roles", "/admin/audit"] {
        assert_eq!(get_page(&server, &viewer, path).await.status, 403, "{path}");
    }
    let posts: [(String, Vec<(&str, &str)>); 6] = [
        (
            "/admin/users".into(),
            vec![("email", "x@example.com"), ("role", "viewer")],
        ),
        (
            format!("/admin/users/{}", root.id),
            vec![("op", "active"), ("active", "false")],
        ),
        (format!("/admin/users/{}/delete", root.id), vec![]),
        (
            "/admin/roles".into(),
            vec![("name", "sneaky"), ("permissions", "users.manage")],
        ),
        (
            "/admin/roles/viewer".into(),
            vec![("permissions", "users.manage")],
        ),
        ("/admin/roles/token-manager/delete".into(), vec![]),
    ];
    for (path, pairs) in &posts {
        let page = post_form(&server, &viewer, path, pairs).await;
        assert_eq!(page.status, 403, "{path}: {}", page.text);
    }
    assert!(user_by_email(&root, "x@example.com").await.is_none());
    assert!(role(&root, "sneaky").await.is_none());
    let me = user_by_email(&root, &root.email).await.expect("listed");
    assert_eq!(me["active"], true);
}

#[tokio::test]
async fn a_post_without_the_right_csrf_is_refused() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let pairs = [
        ("email", "csrf@example.com"),
        ("name", "Forged"),
        ("role", "viewer"),
    ];
    let missing = post_raw(&server, &root, "/admin/users", &pairs).await;
    assert_eq!(missing.status, 403);
    let mut wrong = vec![("csrf", "not-the-token")];
    wrong.extend_from_slice(&pairs);
    let forged = post_raw(&server, &root, "/admin/users", &wrong).await;
    assert_eq!(forged.status, 403);
    let role_post = post_raw(
        &server,
        &root,
        "/admin/roles",
        &[("csrf", "not-the-token"), ("name", "forged")],
    )
    .await;
    assert_eq!(role_post.status, 403);
    assert!(user_by_email(&root, "csrf@example.com").await.is_none());
    assert!(role(&root, "forged").await.is_none());
}
