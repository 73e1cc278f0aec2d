//! Start-up as an operator meets it: `--listen` takes a bare port or a host name; a
//! port in use, an unreachable PostgreSQL and a missing database each stop `serve`
//! with one clear message saying what to do (and exit 69); `migrate` says what it
//! applied.
//!
//! The tests that need PostgreSQL read `TESSERA_TEST_POSTGRES_URL` and print one
//! SKIPPED line without it.

#![cfg(test)]

// Each test binary compiles `common` again; this one does not use all of it.
#[allow(dead_code)]
mod common;

use common::{Sandbox, Server};

const SKIPPED: &str = "start-up tests against PostgreSQL";

fn postgres_base() -> Option<String> {
    tessera_test_support::postgres_url(SKIPPED)
}

/// A fresh schema of the test database, dropped with everything in it when dropped.
fn postgres_schema() -> Option<tessera_test_support::PgSchema> {
    tessera_test_support::PgSchema::for_tests_blocking(SKIPPED, "tessera_startup")
}

fn healthz(server: &Server) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::get(server.url("/healthz"))
            .await
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    })
}

fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack
        .to_lowercase()
        .matches(&needle.to_lowercase())
        .count()
}

#[test]
fn listen_takes_a_bare_port_and_says_it_is_loopback_only() {
    let sandbox = Sandbox::new();
    // Port 0: any free port, as a bare port.
    let server = Server::start(sandbox.command(["serve", "--listen", "0"]));
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );
    assert_eq!(healthz(&server), 200);
    let log = server.log();
    assert!(
        log.contains("bare port") && log.contains("0.0.0.0:"),
        "serve should say what a bare port binds to:\n{log}"
    );
}

#[test]
fn listen_takes_a_host_name() {
    let sandbox = Sandbox::new();
    let server = Server::start(sandbox.command(["serve", "--listen", "localhost:0"]));
    assert_eq!(healthz(&server), 200, "{}", server.log());

    // The variable and the config file take the same forms.
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(["serve"]);
    command.env("TESSERA_LISTEN", "0");
    let server = Server::start(command);
    assert!(server.base.starts_with("http://127.0.0.1:"));

    // Not an address: a usage error naming the forms that are.
    let out = Sandbox::new().run(&["serve", "--listen", "localhost:http"]);
    out.expect_code(2);
    assert!(out.stderr.contains("HOST:PORT"), "{}", out.stderr);
}

#[test]
fn a_port_in_use_is_said_plainly_with_exit_69() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["serve", "--listen", &address]);
    out.expect_code(69);
    assert!(
        out.stderr.contains("already in use")
            && out.stderr.contains(&address)
            && out.stderr.contains("--listen"),
        "{}",
        out.stderr
    );
    // Said once, not as a backtrace of causes.
    assert_eq!(occurrences(&out.stderr, "in use"), 1, "{}", out.stderr);
    drop(taken);
}

#[test]
fn an_unreachable_postgresql_is_connection_refused_once_with_its_address() {
    // Nothing listens on a port just freed.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    let url = format!("postgres://tessera@127.0.0.1:{port}/tessera");
    for command in [&["migrate"][..], &["serve", "--listen", "0"]] {
        let sandbox = Sandbox::new();
        let mut args = vec!["--database-url", url.as_str()];
        args.extend_from_slice(command);
        let started = std::time::Instant::now();
        let out = sandbox.run(&args);
        out.expect_code(69);
        let stderr = &out.stderr;
        assert_eq!(
            occurrences(stderr, "connection refused"),
            1,
            "{command:?}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}")),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("timed out"), "{command:?}: {stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{command:?} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_missing_postgresql_database_says_to_create_it() {
    let Some(base) = postgres_base() else { return };
    let name = format!("tessera_missing_{:016x}", rand_u64());
    let url = with_database(&base, &name);
    let out = Sandbox::new().run(&["--database-url", &url, "migrate"]);
    out.expect_code(69);
    assert!(
        out.stderr.contains(&format!("\"{name}\" does not exist"))
            && out.stderr.contains("createdb")
            && out.stderr.contains(&name),
        "{}",
        out.stderr
    );
}

#[test]
fn migrate_says_what_it_applied() {
    // SQLite: a new data dir is an empty database.
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["migrate"]);
    out.ok();
    assert!(
        out.stderr.contains("applied") && out.stderr.contains("0001"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("up to date"), "{}", out.stderr);
    let out = sandbox.run(&["migrate"]);
    out.ok();
    assert!(out.stderr.contains("up to date"), "{}", out.stderr);
    assert!(!out.stderr.contains("applied"), "{}", out.stderr);

    // PostgreSQL: a new, empty schema.
    let Some(schema) = postgres_schema() else {
        return;
    };
    let url = schema.url();
    // The same data dir both times: it holds the pepper the database now records.
    let sandbox = Sandbox::new();
    let first = sandbox.run(&["--database-url", &url, "migrate"]);
    let second = sandbox.run(&["--database-url", &url, "migrate"]);
    drop(schema);
    first.ok();
    assert!(
        first.stderr.contains("applied") && first.stderr.contains("0001"),
        "{}",
        first.stderr
    );
    assert!(!first.stderr.contains("up to date"), "{}", first.stderr);
    second.ok();
    assert!(second.stderr.contains("up to date"), "{}", second.stderr);
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((before, query)) => (before, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = before_query.find("://").map_or(0, |i| i + 3);
    let path_start = before_query[scheme_end..]
        .find('/')
        .map_or(before_query.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &before_query[..path_start])
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos()),
    );
    hasher.finish()
}

#[test]
fn with_database_replaces_the_path_only() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
}
