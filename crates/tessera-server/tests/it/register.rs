//! `POST /v1/auth/register-first`: the first administrator of an empty server, only
//! with the one-time setup code the server armed at start, and the JSON content type
//! that sign-in endpoints insist on.

use reqwest::Method;
use serde_json::json;

use crate::harness::{PASSWORD, Resp, TestServer, captured_logs, install_log_capture};

/// A code of the same shape as `code` that is not it (its last symbol changed).
fn other_than(code: &str) -> String {
    let mut wrong = code.to_owned();
    let last = wrong.pop().expect("a code");
    wrong.push(if last == 'Z' { 'Y' } else { 'Z' });
    wrong
}

/// Asserts that neither `code` nor its bare symbols appear in `text`.
#[track_caller]
fn assert_hidden(code: &str, text: &str, what: &str) {
    let bare = code.replace('-', "");
    assert!(
        !text.contains(code) && !text.contains(&bare),
        "{what} holds the setup code"
    );
}

#[tokio::test]
async fn the_first_administrator_registers_once_and_is_signed_in() {
    install_log_capture();
    let server = TestServer::start().await;
    let code = server.armed_code().to_owned();
    assert!(
        std::fs::read_to_string(server.data_dir().join("setup-code"))
            .expect("the setup-code file")
            .contains(&code)
    );
    let mut responses: Vec<(&str, Resp)> = Vec::new();
    // Bad fields are named, and leave the server empty.
    let (invalid, none) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": code, "email": "not-an-email", "password": "short"}),
        )
        .await;
    invalid.expect_invalid("email").expect_invalid("password");
    assert!(none.is_none(), "no session for a refused registration");
    responses.push(("invalid fields", invalid));
    let (missing, _) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": code, "email": "a@example.com"}),
        )
        .await;
    missing.expect_invalid("password");
    responses.push(("missing password", missing));
    let (extra, _) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": code, "email": "a@example.com", "password": PASSWORD, "role": "viewer"}),
        )
        .await;
    extra.expect_invalid("role");
    responses.push(("unknown field", extra));

    // Without the setup code, or with a wrong one: refused, naming the field.
    let (no_code, none) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    no_code.expect_invalid("setup_code");
    assert!(none.is_none());
    responses.push(("no code", no_code));
    for wrong in [other_than(&code), String::new(), "x".repeat(500)] {
        let (refused, none) = server
            .sign_in(
                "/v1/auth/register-first",
                &json!({"setup_code": wrong, "email": "a@example.com", "password": PASSWORD}),
            )
            .await;
        refused.expect_invalid("setup_code");
        assert!(none.is_none(), "no session for a wrong code");
        assert!(refused.headers.get("set-cookie").is_none());
        responses.push(("wrong code", refused));
    }

    // The code as typed by a person: lower case, spaces for dashes.
    let typed = format!(" {} ", code.to_lowercase().replace('-', " "));
    let (response, first) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": typed, "email": "First@Example.com", "name": "First", "password": PASSWORD}),
        )
        .await;
    response.expect(201);
    assert!(
        !server.data_dir().join("setup-code").exists(),
        "the code's file goes with the code"
    );
    let cookie = response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tessera_session="))
        .expect("a session cookie")
        .to_ascii_lowercase();
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite="),
        "{cookie}"
    );
    let first = first.expect("signed in");
    assert_eq!(response.body["user"]["role"], "super-admin");
    assert_eq!(response.body["user"]["name"], "First");
    assert_eq!(response.body["user"]["email"], "First@Example.com");
    assert_eq!(response.body["user"]["active"], true);
    assert!(
        response.body["csrf_token"]
            .as_str()
            .is_some_and(|c| c.len() >= 16)
    );
    assert!(!response.text.contains(PASSWORD) && !response.text.contains("$argon2"));

    // The session works at once, CSRF and all, with every permission.
    let me = first.get("/v1/auth/me").await;
    me.expect(200);
    assert_eq!(me.body["permissions"].as_array().map(Vec::len), Some(10));
    first.token("first token").await;
    // The password works for later sign-ins.
    server.login_with("first@example.com", PASSWORD).await;

    // Only once, with the same code or without.
    let (again, second) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": code, "email": "second@example.com", "password": PASSWORD}),
        )
        .await;
    again.expect_error(409, "conflict");
    assert!(second.is_none(), "no session for a refused registration");
    assert!(
        again.headers.get("set-cookie").is_none(),
        "no cookie: {:?}",
        again.headers
    );
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": "second@example.com", "password": PASSWORD})),
        )
        .await
        .expect_error(401, "unauthenticated");
    let users = first.get("/v1/users").await;
    assert_eq!(
        users.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        users.text
    );

    // Recorded in the audit log, with the client address.
    let audit = first.get("/v1/audit?action=user.register_first").await;
    audit.expect(200);
    let items = audit.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", audit.text);
    assert_eq!(items[0]["actor"], "user:First@Example.com");
    assert_eq!(items[0]["client_address"], "127.0.0.1");
    responses.push(("registered", response));
    responses.push(("again", again));

    // The code never appears in a response, the audit log or the logs.
    let audit = first.get("/v1/audit?limit=500").await;
    audit.expect(200);
    assert_hidden(&code, &audit.text, "the audit log");
    for (what, response) in &responses {
        assert_hidden(&code, &response.text, what);
    }
    assert_hidden(
        &code,
        &String::from_utf8_lossy(&captured_logs()),
        "the captured logs",
    );
}

