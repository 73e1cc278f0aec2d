//! `/v1/resources`, `/v1/projects`, `/v1/api-versions`, and how catalog changes reach
//! verification.

use serde_json::{Value, json};

use crate::harness::TestServer;

#[tokio::test]
async fn resources_crud() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let viewer = server.admin("viewer").await;
    assert_eq!(admin.get("/v1/resources").await.body, json!([]));

    let created = admin
        .post(
            "/v1/resources",
            json!({"name": "article", "description": "Articles", "actions": [
                {"name": "find", "kind": "read"},
                {"name": "create", "kind": "write"}
            ]}),
        )
        .await;
    created.expect(201);
    assert_eq!(
        created.body,
        json!({"name": "article", "description": "Articles", "actions": [
            {"name": "find", "kind": "read"},
            {"name": "create", "kind": "write"}
        ]})
    );
    // Description is optional.
    admin
        .post(
            "/v1/resources",
            json!({"name": "order_line-2", "actions": [{"name": "list", "kind": "read"}]}),
        )
        .await
        .expect(201);
    let listed = viewer.get("/v1/resources").await;
    listed.expect(200);
    let names: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert!(
        names.contains(&"article") && names.contains(&"order_line-2"),
        "{names:?}"
    );

    admin
        .post(
            "/v1/resources",
            json!({"name": "article", "actions": [{"name": "find", "kind": "read"}]}),
        )
        .await
        .expect_error(409, "conflict");

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "1article", "actions": [{"name": "find", "kind": "read"}]}),
            "name",
        ),
        (
            json!({"name": "has space", "actions": [{"name": "find", "kind": "read"}]}),
            "name",
        ),
        (
            json!({"name": "", "actions": [{"name": "find", "kind": "read"}]}),
            "name",
        ),
        (
            json!({"name": "a".repeat(65), "actions": [{"name": "find", "kind": "read"}]}),
            "name",
        ),
        (
            json!({"name": "dotted.name", "actions": [{"name": "find", "kind": "read"}]}),
            "name",
        ),
        (json!({"name": "ok", "actions": []}), "actions"),
        (
            json!({"name": "ok", "actions": [{"name": "bad name", "kind": "read"}]}),
            "actions[0].name",
        ),
        (
            json!({"name": "ok", "actions": [{"name": "find", "kind": "read"}, {"name": "find", "kind": "write"}]}),
            "actions[1].name",
        ),
        (
            json!({"name": "ok", "actions": [{"name": "find", "kind": "execute"}]}),
            "actions[0].kind",
        ),
        (
            json!({"name": "ok", "actions": [{"name": "find", "kind": "read"}], "extra": 1}),
            "extra",
        ),
        (
            json!({"name": "ok", "description": "d".repeat(501), "actions": [{"name": "find", "kind": "read"}]}),
            "description",
        ),
        (json!({"name": "ok"}), "actions"),
        (
            json!({"name": "ok", "actions": [{"name": "find"}]}),
            "actions[0].kind",
        ),
        (
            json!({"actions": [{"name": "find", "kind": "read"}]}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let response = admin.post("/v1/resources", body.clone()).await;
        assert_eq!(response.status, 422, "{body} → {}", response.text);
        response.expect_invalid(field);
    }

    let patched = admin
        .patch(
            "/v1/resources/article",
            json!({"actions": [
                {"name": "find", "kind": "read"},
                {"name": "findOne", "kind": "read"},
                {"name": "delete", "kind": "write"}
            ]}),
        )
        .await;
    patched.expect(200);
    assert_eq!(patched.body["description"], "Articles", "description kept");
    assert_eq!(
        patched.body["actions"].as_array().expect("actions").len(),
        3
    );
    let described = admin
        .patch(
            "/v1/resources/article",
            json!({"description": "Blog articles"}),
        )
        .await;
    described.expect(200);
    assert_eq!(described.body["description"], "Blog articles");
    assert_eq!(
        described.body["actions"].as_array().expect("actions").len(),
        3,
        "actions kept"
    );
    admin
        .patch("/v1/resources/article", json!({"actions": []}))
        .await
        .expect_invalid("actions");
    admin
        .patch("/v1/resources/article", json!({"name": "renamed"}))
        .await
        .expect_invalid("name");
    admin
        .patch("/v1/resources/missing", json!({"description": "x"}))
        .await
        .expect_error(404, "not_found");

    admin.delete("/v1/resources/article").await.expect(204);
    admin
        .delete("/v1/resources/article")
        .await
        .expect_error(404, "not_found");
    let after = admin.get("/v1/resources").await;
    assert_eq!(after.body.as_array().expect("list").len(), 1);
}

