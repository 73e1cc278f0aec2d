//! Bad input from a security review: control characters (NUL above all, which
//! PostgreSQL cannot store), look-alike names, and errors that must not repeat a
//! secret pasted into the wrong place. Run on both backends.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;

const NUL: &str = "a\u{0}b";

#[tokio::test]
async fn control_characters_are_refused_in_every_text_field_naming_it() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.article_resource().await;
    let token = json!({"name": "t", "type": "read-only", "lifespan": "30d"});
    let with = |base: &Value, field: &str, value: &str| {
        let mut body = base.clone();
        body[field] = json!(value);
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/v1/tokens", with(&token, "name", NUL), "name"),
        (
            "/v1/tokens",
            with(&token, "description", NUL),
            "description",
        ),
        (
            "/v1/tokens",
            with(&token, "description", "bell\u{7}"),
            "description",
        ),
        (
            "/v1/tokens",
            with(&token, "external_id", NUL),
            "external_id",
        ),
        (
            "/v1/roles",
            json!({"name": NUL, "permissions": ["tokens.read"]}),
            "name",
        ),
        (
            "/v1/roles",
            json!({"name": "auditor", "description": NUL, "permissions": ["tokens.read"]}),
            "description",
        ),
        (
            "/v1/users",
            json!({"email": "a\u{0}@example.com", "role": "viewer"}),
            "email",
        ),
        (
            "/v1/users",
            json!({"email": "n@example.com", "name": NUL, "role": "viewer"}),
            "name",
        ),
        (
            "/v1/users",
            json!({"email": "r@example.com", "role": NUL}),
            "role",
        ),
        (
            "/v1/resources",
            json!({"name": "comment", "description": NUL, "actions": [{"name": "list", "kind": "read"}]}),
            "description",
        ),
        ("/v1/projects", json!({"slug": "shop", "name": NUL}), "name"),
        (
            "/v1/me/tokens",
            json!({"name": "laptop", "description": NUL, "access": "full", "lifespan": "30d"}),
            "description",
        ),
    ];
    for (path, body, field) in cases {
        let response = root.post(path, body.clone()).await;
        assert_eq!(response.status, 422, "{path} {body}: {}", response.text);
        response.expect_invalid(field);
    }
    // Even signing in, with no credentials at all.
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": "a\u{0}@example.com", "password": "x"})),
        )
        .await
        .expect_invalid("email");
    let id = root.token("edited").await.0;
    root.patch(&format!("/v1/tokens/{id}"), json!({"description": NUL}))
        .await
        .expect_invalid("description");

    for (query, field) in [
        ("/v1/tokens?q=%00", "q"),
        ("/v1/tokens?project=%00", "project"),
        ("/v1/tokens?external_id=a%00", "external_id"),
        ("/v1/audit?actor=%00", "actor"),
        ("/v1/audit?action=a%00", "action"),
        ("/v1/audit?target=%00x", "target"),
    ] {
        root.get(query).await.expect_invalid(field);
    }
    // A forged list cursor carrying a NUL is refused like any bad cursor.
    let forged = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"s":"name","a":0,"t":"a\u0000","i":"{id}"}}"#))
    };
    root.get(&format!("/v1/tokens?sort=name&cursor={forged}"))
        .await
        .expect_invalid("cursor");
    // A name in a path that breaks its rule names nothing: 404, not a database error.
    root.send(
        Method::PATCH,
        "/v1/roles/a%00b",
        Some(json!({"description": "x"})),
    )
    .await
    .expect_error(404, "not_found");
    root.delete("/v1/roles/a%00b")
        .await
        .expect_error(404, "not_found");
    root.delete("/v1/resources/a%00b")
        .await
        .expect_error(404, "not_found");
    root.delete("/v1/projects/a%00b")
        .await
        .expect_error(404, "not_found");
    // Line breaks and tabs are fine in a description.
    root.create_token(with(
        &with(&token, "name", "multi-line"),
        "description",
        "one\ntwo\tthree",
    ))
    .await;
}

#[tokio::test]
async fn look_alike_names_collide_and_invisible_characters_are_refused() {
    let server = TestServer::start().await;
    let root = server.admin("token-manager").await;
    root.create_token(json!({"name": "Deploy", "type": "read-only", "lifespan": "30d"}))
        .await;
    // Full-width letters are the same name once normalized (NFKC), case aside.
    root.post(
        "/v1/tokens",
        json!({"name": "ｄｅｐｌｏｙ", "type": "read-only", "lifespan": "30d"}),
    )
    .await
    .expect_error(409, "conflict");
    for name in ["Dep\u{200B}loy", "Deploy\u{202E}", "\u{2066}Deploy\u{2069}"] {
        root.post(
            "/v1/tokens",
            json!({"name": name, "type": "read-only", "lifespan": "30d"}),
        )
        .await
        .expect_invalid("name");
    }
    // Search finds the name whichever width it is typed in.
    let found = root.get("/v1/tokens?q=%EF%BD%84%EF%BD%85%EF%BD%90").await;
    assert_eq!(found.body["total"], 1, "{}", found.text);
}

