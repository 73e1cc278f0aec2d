//! A secret is shown once and nowhere else: not in the database files, not in any log
//! line (captured at DEBUG from every server of this process), not in a later response.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;
use tessera_core::TokenFormat;

use crate::harness::{Resp, TestServer, captured_logs, install_log_capture};

/// Every position in `haystack` where `needle` occurs.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Anything in `bytes` that parses as a complete token of the default format.
fn well_formed_tokens(bytes: &[u8]) -> Vec<String> {
    let format = TokenFormat::default();
    let mut found = Vec::new();
    for (start, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b't') {
        for length in [50usize, 51] {
            if let Some(candidate) = bytes.get(start..start + length)
                && let Ok(text) = std::str::from_utf8(candidate)
                && format.parse(text).is_ok()
            {
                found.push(text.to_owned());
            }
        }
    }
    found
}

#[tokio::test]
async fn secrets_never_reach_storage_logs_or_later_responses() {
    install_log_capture();
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);

    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    let mut keep = |response: &crate::harness::Resp| {
        secrets.push(response.secret());
        ids.push(response.id());
    };
    let created = admin
        .create_token(json!({"name": "reader", "type": "read-only", "lifespan": "30d"}))
        .await;
    keep(&created);
    let custom = admin
        .create_token(json!({"name": "writer", "type": "custom", "permissions": ["article.create"],
            "lifespan": "unlimited", "project": "shop", "rate_limit": {"requests": 100, "per_seconds": 60}}))
        .await;
    keep(&custom);
    let regenerated = admin
        .post(
            &format!("/v1/tokens/{}/regenerate", created.id()),
            json!({}),
        )
        .await;
    regenerated.expect(200);
    keep(&regenerated);
    let graced = admin
        .post(
            &format!("/v1/tokens/{}/regenerate", custom.id()),
            json!({"grace_period_seconds": 600}),
        )
        .await;
    graced.expect(200);
    keep(&graced);
    let duplicated = admin
        .post(&format!("/v1/tokens/{}/duplicate", custom.id()), json!({}))
        .await;
    duplicated.expect(201);
    keep(&duplicated);
    let mut ids: Vec<String> = ids;
    ids.sort();
    ids.dedup();

    // Verify each, valid and refused, so the verify path logs whatever it logs.
    for secret in &secrets {
        server.check(secret, None, None).await;
        server
            .check(secret, Some("article.create"), Some("shop"))
            .await;
        server.check(secret, Some("article.delete"), None).await;
        let mut broken = secret.clone();
        broken.pop();
        broken.push('!');
        server.check(&broken, None, None).await;
    }
    admin
        .post(&format!("/v1/tokens/{}/disable", ids[0]), json!({}))
        .await
        .expect(200);
    for secret in &secrets {
        server.check(secret, None, Some("shop")).await;
    }
    server.app.flush_usage().await.expect("flush");

    // (c) every later response.
    let mut bodies = Vec::new();
    for path in [
        "/v1/tokens",
        "/v1/tokens?sort=name&limit=1",
        "/v1/tokens?q=tsr_",
    ] {
        let response = admin.get(path).await;
        response.expect(200);
        bodies.push((path.to_owned(), response.text));
    }
    for id in &ids {
        for path in [format!("/v1/tokens/{id}"), format!("/v1/tokens/{id}/usage")] {
            let response = admin.get(&path).await;
            response.expect(200);
            bodies.push((path, response.text));
        }
        let edited = admin
            .patch(
                &format!("/v1/tokens/{id}"),
                json!({"description": "audited"}),
            )
            .await;
        edited.expect(200);
        bodies.push((format!("PATCH /v1/tokens/{id}"), edited.text));
    }
    for secret in &secrets {
        let answer = server.verify(json!({"token": secret})).await;
        bodies.push(("POST /v1/verify".to_owned(), answer.text));
    }
    for (path, body) in &bodies {
        for secret in &secrets {
            let random = &secret[4..44];
            assert!(!body.contains(secret.as_str()), "{path} reveals a secret");
            assert!(
                !body.contains(random),
                "{path} reveals a secret's random part"
            );
        }
    }
    server.app.flush_usage().await.expect("flush");

    // (a) every file in the data dir, read after the server has done its work.
    let mut files = 0;
    for entry in std::fs::read_dir(server.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read file");
        files += 1;
        for secret in &secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{} holds a secret",
                path.display()
            );
            assert!(
                !contains(&bytes, &secret.as_bytes()[4..44]),
                "{} holds a secret's random part",
                path.display()
            );
        }
        assert!(
            well_formed_tokens(&bytes).is_empty(),
            "{} holds a well-formed token",
            path.display()
        );
    }
    assert!(files >= 2, "the database and the pepper were scanned");
    if !server.on_postgres() {
        assert!(server.data_dir().join("tessera.db").is_file());
    }

    // (b) the captured log lines of every server in this process.
    let logs = captured_logs();
    assert!(
        contains(&logs, b"/v1/verify") && contains(&logs, b"/v1/tokens"),
        "the capture sees request logs"
    );
    for secret in &secrets {
        assert!(
            !contains(&logs, secret.as_bytes()),
            "a log line holds a secret"
        );
        assert!(
            !contains(&logs, &secret.as_bytes()[4..44]),
            "a log line holds a secret's random part"
        );
    }
    let leaked = well_formed_tokens(&logs);
    assert!(
        leaked.is_empty(),
        "log lines hold {} well-formed tokens",
        leaked.len()
    );
}

