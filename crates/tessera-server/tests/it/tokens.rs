//! `/v1/tokens`: create, validate, read, edit, delete, regenerate, duplicate,
//! disable/enable, upgrade the API version, usage.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tessera_app::Principal;
use tessera_core::{ApiVersions, TokenFormat, TokenKind};

use crate::harness::{Admin, TestServer, default_settings};

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn is_base62(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[tokio::test]
async fn create_returns_the_secret_once_with_every_record_field() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let before = Utc::now();
    let created = admin
        .post(
            "/v1/tokens",
            json!({"name": "Billing export", "description": "nightly job", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    let after = Utc::now();
    created.expect(201);
    assert_eq!(
        created.header("cache-control"),
        Some("no-store"),
        "a response with a secret is never cached"
    );
    let body = created.body.as_object().expect("object");

    let secret = created.secret();
    assert_eq!(secret.len(), 4 + 46, "{secret}");
    let random = secret.strip_prefix("tsr_").expect("tsr_ prefix");
    assert!(is_base62(random), "{secret}");
    let parsed = TokenFormat::default()
        .parse(&secret)
        .expect("checksum holds");
    assert_eq!(parsed.kind, TokenKind::Api);

    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "id",
        "kind",
        "name",
        "description",
        "type",
        "permissions",
        "project",
        "owner_id",
        "status",
        "expired",
        "lifespan",
        "expires_at",
        "api_version",
        "hint",
        "created_at",
        "created_by",
        "updated_at",
        "last_used_at",
        "rate_limit",
        "external_id",
        "metadata",
        "token",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);

    let id = uuid::Uuid::parse_str(body["id"].as_str().expect("id")).expect("uuid");
    assert_eq!(id.get_version_num(), 7, "ids are UUID v7");
    assert_eq!(body["kind"], "api");
    assert_eq!(body["name"], "Billing export");
    assert_eq!(body["description"], "nightly job");
    assert_eq!(body["type"], "read-only");
    assert_eq!(body["permissions"], json!([]));
    assert_eq!(body["project"], Value::Null);
    assert_eq!(body["owner_id"], Value::Null);
    assert_eq!(body["status"], "active");
    assert_eq!(body["expired"], false);
    assert_eq!(body["lifespan"], "30d");
    assert_eq!(
        body["api_version"], "v3",
        "new tokens get the newest version"
    );
    assert_eq!(
        body["hint"],
        &secret[..8],
        "prefix plus 4 random characters"
    );
    assert_eq!(body["created_by"], format!("user:{}", admin.email));
    assert_eq!(body["last_used_at"], Value::Null);
    assert_eq!(body["rate_limit"], Value::Null);
    assert_eq!(body["external_id"], Value::Null);
    assert_eq!(body["metadata"], json!({}));
    let created_at = time(&body["created_at"]);
    assert!(created_at >= before - Duration::seconds(1) && created_at <= after);
    assert!(body["created_at"].as_str().expect("time").ends_with('Z'));
    assert_eq!(body["updated_at"], body["created_at"]);
    let expires_at = time(&body["expires_at"]);
    assert!(
        (expires_at - created_at - Duration::days(30))
            .num_seconds()
            .abs()
            <= 1,
        "30d counts from creation"
    );
    assert_eq!(server.code(&secret, None, None).await, "valid");

    // The secret is never shown again.
    let shown = admin.get(&format!("/v1/tokens/{id}")).await;
    shown.expect(200);
    assert!(shown.body.get("token").is_none());
    assert!(!shown.text.contains(random));
    let mut record = created.body.clone();
    record.as_object_mut().expect("object").remove("token");
    assert_eq!(shown.body, record);

    // Lifespans and explicit expiry.
    for (lifespan, days) in [("7d", Some(7)), ("90d", Some(90)), ("unlimited", None)] {
        let created = admin
            .create_token(json!({"name": format!("life {lifespan}"), "type": "full-access", "lifespan": lifespan}))
            .await;
        assert_eq!(created.body["lifespan"], lifespan);
        match days {
            Some(days) => {
                let gap = time(&created.body["expires_at"]) - time(&created.body["created_at"]);
                assert!((gap - Duration::days(days)).num_seconds().abs() <= 1);
            }
            None => assert_eq!(created.body["expires_at"], Value::Null),
        }
    }
    let at = (Utc::now() + Duration::days(3)).to_rfc3339();
    let created = admin
        .create_token(json!({"name": "explicit", "type": "read-only", "expires_at": at}))
        .await;
    assert_eq!(created.body["lifespan"], "custom");
    assert!(
        (time(&created.body["expires_at"]) - time(&json!(at)))
            .num_milliseconds()
            .abs()
            < 1000
    );
}

#[tokio::test]
async fn create_validation_names_each_bad_field() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    server.admin("super-admin").await.article_resource().await;
    let past = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "t", "lifespan": "7d"}), "type"),
        (
            json!({"name": "t", "type": "admin", "lifespan": "7d"}),
            "type",
        ),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "5d"}),
            "lifespan",
        ),
        (json!({"name": "t", "type": "read-only"}), "lifespan"),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "custom"}),
            "expires_at",
        ),
        (
            json!({"name": "t", "type": "read-only", "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"name": "t", "type": "read-only", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"name": "t", "type": "custom", "lifespan": "7d", "permissions": ["article.publish"]}),
            "permissions[0]",
        ),
        (
            json!({"name": "t", "type": "custom", "lifespan": "7d", "permissions": ["not a permission"]}),
            "permissions[0]",
        ),
        (
            json!({"name": "t", "type": "custom", "lifespan": "7d", "permissions": []}),
            "permissions",
        ),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "7d", "permissions": ["article.find"]}),
            "permissions",
        ),
        (
            json!({"name": "x".repeat(101), "type": "read-only", "lifespan": "7d"}),
            "name",
        ),
        (
            json!({"name": "", "type": "read-only", "lifespan": "7d"}),
            "name",
        ),
        (
            json!({"name": "t", "description": "d".repeat(501), "type": "read-only", "lifespan": "7d"}),
            "description",
        ),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "7d", "colour": "blue"}),
            "colour",
        ),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "7d", "project": "nope"}),
            "project",
        ),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "7d", "rate_limit": {"requests": 0, "per_seconds": 60}}),
            "rate_limit.requests",
        ),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "7d", "rate_limit": {"requests": 5, "per_seconds": 0}}),
            "rate_limit.per_seconds",
        ),
        (json!({"type": "read-only", "lifespan": "7d"}), "name"),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "7d", "rate_limit": {"requests": 5}}),
            "rate_limit.per_seconds",
        ),
        (
            json!({"name": "t", "type": "read-only", "lifespan": "7d", "rate_limit": {"requests": 5, "per_seconds": 60, "burst": 9}}),
            "rate_limit.burst",
        ),
        (
            json!({"name": 7, "type": "read-only", "lifespan": "7d"}),
            "name",
        ),
        (
            json!({"name": "t", "type": "custom", "lifespan": "7d", "permissions": "article.find"}),
            "permissions",
        ),
    ];
    for (body, field) in cases {
        let response = admin.post("/v1/tokens", body.clone()).await;
        assert_eq!(response.status, 422, "{body} → {}", response.text);
        response.expect_invalid(field);
    }
    // Several bad fields at once are all named.
    let response = admin
        .post(
            "/v1/tokens",
            json!({"name": "", "type": "read-only", "lifespan": "custom"}),
        )
        .await;
    response.expect_invalid("name").expect_invalid("expires_at");

    // Exactly 100 characters is fine.
    admin
        .create_token(json!({"name": "y".repeat(100), "type": "read-only", "lifespan": "7d"}))
        .await;

    // Not JSON at all: 400.
    for raw in [
        &b"{not json"[..],
        b"{\"name\": \"t\",}",
        b"{\"name\": \"t\"} trailing",
        b"{\"name\": ",
    ] {
        admin
            .raw(
                Method::POST,
                "/v1/tokens",
                &[("X-CSRF-Token", admin.csrf.as_str())],
                Some(raw.to_vec()),
            )
            .await
            .expect_error(400, "bad_request");
    }
    // Larger than 64 KiB: 413.
    let big = json!({"name": "big", "type": "read-only", "lifespan": "7d", "description": "z".repeat(70 * 1024)});
    admin
        .raw(
            Method::POST,
            "/v1/tokens",
            &[("X-CSRF-Token", admin.csrf.as_str())],
            Some(serde_json::to_vec(&big).expect("json")),
        )
        .await
        .expect_error(413, "payload_too_large");

    // None of the rejected requests created anything.
    let list = admin.get("/v1/tokens").await;
    assert_eq!(list.body["total"], 1, "{}", list.text);
}