#[tokio::test]
async fn errors_never_repeat_a_secret_sent_in_the_wrong_place() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.article_resource().await;
    let (_, secret) = root.token("real").await;
    let (_, personal) = root.personal_token("laptop", "full").await;
    let random = &secret[8..];
    let base = json!({"name": "t", "type": "read-only", "lifespan": "30d"});
    let mut cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/tokens?{secret}=1"), None),
        (Method::GET, format!("/v1/users?{secret}=1"), None),
        (Method::GET, format!("/v1/audit?{secret}=1"), None),
    ];
    for (field, value) in [
        ("type", json!(secret)),
        ("lifespan", json!(secret)),
        ("permissions", json!([secret])),
        ("project", json!(secret)),
        ("rate_limit", json!(secret)),
        ("expires_at", json!(secret)),
        (secret.as_str(), json!(1)),
    ] {
        let mut body = base.clone();
        body[field] = value;
        if field == "permissions" {
            body["type"] = json!("custom");
        }
        cases.push((Method::POST, "/v1/tokens".into(), Some(body)));
    }
    cases.push((
        Method::POST,
        "/v1/roles".into(),
        Some(json!({"name": "x", "permissions": [secret]})),
    ));
    cases.push((
        Method::POST,
        "/v1/resources".into(),
        Some(json!({"name": secret, "actions": [{"name": "find", "kind": "read"}]})),
    ));
    cases.push((
        Method::POST,
        "/v1/resources".into(),
        Some(json!({"name": "widget", "actions": [{"name": secret, "kind": "read"}]})),
    ));
    let mut with_external = base.clone();
    with_external["external_id"] = json!(secret);
    cases.push((Method::POST, "/v1/tokens".into(), Some(with_external)));
    cases.push((
        Method::POST,
        "/v1/users".into(),
        Some(json!({"email": "u@example.com", "role": secret})),
    ));
    cases.push((
        Method::POST,
        "/v1/tokens/00000000-0000-7000-8000-000000000000/upgrade-version".into(),
        Some(json!({"api_version": secret})),
    ));
    for (method, path, body) in cases {
        let response = root.send(method.clone(), &path, body.clone()).await;
        assert!(
            (400..500).contains(&response.status),
            "{method} {path} {body:?}: {}",
            response.text
        );
        assert!(
            !response.text.contains(random),
            "{method} {path} {body:?} repeats the secret: {}",
            response.text
        );
    }
    // A name that is itself a token is refused, without repeating it.
    for name in [&secret, &personal] {
        let refused = root
            .post(
                "/v1/tokens",
                json!({"name": name, "type": "read-only", "lifespan": "30d"}),
            )
            .await;
        refused.expect_invalid("name");
        assert!(!refused.text.contains(&name[8..]), "{}", refused.text);
    }
}

#[tokio::test]
async fn routes_without_parameters_refuse_a_query_string() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    for path in [
        "/v1/users?role=viewer",
        "/v1/roles?name=x",
        "/v1/me/tokens?status=active",
        "/v1/resources?q=a",
        "/v1/projects?limit=1",
        "/v1/api-versions?x",
        "/v1/auth/me?verbose=1",
    ] {
        let refused = root.get(path).await;
        refused.expect_error(422, "validation_failed");
        let name = path
            .split_once('?')
            .and_then(|(_, q)| q.split('=').next())
            .expect("a parameter");
        refused.expect_invalid(name);
    }
    // The routes that take parameters still do, and still name an unknown one.
    root.get("/v1/tokens?status=active").await.expect(200);
    root.send(Method::HEAD, "/v1/tokens?status=active", None)
        .await
        .expect(200);
    root.get("/v1/audit?limit=5").await.expect(200);
    root.get("/v1/tokens?colour=red")
        .await
        .expect_invalid("colour");
}

#[tokio::test]
async fn http_level_mistakes_answer_the_spec_error_body() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    // A wrong method: 405 with Allow.
    let wrong = root.send(Method::PUT, "/v1/tokens", Some(json!({}))).await;
    wrong.expect_error(405, "method_not_allowed");
    let allow = wrong.header("allow").expect("Allow header");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let wrong = server.anon(Method::GET, "/v1/verify", None).await;
    wrong.expect_error(405, "method_not_allowed");
    // A path that is not UTF-8 once decoded.
    for path in [
        "/v1/tokens/%FF%FE",
        "/v1/users/%C3%28/tokens",
        "/admin/tokens/%FF",
    ] {
        let bad = root.get(path).await;
        assert_eq!(bad.status, 400, "{path}: {}", bad.text);
        bad.expect_error(400, "bad_request");
    }
    // Years RFC 3339 cannot write are refused, in either spelling.
    for at in ["+10000-01-01T00:00:00Z", "10000-01-01T00:00:00Z"] {
        let refused = root
            .post(
                "/v1/tokens",
                json!({"name": "far", "type": "read-only", "expires_at": at}),
            )
            .await;
        refused.expect_invalid("expires_at");
    }
}

#[tokio::test]
async fn a_forged_request_id_is_replaced() {
    let server = TestServer::start().await;
    for (sent, kept) in [
        ("trace-42.a_b:c", true),
        ("evil\" level=error msg=\"forged", false),
        ("x".repeat(65).as_str(), false),
    ] {
        let response = server
            .raw(
                Method::GET,
                "/healthz",
                &[("x-request-id", sent)],
                Vec::new(),
            )
            .await;
        let echoed = response.header("x-request-id").expect("a request id");
        assert_eq!(echoed == sent, kept, "{sent:?} -> {echoed:?}");
    }
}
