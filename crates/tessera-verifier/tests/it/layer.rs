//! The tower layer in front of an axum service: who gets through, what the refused get,
//! and what the service learns about the token.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tessera_core::{TokenFormat, TokenKind};
use tessera_verifier::{
    RouteRules, RouteRulesExt, SubscriptionState, TesseraLayer, VerifiedToken, Verifier,
};
use tower::ServiceExt;

use crate::harness::{TestTessera, applied, connected, within};

const RULES: &str = r#"
default = "deny"

[[rules]]
methods = ["GET", "HEAD"]
path = "/articles/**"
permission = "article.find"

[[rules]]
methods = ["POST"]
path = "/articles"
permission = "article.create"

[[rules]]
methods = ["GET"]
path = "/shop/**"
permission = "article.find"
project = "shop"
"#;

/// The protected service: echoes what the layer told it about the token.
pub(crate) fn service(verifier: Verifier) -> Router {
    async fn echo(Extension(token): Extension<Arc<VerifiedToken>>) -> Json<Value> {
        Json(json!({
            "id": token.id,
            "name": token.name,
            "type": token.token_type,
            "project": token.project,
            "external_id": token.external_id,
            "metadata": token.metadata,
        }))
    }
    let rules = RouteRules::from_toml(RULES).unwrap();
    Router::new()
        .route("/articles/{id}", get(echo))
        .route("/articles", post(echo))
        .route("/shop/{id}", get(echo))
        .route("/admin", get(echo))
        .layer(TesseraLayer::with_rules(verifier, rules))
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Value,
}

pub(crate) async fn call(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(crate) fn refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    assert!(answer.body["error"]["message"].is_string());
}