#[tokio::test]
async fn names_are_unique_case_insensitively() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    admin.token("Deploy Bot").await;
    for name in ["Deploy Bot", "deploy bot", "DEPLOY BOT"] {
        admin
            .post(
                "/v1/tokens",
                json!({"name": name, "type": "read-only", "lifespan": "7d"}),
            )
            .await
            .expect_error(409, "conflict");
    }
    let (other, _) = admin.token("Other").await;
    admin
        .patch(
            &format!("/v1/tokens/{other}"),
            json!({"name": "deploy BOT"}),
        )
        .await
        .expect_error(409, "conflict");
    // Renaming to a different case of its own name is fine.
    let renamed = admin
        .patch(&format!("/v1/tokens/{other}"), json!({"name": "OTHER"}))
        .await;
    renamed.expect(200);
    assert_eq!(renamed.body["name"], "OTHER");
}

#[tokio::test]
async fn get_and_delete_answer_404_for_unknown_ids() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let unknown = tessera_core::TokenId::new_at(Utc::now(), &mut rand::rngs::OsRng).to_string();
    for id in [unknown.as_str(), "not-a-uuid", "1234", "%20"] {
        admin
            .get(&format!("/v1/tokens/{id}"))
            .await
            .expect_error(404, "not_found");
        admin
            .delete(&format!("/v1/tokens/{id}"))
            .await
            .expect_error(404, "not_found");
        admin
            .patch(&format!("/v1/tokens/{id}"), json!({"description": "x"}))
            .await
            .expect_error(404, "not_found");
        admin
            .post(&format!("/v1/tokens/{id}/regenerate"), json!({}))
            .await
            .expect_error(404, "not_found");
    }
    // Unknown routes and methods answer with the SPEC error body too.
    admin
        .get("/v1/nothing-here")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn patch_edits_each_field_and_counts_lifespans_from_the_edit() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    let created = admin
        .create_token(json!({"name": "editable", "type": "read-only", "lifespan": "90d"}))
        .await;
    let id = created.id();
    let secret = created.secret();
    let path = format!("/v1/tokens/{id}");

    let edited = admin
        .patch(
            &path,
            json!({"name": "edited", "description": "now described"}),
        )
        .await;
    edited.expect(200);
    assert_eq!(edited.body["name"], "edited");
    assert_eq!(edited.body["description"], "now described");
    assert_eq!(edited.body["type"], "read-only");
    assert!(time(&edited.body["updated_at"]) >= time(&created.body["updated_at"]));
    assert_eq!(edited.body["created_at"], created.body["created_at"]);
    assert!(edited.body.get("token").is_none());

    // Type → custom with permissions; verification follows at once.
    assert_eq!(
        server.code(&secret, Some("article.create"), None).await,
        "forbidden"
    );
    let custom = admin
        .patch(
            &path,
            json!({"type": "custom", "permissions": ["article.find", "article.create"]}),
        )
        .await;
    custom.expect(200);
    assert_eq!(custom.body["type"], "custom");
    let mut permissions: Vec<String> =
        serde_json::from_value(custom.body["permissions"].clone()).expect("list");
    permissions.sort();
    assert_eq!(permissions, ["article.create", "article.find"]);
    assert_eq!(
        server.code(&secret, Some("article.create"), None).await,
        "valid"
    );
    assert_eq!(
        server.code(&secret, Some("article.findOne"), None).await,
        "forbidden"
    );
    // Custom without permissions, and unknown permissions, are refused.
    admin
        .patch(&path, json!({"permissions": []}))
        .await
        .expect_invalid("permissions");
    admin
        .patch(&path, json!({"permissions": ["article.publish"]}))
        .await
        .expect_invalid("permissions[0]");
    // Back to full access drops the list.
    let full = admin.patch(&path, json!({"type": "full-access"})).await;
    full.expect(200);
    assert_eq!(full.body["permissions"], json!([]));
    assert_eq!(
        server.code(&secret, Some("article.delete"), None).await,
        "valid"
    );

    // A lifespan is counted from the edit, not from creation.
    let before = Utc::now();
    let week = admin.patch(&path, json!({"lifespan": "7d"})).await;
    let after = Utc::now();
    week.expect(200);
    assert_eq!(week.body["lifespan"], "7d");
    let expires = time(&week.body["expires_at"]);
    assert!(
        expires >= before + Duration::days(7) - Duration::seconds(1)
            && expires <= after + Duration::days(7),
        "{expires} is not 7 days after the edit"
    );
    let at = (Utc::now() + Duration::days(2)).to_rfc3339();
    let explicit = admin.patch(&path, json!({"expires_at": at})).await;
    explicit.expect(200);
    assert_eq!(explicit.body["lifespan"], "custom");
    let forever = admin.patch(&path, json!({"expires_at": null})).await;
    forever.expect(200);
    assert_eq!(forever.body["lifespan"], "unlimited");
    assert_eq!(forever.body["expires_at"], Value::Null);
    let past = (Utc::now() - Duration::days(1)).to_rfc3339();
    admin
        .patch(&path, json!({"expires_at": past}))
        .await
        .expect_invalid("expires_at");
    admin
        .patch(&path, json!({"lifespan": "1y"}))
        .await
        .expect_invalid("lifespan");

    // Project: set, then cleared with null.
    admin
        .patch(&path, json!({"project": "warehouse"}))
        .await
        .expect_invalid("project");
    let bound = admin.patch(&path, json!({"project": "shop"})).await;
    bound.expect(200);
    assert_eq!(bound.body["project"], "shop");
    assert_eq!(server.code(&secret, None, None).await, "wrong_project");
    assert_eq!(server.code(&secret, None, Some("shop")).await, "valid");
    let unbound = admin.patch(&path, json!({"project": null})).await;
    unbound.expect(200);
    assert_eq!(unbound.body["project"], Value::Null);
    assert_eq!(server.code(&secret, None, None).await, "valid");

    // Rate limit: set, validated, cleared.
    let limited = admin
        .patch(
            &path,
            json!({"rate_limit": {"requests": 100, "per_seconds": 60}}),
        )
        .await;
    limited.expect(200);
    assert_eq!(
        limited.body["rate_limit"],
        json!({"requests": 100, "per_seconds": 60})
    );
    admin
        .patch(
            &path,
            json!({"rate_limit": {"requests": 100, "per_seconds": 0}}),
        )
        .await
        .expect_invalid("rate_limit.per_seconds");
    let unlimited = admin.patch(&path, json!({"rate_limit": null})).await;
    unlimited.expect(200);
    assert_eq!(unlimited.body["rate_limit"], Value::Null);

    // Unknown fields and read-only fields are refused by name.
    admin
        .patch(&path, json!({"status": "disabled"}))
        .await
        .expect_invalid("status");
    admin
        .patch(&path, json!({"name": ""}))
        .await
        .expect_invalid("name");

    // The edits stuck.
    let shown = admin.get(&path).await;
    shown.expect(200);
    assert_eq!(shown.body["name"], "edited");
    assert_eq!(shown.body["type"], "full-access");
    assert_eq!(shown.body["lifespan"], "unlimited");
    assert_eq!(shown.body["project"], Value::Null);
    assert_eq!(shown.body["rate_limit"], Value::Null);
    assert_eq!(
        shown.body["hint"], created.body["hint"],
        "an edit keeps the secret"
    );
}

