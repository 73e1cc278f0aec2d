//! `/v1/auth`: sessions, cookies, CSRF, login throttling, and API tokens refused on
//! management routes.

use reqwest::Method;
use serde_json::json;

use crate::harness::{PASSWORD, TestServer};

#[tokio::test]
async fn login_sets_an_http_only_same_site_cookie_and_returns_user_and_csrf() {
    let server = TestServer::start().await;
    let email = server.create_admin("token-manager").await;
    let response = server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({ "email": email, "password": PASSWORD })),
        )
        .await;
    response.expect(200);
    let cookie = response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tessera_session="))
        .expect("session cookie")
        .to_owned();
    let attributes: Vec<String> = cookie
        .split(';')
        .map(|part| part.trim().to_ascii_lowercase())
        .collect();
    assert!(attributes.contains(&"httponly".to_owned()), "{cookie}");
    assert!(
        attributes.iter().any(|a| a.starts_with("samesite=")),
        "{cookie}"
    );
    assert!(attributes.contains(&"path=/".to_owned()), "{cookie}");
    let value = cookie
        .strip_prefix("tessera_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default();
    assert!(
        value.len() >= 32,
        "session value is long and random: {cookie}"
    );

    let body = &response.body;
    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["user"]["role"], "token-manager");
    assert_eq!(body["user"]["active"], true);
    assert!(body["user"]["id"].is_string());
    assert!(body["user"].get("password_hash").is_none());
    let csrf = body["csrf_token"].as_str().expect("csrf_token");
    assert!(csrf.len() >= 16);
    assert!(
        !response.text.contains(value),
        "the body never repeats the cookie"
    );

    // Email lookup is case-insensitive.
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({ "email": email.to_uppercase(), "password": PASSWORD })),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn wrong_password_and_unknown_account_are_401() {
    let server = TestServer::start().await;
    let email = server.create_admin("viewer").await;
    for (email, password) in [
        (email.as_str(), "not the password at all"),
        ("nobody@example.com", PASSWORD),
    ] {
        let response = server
            .anon(
                Method::POST,
                "/v1/auth/login",
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        response.expect_error(401, "unauthenticated");
        assert!(response.headers.get("set-cookie").is_none());
        // The same words for both, and words a person reads as "try again".
        assert_eq!(
            response.body["error"]["message"], "email or password is incorrect",
            "{}",
            response.text
        );
    }
    // A malformed login body is a 422 naming the field, not a 500.
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({ "email": email, "password": PASSWORD, "remember": true })),
        )
        .await
        .expect_invalid("remember");
}

#[tokio::test]
async fn five_failures_for_one_account_throttle_it_with_retry_after() {
    let server = TestServer::start().await;
    let email = server.create_admin("viewer").await;
    let other = server.create_admin("viewer").await;
    let attempt = |email: String, password: &'static str| {
        let server = &server;
        async move {
            server
                .anon(
                    Method::POST,
                    "/v1/auth/login",
                    Some(json!({ "email": email, "password": password })),
                )
                .await
        }
    };
    for n in 1..=5 {
        let response = attempt(email.clone(), "wrong password!").await;
        assert_eq!(response.status, 401, "failure {n}: {}", response.text);
    }
    let blocked = attempt(email.clone(), "wrong password!").await;
    blocked.expect_error(429, "rate_limited");
    let retry_after: u64 = blocked
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    // Even the right password waits now …
    attempt(email.clone(), PASSWORD)
        .await
        .expect_error(429, "rate_limited");
    // … while another account from the same address still signs in.
    attempt(other, PASSWORD).await.expect(200);
}

