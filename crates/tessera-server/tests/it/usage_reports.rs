//! `POST /v1/usage-reports`: embedded verifiers report the verifications they answered
//! from their cache; the counts land in the tokens' usage and `last_used_at`.
//! (Who may call it: `permissions.rs`.)

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;

#[tokio::test]
async fn a_report_moves_usage_and_last_used_at_of_the_tokens_it_names() {
    let server = TestServer::start().await;
    let manager = server.admin("token-manager").await;
    let (_, credential) = manager.personal_token("verifier", "full").await;
    let (used, _) = manager.token("used").await;
    let (idle, _) = manager.token("idle").await;
    let (personal, _) = manager
        .personal_token("not an api token", "read-only")
        .await;
    let gone = "0190aaaa-0000-7000-8000-000000000000";

    let sent = server.app.now();
    let report = server
        .bearer(
            &credential,
            Method::POST,
            "/v1/usage-reports",
            Some(json!({"tokens": [
                {"id": used, "allowed": 7, "denied": 2},
                {"id": idle, "denied": 1},
                {"id": personal, "allowed": 1},
                {"id": gone, "allowed": 1},
            ]})),
        )
        .await;
    report.expect(200);
    assert_eq!(report.body, json!({"recorded": 2, "ignored": 2}));

    server.app.flush_usage().await.expect("flush");
    let today = server.app.now().date_naive().to_string();
    let counts = |body: &Value| {
        body["days"]
            .as_array()
            .expect("days")
            .iter()
            .find(|day| day["date"] == today.as_str())
            .map(|day| (day["allowed"].clone(), day["denied"].clone()))
    };
    let usage = manager
        .get(&format!("/v1/tokens/{used}/usage?days=1"))
        .await;
    usage.expect(200);
    assert_eq!(counts(&usage.body), Some((json!(7), json!(2))));
    let record = manager.get(&format!("/v1/tokens/{used}")).await;
    let last_used = record.body["last_used_at"].as_str().expect("last_used_at");
    let last_used = chrono::DateTime::parse_from_rfc3339(last_used)
        .expect("a time")
        .timestamp_millis();
    // When the report arrived, on Tessera's clock.
    assert!(
        (sent.timestamp_millis()..=server.app.now().timestamp_millis()).contains(&last_used),
        "{last_used}"
    );
    // Refusals alone count, but are no use.
    let usage = manager
        .get(&format!("/v1/tokens/{idle}/usage?days=1"))
        .await;
    assert_eq!(counts(&usage.body), Some((json!(0), json!(1))));
    let record = manager.get(&format!("/v1/tokens/{idle}")).await;
    assert_eq!(record.body["last_used_at"], Value::Null);
}

#[tokio::test]
async fn a_bad_report_is_refused_naming_the_field() {
    let server = TestServer::start().await;
    let manager = server.admin("token-manager").await;
    let (_, credential) = manager.personal_token("verifier", "full").await;
    let (id, _) = manager.token("reported").await;
    let send = |body: Value| {
        let credential = credential.clone();
        let server = &server;
        async move {
            server
                .bearer(&credential, Method::POST, "/v1/usage-reports", Some(body))
                .await
        }
    };

    send(json!({"tokens": [{"id": id, "allowed": 1_000_000_001_u64}]}))
        .await
        .expect_invalid("tokens[0].allowed");
    send(json!({"tokens": [{"id": id}, {"id": id, "denied": 1_000_000_001_u64}]}))
        .await
        .expect_invalid("tokens[1].denied");
    // One token twice would multiply the per-entry bound.
    send(json!({"tokens": [{"id": id, "allowed": 1}, {"id": id, "allowed": 1}]}))
        .await
        .expect_invalid("tokens[1].id");
    let many: Vec<Value> = (0..501).map(|_| json!({"id": id, "allowed": 1})).collect();
    send(json!({ "tokens": many }))
        .await
        .expect_invalid("tokens");
    let bad_id = send(json!({"tokens": [{"id": "not-a-uuid", "allowed": 1}]})).await;
    bad_id.expect_error(422, "validation_failed");
    assert!(bad_id.text.contains("id"), "{}", bad_id.text);
    send(json!({"tokens": [{"id": id, "allowed": -1}]}))
        .await
        .expect_error(422, "validation_failed");
    send(json!({"tokens": [{"id": id, "token": "tsr_x"}]}))
        .await
        .expect_error(422, "validation_failed");
    send(json!({})).await.expect_error(422, "validation_failed");
    let not_json = server
        .raw(
            Method::POST,
            "/v1/usage-reports",
            &[
                ("authorization", &format!("Bearer {credential}")),
                ("content-type", "application/json"),
            ],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(not_json.status, 400, "{}", not_json.text);
    not_json.expect_error(400, "bad_request");
    // Larger than the body limit.
    let huge = vec![b' '; 70 * 1024];
    let too_large = server
        .raw(
            Method::POST,
            "/v1/usage-reports",
            &[
                ("authorization", &format!("Bearer {credential}")),
                ("content-type", "application/json"),
            ],
            huge,
        )
        .await;
    too_large.expect_error(413, "payload_too_large");

    // Nothing was recorded.
    server.app.flush_usage().await.expect("flush");
    let record = manager.get(&format!("/v1/tokens/{id}")).await;
    assert_eq!(record.body["last_used_at"], Value::Null);
}