#[tokio::test]
async fn the_layer_admits_valid_tokens_and_refuses_the_rest_with_the_error_body() {
    crate::logs::capture();
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await;
    let credential = admin.personal_token().await;
    let verifier = Verifier::builder(&tessera.base, &credential)
        .build()
        .unwrap();
    let router = service(verifier.clone());
    connected(&verifier).await;

    let before = verifier.stats().changes;
    let (reader_id, reader) = admin
        .token(json!({
            "type": "read-only",
            "external_id": "customer-42",
            "metadata": {"plan": "pro"}
        }))
        .await;
    applied(&verifier, before, 1).await;

    // Valid: the service sees the token.
    let ok = call(
        &router,
        "GET",
        "/articles/1",
        &[("authorization", &bearer(&reader))],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["id"], reader_id.as_str());
    assert_eq!(ok.body["type"], "read-only");
    assert_eq!(ok.body["project"], Value::Null);
    assert_eq!(ok.body["external_id"], "customer-42");
    assert_eq!(ok.body["metadata"], json!({"plan": "pro"}));
    assert!(ok.body["name"].as_str().unwrap().starts_with("token "));
    // X-Api-Key works as well, and the repeat is answered from the cache.
    let misses = verifier.stats().misses;
    let again = call(&router, "GET", "/articles/2", &[("x-api-key", &reader)]).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(verifier.stats().misses, misses);
    assert!(verifier.stats().hits >= 1);

    // Forbidden: a permission the token lacks; a route no rule opens.
    let write = call(
        &router,
        "POST",
        "/articles",
        &[("authorization", &bearer(&reader))],
    )
    .await;
    refused(&write, 403, "forbidden");
    assert_eq!(
        write.body["error"]["details"]["reason"],
        "missing_permission"
    );
    let denied = call(
        &router,
        "GET",
        "/admin",
        &[("authorization", &bearer(&reader))],
    )
    .await;
    refused(&denied, 403, "forbidden");
    assert_eq!(denied.body["error"]["details"]["reason"], "route_denied");
    // A project route needs a token of that project.
    let other = call(
        &router,
        "GET",
        "/shop/1",
        &[("authorization", &bearer(&reader))],
    )
    .await;
    refused(&other, 403, "forbidden");
    let (_, shop) = admin
        .token(json!({"type": "read-only", "project": "shop"}))
        .await;
    let own = call(
        &router,
        "GET",
        "/shop/1",
        &[("authorization", &bearer(&shop))],
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body["project"], "shop");

    // Unauthenticated: none, unknown, malformed, personal. The last two without I/O.
    let none = call(&router, "GET", "/articles/1", &[]).await;
    refused(&none, 401, "unauthenticated");
    assert!(none.headers.contains_key("www-authenticate"));
    let unknown = TokenFormat::default().generate(TokenKind::Api, &mut rand::thread_rng());
    let unknown = call(
        &router,
        "GET",
        "/articles/1",
        &[("authorization", &bearer(unknown.expose()))],
    )
    .await;
    refused(&unknown, 401, "unauthenticated");
    let misses = verifier.stats().misses;
    let malformed = call(&router, "GET", "/articles/1", &[("x-api-key", "tsr_nope")]).await;
    refused(&malformed, 401, "unauthenticated");
    let personal = call(
        &router,
        "GET",
        "/articles/1",
        &[("authorization", &bearer(&credential))],
    )
    .await;
    refused(&personal, 401, "unauthenticated");
    assert_eq!(verifier.stats().misses, misses, "no I/O for these");

    // Disabled: refused once Tessera says so, through the subscription.
    let (disabled_id, disabled) = admin.token(json!({"type": "read-only"})).await;
    let before = call(&router, "GET", "/articles/1", &[("x-api-key", &disabled)]).await;
    assert_eq!(before.status, StatusCode::OK);
    admin
        .post(&format!("/v1/tokens/{disabled_id}/disable"), json!({}))
        .await;
    within(
        "the disabled token refused",
        Duration::from_secs(1),
        async || {
            let answer = call(&router, "GET", "/articles/1", &[("x-api-key", &disabled)]).await;
            (answer.status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;

    // Rate limited: the second question is new, so Tessera answers it, and refuses it
    // (rate-limited cache hits: see `rate_limits.rs`).
    let (_, limited) = admin
        .token(json!({"type": "full-access", "rate_limit": {"requests": 1, "per_seconds": 60}}))
        .await;
    let first = call(&router, "GET", "/articles/1", &[("x-api-key", &limited)]).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = call(&router, "POST", "/articles", &[("x-api-key", &limited)]).await;
    refused(&second, 429, "rate_limited");
    assert!(second.headers.contains_key("retry-after"));

    // Expired: a token past its expiry on Tessera's clock.
    let (_, expiring) = admin
        .token(json!({"type": "read-only", "lifespan": "7d"}))
        .await;
    tessera.clock.advance(chrono::Duration::days(8));
    let expired = call(&router, "GET", "/articles/1", &[("x-api-key", &expiring)]).await;
    refused(&expired, 401, "unauthenticated");
    assert_eq!(
        verifier.verify(&expiring, None, None).await.unwrap_err(),
        tessera_verifier::VerifyError::Refused {
            code: tessera_verifier::VerifyCode::Expired,
            retry_after: None
        }
    );
    assert_eq!(verifier.subscription_state(), SubscriptionState::Connected);

    // No secret in what the verifier logged.
    let logs = crate::logs::captured();
    for secret in [&credential, &reader, &disabled, &limited, &expiring] {
        assert!(!logs.contains(secret.as_str()));
    }
}

#[tokio::test]
async fn a_function_decides_what_each_request_needs() {
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    admin.article_resource().await;
    let credential = admin.personal_token().await;
    let verifier = Verifier::builder(&tessera.base, &credential)
        .build()
        .unwrap();
    let layer = TesseraLayer::with_fn(verifier, |method, _uri| {
        if method == http::Method::GET {
            tessera_verifier::Requirement::Permission {
                permission: "article.find".into(),
                project: None,
            }
        } else {
            tessera_verifier::Requirement::Permission {
                permission: "article.create".into(),
                project: None,
            }
        }
    });
    let router = Router::new()
        .route("/", get(|| async { "read" }).post(|| async { "written" }))
        .layer(layer);
    let (_, reader) = admin.token(json!({"type": "read-only"})).await;
    let read = call(&router, "GET", "/", &[("x-api-key", &reader)]).await;
    assert_eq!(read.status, StatusCode::OK);
    let write = call(&router, "POST", "/", &[("x-api-key", &reader)]).await;
    refused(&write, 403, "forbidden");
}