#[tokio::test]
async fn me_and_logout_end_the_session_on_the_server() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let me = admin.get("/v1/auth/me").await;
    me.expect(200);
    assert_eq!(me.body["email"], admin.email.as_str());
    assert_eq!(me.body["role"], "super-admin");
    let permissions = me.body["permissions"].as_array().expect("permissions");
    assert_eq!(permissions.len(), 10, "super-admin holds every permission");

    // Logout needs the CSRF header like any unsafe request.
    admin
        .raw(Method::POST, "/v1/auth/logout", &[], None)
        .await
        .expect_error(403, "forbidden");
    let logout = admin.post("/v1/auth/logout", json!({})).await;
    logout.expect(204);
    let cleared = logout.header("set-cookie").expect("cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    admin
        .get("/v1/auth/me")
        .await
        .expect_error(401, "unauthenticated");

    // The old cookie value itself no longer works: the session is gone server-side.
    let replay = reqwest::Client::new()
        .get(server.url("/v1/auth/me"))
        .header("Cookie", format!("tessera_session={}", admin.session))
        .send()
        .await
        .expect("request");
    assert_eq!(replay.status(), 401);

    // Without any cookie at all.
    server
        .anon(Method::GET, "/v1/auth/me", None)
        .await
        .expect_error(401, "unauthenticated");
    // A made-up cookie.
    let forged = reqwest::Client::new()
        .get(server.url("/v1/auth/me"))
        .header("Cookie", "tessera_session=forged-session-value")
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn unsafe_requests_need_the_right_csrf_header() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let body = br#"{"name":"csrf","type":"read-only","lifespan":"7d"}"#.to_vec();
    admin
        .raw(Method::POST, "/v1/tokens", &[], Some(body.clone()))
        .await
        .expect_error(403, "forbidden");
    admin
        .raw(
            Method::POST,
            "/v1/tokens",
            &[("X-CSRF-Token", "not-the-token")],
            Some(body.clone()),
        )
        .await
        .expect_error(403, "forbidden");
    // Another session's CSRF token does not fit this session.
    let other = server.admin("super-admin").await;
    admin
        .raw(
            Method::POST,
            "/v1/tokens",
            &[("X-CSRF-Token", other.csrf.as_str())],
            Some(body.clone()),
        )
        .await
        .expect_error(403, "forbidden");
    let (id, _) = admin.token("victim").await;
    for method in [Method::PATCH, Method::DELETE] {
        admin
            .raw(
                method,
                &format!("/v1/tokens/{id}"),
                &[],
                Some(br#"{"description":"x"}"#.to_vec()),
            )
            .await
            .expect_error(403, "forbidden");
    }
    // Nothing happened: the token is unchanged and the rejected create left no token.
    let list = admin.get("/v1/tokens").await;
    list.expect(200);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["description"], "");
    // Safe methods need no CSRF header.
    admin
        .raw(Method::GET, "/v1/tokens", &[], None)
        .await
        .expect(200);
    admin
        .raw(
            Method::POST,
            "/v1/tokens",
            &[("X-CSRF-Token", admin.csrf.as_str())],
            Some(body),
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn api_tokens_never_authenticate_management_routes() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let (id, secret) = admin.token("bearer").await;
    assert_eq!(server.code(&secret, None, None).await, "valid");
    let bearer = format!("Bearer {secret}");
    let http = reqwest::Client::new();
    for (method, path) in [
        (Method::GET, "/v1/auth/me".to_owned()),
        (Method::GET, "/v1/tokens".to_owned()),
        (Method::GET, format!("/v1/tokens/{id}")),
        (Method::POST, "/v1/tokens".to_owned()),
        (Method::DELETE, format!("/v1/tokens/{id}")),
    ] {
        let response = crate::harness::Resp::read(
            http.request(method.clone(), server.url(&path))
                .header("Authorization", &bearer)
                .json(&json!({"name": "via bearer", "type": "read-only", "lifespan": "7d"}))
                .send()
                .await
                .expect("request"),
        )
        .await;
        response.expect_error(401, "unauthenticated");
        assert!(!response.text.contains(&secret), "{method} {path}");
        let message = response.body["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.starts_with("an API token cannot call management endpoints"),
            "{method} {path}: {message}"
        );
    }
    // A bearer token next to a valid session cookie does not piggyback on it either.
    admin
        .raw(
            Method::GET,
            "/v1/tokens",
            &[("Authorization", bearer.as_str())],
            None,
        )
        .await
        .expect_error(401, "unauthenticated");
    admin
        .raw(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            &[
                ("Authorization", bearer.as_str()),
                ("X-CSRF-Token", admin.csrf.as_str()),
            ],
            None,
        )
        .await
        .expect_error(401, "unauthenticated");
    // The token survived every attempt.
    admin.get(&format!("/v1/tokens/{id}")).await.expect(200);
}

/// Each refused `Authorization` header says what was wrong with it: an empty Bearer
/// never reads as if an API token had been sent.
#[tokio::test]
async fn a_refused_bearer_header_says_what_was_wrong() {
    let server = TestServer::start().await;
    let message = |response: &crate::harness::Resp| {
        response.expect_error(401, "unauthenticated");
        response.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for header in ["Bearer", "Bearer ", "Bearer    ", "Basic abc", "tsrp_x"] {
        let response = server
            .raw(
                Method::GET,
                "/v1/auth/me",
                &[("Authorization", header)],
                Vec::new(),
            )
            .await;
        let message = message(&response);
        assert!(
            message.starts_with("the Authorization header has no token")
                && message.contains("Bearer tsrp_")
                && !message.contains("API token"),
            "{header:?}: {message}"
        );
    }
    let response = server
        .raw(
            Method::GET,
            "/v1/auth/me",
            &[("Authorization", "Bearer tsrp_not-a-real-one")],
            Vec::new(),
        )
        .await;
    let message = message(&response);
    assert!(
        message.starts_with("the bearer token is not a valid personal token")
            && !message.contains("API token"),
        "{message}"
    );
}
