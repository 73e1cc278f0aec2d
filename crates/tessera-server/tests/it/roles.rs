//! `/v1/roles`: the built-in roles, custom roles, their protection, and permission
//! changes taking effect on the next request of sessions and personal tokens.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Admin, TestServer};

const ALL: [&str; 10] = [
    "tokens.read",
    "tokens.create",
    "tokens.update",
    "tokens.regenerate",
    "tokens.delete",
    "resources.manage",
    "projects.manage",
    "users.manage",
    "roles.manage",
    "audit.read",
];

fn set(values: &Value) -> BTreeSet<String> {
    values
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn strings(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// The role `name` as `GET /v1/roles` shows it, if listed.
async fn listed(admin: &Admin, name: &str) -> Option<Value> {
    let response = admin.get("/v1/roles").await;
    response.expect(200);
    response
        .body
        .as_array()
        .expect("a list")
        .iter()
        .find(|role| role["name"] == name)
        .cloned()
}

#[tokio::test]
async fn built_in_roles_are_listed_and_protected() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let response = root.get("/v1/roles").await;
    response.expect(200);
    let roles = response.body.as_array().expect("a list");
    assert_eq!(roles.len(), 3, "{}", response.text);
    let expected = [
        ("super-admin", &ALL[..], false),
        (
            "token-manager",
            &[
                "tokens.read",
                "tokens.create",
                "tokens.update",
                "tokens.regenerate",
                "tokens.delete",
                "audit.read",
            ][..],
            true,
        ),
        ("viewer", &["tokens.read"][..], true),
    ];
    for (name, permissions, editable) in expected {
        let role = roles
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {}", response.text));
        assert_eq!(role["id"], name, "a role's id is its name");
        assert_eq!(role["builtin"], true, "{role}");
        assert_eq!(role["editable"], editable, "{role}");
        assert_eq!(set(&role["permissions"]), strings(permissions), "{name}");
        assert!(role["description"].is_string(), "{role}");
    }

    // super-admin: neither edited nor deleted; no built-in role is deleted.
    for body in [
        json!({"permissions": ["tokens.read"]}),
        json!({"description": "renamed"}),
        json!({}),
    ] {
        root.patch("/v1/roles/super-admin", body)
            .await
            .expect_error(409, "conflict");
    }
    for name in ["super-admin", "token-manager", "viewer"] {
        root.delete(&format!("/v1/roles/{name}"))
            .await
            .expect_error(409, "conflict");
    }
    let unchanged = listed(&root, "super-admin").await.expect("listed");
    assert_eq!(set(&unchanged["permissions"]), strings(&ALL));
    root.get("/v1/auth/me").await.expect(200);

    // viewer is editable, and a viewer's session sees the change on its next request.
    let viewer = server.admin("viewer").await;
    viewer.get("/v1/audit").await.expect_error(403, "forbidden");
    let edited = root
        .patch(
            "/v1/roles/viewer",
            json!({"description": "Reads tokens and the log",
                   "permissions": ["tokens.read", "audit.read"]}),
        )
        .await;
    edited.expect(200);
    assert_eq!(edited.body["description"], "Reads tokens and the log");
    assert_eq!(
        set(&edited.body["permissions"]),
        strings(&["tokens.read", "audit.read"])
    );
    assert_eq!(edited.body["builtin"], true);
    viewer.get("/v1/audit").await.expect(200);
    assert_eq!(
        listed(&root, "viewer").await.expect("listed")["permissions"],
        edited.body["permissions"]
    );
    // A patch without permissions keeps them.
    let described = root
        .patch("/v1/roles/viewer", json!({"description": "again"}))
        .await;
    described.expect(200);
    assert_eq!(described.body["permissions"], edited.body["permissions"]);

    // Unknown roles and bad bodies.
    root.patch("/v1/roles/nope", json!({"description": "x"}))
        .await
        .expect_error(404, "not_found");
    root.delete("/v1/roles/nope")
        .await
        .expect_error(404, "not_found");
    root.patch("/v1/roles/viewer", json!({"permissions": ["tokens.fly"]}))
        .await
        .expect_error(422, "validation_failed");
    root.patch("/v1/roles/viewer", json!({"name": "renamed"}))
        .await
        .expect_invalid("name");
}

#[tokio::test]
async fn custom_roles_are_created_validated_and_deleted_unless_in_use() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let created = root
        .post(
            "/v1/roles",
            json!({"name": "auditor", "description": "Reads the log",
                   "permissions": ["audit.read"]}),
        )
        .await;
    created.expect(201);
    assert_eq!(created.body["id"], "auditor");
    assert_eq!(created.body["name"], "auditor");
    assert_eq!(created.body["description"], "Reads the log");
    assert_eq!(created.body["permissions"], json!(["audit.read"]));
    assert_eq!(created.body["builtin"], false);
    assert_eq!(created.body["editable"], true);
    assert_eq!(listed(&root, "auditor").await, Some(created.body.clone()));
    // Without a description, and with no permissions at all.
    let empty = root
        .post("/v1/roles", json!({"name": "nobody", "permissions": []}))
        .await;
    empty.expect(201);
    assert_eq!(empty.body["description"], "");
    assert_eq!(empty.body["permissions"], json!([]));

    // Names are unique, built-in ones included.
    for name in ["auditor", "viewer", "super-admin"] {
        root.post(
            "/v1/roles",
            json!({"name": name, "permissions": ["tokens.read"]}),
        )
        .await
        .expect_error(409, "conflict");
    }
    // Bad names and unknown permissions are named.
    for name in [
        "Auditor",
        "two words",
        "",
        "-lead",
        &"a".repeat(64),
        "ops_team",
    ] {
        root.post(
            "/v1/roles",
            json!({"name": name, "permissions": ["tokens.read"]}),
        )
        .await
        .expect_invalid("name");
    }
    for permission in ["tokens.fly", "tokens.*", "article.find", "", "TOKENS.READ"] {
        let refused = root
            .post(
                "/v1/roles",
                json!({"name": "ops", "permissions": ["tokens.read", permission]}),
            )
            .await;
        refused.expect_error(422, "validation_failed");
        let details = refused.body["error"]["details"]
            .as_object()
            .expect("details");
        assert!(
            details.keys().any(|key| key.starts_with("permissions")),
            "the details name the permissions: {}",
            refused.text
        );
    }
    root.post("/v1/roles", json!({"name": "ops"}))
        .await
        .expect_invalid("permissions");
    root.post(
        "/v1/roles",
        json!({"name": "ops", "permissions": [], "builtin": true}),
    )
    .await
    .expect_invalid("builtin");
    assert!(listed(&root, "ops").await.is_none(), "nothing was created");

    // An auditor reads the log and nothing else.
    let (first_email, first_id) = server.create_admin_with_id("auditor").await;
    let auditor = server.login(&first_email).await;
    auditor.get("/v1/audit").await.expect(200);
    auditor
        .get("/v1/tokens")
        .await
        .expect_error(403, "forbidden");
    let (second_email, second_id) = server.create_admin_with_id("auditor").await;

    // In use: 409 naming every holder.
    let refused = root.delete("/v1/roles/auditor").await;
    refused.expect_error(409, "conflict");
    let message = refused.body["error"]["message"].as_str().expect("message");
    for email in [&first_email, &second_email] {
        assert!(message.contains(email.as_str()), "{email} in {message}");
    }
    auditor.get("/v1/audit").await.expect(200);
    // A deactivated holder still holds it.
    root.patch(&format!("/v1/users/{first_id}"), json!({"active": false}))
        .await
        .expect(200);
    root.patch(&format!("/v1/users/{second_id}"), json!({"role": "viewer"}))
        .await
        .expect(200);
    let refused = root.delete("/v1/roles/auditor").await;
    refused.expect_error(409, "conflict");
    let message = refused.body["error"]["message"].as_str().expect("message");
    assert!(message.contains(first_email.as_str()), "{message}");
    assert!(!message.contains(second_email.as_str()), "{message}");
    root.delete(&format!("/v1/users/{first_id}"))
        .await
        .expect(204);
    let deleted = root.delete("/v1/roles/auditor").await;
    deleted.expect(204);
    assert!(deleted.text.is_empty());
    assert!(listed(&root, "auditor").await.is_none());
    root.delete("/v1/roles/auditor")
        .await
        .expect_error(404, "not_found");
    // Once gone, the role cannot be given.
    root.post(
        "/v1/users",
        json!({"email": "late@example.com", "role": "auditor"}),
    )
    .await
    .expect_invalid("role");
    // Custom roles can be edited.
    let edited = root
        .patch("/v1/roles/nobody", json!({"permissions": ["tokens.read"]}))
        .await;
    edited.expect(200);
    assert_eq!(edited.body["permissions"], json!(["tokens.read"]));
}

