//! `/v1/forward-auth` in the shapes nginx, Caddy, Traefik and Envoy send: route rules,
//! the token from `Authorization` or `X-Api-Key`, and 200 / 401 / 403 / 429.

use reqwest::Method;
use serde_json::json;
use tessera_core::{DefaultRoute, ForwardAuthConfig, RouteRules, RuleConfig};

use crate::harness::{Resp, TestServer, default_settings};

fn rule(methods: &[&str], path: &str, permission: &str, project: Option<&str>) -> RuleConfig {
    RuleConfig {
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        path: path.to_owned(),
        permission: permission.to_owned(),
        project: project.map(str::to_owned),
    }
}

/// A server whose forward-auth protects `/api/articles` (read for GET, create for POST,
/// the shop's create for `/api/shop/**`), with `default` for the rest.
pub async fn gateway_server(default: DefaultRoute) -> TestServer {
    let mut settings = default_settings();
    settings.forward_auth = RouteRules::new(&ForwardAuthConfig {
        default,
        rules: vec![
            rule(&["GET", "HEAD"], "/api/articles/**", "article.find", None),
            rule(&["POST"], "/api/articles", "article.create", None),
            rule(&["*"], "/api/shop/**", "article.create", Some("shop")),
        ],
    })
    .expect("rules");
    TestServer::start_with(settings).await
}

