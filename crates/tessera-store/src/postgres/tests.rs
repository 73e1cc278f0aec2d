//! Connecting to PostgreSQL: `sslmode` is honoured, statements are bounded by the
//! statement timeout (and a statement past it fails as `Unavailable`, not a hang), the
//! server's keepalive is set, and a store call past its deadline is abandoned.
//!
//! The tests that need a server read `TESSERA_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) and print one SKIPPED line without it;
//! each works in a fresh schema, dropped afterwards.

use std::time::{Duration, Instant};

use sqlx::Connection as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use tessera_test_support::PgSchema;

use super::PostgresStore;
use crate::StoreError;

fn base_url() -> Option<String> {
    tessera_test_support::postgres_url("PostgreSQL connection tests")
}

async fn open(url: &str) -> crate::StoreResult<PostgresStore> {
    Ok(PostgresStore::open_migrated(url).await?.0)
}

/// A server that answers PostgreSQL's TLS request with "no" (as one without TLS
/// does), then hangs up; answers its address.
async fn server_without_tls() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0_u8; 8];
                // Length 8, then the SSLRequest code 80877103.
                if stream.read_exact(&mut request).await.is_ok()
                    && request[4..] == [0x04, 0xd2, 0x16, 0x2f]
                {
                    let _ = stream.write_all(b"N").await;
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn sslmode_require_refuses_a_server_without_tls_and_says_so() {
    let address = server_without_tls().await;
    let url = format!("postgres://tessera@{address}/tessera?sslmode=require");
    let error = open(&url)
        .await
        .expect_err("sslmode=require must not fall back to plain text");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("does not support TLS")
            && message.contains("sslmode=require")
            && message.contains(&address.to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn sslmode_is_honoured_by_a_real_server() {
    let Some(base) = base_url() else { return };
    let schema = PgSchema::create(&base, "tessera_connect").await;
    let mut plain = sqlx::PgConnection::connect(&base).await.expect("connect");
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut plain)
        .await
        .expect("SHOW ssl");
    let _ = plain.close().await;
    let over_tcp = !base.contains("host=/") && !base.contains("@/") && !base.contains("%2F");
    if ssl == "on" && over_tcp {
        // The connection is encrypted, as asked.
        let store = open(&schema.url_with("sslmode=require"))
            .await
            .expect("sslmode=require against a server with TLS");
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&store.pool)
                .await
                .expect("pg_stat_ssl");
        assert!(encrypted, "sslmode=require gave a plain-text connection");
        // And verify-full checks the certificate: a local server's own (self-signed,
        // e.g. Debian's snakeoil) is not trusted.
        if let Err(error) = open(&schema.url_with("sslmode=verify-full")).await {
            let message = error.to_string();
            assert!(message.contains("TLS"), "{message}");
        }
    } else {
        let error = open(&schema.url_with("sslmode=require"))
            .await
            .expect_err("sslmode=require against a server without TLS");
        assert!(error.to_string().contains("TLS"), "{error}");
    }
}

#[tokio::test]
async fn statements_are_bounded_by_the_statement_timeout() {
    let Some(base) = base_url() else { return };
    let schema = PgSchema::create(&base, "tessera_connect").await;

    // The default, and the server's keepalive, on every pooled connection.
    let store = open(&schema.url()).await.expect("open");
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&store.pool)
        .await
        .expect("SHOW statement_timeout");
    assert_eq!(shown, "10s");
    let idle: String = sqlx::query_scalar("SHOW tcp_keepalives_idle")
        .fetch_one(&store.pool)
        .await
        .expect("SHOW tcp_keepalives_idle");
    // Over a Unix socket there is no TCP, and PostgreSQL shows 0.
    assert!(idle == "30" || idle == "0", "tcp_keepalives_idle = {idle}");
    // Every statement is planned for its values (see `SESSION_SETUP`).
    let plans: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(&store.pool)
        .await
        .expect("SHOW plan_cache_mode");
    assert_eq!(plans, "force_custom_plan");
    assert_eq!(
        store.call_deadline(),
        Some(Duration::from_secs(10) * 2 + super::connect::DEFAULT_CONNECT_TIMEOUT)
    );

    // A statement longer than a configured timeout fails, as `Unavailable`.
    let store = open(&schema.url_with("statement_timeout=500ms"))
        .await
        .expect("open");
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&store.pool)
        .await
        .expect("SHOW statement_timeout");
    assert_eq!(shown, "500ms");
    let start = Instant::now();
    let error = sqlx::query("SELECT pg_sleep(30)")
        .execute(&store.pool)
        .await
        .map_err(<sqlx::Postgres as crate::sql::Driver>::classify)
        .expect_err("pg_sleep(30) past a 500 ms statement timeout");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("statement timeout"), "{error}");
    // The pool carries on.
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&store.pool)
        .await
        .expect("SELECT 1");
    assert_eq!(one, 1);
}

#[tokio::test]
async fn a_call_past_its_deadline_is_abandoned_as_unavailable() {
    let start = Instant::now();
    let error = crate::deadline::bound(
        Duration::from_millis(50),
        std::future::pending::<crate::StoreResult<()>>(),
    )
    .await
    .expect_err("a call that never answers");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("did not answer"), "{error}");
}

/// The token list reads the planner's row estimate from `EXPLAIN`'s first line.
#[test]
fn an_explain_line_gives_its_row_estimate() {
    let line = "Bitmap Heap Scan on tokens  (cost=466.28..22200.80 rows=10101 width=4)";
    assert_eq!(super::estimated_rows(line), Some(10101));
    assert_eq!(
        super::estimated_rows("Seq Scan on tokens  (cost=0.00..1.01 rows=1 width=4)"),
        Some(1)
    );
    assert_eq!(super::estimated_rows("Result"), None);
}
