//! Fixtures for Tessera's tests: a fresh PostgreSQL schema per test, in the database
//! `TESSERA_TEST_POSTGRES_URL` names (e.g. `postgres://postgres@127.0.0.1:5432/test`),
//! dropped with everything in it when the test ends (also on failure). Without the
//! variable, [`postgres_url`] prints one SKIPPED line and the test passes. Also a
//! token record to store ([`api_token`]).
//!
//! A fixture that cannot be set up fails the test that asked for it: hence the
//! `expect`s, which the workspace lints allow here only.
#![allow(clippy::expect_used)]

use std::io::Write as _;

use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use tessera_core::{
    Lifespan, TokenDigest, TokenId, TokenKind, TokenMetadata, TokenRecord, TokenStatus, TokenType,
};

/// The variable naming the PostgreSQL database tests may use.
pub const POSTGRES_URL_VARIABLE: &str = "TESSERA_TEST_POSTGRES_URL";

/// The database tests may use, or `None` after saying once (per `what`'s process)
/// that the tests about `what` are skipped.
pub fn postgres_url(what: &str) -> Option<String> {
    let url = std::env::var(POSTGRES_URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty());
    if url.is_none() {
        static SKIPPED: std::sync::Once = std::sync::Once::new();
        SKIPPED.call_once(|| {
            // Straight to the stream: the test harness captures `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {what} (set \
                 {POSTGRES_URL_VARIABLE}=postgres://postgres@127.0.0.1:5432/test to run them)"
            );
        });
    }
    url
}

/// `url` with `parameters` (`a=b&c=d`) added to its query string.
pub fn with_parameters(url: &str, parameters: &str) -> String {
    if parameters.is_empty() {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameters}")
}

/// A fresh schema, dropped with everything in it when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// Creates `<prefix>_<random>` in the database at `base`.
    pub async fn create(base: &str, prefix: &str) -> Self {
        let name = format!("{prefix}_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(base)
            .await
            .expect("connect to the test database");
        keep_pg_trgm_in_public(&mut admin).await;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test schema");
        let _ = admin.close().await;
        Self {
            base: base.to_owned(),
            name,
        }
    }

    /// [`postgres_url`], then a fresh schema in it.
    pub async fn for_tests(what: &str, prefix: &str) -> Option<Self> {
        Some(Self::create(&postgres_url(what)?, prefix).await)
    }

    /// [`PgSchema::create`] for a test without a runtime of its own (it runs one on a
    /// thread, as `Drop` does).
    pub fn create_blocking(base: &str, prefix: &str) -> Self {
        let (base, prefix) = (base.to_owned(), prefix.to_owned());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fixture")
                .block_on(Self::create(&base, &prefix))
        })
        .join()
        .expect("create the test schema")
    }

    /// [`PgSchema::for_tests`] for a test without a runtime of its own.
    pub fn for_tests_blocking(what: &str, prefix: &str) -> Option<Self> {
        Some(Self::create_blocking(&postgres_url(what)?, prefix))
    }

    /// The base URL with `search_path` set to this schema.
    pub fn url(&self) -> String {
        with_parameters(
            &self.base,
            &format!("options=-c%20search_path%3D{}", self.name),
        )
    }

    /// [`PgSchema::url`] with more `parameters`.
    pub fn url_with(&self, parameters: &str) -> String {
        with_parameters(&self.url(), parameters)
    }

    /// The URL of the database itself (any schema).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Makes sure the `pg_trgm` extension (migration 0005's name search) lives in
/// `public`. An extension exists once per database, in the schema that created it:
/// left to the first test's migration, it would sit in that test's schema and go when
/// the schema is dropped, taking every other test schema's trigram index with it
/// (their migrations then fail with "operator class was concurrently dropped", or
/// deadlock). One test process at a time does this (a transaction-scoped advisory lock).
async fn keep_pg_trgm_in_public(admin: &mut sqlx::PgConnection) {
    use sqlx::Connection as _;
    let mut transaction = admin.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(7263871201)")
        .execute(&mut *transaction)
        .await
        .expect("take the pg_trgm set-up lock");
    sqlx::query(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN \
             CREATE EXTENSION pg_trgm SCHEMA public; \
           ELSIF (SELECT namespace.nspname FROM pg_extension extension \
                  JOIN pg_namespace namespace ON namespace.oid = extension.extnamespace \
                  WHERE extension.extname = 'pg_trgm') <> 'public' THEN \
             ALTER EXTENSION pg_trgm SET SCHEMA public; \
           END IF; \
         END $$",
    )
    .execute(&mut *transaction)
    .await
    .expect("keep pg_trgm in the public schema");
    transaction.commit().await.expect("commit");
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop cannot await, and this may run inside the test's runtime: a thread with
        // a runtime of its own.
        let (base, name) = (self.base.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&base).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test schema {}",
                self.name
            );
        }
    }
}

/// An active, unlimited, read-only API token named `name`, created at `created_at`.
pub fn api_token(name: &str, created_at: DateTime<Utc>, digest: TokenDigest) -> TokenRecord {
    TokenRecord {
        id: TokenId::new_at(created_at, &mut rand::rngs::OsRng),
        kind: TokenKind::Api,
        name: name.into(),
        description: String::new(),
        token_type: TokenType::ReadOnly,
        permissions: vec![],
        project: None,
        owner_id: None,
        status: TokenStatus::Active,
        lifespan: Lifespan::Unlimited,
        expires_at: None,
        api_version: "v1".into(),
        hint: "tsr_abcd".into(),
        digest,
        grace: None,
        created_at,
        created_by: "test".into(),
        updated_at: created_at,
        last_used_at: None,
        rate_limit: None,
        external_id: None,
        metadata: TokenMetadata::new(),
        revision: 0,
    }
}