#[tokio::test]
async fn delete_answers_204_then_404_and_the_secret_stops_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let (id, secret) = admin.token("doomed").await;
    assert_eq!(server.code(&secret, None, None).await, "valid");
    let deleted = admin.delete(&format!("/v1/tokens/{id}")).await;
    deleted.expect(204);
    assert!(deleted.text.is_empty());
    assert_eq!(server.code(&secret, None, None).await, "not_found");
    admin
        .get(&format!("/v1/tokens/{id}"))
        .await
        .expect_error(404, "not_found");
    admin
        .delete(&format!("/v1/tokens/{id}"))
        .await
        .expect_error(404, "not_found");
    // The name is free again.
    admin.token("doomed").await;
}

#[tokio::test]
async fn regenerate_replaces_the_secret_with_an_optional_grace() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let (id, old) = admin.token("rotating").await;

    let regenerated = admin
        .post(&format!("/v1/tokens/{id}/regenerate"), json!({}))
        .await;
    regenerated.expect(200);
    let new = regenerated.secret();
    assert_ne!(new, old);
    TokenFormat::default().parse(&new).expect("well-formed");
    assert_eq!(regenerated.id(), id);
    assert_eq!(regenerated.body["hint"], &new[..8]);
    assert_eq!(server.code(&new, None, None).await, "valid");
    assert_eq!(
        server.code(&old, None, None).await,
        "not_found",
        "grace 0: at once"
    );

    // An empty body means grace 0 too.
    let empty = admin
        .raw(
            Method::POST,
            &format!("/v1/tokens/{id}/regenerate"),
            &[("X-CSRF-Token", admin.csrf.as_str())],
            None,
        )
        .await;
    empty.expect(200);
    let newer = empty.secret();
    assert_eq!(server.code(&new, None, None).await, "not_found");
    assert_eq!(server.code(&newer, None, None).await, "valid");

    // With a grace period both secrets work.
    let graced = admin
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            json!({"grace_period_seconds": 3600}),
        )
        .await;
    graced.expect(200);
    let newest = graced.secret();
    assert_eq!(server.code(&newest, None, None).await, "valid");
    let during = server.check(&newer, None, None).await;
    assert_eq!(
        during["valid"], true,
        "old secret inside its grace: {during}"
    );
    assert_eq!(during["token"]["id"], id.as_str());
    // A further regeneration without grace ends every older secret at once.
    let last = admin
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            json!({"grace_period_seconds": 0}),
        )
        .await;
    last.expect(200);
    assert_eq!(server.code(&newer, None, None).await, "not_found");
    assert_eq!(server.code(&newest, None, None).await, "not_found");
    assert_eq!(server.code(&last.secret(), None, None).await, "valid");

    for bad in [
        json!({"grace_period_seconds": 86_401}),
        json!({"grace_period_seconds": -1}),
        json!({"grace_period_seconds": "soon"}),
    ] {
        admin
            .post(&format!("/v1/tokens/{id}/regenerate"), bad)
            .await
            .expect_invalid("grace_period_seconds");
    }
    admin
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            json!({"grace_period_seconds": 86_400}),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn duplicate_needs_the_read_permission_too() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.post(
        "/v1/roles",
        json!({"name": "issuer", "permissions": ["tokens.create"]}),
    )
    .await
    .expect(201);
    let issuer = server.admin("issuer").await;
    let (id, _) = root.token("secret settings").await;
    let refused = issuer
        .post(&format!("/v1/tokens/{id}/duplicate"), json!({}))
        .await;
    refused.expect_error(403, "forbidden");
    assert!(
        !refused.text.contains("secret settings"),
        "nothing of the original is shown: {}",
        refused.text
    );
    // Creating from scratch is still theirs to do.
    issuer
        .create_token(json!({"name": "mine", "type": "read-only", "lifespan": "7d"}))
        .await;
    let listed = root.get("/v1/tokens").await;
    assert_eq!(listed.body["total"], 2, "no copy was made");
}

