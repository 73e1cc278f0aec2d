//! `POST /v1/verify`: every answer code, the valid answer's shape, and throttling of
//! repeated failures per client address.

use std::time::Duration as StdDuration;

use chrono::{Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::{TokenFormat, TokenKind};

use crate::harness::{TestServer, default_settings, eventually};

/// `secret` with the character at `index` replaced by another base62 character.
fn with_one_char_changed(secret: &str, index: usize) -> String {
    let mut bytes = secret.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

fn unknown_token() -> String {
    TokenFormat::default()
        .generate(TokenKind::Api, &mut rand::rngs::OsRng)
        .expose()
        .to_owned()
}

#[tokio::test]
async fn valid_answer_carries_the_token_summary() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    let created = admin
        .create_token(
            json!({"name": "gateway", "type": "custom", "permissions": ["article.find"],
            "lifespan": "7d", "project": "shop"}),
        )
        .await;
    let response = server
        .verify(json!({"token": created.secret(), "permission": "article.find", "project": "shop"}))
        .await;
    response.expect(200);
    let body = response.body.as_object().expect("object");
    assert_eq!(body["valid"], true);
    assert!(body.get("code").is_none(), "{}", response.text);
    let token = body["token"].as_object().expect("token");
    let mut keys: Vec<&str> = token.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "api_version",
            "expires_at",
            "external_id",
            "grace_ends_at",
            "id",
            "kind",
            "metadata",
            "name",
            "project",
            "rate_limit",
            "type"
        ]
    );
    assert_eq!(token["rate_limit"], Value::Null);
    assert_eq!(token["grace_ends_at"], Value::Null);
    assert_eq!(token["id"], created.id().as_str());
    assert_eq!(token["name"], "gateway");
    assert_eq!(token["kind"], "api");
    assert_eq!(token["type"], "custom");
    assert_eq!(token["project"], "shop");
    assert_eq!(token["api_version"], "v3");
    assert_eq!(token["expires_at"], created.body["expires_at"]);
    assert_eq!(token["external_id"], Value::Null);
    assert_eq!(token["metadata"], json!({}));
    assert!(!response.text.contains(&created.secret()));

    // No permission asked: the token is valid as such. Unlimited tokens: expires_at null.
    let forever = admin
        .create_token(json!({"name": "forever", "type": "full-access", "lifespan": "unlimited"}))
        .await;
    let answer = server.check(&forever.secret(), None, None).await;
    assert_eq!(answer["valid"], true);
    assert_eq!(answer["token"]["expires_at"], Value::Null);
    assert_eq!(answer["token"]["project"], Value::Null);
    assert_eq!(answer["token"]["type"], "full-access");
}

#[tokio::test]
async fn every_refusal_code() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    let soon = (Utc::now() + Duration::seconds(1)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let expiring = admin
        .create_token(json!({"name": "expiring", "type": "read-only", "expires_at": soon}))
        .await;
    let (_, reader) = admin.token("reader").await;

    // malformed: not a token at all, the wrong prefix, a broken checksum.
    for garbage in [
        String::new(),
        "hello".to_owned(),
        "tsr_".to_owned(),
        format!("{reader}x"),
        reader[..reader.len() - 1].to_owned(),
        reader.replacen("tsr_", "abc_", 1),
        reader.replacen("tsr_", "tsr-", 1),
        with_one_char_changed(&reader, 10),
        with_one_char_changed(&reader, 4),
        with_one_char_changed(&reader, reader.len() - 1),
        format!("Bearer {reader}"),
    ] {
        assert_eq!(
            server.code(&garbage, None, None).await,
            "malformed",
            "{garbage:?}"
        );
    }
    // not_found: well-formed, checksum right, never issued (API and personal prefix).
    assert_eq!(server.code(&unknown_token(), None, None).await, "not_found");
    let personal = TokenFormat::default()
        .generate(TokenKind::Personal, &mut rand::rngs::OsRng)
        .expose()
        .to_owned();
    assert!(personal.starts_with("tsrp_"));
    assert_eq!(server.code(&personal, None, None).await, "not_found");

    // forbidden: a read-only token asked for a write, or for a permission nobody defines.
    assert_eq!(
        server.code(&reader, Some("article.find"), None).await,
        "valid"
    );
    assert_eq!(
        server.code(&reader, Some("article.create"), None).await,
        "forbidden"
    );
    assert_eq!(
        server.code(&reader, Some("article.publish"), None).await,
        "forbidden"
    );
    assert_eq!(
        server.code(&reader, Some("nonsense"), None).await,
        "forbidden"
    );

    // disabled.
    let (id, switched) = admin.token("switched").await;
    admin
        .post(&format!("/v1/tokens/{id}/disable"), json!({}))
        .await
        .expect(200);
    assert_eq!(server.code(&switched, None, None).await, "disabled");

    // wrong_project.
    let bound = admin
        .create_token(
            json!({"name": "bound", "type": "read-only", "lifespan": "7d", "project": "shop"}),
        )
        .await
        .secret();
    assert_eq!(
        server.code(&bound, None, Some("blog")).await,
        "wrong_project"
    );
    assert_eq!(server.code(&bound, None, None).await, "wrong_project");
    assert_eq!(server.code(&bound, None, Some("shop")).await, "valid");

    // rate_limited: two per hour.
    let limited = admin
        .create_token(
            json!({"name": "limited", "type": "read-only", "lifespan": "7d",
            "rate_limit": {"requests": 2, "per_seconds": 3600}}),
        )
        .await
        .secret();
    assert_eq!(server.code(&limited, None, None).await, "valid");
    assert_eq!(server.code(&limited, None, None).await, "valid");
    assert_eq!(server.code(&limited, None, None).await, "rate_limited");
    assert_eq!(server.code(&limited, None, None).await, "rate_limited");

    // expired: poll until the clock passes expires_at.
    let secret = expiring.secret();
    let server_ref = &server;
    eventually("the token to expire", StdDuration::from_secs(15), || {
        let secret = secret.clone();
        async move { (server_ref.code(&secret, None, None).await == "expired").then_some(()) }
    })
    .await;
    let shown = admin.get(&format!("/v1/tokens/{}", expiring.id())).await;
    assert_eq!(shown.body["expired"], true);
    assert_eq!(shown.body["status"], "active");
}

