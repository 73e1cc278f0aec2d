//! `tessera db copy`, end to end with the built binary: a SQLite installation with
//! users, roles, a resource, a project, tokens and usage is copied into another
//! database; the copied tokens verify there with the same pepper, listings and the
//! audit log match, a second copy is refused (exit 4) without changing anything, and
//! `--force` replaces the target.
//!
//! The SQLite → PostgreSQL case runs when `TESSERA_TEST_POSTGRES_URL` names a database
//! (the target is a fresh schema, dropped afterwards); without it, one SKIPPED line.
//! SQLite → SQLite always runs.

// Integration tests are always built with cfg(test); saying so lets clippy.toml's
// allow-{unwrap,expect,panic}-in-tests cover the helpers too.
#![cfg(test)]

// Shared helpers; this file uses only some of them.
#[allow(dead_code)]
mod common;

use common::Sandbox;
use serde_json::Value;
use tessera_test_support::PgSchema;

const PASSWORD: &str = "correct horse battery";

/// The secrets and ids the fixture made.
struct Fixture {
    custom: (String, String),
    bound: (String, String),
    disabled: (String, String),
}

/// Fills the sandbox's SQLite database through the CLI, as an operator would.
fn populate(sandbox: &Sandbox) -> Fixture {
    sandbox
        .run_stdin(
            &[
                "admin",
                "create",
                "--email",
                "root@example.com",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .ok();
    sandbox
        .run(&[
            "role",
            "create",
            "auditor",
            "--permission",
            "audit.read",
            "--description",
            "Reads the log",
        ])
        .ok();
    sandbox
        .run(&[
            "role",
            "update",
            "viewer",
            "--permission",
            "tokens.read",
            "--permission",
            "audit.read",
            "--description",
            "Reads tokens and the log",
        ])
        .ok();
    sandbox
        .run(&[
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--role",
            "auditor",
        ])
        .ok();
    sandbox.add_article();
    sandbox
        .run(&["project", "create", "shop", "--name", "The shop"])
        .ok();
    let custom = sandbox.create_token(
        "custom",
        &[
            "--type",
            "custom",
            "--permission",
            "article.find",
            "--rate-limit",
            "100/60",
        ],
    );
    let bound = sandbox.create_token(
        "bound",
        &[
            "--type",
            "read-only",
            "--project",
            "shop",
            "--lifespan",
            "30d",
        ],
    );
    let disabled = sandbox.create_token("disabled", &["--type", "full-access"]);
    sandbox.run(&["token", "disable", &disabled.0]).ok();

    // Usage: `verify` flushes its count before it exits.
    for _ in 0..2 {
        sandbox
            .run(&["verify", &custom.1, "--permission", "article.find"])
            .ok();
    }
    sandbox.run(&["verify", &bound.1, "--project", "shop"]).ok();
    sandbox.run(&["verify", &disabled.1]).expect_code(1);
    Fixture {
        custom,
        bound,
        disabled,
    }
}

/// Runs `tessera --data-dir D [--database-url URL] ARGS…` (no URL: the sandbox's
/// SQLite database). The data dir is always the sandbox's, so the pepper is shared.
fn run_on(sandbox: &Sandbox, url: Option<&str>, args: &[&str]) -> common::Output {
    let mut command = sandbox.command::<[&str; 0], &str>([]);
    if let Some(url) = url {
        command.arg("--database-url").arg(url);
    }
    command.args(args);
    common::run_command(command, None)
}

/// What an operator sees of a database: tokens, the audit log, users, roles,
/// resources and projects, as JSON.
fn view(sandbox: &Sandbox, url: Option<&str>) -> Vec<Value> {
    [
        &["token", "list", "--json"][..],
        &["audit", "--json", "--limit", "500"],
        &["user", "list", "--json"],
        &["role", "list", "--json"],
        &["resource", "list", "--json"],
        &["project", "list", "--json"],
    ]
    .iter()
    .map(|args| run_on(sandbox, url, args).ok().json())
    .collect()
}

fn db_copy(sandbox: &Sandbox, from: &str, to: &str, extra: &[&str]) -> common::Output {
    let mut args = vec!["db", "copy", "--from", from, "--to", to];
    args.extend_from_slice(extra);
    run_on(sandbox, None, &args)
}

/// The whole story against one target URL.
fn check_copy_into(target: &str) {
    let sandbox = Sandbox::new();
    let fixture = populate(&sandbox);
    let source = tessera_store_url(&sandbox);
    let before = view(&sandbox, None);
    let tokens = &before[0];
    assert_eq!(tokens["total"], 3, "{tokens}");
    assert!(
        before[1]["items"]
            .as_array()
            .is_some_and(|items| items.len() >= 8),
        "{}",
        before[1]
    );

    let out = db_copy(&sandbox, &source, target, &[]);
    out.ok();
    for table in [
        "roles",
        "users",
        "sessions",
        "projects",
        "resources",
        "tokens",
        "usage_daily",
        "audit",
        "changes",
    ] {
        assert!(
            out.stderr.lines().any(|line| line.starts_with(table)),
            "no progress line for {table}:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("count check passed"), "{}", out.stderr);
    let pepper = sandbox.data_dir().join("pepper");
    assert!(
        out.stderr.contains("pepper") && out.stderr.contains(&pepper_shown(&pepper)),
        "no pepper reminder naming {}:\n{}",
        pepper.display(),
        out.stderr
    );
    for (_, secret) in [&fixture.custom, &fixture.bound, &fixture.disabled] {
        assert!(!out.stderr.contains(secret.as_str()) && !out.stdout.contains(secret.as_str()));
    }
    assert!(
        !out.stderr.contains("argon2"),
        "a password hash was printed"
    );

    // Everything an operator can see is the same in the copy...
    assert_eq!(view(&sandbox, Some(target)), before, "the copy differs");
    // ...and the tokens verify there with the same pepper.
    run_on(
        &sandbox,
        Some(target),
        &["verify", &fixture.custom.1, "--permission", "article.find"],
    )
    .ok();
    run_on(
        &sandbox,
        Some(target),
        &["verify", &fixture.bound.1, "--project", "shop"],
    )
    .ok();
    let refused = run_on(&sandbox, Some(target), &["verify", &fixture.disabled.1]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("disabled"), "{}", refused.stderr);
    // New writes in the copy get new audit ids.
    run_on(
        &sandbox,
        Some(target),
        &["project", "create", "after-copy", "--name", "After"],
    )
    .ok();
    let audit = run_on(
        &sandbox,
        Some(target),
        &["audit", "--json", "--limit", "500"],
    )
    .ok()
    .json();
    let count = |value: &Value| value["items"].as_array().map_or(0, Vec::len);
    assert_eq!(count(&audit), count(&before[1]) + 1, "{audit}");

    // A second copy is refused, and changes nothing.
    let target_state = view(&sandbox, Some(target));
    let again = db_copy(&sandbox, &source, target, &[]);
    again.expect_code(4);
    assert!(
        again.stderr.contains("not empty") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    assert_eq!(
        view(&sandbox, Some(target)),
        target_state,
        "a refused copy changed the target"
    );

    // --force replaces the target's contents with the source's.
    let forced = db_copy(&sandbox, &source, target, &["--force"]);
    forced.ok();
    assert!(
        forced.stderr.contains("count check passed"),
        "{}",
        forced.stderr
    );
    assert_eq!(view(&sandbox, None), before, "the copy changed its source");
    assert_eq!(
        view(&sandbox, Some(target)),
        before,
        "--force left old rows behind"
    );
    run_on(&sandbox, Some(target), &["verify", &fixture.custom.1]).ok();
}

/// The sandbox's SQLite database as a URL.
fn tessera_store_url(sandbox: &Sandbox) -> String {
    format!(
        "sqlite://{}",
        sandbox.data_dir().join("tessera.db").display()
    )
}

/// How the reminder shows the pepper's path (canonical when it exists).
fn pepper_shown(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[test]
fn sqlite_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("sqlite://{}", dir.path().join("copy.db").display());
    check_copy_into(&target);
}

#[test]
fn sqlite_to_postgres() {
    let Some(schema) =
        PgSchema::for_tests_blocking("`tessera db copy` into PostgreSQL", "tessera_copy")
    else {
        return;
    };
    check_copy_into(&schema.url());
}

#[test]
fn refuses_bad_sources() {
    let sandbox = Sandbox::initialized();
    populate_minimal(&sandbox);
    let source = tessera_store_url(&sandbox);
    let same = db_copy(&sandbox, &source, &source, &["--force"]);
    same.expect_code(2);
    let alias = format!("sqlite://{}/./tessera.db", sandbox.data_dir().display());
    let aliased = db_copy(&sandbox, &source, &alias, &["--force"]);
    aliased.expect_code(4);
    assert!(
        aliased.stderr.contains("same database"),
        "{}",
        aliased.stderr
    );
    assert_eq!(
        run_on(&sandbox, None, &["token", "list", "--json"])
            .ok()
            .json()["total"],
        1,
        "a refused copy touched the source"
    );
    let missing = format!("sqlite://{}/missing.db", sandbox.root().display());
    let target = format!("sqlite://{}/target.db", sandbox.root().display());
    let out = db_copy(&sandbox, &missing, &target, &[]);
    out.expect_code(3);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(!sandbox.root().join("missing.db").exists());
}

fn populate_minimal(sandbox: &Sandbox) {
    sandbox.create_token("only", &["--type", "read-only"]);
}