#[tokio::test]
async fn duplicate_copies_settings_under_a_fresh_name_and_secret() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    let original = admin
        .create_token(json!({
            "name": "Importer",
            "description": "imports",
            "type": "custom",
            "permissions": ["article.create"],
            "lifespan": "7d",
            "project": "shop",
            "rate_limit": {"requests": 10, "per_seconds": 60}
        }))
        .await;
    let id = original.id();

    let copy = admin
        .post(&format!("/v1/tokens/{id}/duplicate"), json!({}))
        .await;
    copy.expect(201);
    assert_eq!(copy.body["name"], "Importer (copy)");
    assert_ne!(copy.id(), id);
    assert_ne!(copy.secret(), original.secret());
    for field in [
        "description",
        "type",
        "permissions",
        "project",
        "rate_limit",
        "lifespan",
        "api_version",
    ] {
        assert_eq!(copy.body[field], original.body[field], "{field} is copied");
    }
    assert_eq!(copy.body["status"], "active");
    assert_eq!(copy.body["last_used_at"], Value::Null);
    assert_eq!(
        server
            .code(&copy.secret(), Some("article.create"), Some("shop"))
            .await,
        "valid"
    );
    assert_eq!(
        server
            .code(&original.secret(), Some("article.create"), Some("shop"))
            .await,
        "valid"
    );

    let second = admin
        .post(&format!("/v1/tokens/{id}/duplicate"), json!({}))
        .await;
    second.expect(201);
    assert_eq!(second.body["name"], "Importer (copy 2)");
    let third = admin
        .post(&format!("/v1/tokens/{id}/duplicate"), json!({}))
        .await;
    third.expect(201);
    assert_eq!(third.body["name"], "Importer (copy 3)");

    let named = admin
        .post(
            &format!("/v1/tokens/{id}/duplicate"),
            json!({"name": "Importer B"}),
        )
        .await;
    named.expect(201);
    assert_eq!(named.body["name"], "Importer B");
    admin
        .post(
            &format!("/v1/tokens/{id}/duplicate"),
            json!({"name": "importer b"}),
        )
        .await
        .expect_error(409, "conflict");
    admin
        .post(&format!("/v1/tokens/{id}/duplicate"), json!({"name": ""}))
        .await
        .expect_invalid("name");

    let all = admin.get("/v1/tokens?q=importer").await;
    assert_eq!(all.body["total"], 5);
}