#[tokio::test]
async fn bad_requests_are_not_verify_answers() {
    let server = TestServer::start().await;
    // Missing token, unknown field, wrong type: 422 naming the field.
    server.verify(json!({})).await.expect_invalid("token");
    server
        .verify(json!({"token": "x", "scope": "all"}))
        .await
        .expect_invalid("scope");
    server
        .verify(json!({"token": 42}))
        .await
        .expect_invalid("token");
    // Not JSON: 400.
    let response = crate::harness::Resp::read(
        reqwest::Client::new()
            .post(server.url("/v1/verify"))
            .header("Content-Type", "application/json")
            .body("{\"token\": ")
            .send()
            .await
            .expect("request"),
    )
    .await;
    response.expect_error(400, "bad_request");
    // Only POST.
    let get = server.anon(Method::GET, "/v1/verify", None).await;
    assert!(get.status >= 400 && get.status < 500, "{}", get.text);
    assert!(get.body["error"]["code"].is_string());
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let server = TestServer::start_with(tessera_app::Settings {
        verify_failures_per_address: 5,
        ..default_settings()
    })
    .await;
    let admin = server.admin("token-manager").await;
    let (_, good) = admin.token("good").await;
    for n in 1..=5 {
        assert_eq!(
            server.code(&unknown_token(), None, None).await,
            "not_found",
            "failure {n} answers its own code"
        );
    }
    assert_eq!(
        server.code(&unknown_token(), None, None).await,
        "rate_limited"
    );
    assert_eq!(server.code("garbage", None, None).await, "rate_limited");
    // A valid token still verifies for the throttled address.
    let answer = server.check(&good, None, None).await;
    assert_eq!(answer["valid"], true, "{answer}");
    // A real token refused for its permission is a caller doing its job, not a guess:
    // it answers its own code, blocked or not.
    assert_eq!(
        server.code(&good, Some("nothing.here"), None).await,
        "forbidden"
    );
}

