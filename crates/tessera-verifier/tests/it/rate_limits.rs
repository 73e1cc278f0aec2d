//! Per-token rate limits hold on cache hits: the verify answer carries the token's
//! limit, and the verifier counts every request it admits for the token against it.

use http::StatusCode;
use serde_json::json;
use tessera_verifier::{Verifier, VerifyCode, VerifyError};

use crate::harness::{TestTessera, applied, connected};
use crate::layer::{call, refused, service};

#[tokio::test]
async fn cache_hits_count_against_the_tokens_rate_limit_and_answer_429() {
    let tessera = TestTessera::start().await;
    let admin = tessera.admin("super-admin").await;
    admin.article_resource().await;
    let credential = admin.personal_token().await;
    // Made before the verifier starts following: no change about it can arrive late
    // and drop the answer the count below relies on being cached.
    let (id, limited) = admin
        .token(json!({"type": "read-only", "rate_limit": {"requests": 3, "per_seconds": 3600}}))
        .await;
    let verifier = Verifier::builder(&tessera.base, &credential)
        .without_usage_reports()
        .build()
        .unwrap();
    let router = service(verifier.clone());
    connected(&verifier).await;

    // The answer carries the limit.
    // The routes below need `article.find`: the same question, so cached.
    let answer = verifier
        .verify(&limited, Some("article.find"), None)
        .await
        .unwrap();
    assert_eq!(
        answer
            .rate_limit
            .map(|limit| (limit.requests, limit.per_seconds)),
        Some((3, 3600))
    );
    let misses = verifier.stats().misses;
    // Two more through the layer, from the cache: the limit is spent.
    for n in 0..2 {
        let ok = call(
            &router,
            "GET",
            &format!("/articles/{n}"),
            &[("x-api-key", &limited)],
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    }
    let over = call(&router, "GET", "/articles/3", &[("x-api-key", &limited)]).await;
    refused(&over, 429, "rate_limited");
    let retry_after: u64 = over.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request per 1200 s comes back: wait that long (give or take the rounding).
    assert!((1100..=1200).contains(&retry_after), "{retry_after}");
    assert_eq!(
        over.body["error"]["details"]["retry_after_seconds"],
        retry_after
    );
    assert_eq!(verifier.stats().misses, misses, "answered from the cache");
    assert_eq!(verifier.stats().rate_limited, 1);
    // Another permission is another question, but the same token and the same limit.
    let other = verifier.verify(&limited, None, None).await.unwrap_err();
    assert!(matches!(
        other,
        VerifyError::Refused {
            code: VerifyCode::RateLimited,
            retry_after: Some(_)
        }
    ));

    // Per process, as per node on Tessera: Tessera answered two of these requests (the
    // two misses), so its node still admits one; the verifier's cache hits were not
    // counted there. A second verifier process then asks Tessera, whose node has
    // counted three by now, and is refused.
    let direct = tessera
        .app
        .verify(
            tessera_app::VerifyQuery {
                token: &limited,
                permission: None,
                project: None,
            },
            None,
        )
        .unwrap();
    assert!(
        matches!(direct, tessera_app::Verdict::Valid(_)),
        "{direct:?}"
    );
    let second = Verifier::builder(&tessera.base, &credential)
        .without_usage_reports()
        .build()
        .unwrap();
    assert!(matches!(
        second.verify(&limited, None, None).await.unwrap_err(),
        VerifyError::Refused {
            code: VerifyCode::RateLimited,
            retry_after: Some(_)
        }
    ));

    // A new limit is a change: the next answer carries it and counts afresh.
    let before = verifier.stats().changes;
    let (status, _) = admin
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/tokens/{id}"),
            json!({"rate_limit": {"requests": 100, "per_seconds": 60}}),
        )
        .await;
    assert_eq!(status, 200);
    applied(&verifier, before, 1).await;
    let raised = call(&router, "GET", "/articles/4", &[("x-api-key", &limited)]).await;
    assert_eq!(raised.status, StatusCode::OK, "{}", raised.body);
}