#[tokio::test]
async fn disable_and_enable_switch_verification() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let (id, secret) = admin.token("switch").await;
    let disabled = admin
        .post(&format!("/v1/tokens/{id}/disable"), json!({}))
        .await;
    disabled.expect(200);
    assert_eq!(disabled.body["status"], "disabled");
    assert_eq!(server.code(&secret, None, None).await, "disabled");
    // Disabling twice is harmless.
    admin
        .post(&format!("/v1/tokens/{id}/disable"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        admin.get(&format!("/v1/tokens/{id}")).await.body["status"],
        "disabled"
    );
    let enabled = admin
        .post(&format!("/v1/tokens/{id}/enable"), json!({}))
        .await;
    enabled.expect(200);
    assert_eq!(enabled.body["status"], "active");
    assert_eq!(server.code(&secret, None, None).await, "valid");
}

/// Creates tokens on `v1` with a server configured for v1 only, then restarts the
/// same data dir with v1, v2, v3.
async fn server_with_v1_tokens(names: &[&str]) -> (TestServer, Vec<(String, String)>) {
    let old = TestServer::start_with(tessera_app::Settings {
        api_versions: ApiVersions::new(vec!["v1".into()]).expect("versions"),
        ..default_settings()
    })
    .await;
    let mut tokens = Vec::new();
    for name in names {
        let created = old
            .app
            .tokens()
            .create(
                &Principal::operator("test"),
                serde_json::from_value(
                    json!({"name": name, "type": "read-only", "lifespan": "30d"}),
                )
                .expect("request"),
            )
            .await
            .expect("create on v1");
        assert_eq!(created.record.api_version, "v1");
        tokens.push((created.record.id.to_string(), created.token));
    }
    let dir = old.stop().await;
    (TestServer::start_in(dir, default_settings()).await, tokens)
}

