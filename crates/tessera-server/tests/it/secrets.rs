//! A secret is shown once and nowhere else: not in the database files, not in any log
//! line (captured at DEBUG from every server of this process), not in a later response.

use serde_json::json;
use tessera_core::TokenFormat;

use crate::harness::{TestServer, captured_logs, install_log_capture};

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
    assert!(server.data_dir().join("tessera.db").is_file());

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