#[tokio::test]
async fn a_permission_downgrade_applies_to_the_next_request_of_sessions_and_personal_tokens() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.post(
        "/v1/roles",
        json!({"name": "ops", "permissions": ["tokens.read", "tokens.create"]}),
    )
    .await
    .expect(201);
    let ops = server.admin("ops").await;
    let (_, personal) = ops.personal_token("laptop", "full").await;
    let create =
        |n: u32| json!({"name": format!("made {n}"), "type": "read-only", "lifespan": "7d"});
    ops.post("/v1/tokens", create(1)).await.expect(201);
    server
        .bearer(&personal, Method::POST, "/v1/tokens", Some(create(2)))
        .await
        .expect(201);

    root.patch("/v1/roles/ops", json!({"permissions": ["tokens.read"]}))
        .await
        .expect(200);
    // The same cookie, the very next request.
    ops.post("/v1/tokens", create(3))
        .await
        .expect_error(403, "forbidden");
    server
        .bearer(&personal, Method::POST, "/v1/tokens", Some(create(4)))
        .await
        .expect_error(403, "forbidden");
    ops.get("/v1/tokens").await.expect(200);
    server
        .bearer(&personal, Method::GET, "/v1/tokens", None)
        .await
        .expect(200);
    let me = ops.get("/v1/auth/me").await;
    assert_eq!(me.body["permissions"], json!(["tokens.read"]));

    // Down to nothing, then up again: each applies at once.
    root.patch("/v1/roles/ops", json!({"permissions": []}))
        .await
        .expect(200);
    ops.get("/v1/tokens").await.expect_error(403, "forbidden");
    server
        .bearer(&personal, Method::GET, "/v1/tokens", None)
        .await
        .expect_error(403, "forbidden");
    ops.get("/v1/auth/me").await.expect(200);
    root.patch(
        "/v1/roles/ops",
        json!({"permissions": ["tokens.read", "audit.read"]}),
    )
    .await
    .expect(200);
    ops.get("/v1/audit").await.expect(200);
    server
        .bearer(&personal, Method::GET, "/v1/audit", None)
        .await
        .expect(200);

    // Changing the user's role applies at once too.
    root.patch(&format!("/v1/users/{}", ops.id), json!({"role": "viewer"}))
        .await
        .expect(200);
    ops.get("/v1/audit").await.expect_error(403, "forbidden");
    server
        .bearer(&personal, Method::GET, "/v1/audit", None)
        .await
        .expect_error(403, "forbidden");
    let listed = root.get("/v1/tokens").await;
    let names: Vec<&str> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"made 1") && names.contains(&"made 2"));
    assert!(!names.contains(&"made 3") && !names.contains(&"made 4"));
}