async fn version_of(admin: &Admin, id: &str) -> String {
    admin.get(&format!("/v1/tokens/{id}")).await.body["api_version"]
        .as_str()
        .expect("api_version")
        .to_owned()
}

#[tokio::test]
async fn upgrade_version_moves_forward_only() {
    let (server, tokens) = server_with_v1_tokens(&["one", "two"]).await;
    let admin = server.admin("token-manager").await;
    let (first, first_secret) = &tokens[0];
    let (second, _) = &tokens[1];
    assert_eq!(version_of(&admin, first).await, "v1");
    assert_eq!(
        server.check(first_secret, None, None).await["token"]["api_version"],
        "v1"
    );

    // Default: the newest.
    let upgraded = admin
        .post(&format!("/v1/tokens/{first}/upgrade-version"), json!({}))
        .await;
    upgraded.expect(200);
    assert_eq!(upgraded.body["api_version"], "v3");
    assert_eq!(
        server.check(first_secret, None, None).await["token"]["api_version"],
        "v3"
    );
    // Already newest: nothing to move to.
    admin
        .post(&format!("/v1/tokens/{first}/upgrade-version"), json!({}))
        .await
        .expect_invalid("api_version");
    admin
        .post(
            &format!("/v1/tokens/{first}/upgrade-version"),
            json!({"api_version": "v1"}),
        )
        .await
        .expect_invalid("api_version");

    // An explicit target, then never back.
    let to_v2 = admin
        .post(
            &format!("/v1/tokens/{second}/upgrade-version"),
            json!({"api_version": "v2"}),
        )
        .await;
    to_v2.expect(200);
    assert_eq!(to_v2.body["api_version"], "v2");
    for target in ["v1", "v2", "v9", ""] {
        admin
            .post(
                &format!("/v1/tokens/{second}/upgrade-version"),
                json!({"api_version": target}),
            )
            .await
            .expect_invalid("api_version");
    }
    assert_eq!(version_of(&admin, second).await, "v2");
    admin
        .post(
            &format!("/v1/tokens/{second}/upgrade-version"),
            json!({"api_version": "v3"}),
        )
        .await
        .expect(200);
    assert_eq!(version_of(&admin, second).await, "v3");

    // Fresh tokens start on the newest version and cannot be upgraded.
    let (fresh, _) = admin.token("fresh").await;
    assert_eq!(version_of(&admin, &fresh).await, "v3");
    admin
        .post(&format!("/v1/tokens/{fresh}/upgrade-version"), json!({}))
        .await
        .expect_invalid("api_version");
}

