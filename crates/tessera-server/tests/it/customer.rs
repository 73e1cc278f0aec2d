//! Who is calling: a token's `external_id` and `metadata`, set on create and edit,
//! filterable, copied by duplicate, audited, and handed to the protected API by
//! verify and forward-auth.

use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::DefaultRoute;

use crate::forward_auth::gateway_server;
use crate::harness::{Resp, TestServer};

#[tokio::test]
async fn external_id_and_metadata_are_set_edited_and_cleared() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let created = admin
        .create_token(json!({
            "name": "acme export", "type": "read-only", "lifespan": "30d",
            "external_id": "cus_8Kq2", "metadata": {"plan": "pro", "seats": 12}
        }))
        .await;
    assert_eq!(created.body["external_id"], "cus_8Kq2");
    assert_eq!(
        created.body["metadata"],
        json!({"plan": "pro", "seats": 12})
    );
    let id = created.id();

    let plain = admin
        .create_token(json!({"name": "plain", "type": "read-only", "lifespan": "30d"}))
        .await;
    assert_eq!(plain.body["external_id"], Value::Null, "none by default");
    assert_eq!(
        plain.body["metadata"],
        json!({}),
        "an empty object by default"
    );

    // PATCH replaces metadata as a whole and leaves what is absent alone.
    let edited = admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"metadata": {"plan": "team"}}),
        )
        .await;
    edited.expect(200);
    assert_eq!(edited.body["metadata"], json!({"plan": "team"}));
    assert_eq!(edited.body["external_id"], "cus_8Kq2", "untouched");
    let edited = admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"external_id": "cus_9", "name": "acme"}),
        )
        .await;
    edited.expect(200);
    assert_eq!(edited.body["external_id"], "cus_9");
    assert_eq!(
        edited.body["metadata"],
        json!({"plan": "team"}),
        "untouched"
    );
    // `null` clears both.
    let cleared = admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"external_id": null, "metadata": null}),
        )
        .await;
    cleared.expect(200);
    assert_eq!(cleared.body["external_id"], Value::Null);
    assert_eq!(cleared.body["metadata"], json!({}));
    let shown = admin.get(&format!("/v1/tokens/{id}")).await;
    assert_eq!(shown.body["external_id"], Value::Null);
    assert_eq!(shown.body["metadata"], json!({}));
}

#[tokio::test]
async fn bad_external_ids_and_metadata_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let base = |extra: Value| {
        let mut body = json!({"name": "t", "type": "read-only", "lifespan": "30d"});
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        body
    };
    for bad in [
        json!({"external_id": "x".repeat(129)}),
        json!({"external_id": ""}),
        json!({"external_id": " padded"}),
        json!({"external_id": "a\u{0}b"}),
    ] {
        admin
            .post("/v1/tokens", base(bad.clone()))
            .await
            .expect_invalid("external_id");
    }
    admin
        .create_token(base(json!({"name": "max", "external_id": "é".repeat(128)})))
        .await;
    for bad in [
        json!({"metadata": []}),
        json!({"metadata": "plan=pro"}),
        json!({"metadata": 7}),
        json!({"metadata": {"blob": "x".repeat(4096)}}),
        json!({"metadata": {"nul": "a\u{0}b"}}),
    ] {
        admin
            .post("/v1/tokens", base(bad.clone()))
            .await
            .expect_invalid("metadata");
    }
    // Exactly 4 KB of compact JSON is allowed.
    let fits = json!({"k": "x".repeat(4096 - 8)});
    admin
        .create_token(base(json!({"name": "fits", "metadata": fits})))
        .await;

    let id = admin
        .create_token(base(json!({"name": "edited"})))
        .await
        .id();
    admin
        .patch(&format!("/v1/tokens/{id}"), json!({"metadata": [1]}))
        .await
        .expect_invalid("metadata");
    admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"external_id": "y".repeat(129)}),
        )
        .await
        .expect_invalid("external_id");
    admin
        .get("/v1/tokens?external_id=%20x")
        .await
        .expect_invalid("external_id");
}

