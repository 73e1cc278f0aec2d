//! `GET /v1/changes`: the subscription embedded verifiers follow.

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test]
async fn a_subscriber_learns_each_token_change_in_order_and_resumes_where_it_left_off() {
    let server = TestServer::start().await;
    let admin = server.admin("viewer").await;
    let (_, personal) = admin.personal_token("follower", "read-only").await;
    let manager = server.admin("token-manager").await;

    // No position yet: a reset carrying the current one.
    let start = server
        .bearer(&personal, Method::GET, "/v1/changes", None)
        .await;
    start.expect(200);
    assert_eq!(start.body["reset"], true);
    assert_eq!(start.body["changes"], json!([]));
    let position = start.body["next"].as_i64().unwrap();

    // Nothing new: an empty page at the same position, not a reset.
    let idle = server
        .bearer(
            &personal,
            Method::GET,
            &format!("/v1/changes?after={position}&wait_ms=50"),
            None,
        )
        .await;
    idle.expect(200);
    assert_eq!(idle.body["reset"], false);
    assert_eq!(idle.body["next"], position);

    let (id, _) = manager.token("watched").await;
    manager
        .post(&format!("/v1/tokens/{id}/disable"), json!({}))
        .await
        .expect(200);
    let page = server
        .bearer(
            &personal,
            Method::GET,
            &format!("/v1/changes?after={position}"),
            None,
        )
        .await;
    page.expect(200);
    assert_eq!(page.body["reset"], false);
    let changes = page.body["changes"].as_array().unwrap();
    assert!(changes.len() >= 2, "{changes:?}");
    assert!(
        changes
            .iter()
            .all(|change| change["kind"] == "token" && change["key"] == id.as_str())
    );
    let next = page.body["next"].as_i64().unwrap();
    assert!(next > position);

    // Resuming from `next` lists nothing twice; a held request answers the next change.
    let waiting = {
        let url = server.url(&format!("/v1/changes?after={next}&wait_ms=5000"));
        let personal = personal.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(personal)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    manager
        .delete(&format!("/v1/tokens/{id}"))
        .await
        .expect(204);
    let held = waiting.await.unwrap();
    let changes = held["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{held}");
    assert_eq!(changes[0]["key"], id.as_str());
    assert!(changes[0]["sequence"].as_i64().unwrap() > next);

    // A position ahead of this server's feed (a restored database): start over.
    let ahead = server
        .bearer(&personal, Method::GET, "/v1/changes?after=999999999", None)
        .await;
    ahead.expect(200);
    assert_eq!(ahead.body["reset"], true);
}

#[tokio::test]
async fn the_subscription_needs_a_credential_and_good_parameters() {
    let server = TestServer::start().await;
    server
        .anon(Method::GET, "/v1/changes", None)
        .await
        .expect_error(401, "unauthenticated");
    let admin = server.admin("viewer").await;
    let (_, personal) = admin.personal_token("follower", "read-only").await;
    for query in ["after=-1", "after=x", "wait_ms=10001", "wait_ms=soon"] {
        server
            .bearer(
                &personal,
                Method::GET,
                &format!("/v1/changes?{query}"),
                None,
            )
            .await
            .expect_error(422, "validation_failed");
    }
}