/// Every file of the data dir (the SQLite database, its WAL and shared memory), and on
/// PostgreSQL a dump of the server's schema.
fn data_files(server: &TestServer) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    if let Some(dump) = server.database_dump() {
        files.push((std::path::PathBuf::from("<postgres dump>"), dump));
    }
    for entry in std::fs::read_dir(server.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read file");
            files.push((path, bytes));
        }
    }
    files
}

#[tokio::test]
async fn passwords_and_personal_secrets_never_reach_storage_logs_or_the_audit_log() {
    install_log_capture();
    let server = TestServer::start().await;
    // Passwords unique to this test, so the process-wide log capture can be searched.
    let first_password = "first-run password Kq7vXw2RtP";
    let created_password = "created user password Wd4sL9eQ";
    let reset_password = "reset user password Mx2cV5jHn";
    let wrong_password = "wrong password Zp3mN8rBy0";
    let pasted = "pasted-into-email Yt6bH1qUe4";
    let passwords = [
        first_password,
        created_password,
        reset_password,
        wrong_password,
        pasted,
    ];
    let mut responses: Vec<(String, Resp)> = Vec::new();
    // The one-time setup code, in its printed form and as bare symbols.
    let setup_code = server.armed_code().to_owned();
    let setup_forms = [setup_code.clone(), setup_code.replace('-', "")];

    let (registered, root) = server
        .sign_in(
            "/v1/auth/register-first",
            &json!({"setup_code": server.armed_code(), "email": "root@example.com", "password": first_password}),
        )
        .await;
    registered.expect(201);
    let root = root.expect("signed in");
    responses.push(("POST /v1/auth/register-first".into(), registered));
    let (login, _) = server
        .sign_in(
            "/v1/auth/login",
            &json!({"email": "root@example.com", "password": first_password}),
        )
        .await;
    login.expect(200);
    responses.push(("POST /v1/auth/login".into(), login));
    for body in [
        json!({"email": "root@example.com", "password": wrong_password}),
        json!({"email": pasted, "password": first_password}),
    ] {
        let (failed, _) = server.sign_in("/v1/auth/login", &body).await;
        failed.expect_error(401, "unauthenticated");
        responses.push(("failed POST /v1/auth/login".into(), failed));
    }

    // A user created with a password, which an admin then resets.
    let created = root
        .post(
            "/v1/users",
            json!({"email": "ada@example.com", "role": "token-manager", "password": created_password}),
        )
        .await;
    created.expect(201);
    let ada_id = created.id();
    responses.push(("POST /v1/users".into(), created));
    server.login_with("ada@example.com", created_password).await;
    let reset = root
        .patch(
            &format!("/v1/users/{ada_id}"),
            json!({"password": reset_password, "name": "Ada"}),
        )
        .await;
    reset.expect(200);
    responses.push(("PATCH /v1/users".into(), reset));
    let ada = server.login_with("ada@example.com", reset_password).await;
    // Refused passwords do not leak either.
    let refused = root
        .patch(
            &format!("/v1/users/{ada_id}"),
            json!({"password": "short!"}),
        )
        .await;
    refused.expect_invalid("password");
    assert!(!refused.text.contains("short!"));

    // Personal tokens: created, regenerated, used on management routes and verified.
    let mut personal = Vec::new();
    let mut personal_ids = Vec::new();
    for (owner, access) in [(&root, "full"), (&root, "read-only"), (&ada, "full")] {
        let (id, secret) = owner
            .personal_token(&format!("{access} of {}", owner.email), access)
            .await;
        personal.push(secret);
        personal_ids.push(id);
    }
    let regenerated = ada
        .post(
            &format!("/v1/me/tokens/{}/regenerate", personal_ids[2]),
            json!({}),
        )
        .await;
    regenerated.expect(200);
    // The replaced secret is retired; the new one takes its place.
    let retired = std::mem::replace(&mut personal[2], regenerated.secret());
    assert_eq!(server.code(&retired, None, None).await, "not_found");
    let (_, api_secret) = root.token("service").await;
    for secret in &personal {
        server.check(secret, None, None).await;
        server.check(secret, Some("tokens.read"), None).await;
        for path in ["/v1/tokens", "/v1/audit", "/v1/me/tokens"] {
            let response = server.bearer(secret, Method::GET, path, None).await;
            responses.push((format!("GET {path} as a personal token"), response));
        }
        let refused = server
            .bearer(
                secret,
                Method::POST,
                "/v1/me/tokens",
                Some(json!({"name": "x", "access": "full", "lifespan": "7d"})),
            )
            .await;
        refused.expect_error(403, "forbidden");
        responses.push(("POST /v1/me/tokens as a personal token".into(), refused));
    }
    root.delete(&format!("/v1/me/tokens/{}", personal_ids[0]))
        .await
        .expect(204);

    // A secret pasted into a path is not echoed.
    let mut pasted_secrets = personal.clone();
    pasted_secrets.push(retired);
    pasted_secrets.push(api_secret.clone());
    for secret in &pasted_secrets {
        for (method, path) in [
            (Method::GET, format!("/v1/tokens/{secret}")),
            (Method::GET, format!("/v1/tokens/{secret}/usage")),
            (Method::DELETE, format!("/v1/tokens/{secret}")),
            (Method::DELETE, format!("/v1/me/tokens/{secret}")),
            (Method::GET, format!("/v1/users/{secret}/tokens")),
            (Method::PATCH, format!("/v1/users/{secret}")),
            (Method::PATCH, format!("/v1/roles/{secret}")),
            (Method::DELETE, format!("/v1/roles/{secret}")),
            (Method::PATCH, format!("/v1/resources/{secret}")),
            (Method::DELETE, format!("/v1/projects/{secret}")),
            (Method::GET, format!("/v1/{secret}")),
        ] {
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let response = root.send(method.clone(), &path, body).await;
            assert_eq!(response.status, 404, "{method} {path}: {}", response.text);
            response.expect_error(404, "not_found");
            responses.push((
                format!("{method} {}", path.replace(secret.as_str(), "<secret>")),
                response,
            ));
        }
    }

    // Everything an admin can read afterwards.
    for path in [
        "/v1/users",
        "/v1/audit?limit=500",
        "/v1/me/tokens",
        "/v1/auth/me",
        "/v1/tokens",
        &format!("/v1/users/{ada_id}/tokens"),
    ] {
        let response = root.get(path).await;
        response.expect(200);
        responses.push((format!("GET {path}"), response));
    }
    let audit = root.get("/v1/audit?limit=500").await;
    for action in [
        "user.register_first",
        "auth.login",
        "auth.login_failed",
        "user.create",
        "user.update",
        "personal_token.create",
        "personal_token.regenerate",
    ] {
        assert!(
            audit.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|i| i["action"] == action),
            "{action} is audited"
        );
    }

    // (c) no response holds a password, a secret or a digest.
    let mut leaks = BTreeSet::new();
    for (what, response) in &responses {
        if response.text.contains("$argon2") {
            leaks.insert(format!("{what} holds a digest"));
        }
        if passwords.iter().any(|p| response.text.contains(p)) {
            leaks.insert(format!("{what} holds a password"));
        }
        if setup_forms
            .iter()
            .any(|c| response.text.contains(c.as_str()))
        {
            leaks.insert(format!("{what} holds the setup code"));
        }
        if pasted_secrets
            .iter()
            .any(|s| response.text.contains(s.as_str()) || response.text.contains(&s[5..45]))
        {
            leaks.insert(format!("{what} holds a secret"));
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");

    server.app.flush_usage().await.expect("flush");
    // (a) the SQLite files and the pepper (the setup-code file went with the code).
    let files = data_files(&server);
    assert!(files.len() >= 2);
    assert!(
        !server.data_dir().join("setup-code").exists(),
        "the setup-code file outlived the registration"
    );
    for (path, bytes) in &files {
        for code in &setup_forms {
            assert!(
                !contains(bytes, code.as_bytes()),
                "{} holds the setup code",
                path.display()
            );
        }
        for password in passwords {
            assert!(
                !contains(bytes, password.as_bytes()),
                "{} holds a password",
                path.display()
            );
        }
        for secret in &pasted_secrets {
            assert!(
                !contains(bytes, secret.as_bytes()) && !contains(bytes, &secret.as_bytes()[5..45]),
                "{} holds a secret",
                path.display()
            );
        }
        assert!(
            well_formed_tokens(bytes).is_empty(),
            "{} holds a well-formed token",
            path.display()
        );
    }
    // (b) the captured logs.
    let logs = captured_logs();
    assert!(contains(&logs, b"/v1/"), "the capture sees request logs");
    for password in passwords {
        assert!(
            !contains(&logs, password.as_bytes()),
            "a log line holds a password"
        );
    }
    for secret in &pasted_secrets {
        assert!(
            !contains(&logs, secret.as_bytes()) && !contains(&logs, &secret.as_bytes()[5..45]),
            "a log line holds a secret"
        );
    }
    for code in &setup_forms {
        assert!(
            !contains(&logs, code.as_bytes()),
            "a log line holds the setup code"
        );
    }
    assert!(!contains(&logs, b"$argon2"), "a log line holds a digest");
    let leaked = well_formed_tokens(&logs);
    assert!(
        leaked.is_empty(),
        "log lines hold {} well-formed tokens",
        leaked.len()
    );
}