#[tokio::test]
async fn removing_an_action_revokes_it_at_verify_time() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let full = admin
        .create_token(json!({"name": "full", "type": "full-access", "lifespan": "7d"}))
        .await
        .secret();
    let custom = admin
        .create_token(json!({"name": "custom", "type": "custom", "lifespan": "7d",
            "permissions": ["article.delete", "article.find"]}))
        .await
        .secret();
    let read_only = admin
        .create_token(json!({"name": "reader", "type": "read-only", "lifespan": "7d"}))
        .await
        .secret();
    for secret in [&full, &custom] {
        assert_eq!(
            server.code(secret, Some("article.delete"), None).await,
            "valid"
        );
        assert_eq!(
            server.code(secret, Some("article.find"), None).await,
            "valid"
        );
    }
    assert_eq!(
        server.code(&read_only, Some("article.find"), None).await,
        "valid"
    );
    assert_eq!(
        server.code(&read_only, Some("article.delete"), None).await,
        "forbidden"
    );

    // Drop `delete`; add `archive` (write) and `count` (read).
    admin
        .patch(
            "/v1/resources/article",
            json!({"actions": [
                {"name": "find", "kind": "read"},
                {"name": "create", "kind": "write"},
                {"name": "archive", "kind": "write"},
                {"name": "count", "kind": "read"}
            ]}),
        )
        .await
        .expect(200);
    for secret in [&full, &custom] {
        assert_eq!(
            server.code(secret, Some("article.delete"), None).await,
            "forbidden"
        );
        assert_eq!(
            server.code(secret, Some("article.find"), None).await,
            "valid"
        );
    }
    // Full access and read-only follow the catalog as it grows; custom does not.
    assert_eq!(
        server.code(&full, Some("article.archive"), None).await,
        "valid"
    );
    assert_eq!(
        server.code(&custom, Some("article.archive"), None).await,
        "forbidden"
    );
    assert_eq!(
        server.code(&read_only, Some("article.count"), None).await,
        "valid"
    );
    assert_eq!(
        server.code(&read_only, Some("article.archive"), None).await,
        "forbidden"
    );

    // Deleting the whole resource revokes everything on it.
    admin.delete("/v1/resources/article").await.expect(204);
    for secret in [&full, &custom, &read_only] {
        assert_eq!(
            server.code(secret, Some("article.find"), None).await,
            "forbidden"
        );
        assert_eq!(
            server.code(secret, None, None).await,
            "valid",
            "the token itself lives"
        );
    }
}

#[tokio::test]
async fn projects_bind_tokens() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let viewer = server.admin("viewer").await;
    let created = admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await;
    created.expect(201);
    assert_eq!(created.body["slug"], "shop");
    assert_eq!(created.body["name"], "Shop");
    assert!(created.body["created_at"].is_string());
    admin
        .post("/v1/projects", json!({"slug": "blog-2", "name": "Blog"}))
        .await
        .expect(201);
    admin
        .post(
            "/v1/projects",
            json!({"slug": "shop", "name": "Shop again"}),
        )
        .await
        .expect_error(409, "conflict");
    for (body, field) in [
        (json!({"slug": "Shop", "name": "x"}), "slug"),
        (json!({"slug": "-shop", "name": "x"}), "slug"),
        (json!({"slug": "shop!", "name": "x"}), "slug"),
        (json!({"slug": "", "name": "x"}), "slug"),
        (json!({"slug": "a".repeat(64), "name": "x"}), "slug"),
        (json!({"slug": "ok", "name": ""}), "name"),
        (json!({"slug": "ok", "name": "x", "owner": "me"}), "owner"),
    ] {
        let response = admin.post("/v1/projects", body.clone()).await;
        assert_eq!(response.status, 422, "{body} → {}", response.text);
        response.expect_invalid(field);
    }
    let listed = viewer.get("/v1/projects").await;
    listed.expect(200);
    let mut slugs: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["slug"].as_str().expect("slug"))
        .collect();
    slugs.sort_unstable();
    assert_eq!(slugs, ["blog-2", "shop"]);

    let bound = admin
        .create_token(
            json!({"name": "shop token", "type": "read-only", "lifespan": "7d", "project": "shop"}),
        )
        .await;
    let secret = bound.secret();
    assert_eq!(bound.body["project"], "shop");
    let valid = server.check(&secret, None, Some("shop")).await;
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["token"]["project"], "shop");
    assert_eq!(server.code(&secret, None, None).await, "wrong_project");
    assert_eq!(
        server.code(&secret, None, Some("blog-2")).await,
        "wrong_project"
    );
    // An unbound token verifies for any project.
    let free = admin.token("free").await.1;
    assert_eq!(server.code(&free, None, Some("shop")).await, "valid");
    assert_eq!(server.code(&free, None, None).await, "valid");

    admin
        .delete("/v1/projects/shop")
        .await
        .expect_error(409, "conflict");
    assert_eq!(server.code(&secret, None, Some("shop")).await, "valid");
    admin
        .patch(
            &format!("/v1/tokens/{}", bound.id()),
            json!({"project": null}),
        )
        .await
        .expect(200);
    admin.delete("/v1/projects/shop").await.expect(204);
    admin
        .delete("/v1/projects/shop")
        .await
        .expect_error(404, "not_found");
    admin
        .post(
            "/v1/tokens",
            json!({"name": "late", "type": "read-only", "lifespan": "7d", "project": "shop"}),
        )
        .await
        .expect_invalid("project");
    let listed = admin.get("/v1/projects").await;
    assert_eq!(listed.body.as_array().expect("list").len(), 1);
}

#[tokio::test]
async fn api_versions_lists_the_configured_versions() {
    let server = TestServer::start().await;
    let viewer = server.admin("viewer").await;
    let versions = viewer.get("/v1/api-versions").await;
    versions.expect(200);
    assert_eq!(
        versions.body,
        json!({"versions": ["v1", "v2", "v3"], "newest": "v3"})
    );
}