#[tokio::test]
async fn the_list_filters_by_external_id_and_duplicate_keeps_it() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let acme = admin
        .create_token(json!({"name": "acme 1", "type": "read-only", "lifespan": "30d", "external_id": "acme", "metadata": {"region": "eu"}}))
        .await;
    admin
        .create_token(json!({"name": "globex", "type": "read-only", "lifespan": "30d", "external_id": "globex"}))
        .await;
    admin
        .create_token(json!({"name": "nobody", "type": "read-only", "lifespan": "30d"}))
        .await;
    let copy = admin
        .post(&format!("/v1/tokens/{}/duplicate", acme.id()), json!({}))
        .await;
    copy.expect(201);
    assert_eq!(copy.body["external_id"], "acme");
    assert_eq!(copy.body["metadata"], json!({"region": "eu"}));

    let listed = admin.get("/v1/tokens?external_id=acme").await;
    listed.expect(200);
    assert_eq!(listed.body["total"], 2);
    let mut names: Vec<&str> = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().expect("name"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["acme 1", "acme 1 (copy)"]);
    let none = admin.get("/v1/tokens?external_id=ACME").await;
    assert_eq!(none.body["total"], 0, "an exact match, case included");
}

/// A forward-auth call as nginx makes it for `GET /api/articles/1`.
async fn read_article(server: &TestServer, authorization: &str) -> Resp {
    server
        .raw(
            Method::GET,
            "/v1/forward-auth",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/api/articles/1"),
                ("authorization", authorization),
            ],
            Vec::new(),
        )
        .await
}

#[tokio::test]
async fn verify_and_forward_auth_tell_the_api_who_is_calling() {
    let server = gateway_server(DefaultRoute::Deny).await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let created = admin
        .create_token(json!({
            "name": "acme reader", "type": "read-only", "lifespan": "30d",
            "external_id": "客户/42 ok", "metadata": {"plan": "pro", "limits": {"rpm": 60}}
        }))
        .await;
    let secret = created.secret();
    let id = created.id();

    let verified = server
        .verify(json!({"token": secret, "permission": "article.find"}))
        .await;
    verified.expect(200);
    assert_eq!(verified.body["valid"], true);
    assert_eq!(verified.body["token"]["external_id"], "客户/42 ok");
    assert_eq!(
        verified.body["token"]["metadata"],
        json!({"plan": "pro", "limits": {"rpm": 60}})
    );

    let auth = format!("Bearer {secret}");
    let allowed = read_article(&server, &auth).await;
    allowed.expect(200);
    // Percent-encoded like the token name: header values are ASCII.
    assert_eq!(
        allowed.header("x-tessera-external-id"),
        Some("%E5%AE%A2%E6%88%B7/42 ok")
    );

    // An edit reaches verification at once.
    admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"external_id": null, "metadata": {"plan": "free"}}),
        )
        .await
        .expect(200);
    let verified = server.verify(json!({"token": secret})).await;
    assert_eq!(verified.body["token"]["external_id"], Value::Null);
    assert_eq!(verified.body["token"]["metadata"], json!({"plan": "free"}));
    let allowed = read_article(&server, &auth).await;
    allowed.expect(200);
    assert_eq!(
        allowed.header("x-tessera-external-id"),
        Some(""),
        "always sent, so a gateway that copies headers replaces the client's own"
    );
}

#[tokio::test]
async fn the_audit_log_shows_changes_to_both() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let id = admin
        .create_token(
            json!({"name": "audited", "type": "read-only", "lifespan": "30d", "external_id": "a1"}),
        )
        .await
        .id();
    admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"external_id": "a2", "metadata": {"tier": 1}}),
        )
        .await
        .expect(200);
    let audit = admin
        .get(&format!("/v1/audit?action=token.update&target=token:{id}"))
        .await;
    audit.expect(200);
    let changes = &audit.body["items"][0]["changes"];
    assert_eq!(changes["external_id"], json!({"from": "a1", "to": "a2"}));
    assert_eq!(changes["metadata"], json!({"from": {}, "to": {"tier": 1}}));
    assert!(
        changes.get("name").is_none(),
        "only what changed: {changes}"
    );
}
