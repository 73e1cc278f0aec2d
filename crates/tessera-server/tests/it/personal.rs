//! `/v1/me/tokens` and `/v1/users/{id}/tokens`: personal tokens over HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Resp, TestServer};

const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `tsrp_` + 46 base62 characters (40 random, 6 of checksum).
#[track_caller]
fn assert_personal_format(secret: &str) {
    let rest = secret
        .strip_prefix("tsrp_")
        .unwrap_or_else(|| panic!("a personal token starts with tsrp_: {secret}"));
    assert_eq!(rest.len(), 46, "{secret}");
    assert!(rest.chars().all(|c| BASE62.contains(c)), "{secret}");
    // The checksum: CRC-32 of everything before it, 6 base62 digits.
    let (body, checksum) = secret.split_at(secret.len() - 6);
    let mut crc = crc32(body.as_bytes());
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62.as_bytes()[(crc % 62) as usize];
        crc /= 62;
    }
    assert_eq!(checksum.as_bytes(), digits, "checksum of {secret}");
}

/// CRC-32 (IEEE, as in zlib).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The ids of a token list.
fn ids(response: &Resp) -> Vec<String> {
    response
        .body
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", response.text))
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn the_owner_creates_lists_regenerates_and_deletes_personal_tokens() {
    let server = TestServer::start().await;
    server.admin("super-admin").await;
    let ada = server.admin("token-manager").await;

    let created = ada
        .post(
            "/v1/me/tokens",
            json!({"name": "laptop", "description": "my laptop", "access": "full",
                   "lifespan": "30d"}),
        )
        .await;
    created.expect(201);
    let secret = created.secret();
    assert_personal_format(&secret);
    let body = &created.body;
    assert_eq!(body["kind"], "personal");
    assert_eq!(body["access"], "full");
    assert_eq!(body["owner_id"], ada.id.as_str());
    assert_eq!(body["name"], "laptop");
    assert_eq!(body["description"], "my laptop");
    assert_eq!(body["status"], "active");
    assert_eq!(body["expired"], false);
    assert_eq!(body["lifespan"], "30d");
    assert_eq!(body["project"], Value::Null);
    assert_eq!(body["hint"], &secret[..9]);
    assert_eq!(body["created_by"], format!("user:{}", ada.email));
    let created_at = chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().expect("t"))
        .expect("created_at");
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("t"))
        .expect("expires_at");
    assert_eq!(expires_at - created_at, chrono::Duration::days(30));
    let id = created.id();

    // Read-only, with an explicit expiry.
    let later = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let read_only = ada
        .post(
            "/v1/me/tokens",
            json!({"name": "ci", "access": "read-only", "expires_at": later}),
        )
        .await;
    read_only.expect(201);
    assert_eq!(read_only.body["access"], "read-only");
    assert_eq!(read_only.body["lifespan"], "custom");
    assert_personal_format(&read_only.secret());
    assert_ne!(read_only.secret(), secret);

    // Validation names each bad field.
    ada.post("/v1/me/tokens", json!({"name": "x", "lifespan": "30d"}))
        .await
        .expect_invalid("access");
    ada.post(
        "/v1/me/tokens",
        json!({"name": "x", "access": "admin", "lifespan": "30d"}),
    )
    .await
    .expect_invalid("access");
    ada.post("/v1/me/tokens", json!({"name": "x", "access": "full"}))
        .await
        .expect_invalid("lifespan");
    ada.post(
        "/v1/me/tokens",
        json!({"name": "", "access": "full", "lifespan": "7d"}),
    )
    .await
    .expect_invalid("name");
    ada.post(
        "/v1/me/tokens",
        json!({"name": "x", "access": "full", "lifespan": "7d", "type": "custom"}),
    )
    .await
    .expect_invalid("type");

    // Listed without secrets, newest first; not among the API tokens.
    let listed = ada.get("/v1/me/tokens").await;
    listed.expect(200);
    assert_eq!(ids(&listed), [read_only.id(), id.clone()]);
    for item in listed.body.as_array().expect("list") {
        assert!(item.get("token").is_none(), "{item}");
        assert_eq!(item["kind"], "personal");
        assert_eq!(item["owner_id"], ada.id.as_str());
    }
    assert!(!listed.text.contains(&secret) && !listed.text.contains(&secret[5..45]));
    let api_list = ada.get("/v1/tokens").await;
    api_list.expect(200);
    assert!(!api_list.text.contains(&id), "{}", api_list.text);
    ada.get(&format!("/v1/tokens/{id}"))
        .await
        .expect_error(404, "not_found");

    // The protected API's verify does not know them; as Bearer they act as ada.
    assert_eq!(server.code(&secret, None, None).await, "not_found");
    let me = server
        .bearer(&secret, Method::GET, "/v1/auth/me", None)
        .await;
    me.expect(200);
    assert_eq!(me.body["id"], ada.id.as_str());

    // Not editable: there is no PATCH, and the API-token routes do not reach them.
    for path in [format!("/v1/me/tokens/{id}"), format!("/v1/tokens/{id}")] {
        let patched = ada.patch(&path, json!({"name": "renamed"})).await;
        assert!(
            (400..500).contains(&patched.status),
            "PATCH {path}: {}",
            patched.text
        );
    }
    for action in ["disable", "duplicate", "upgrade-version", "regenerate"] {
        ada.post(&format!("/v1/tokens/{id}/{action}"), json!({}))
            .await
            .expect_error(404, "not_found");
    }
    ada.delete(&format!("/v1/tokens/{id}"))
        .await
        .expect_error(404, "not_found");
    let unchanged = ada.get("/v1/me/tokens").await;
    assert_eq!(unchanged.body, listed.body);

    // Regenerate: a new secret, the old one stops at once (verify and management).
    let renewed = ada
        .post(&format!("/v1/me/tokens/{id}/regenerate"), json!({}))
        .await;
    renewed.expect(200);
    let new_secret = renewed.secret();
    assert_personal_format(&new_secret);
    assert_ne!(new_secret, secret);
    assert_eq!(renewed.id(), id);
    assert_eq!(renewed.body["kind"], "personal");
    assert!(!server.signs_in(&secret).await);
    server
        .bearer(&secret, Method::GET, "/v1/auth/me", None)
        .await
        .expect_error(401, "unauthenticated");
    assert!(server.signs_in(&new_secret).await);
    server
        .bearer(&new_secret, Method::GET, "/v1/tokens", None)
        .await
        .expect(200);
    ada.post(
        &format!("/v1/me/tokens/{id}/regenerate"),
        json!({"grace_period_seconds": 86_401}),
    )
    .await
    .expect_invalid("grace_period_seconds");

    // Delete: 204, then it stops at once, then 404.
    ada.delete(&format!("/v1/me/tokens/{id}")).await.expect(204);
    assert!(!server.signs_in(&new_secret).await);
    server
        .bearer(&new_secret, Method::GET, "/v1/tokens", None)
        .await
        .expect_error(401, "unauthenticated");
    ada.delete(&format!("/v1/me/tokens/{id}"))
        .await
        .expect_error(404, "not_found");
    ada.post(&format!("/v1/me/tokens/{id}/regenerate"), json!({}))
        .await
        .expect_error(404, "not_found");
    assert_eq!(ids(&ada.get("/v1/me/tokens").await), [read_only.id()]);
    ada.delete("/v1/me/tokens/not-a-uuid")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn admins_list_and_revoke_other_users_tokens_and_nobody_else_can() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let ada = server.admin("viewer").await;
    let bob = server.admin("token-manager").await;
    let (ada_token, ada_secret) = ada.personal_token("ada's laptop", "full").await;
    let (ada_other, ada_other_secret) = ada.personal_token("ada's ci", "read-only").await;
    let (_, bob_secret) = bob.personal_token("bob's laptop", "full").await;

    // An admin with users.manage lists them, without secrets.
    let listed = root.get(&format!("/v1/users/{}/tokens", ada.id)).await;
    listed.expect(200);
    let mut listed_ids = ids(&listed);
    listed_ids.sort();
    let mut expected = vec![ada_token.clone(), ada_other.clone()];
    expected.sort();
    assert_eq!(listed_ids, expected);
    for secret in [&ada_secret, &ada_other_secret] {
        assert!(!listed.text.contains(secret.as_str()));
    }
    assert!(
        listed
            .body
            .as_array()
            .expect("list")
            .iter()
            .all(|t| t.get("token").is_none())
    );
    root.get("/v1/users/01900000-0000-7000-8000-000000000000/tokens")
        .await
        .expect_error(404, "not_found");

    // Someone else's tokens are out of reach of a user without users.manage, whether
    // through the admin routes (403) or their own (404: not theirs), and unchanged.
    bob.get(&format!("/v1/users/{}/tokens", ada.id))
        .await
        .expect_error(403, "forbidden");
    bob.delete(&format!("/v1/users/{}/tokens/{ada_token}", ada.id))
        .await
        .expect_error(403, "forbidden");
    bob.delete(&format!("/v1/me/tokens/{ada_token}"))
        .await
        .expect_error(404, "not_found");
    bob.post(&format!("/v1/me/tokens/{ada_token}/regenerate"), json!({}))
        .await
        .expect_error(404, "not_found");
    let bob_list = bob.get("/v1/me/tokens").await;
    assert!(!bob_list.text.contains(&ada_token), "{}", bob_list.text);
    // Through ada's full personal token nothing more is possible.
    server
        .bearer(
            &ada_secret,
            Method::GET,
            &format!("/v1/users/{}/tokens", bob.id),
            None,
        )
        .await
        .expect_error(403, "forbidden");
    // The super-admin's own /v1/me does not reach them either, nor a mismatched owner.
    root.delete(&format!("/v1/me/tokens/{ada_token}"))
        .await
        .expect_error(404, "not_found");
    root.delete(&format!("/v1/users/{}/tokens/{ada_token}", bob.id))
        .await
        .expect_error(404, "not_found");
    assert!(server.signs_in(&ada_secret).await);
    assert!(server.signs_in(&bob_secret).await);

    // The admin revokes one: it stops at once, on verify and on management routes.
    let revoked = root
        .delete(&format!("/v1/users/{}/tokens/{ada_token}", ada.id))
        .await;
    revoked.expect(204);
    assert!(!server.signs_in(&ada_secret).await);
    server
        .bearer(&ada_secret, Method::GET, "/v1/tokens", None)
        .await
        .expect_error(401, "unauthenticated");
    root.delete(&format!("/v1/users/{}/tokens/{ada_token}", ada.id))
        .await
        .expect_error(404, "not_found");
    // The rest are untouched.
    assert!(server.signs_in(&ada_other_secret).await);
    assert!(server.signs_in(&bob_secret).await);
    assert_eq!(ids(&ada.get("/v1/me/tokens").await), [ada_other]);
    // An API token id is not a personal token of anyone.
    let (api_id, api_secret) = root.token("service").await;
    root.delete(&format!("/v1/users/{}/tokens/{api_id}", root.id))
        .await
        .expect_error(404, "not_found");
    root.delete(&format!("/v1/me/tokens/{api_id}"))
        .await
        .expect_error(404, "not_found");
    assert_eq!(server.code(&api_secret, None, None).await, "valid");
}