#[tokio::test]
async fn only_guesses_count_against_an_address_and_rate_limits_say_when_to_retry() {
    let server = TestServer::start_with(tessera_app::Settings {
        verify_failures_per_address: 5,
        ..default_settings()
    })
    .await;
    let admin = server.admin("token-manager").await;
    let (_, good) = admin.token("good").await;
    for _ in 0..20 {
        assert_eq!(
            server.code(&good, Some("nothing.here"), None).await,
            "forbidden"
        );
    }
    assert_eq!(
        server.code(&unknown_token(), None, None).await,
        "not_found",
        "twenty forbidden answers spent none of the failure budget"
    );

    // rate_limited, per token and per address, says when to come back.
    let limited = admin
        .create_token(
            json!({"name": "limited", "type": "read-only", "lifespan": "7d",
            "rate_limit": {"requests": 1, "per_seconds": 3600}}),
        )
        .await
        .secret();
    assert_eq!(server.code(&limited, None, None).await, "valid");
    let refused = server.verify(json!({"token": limited})).await;
    refused.expect(200);
    assert_eq!(refused.body["code"], "rate_limited");
    let wait: u64 = refused
        .header("retry-after")
        .expect("Retry-After on a rate-limited token")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&wait), "{wait}");
    for _ in 0..5 {
        server.code(&unknown_token(), None, None).await;
    }
    let blocked = server.verify(json!({"token": unknown_token()})).await;
    assert_eq!(blocked.body["code"], "rate_limited");
    assert!(
        blocked.header("retry-after").is_some(),
        "Retry-After on a blocked address: {:?}",
        blocked.headers
    );
}

#[tokio::test]
async fn editing_a_token_does_not_reset_its_rate_limit() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let created = admin
        .create_token(
            json!({"name": "metered", "type": "read-only", "lifespan": "7d",
            "rate_limit": {"requests": 1, "per_seconds": 3600}}),
        )
        .await;
    let (id, secret) = (created.id(), created.secret());
    assert_eq!(server.code(&secret, None, None).await, "valid");
    assert_eq!(server.code(&secret, None, None).await, "rate_limited");
    // A rename, a new description, a disable and enable: the hour's budget stays spent.
    admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"name": "metered 2", "description": "x"}),
        )
        .await
        .expect(200);
    admin
        .post(&format!("/v1/tokens/{id}/disable"), json!({}))
        .await
        .expect(200);
    admin
        .post(&format!("/v1/tokens/{id}/enable"), json!({}))
        .await
        .expect(200);
    assert_eq!(server.code(&secret, None, None).await, "rate_limited");
    // A new limit is a new budget.
    admin
        .patch(
            &format!("/v1/tokens/{id}"),
            json!({"rate_limit": {"requests": 2, "per_seconds": 3600}}),
        )
        .await
        .expect(200);
    assert_eq!(server.code(&secret, None, None).await, "valid");
}

#[tokio::test]
async fn the_answer_carries_the_rate_limit_and_an_old_secret_says_when_its_grace_ends() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let created = admin
        .create_token(
            json!({"name": "limited", "type": "read-only", "lifespan": "7d",
            "rate_limit": {"requests": 10, "per_seconds": 60}}),
        )
        .await;
    let (id, old) = (created.id(), created.secret());
    let answer = server.check(&old, None, None).await;
    assert_eq!(
        answer["token"]["rate_limit"],
        json!({"requests": 10, "per_seconds": 60})
    );
    assert_eq!(answer["token"]["grace_ends_at"], Value::Null);

    let before = Utc::now();
    let renewed = admin
        .post(
            &format!("/v1/tokens/{id}/regenerate"),
            json!({"grace_period_seconds": 600}),
        )
        .await;
    renewed.expect(200);
    let after = Utc::now();
    // The old secret, in its grace: when it ends, 600 s after the regeneration.
    let during = server.check(&old, None, None).await;
    assert_eq!(during["valid"], true, "{during}");
    let ends = during["token"]["grace_ends_at"]
        .as_str()
        .unwrap_or_else(|| panic!("grace_ends_at: {during}"));
    let ends = chrono::DateTime::parse_from_rfc3339(ends).expect("RFC 3339");
    let grace = Duration::seconds(600);
    assert!(
        ends >= before + grace - Duration::seconds(1) && ends <= after + grace,
        "{ends}"
    );
    // Everything else as for the token itself.
    let new = server.check(&renewed.secret(), None, None).await;
    assert_eq!(new["token"]["grace_ends_at"], Value::Null);
    let mut same = during["token"].clone();
    same["grace_ends_at"] = Value::Null;
    assert_eq!(same, new["token"]);
    // GraphQL's verifyToken says the same.
    let graphql = server
        .anon(
            Method::POST,
            "/graphql",
            Some(json!({"query": "query($t: String!) { verifyToken(token: $t) { valid token { graceEndsAt rateLimit { requests perSeconds } } } }", "variables": {"t": old}})),
        )
        .await;
    graphql.expect(200);
    let token = &graphql.body["data"]["verifyToken"]["token"];
    assert_eq!(
        token["rateLimit"],
        json!({"requests": 10, "perSeconds": 60}),
        "{}",
        graphql.text
    );
    assert!(token["graceEndsAt"].is_string(), "{}", graphql.text);
}