/// A forward-auth call as nginx makes it (`X-Original-*`) with `headers` added.
async fn nginx(server: &TestServer, method: &str, uri: &str, headers: &[(&str, &str)]) -> Resp {
    let mut all = vec![("x-original-method", method), ("x-original-uri", uri)];
    all.extend_from_slice(headers);
    server
        .raw(Method::GET, "/v1/forward-auth", &all, Vec::new())
        .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn the_route_rules_decide_what_a_token_needs() {
    let server = gateway_server(DefaultRoute::Deny).await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    let reader = admin
        .create_token(json!({"name": "本番 reader", "type": "read-only", "lifespan": "30d"}))
        .await;
    let reader_secret = reader.secret();
    let shop = admin
        .create_token(json!({"name": "shop writer", "type": "full-access", "lifespan": "30d", "project": "shop"}))
        .await;
    let shop_secret = shop.secret();

    // A read: allowed, with who is calling for the upstream.
    let auth = bearer(&reader_secret);
    let allowed = nginx(
        &server,
        "GET",
        "/api/articles/42?full=1",
        &[("authorization", &auth)],
    )
    .await;
    allowed.expect(200);
    assert_eq!(
        allowed.header("x-tessera-token-id"),
        Some(reader.id().as_str())
    );
    assert_eq!(
        allowed.header("x-tessera-token-name"),
        Some("%E6%9C%AC%E7%95%AA reader"),
        "non-ASCII names are percent-encoded"
    );
    assert_eq!(allowed.header("x-tessera-api-version"), Some("v3"));
    assert_eq!(
        allowed.header("x-tessera-project"),
        Some(""),
        "empty: no project"
    );
    assert!(allowed.text.is_empty());

    // Traefik and Caddy send X-Forwarded-*; X-Api-Key works as well as Bearer.
    let traefik = server
        .raw(
            Method::GET,
            "/v1/forward-auth",
            &[
                ("x-forwarded-method", "HEAD"),
                ("x-forwarded-uri", "/api/articles"),
                ("x-api-key", &reader_secret),
            ],
            Vec::new(),
        )
        .await;
    traefik.expect(200);

    // A read-only token may not create: 403. Unmatched routes are denied by default.
    let lacking = nginx(
        &server,
        "POST",
        "/api/articles",
        &[("authorization", &auth)],
    )
    .await;
    lacking.expect_error(403, "forbidden");
    assert_eq!(
        lacking.body["error"]["details"]["reason"],
        "missing_permission"
    );
    let unmatched = nginx(&server, "GET", "/admin", &[("authorization", &auth)]).await;
    unmatched.expect_error(403, "forbidden");
    assert_eq!(unmatched.body["error"]["details"]["reason"], "route_denied");
    nginx(
        &server,
        "GET",
        "/api/articles/../../admin",
        &[("authorization", &auth)],
    )
    .await
    .expect_error(403, "forbidden");

    // A project rule needs a token of that project: an unbound one is refused.
    let lacking = nginx(
        &server,
        "PUT",
        "/api/shop/cart",
        &[("authorization", &auth)],
    )
    .await;
    lacking.expect_error(403, "forbidden");
    assert_eq!(
        lacking.body["error"]["details"]["reason"],
        "missing_permission"
    );
    let everywhere = admin
        .create_token(json!({"name": "unbound writer", "type": "full-access", "lifespan": "30d"}))
        .await
        .secret();
    let unbound = nginx(
        &server,
        "PUT",
        "/api/shop/cart",
        &[("authorization", &bearer(&everywhere))],
    )
    .await;
    unbound.expect_error(403, "forbidden");
    assert_eq!(unbound.body["error"]["details"]["reason"], "wrong_project");
    let shop_auth = bearer(&shop_secret);
    let in_shop = nginx(
        &server,
        "PUT",
        "/api/shop/cart",
        &[("authorization", &shop_auth)],
    )
    .await;
    in_shop.expect(200);
    assert_eq!(in_shop.header("x-tessera-project"), Some("shop"));

    // No token, a malformed one, an unknown one, a disabled one: 401 with a challenge.
    let unknown = tessera_core::TokenFormat::default()
        .generate(tessera_core::TokenKind::Api, &mut rand::rngs::OsRng);
    admin
        .post(&format!("/v1/tokens/{}/disable", shop.id()), json!({}))
        .await
        .expect(200);
    for credential in [
        None,
        Some("Bearer not-a-token".to_owned()),
        Some(bearer(unknown.expose())),
        Some(shop_auth.clone()),
    ] {
        let headers: Vec<(&str, &str)> = credential
            .as_deref()
            .map(|value| vec![("authorization", value)])
            .unwrap_or_default();
        let refused = nginx(&server, "GET", "/api/articles", &headers).await;
        refused.expect_error(401, "unauthenticated");
        assert!(
            refused
                .header("www-authenticate")
                .is_some_and(|challenge| challenge.starts_with("Bearer")),
            "{:?}",
            refused.headers
        );
    }

    // Without the original request the gateway is misconfigured: say so.
    server
        .raw(
            Method::GET,
            "/v1/forward-auth",
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn envoy_appends_the_original_path_and_keeps_the_method() {
    let server = gateway_server(DefaultRoute::AnyValidToken).await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let (_, secret) = admin.token("envoy reader").await;
    let auth = bearer(&secret);
    // Exactly what Envoy's HTTP ext_authz sends with path_prefix "/v1/forward-auth/envoy":
    // the original method, the prefix followed by the original path and query.
    let read = server
        .raw(
            Method::GET,
            "/v1/forward-auth/envoy/api/articles/7?draft=1",
            &[
                ("authorization", &auth),
                ("x-envoy-expected-rq-timeout-ms", "200"),
            ],
            Vec::new(),
        )
        .await;
    read.expect(200);
    assert!(read.header("x-tessera-token-id").is_some());
    server
        .raw(
            Method::POST,
            "/v1/forward-auth/envoy/api/articles",
            &[("authorization", &auth), ("content-length", "0")],
            Vec::new(),
        )
        .await
        .expect_error(403, "forbidden");
    // Unmatched routes take the default: here any valid token.
    server
        .raw(
            Method::DELETE,
            "/v1/forward-auth/envoy/other",
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await
        .expect(200);
    server
        .raw(
            Method::GET,
            "/v1/forward-auth/envoy",
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await
        .expect(200);
    server
        .raw(Method::GET, "/v1/forward-auth/envoy/other", &[], Vec::new())
        .await
        .expect_error(401, "unauthenticated");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let server = gateway_server(DefaultRoute::AnyValidToken).await;
    let admin = server.admin("super-admin").await;
    let limited = admin
        .create_token(
            json!({"name": "limited", "type": "read-only", "lifespan": "30d",
                              "rate_limit": {"requests": 2, "per_seconds": 3600}}),
        )
        .await;
    let auth = bearer(&limited.secret());
    for _ in 0..2 {
        nginx(&server, "GET", "/anything", &[("authorization", &auth)])
            .await
            .expect(200);
    }
    let refused = nginx(&server, "GET", "/anything", &[("authorization", &auth)]).await;
    refused.expect_error(429, "rate_limited");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1);
}

/// Personal tokens act on Tessera's own API only: a gateway never lets one through,
/// and verify does not know them, with or without a permission.
#[tokio::test]
async fn personal_tokens_never_pass_the_protected_api() {
    let server = gateway_server(DefaultRoute::AnyValidToken).await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let (_, personal) = admin.personal_token("laptop", "full").await;
    nginx(
        &server,
        "GET",
        "/anything",
        &[("authorization", &bearer(&personal))],
    )
    .await
    .expect_error(401, "unauthenticated");
    assert_eq!(server.code(&personal, None, None).await, "not_found");
    assert_eq!(
        server.code(&personal, Some("article.find"), None).await,
        "not_found"
    );
    // It still signs its owner in to the management API.
    server
        .bearer(&personal, Method::GET, "/v1/auth/me", None)
        .await
        .expect(200);
}

/// Behind a trusted proxy, the client is the one its forwarding headers name: failures
/// are counted per original client (one noisy client does not get every client of the
/// gateway refused) and the audit log records it. From an untrusted peer the headers
/// are ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_the_original_client_is_counted() {
    let mut settings = default_settings();
    settings.verify_failures_per_address = 3;
    settings.forward_auth = RouteRules::new(&ForwardAuthConfig {
        default: DefaultRoute::AnyValidToken,
        rules: vec![],
    })
    .unwrap();
    let options = tessera_server::HttpOptions {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..tessera_server::HttpOptions::default()
    };
    let server = TestServer::start_with_options(settings, options).await;
    let admin = server.admin("super-admin").await;
    let (_, secret) = admin.token("good").await;
    let from = |client: &'static str, token: &str| {
        let server = &server;
        let authorization = format!("Bearer {token}");
        async move {
            server
                .raw(
                    Method::GET,
                    "/v1/forward-auth",
                    &[
                        ("x-forwarded-method", "GET"),
                        ("x-forwarded-uri", "/x"),
                        ("x-forwarded-for", client),
                        ("authorization", &authorization),
                    ],
                    Vec::new(),
                )
                .await
        }
    };
    for _ in 0..3 {
        from("203.0.113.1", "tsr_bad").await.expect(401);
    }
    from("203.0.113.1", "tsr_bad")
        .await
        .expect_error(429, "rate_limited");
    from("203.0.113.2", "tsr_bad")
        .await
        .expect_error(401, "unauthenticated");
    from("203.0.113.1", &secret).await.expect(200);

    // Sign-in failures are audited with the original client.
    let failed = server
        .raw(
            Method::POST,
            "/v1/auth/login",
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", "198.51.100.23"),
            ],
            br#"{"email":"nobody@example.com","password":"wrong password"}"#.to_vec(),
        )
        .await;
    failed.expect(401);
    let audit = admin.get("/v1/audit?action=auth.login_failed").await;
    assert_eq!(
        audit.body["items"][0]["client_address"], "198.51.100.23",
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let server = gateway_server(DefaultRoute::AnyValidToken).await;
    let admin = server.admin("super-admin").await;
    server
        .raw(
            Method::POST,
            "/v1/auth/login",
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", "198.51.100.23"),
            ],
            br#"{"email":"nobody@example.com","password":"wrong password"}"#.to_vec(),
        )
        .await
        .expect(401);
    let audit = admin.get("/v1/audit?action=auth.login_failed").await;
    assert_eq!(
        audit.body["items"][0]["client_address"], "127.0.0.1",
        "{}",
        audit.text
    );
}

/// A rule naming a permission the catalog lacks is reported (`serve` logs it at start),
/// since no token could pass that route.
#[tokio::test]
async fn rules_outside_the_catalog_are_reported() {
    let server = gateway_server(DefaultRoute::Deny).await;
    let problems = server.app.route_rules_outside_catalog().await.unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("forward_auth.rules[0]") && problems[0].contains("article.find")
    );
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    assert!(
        server
            .app
            .route_rules_outside_catalog()
            .await
            .unwrap()
            .is_empty()
    );
}
