//! `GET /metrics`: Prometheus text that `promtool check metrics` accepts, counters that
//! move with the requests a test makes, and nothing that names a token.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::json;
use tessera_core::DefaultRoute;

use crate::forward_auth::gateway_server;
use crate::harness::TestServer;

async fn scrape(server: &TestServer) -> String {
    let response = server.anon(Method::GET, "/metrics", None).await;
    response.expect(200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text
}

/// The value of the sample `series` (name and labels exactly as exposed), 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().expect("a number"))
}

#[tokio::test]
async fn counters_follow_the_requests_made() {
    let server = gateway_server(DefaultRoute::Deny).await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let created = admin
        .create_token(json!({"name": "metered reader", "type": "read-only", "lifespan": "30d"}))
        .await;
    let secret = created.secret();
    let before = scrape(&server).await;

    server.verify(json!({"token": secret})).await.expect(200);
    server
        .verify(json!({"token": "tsr_nope"}))
        .await
        .expect(200);
    server
        .verify(json!({"token": secret, "permission": "article.create"}))
        .await
        .expect(200);
    let auth = format!("Bearer {secret}");
    for token in [Some(auth.as_str()), None] {
        let mut headers = vec![
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/articles/1"),
        ];
        if let Some(token) = token {
            headers.push(("authorization", token));
        }
        server
            .raw(Method::GET, "/v1/forward-auth", &headers, Vec::new())
            .await;
    }
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": admin.email, "password": "not the password"})),
        )
        .await
        .expect(401);
    admin.get("/v1/tokens").await.expect(200);

    let after = scrape(&server).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved("tessera_verifications_total{result=\"valid\"}"),
        2.0,
        "verify and forward-auth"
    );
    assert_eq!(
        moved("tessera_verifications_total{result=\"malformed\"}"),
        1.0
    );
    assert_eq!(
        moved("tessera_verifications_total{result=\"forbidden\"}"),
        1.0
    );
    assert!(moved("tessera_verify_duration_seconds_count") >= 4.0);
    assert_eq!(moved("tessera_forward_auth_total{status=\"200\"}"), 1.0);
    assert_eq!(moved("tessera_forward_auth_total{status=\"401\"}"), 1.0);
    assert_eq!(moved("tessera_login_failures_total"), 1.0);
    assert_eq!(
        moved("tessera_http_requests_total{method=\"GET\",route=\"/v1/tokens\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        moved("tessera_http_requests_total{method=\"POST\",route=\"/v1/verify\",status=\"200\"}"),
        3.0
    );
    assert_eq!(sample(&after, "tessera_index_tokens"), 1.0, "{after}");
    assert!(
        sample(&after, "tessera_db_pool_connections") >= 1.0,
        "{after}"
    );
    assert!(after.contains("tessera_change_feed_lag_seconds "));
    // Nothing identifies a token or a caller.
    assert!(!after.contains("metered reader"));
    assert!(!after.contains(&created.id()));
    assert!(!after.contains(&secret[..8]));
}

#[tokio::test]
async fn usage_flushes_are_counted() {
    let server = TestServer::start().await;
    let admin = server.admin("token-manager").await;
    let (_, secret) = admin.token("used").await;
    server.verify(json!({"token": secret})).await.expect(200);
    let before = scrape(&server).await;
    server.app.flush_usage().await.expect("flush");
    let after = scrape(&server).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved("tessera_usage_flushes_total{outcome=\"ok\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(moved("tessera_usage_flush_duration_seconds_count"), 1.0);
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let Ok(promtool) = std::env::var("TESSERA_TEST_PROMTOOL") else {
        eprintln!(
            "SKIPPED promtool_accepts_the_exposition: set TESSERA_TEST_PROMTOOL to promtool \
             (apt-get install prometheus) to run it"
        );
        return;
    };
    let server = gateway_server(DefaultRoute::Deny).await;
    let admin = server.admin("super-admin").await;
    let (_, secret) = admin.token("linted").await;
    server.verify(json!({"token": secret})).await.expect(200);
    admin.get("/v1/tokens").await.expect(200);
    let text = scrape(&server).await;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