#[tokio::test]
async fn usage_counts_appear_once_flushed() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let (id, secret) = admin.token("used").await;
    let (idle, _) = admin.token("idle").await;
    for _ in 0..3 {
        assert_eq!(
            server.code(&secret, Some("article.find"), None).await,
            "valid"
        );
    }
    assert_eq!(
        server.code(&secret, Some("article.create"), None).await,
        "forbidden"
    );
    assert_eq!(
        admin.get(&format!("/v1/tokens/{id}")).await.body["last_used_at"],
        Value::Null
    );

    let written = server.app.flush_usage().await.expect("flush");
    assert!(written >= 1);

    let usage = admin.get(&format!("/v1/tokens/{id}/usage")).await;
    usage.expect(200);
    let days = usage.body["days"].as_array().expect("days");
    assert_eq!(days.len(), 30, "30 days by default");
    let dates: Vec<&str> = days
        .iter()
        .map(|d| d["date"].as_str().expect("date"))
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_unstable();
    assert_eq!(dates, sorted, "oldest first");
    assert!(
        dates
            .iter()
            .all(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
    );
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let yesterday = (Utc::now() - Duration::days(1))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let last = *dates.last().expect("a day");
    assert!(
        last == today || last == yesterday,
        "the last day is today: {last}"
    );
    let allowed: u64 = days
        .iter()
        .map(|d| d["allowed"].as_u64().expect("allowed"))
        .sum();
    let denied: u64 = days
        .iter()
        .map(|d| d["denied"].as_u64().expect("denied"))
        .sum();
    assert_eq!((allowed, denied), (3, 1));

    let shown = admin.get(&format!("/v1/tokens/{id}")).await;
    let last_used = time(&shown.body["last_used_at"]);
    assert!((Utc::now() - last_used).num_seconds() < 60);
    assert_eq!(
        admin.get(&format!("/v1/tokens/{idle}")).await.body["last_used_at"],
        Value::Null
    );
    let idle_usage = admin.get(&format!("/v1/tokens/{idle}/usage?days=7")).await;
    idle_usage.expect(200);
    let idle_days = idle_usage.body["days"].as_array().expect("days");
    assert_eq!(idle_days.len(), 7);
    assert!(
        idle_days
            .iter()
            .all(|d| d["allowed"] == 0 && d["denied"] == 0)
    );

    // A second flush adds to what is stored.
    server.code(&secret, None, None).await;
    server.app.flush_usage().await.expect("flush");
    let again = admin.get(&format!("/v1/tokens/{id}/usage")).await;
    let allowed: u64 = again.body["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["allowed"].as_u64().expect("allowed"))
        .sum();
    assert_eq!(allowed, 4);
    let one = admin.get(&format!("/v1/tokens/{id}/usage?days=1")).await;
    assert_eq!(one.body["days"].as_array().expect("days").len(), 1);

    for bad in ["0", "367", "-1", "abc", "1.5"] {
        admin
            .get(&format!("/v1/tokens/{id}/usage?days={bad}"))
            .await
            .expect_invalid("days");
    }
    admin
        .get(&format!("/v1/tokens/{id}/usage?weeks=1"))
        .await
        .expect_invalid("weeks");
    admin
        .get(&format!("/v1/tokens/{id}/usage?days=366"))
        .await
        .expect(200);
}
