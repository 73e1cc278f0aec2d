//! The embedded verifier's hot path, against a real Tessera started in this process.
//!
//! - `hit`: a repeated token answered from the cache (parse + checksum, keyed digest,
//!   lookup, freshness check). Goal: ≥ 1,000,000 verifications/s per core.
//! - `malformed`: a string refused by the format check, without I/O.
//! - `miss`: every call asks Tessera (`POST /v1/verify` over loopback HTTP to a
//!   server in this process): the latency of a first sighting.
//!
//! `cargo bench -p tessera-verifier --bench cache_hit`; `bench/verifier.sh` writes the
//! result file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tessera_api_types::CreateTokenRequest;
use tessera_app::{Principal, Settings, SystemClock, Tessera};
use tessera_core::TokenType;
use tessera_server::{ConnectionOptions, HttpOptions};
use tessera_verifier::Verifier;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    base: String,
    token: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (base, token) = runtime.block_on(async {
        let store = tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
            .await
            .unwrap();
        let pepper = tessera_app::pepper::load_or_create(&dir.path().join("pepper")).unwrap();
        let app = Arc::new(
            Tessera::new(store, pepper, Settings::default(), Arc::new(SystemClock)).unwrap(),
        );
        app.load().await.unwrap();
        let created = app
            .tokens()
            .create(
                &Principal::operator("bench"),
                CreateTokenRequest {
                    name: "bench".into(),
                    token_type: Some(TokenType::FullAccess),
                    lifespan: Some(tessera_core::Lifespan::Days30),
                    ..CreateTokenRequest::default()
                },
            )
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = tessera_server::router(app, HttpOptions::default());
        tokio::spawn(tessera_server::serve_with(
            listener,
            router,
            ConnectionOptions::default(),
            std::future::pending(),
        ));
        (base, created.token)
    });
    Fixture {
        runtime,
        base,
        token,
        _dir: dir,
    }
}

fn verifier(fixture: &Fixture, ttl: Duration) -> Verifier {
    // No subscription credential: answers are trusted for the fallback TTL, which is
    // what these runs set.
    let _guard = fixture.runtime.enter();
    Verifier::builder(&fixture.base, "tsrp_none")
        .fallback_ttl(ttl)
        .max_age(ttl)
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let fixture = fixture();
    let cached = verifier(&fixture, Duration::from_secs(3600));
    fixture
        .runtime
        .block_on(cached.verify(&fixture.token, None, None))
        .ok();
    assert!(matches!(
        cached.verify_cached(&fixture.token, None, None),
        Some(Ok(_))
    ));

    let mut group = c.benchmark_group("verifier");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hit", |b| {
        b.iter(|| cached.verify_cached(std::hint::black_box(&fixture.token), None, None))
    });
    group.bench_function("malformed", |b| {
        b.iter(|| cached.verify_cached(std::hint::black_box("tsr_nope"), None, None))
    });
    let uncached = verifier(&fixture, Duration::ZERO);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("miss", |b| {
        b.iter(|| {
            fixture
                .runtime
                .block_on(uncached.verify(&fixture.token, None, None))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(verifier_benches, benches);
criterion_main!(verifier_benches);