#[tokio::test]
async fn wrong_setup_codes_are_throttled_like_logins() {
    let server = TestServer::start().await;
    let code = server.armed_code().to_owned();
    let wrong =
        json!({"setup_code": other_than(&code), "email": "a@example.com", "password": PASSWORD});
    let budget = server.app.settings().login_failures_per_address;
    for _ in 0..budget {
        server
            .anon(Method::POST, "/v1/auth/register-first", Some(wrong.clone()))
            .await
            .expect_invalid("setup_code");
    }
    // Past the per-address budget even the right code waits, and so do logins.
    for code in [other_than(&code), code.clone()] {
        let limited = server
            .anon(
                Method::POST,
                "/v1/auth/register-first",
                Some(json!({"setup_code": code, "email": "a@example.com", "password": PASSWORD})),
            )
            .await;
        limited.expect_error(429, "rate_limited");
        assert!(
            limited.header("retry-after").is_some(),
            "{:?}",
            limited.headers
        );
    }
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": "a@example.com", "password": PASSWORD})),
        )
        .await
        .expect_error(429, "rate_limited");
    assert!(
        server.data_dir().join("setup-code").exists(),
        "the code stays armed"
    );
}

#[tokio::test]
async fn a_server_that_starts_with_an_administrator_arms_no_code() {
    let server = TestServer::start().await;
    let code = server.armed_code().to_owned();
    server.create_admin("super-admin").await;
    let dir = server.stop().await;
    assert!(
        dir.path().join("setup-code").exists(),
        "left from the first start"
    );
    let restarted = TestServer::start_in(dir, crate::harness::default_settings()).await;
    assert_eq!(restarted.setup_code, None);
    assert!(
        !restarted.data_dir().join("setup-code").exists(),
        "a leftover code file is removed"
    );
    let (refused, none) = restarted
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": code, "email": "late@example.com", "password": PASSWORD}),
        )
        .await;
    refused.expect_error(409, "conflict");
    assert!(none.is_none());
}

#[tokio::test]
async fn registration_is_refused_once_any_administrator_exists() {
    let server = TestServer::start().await;
    // Even one that is not a super-admin, nor active.
    let (_, id) = server.create_admin_with_id("viewer").await;
    let root = server.admin("super-admin").await;
    root.patch(&format!("/v1/users/{id}"), json!({"active": false}))
        .await
        .expect(200);
    // Even with the code this server armed while it was empty.
    let code = server.armed_code();
    let (refused, none) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": code, "email": "intruder@example.com", "password": PASSWORD}),
        )
        .await;
    refused.expect_error(409, "conflict");
    assert!(none.is_none());
    // Anyone may call it, signed in or not: a signed-in caller is refused the same way.
    root.post(
        "/v1/auth/register-first",
        json!({"setup_code": code, "email": "intruder@example.com", "password": PASSWORD}),
    )
    .await
    .expect_error(409, "conflict");
}

#[tokio::test]
async fn sign_in_endpoints_need_a_json_content_type() {
    let server = TestServer::start().await;
    let email = server.create_admin("viewer").await;
    let login = json!({"email": email, "password": PASSWORD}).to_string();
    let register = json!({"setup_code": server.armed_code(), "email": "first@example.com", "password": PASSWORD})
        .to_string();
    for (path, body) in [
        ("/v1/auth/login", &login),
        ("/v1/auth/register-first", &register),
    ] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let headers: Vec<(&str, &str)> = content_type
                .map(|value| vec![("Content-Type", value)])
                .unwrap_or_default();
            let response = server
                .raw(Method::POST, path, &headers, body.clone().into_bytes())
                .await;
            response.expect_error(400, "bad_request");
            assert!(
                response.headers.get("set-cookie").is_none(),
                "{path} as {content_type:?} set a cookie"
            );
            assert!(!response.text.contains(PASSWORD));
        }
        // The same body declared as JSON is accepted (or refused for its content).
        let declared = server
            .raw(
                Method::POST,
                path,
                &[("Content-Type", "application/json; charset=utf-8")],
                body.clone().into_bytes(),
            )
            .await;
        let expected = if path == "/v1/auth/login" { 200 } else { 409 };
        declared.expect(expected);
    }
}
