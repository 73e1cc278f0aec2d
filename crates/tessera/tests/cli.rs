//! End-to-end tests of the `tessera` binary: the CLI's output and exit-code contract,
//! configuration layering, and a running `tessera serve` seeing the CLI's changes
//! through the change feed within the SPEC's one-second bound.

// Integration tests are always built with cfg(test); saying so lets clippy.toml's
// allow-{unwrap,expect,panic}-in-tests cover the helpers too, not only #[test] fns.
#![cfg(test)]

mod common;

use std::time::{Duration, Instant};

use common::{Sandbox, is_secret_line, run_command, run_exiting, str_field};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------------------
// 1. admin create
// ---------------------------------------------------------------------------

#[test]
fn admin_create_reads_the_password_from_stdin() {
    let sandbox = Sandbox::new();
    let out = sandbox.run_stdin(
        &[
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    out.ok();
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    assert!(out.stderr.contains("root@example.com"), "{}", out.stderr);

    // --json gives the user record on stdout, never the password or its hash.
    let out = sandbox.run_stdin(
        &[
            "admin",
            "create",
            "--json",
            "--email",
            "viewer@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        PASSWORD,
    );
    let user = out.ok().json();
    assert_eq!(user["email"], "viewer@example.com");
    assert_eq!(user["role"], "viewer");
    assert!(!out.stdout.contains(PASSWORD));
    assert!(!out.stdout.contains("argon2"));
}

#[test]
fn admin_create_refuses_a_taken_email_a_short_password_and_no_password() {
    let sandbox = Sandbox::new();
    let create = |email: &str, input: Option<&str>| {
        let command = sandbox.command(["admin", "create", "--email", email, "--password-stdin"]);
        run_command(command, input)
    };
    create("root@example.com", Some(PASSWORD)).ok();

    let out = create("root@example.com", Some(PASSWORD));
    out.expect_code(4);
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);

    let out = create("short@example.com", Some("short\n"));
    out.expect_code(2);
    assert!(out.stderr.contains("password"), "stderr: {}", out.stderr);
    assert!(
        !out.stderr.contains("short\n"),
        "the password is not echoed"
    );

    // stdin closed: nothing to read.
    let out = create("nostdin@example.com", None);
    out.expect_code(2);
    assert!(out.stderr.contains("password"), "stderr: {}", out.stderr);

    // --password-stdin is required.
    sandbox
        .run(&["admin", "create", "--email", "flagless@example.com"])
        .expect_code(2);
}

#[cfg(unix)]
#[test]
fn the_data_dir_and_its_secrets_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    sandbox.run(&["migrate"]).ok();
    let mode = |name: &str| {
        let path = sandbox.data_dir().join(name);
        let metadata =
            std::fs::metadata(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        metadata.permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o700, "data dir");
    assert_eq!(mode("pepper"), 0o600, "pepper file");
    assert_eq!(mode("tessera.db"), 0o600, "database file");
    for name in ["tessera.db-wal", "tessera.db-shm"] {
        if sandbox.data_dir().join(name).exists() {
            assert_eq!(mode(name), 0o600, "{name}");
        }
    }

    // A data dir that already exists (e.g. a mounted volume) keeps its mode, but the
    // files Tessera creates in it are still private.
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.data_dir()).expect("create data dir");
    std::fs::set_permissions(sandbox.data_dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod data dir");
    sandbox.run(&["migrate"]).ok();
    let kept = std::fs::metadata(sandbox.data_dir())
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(kept & 0o777, 0o755, "an existing data dir keeps its mode");
    sandbox.create_token("ci", &["--type", "read-only"]);
    for name in ["pepper", "tessera.db", "tessera.db-wal", "tessera.db-shm"] {
        let path = sandbox.data_dir().join(name);
        if path.exists() {
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------
// 2. resources
// ---------------------------------------------------------------------------

#[test]
fn resource_create_and_list() {
    let sandbox = Sandbox::initialized();
    sandbox.add_article();

    let out = sandbox.run(&["resource", "list"]);
    out.ok();
    let line = out
        .stdout
        .lines()
        .find(|line| line.starts_with("article"))
        .unwrap_or_else(|| panic!("article not listed: {}", out.stdout));
    for action in ["find", "findOne", "create", "update", "delete"] {
        assert!(line.contains(action), "{line}");
    }

    let resources = sandbox.run(&["resource", "list", "--json"]).ok().json();
    let list = resources.as_array().expect("a JSON array");
    assert_eq!(list.len(), 1, "{resources}");
    assert_eq!(list[0]["name"], "article");
    let actions: Vec<(String, String)> = list[0]["actions"]
        .as_array()
        .expect("actions array")
        .iter()
        .map(|a| (str_field(a, "name"), str_field(a, "kind")))
        .collect();
    let expected: Vec<(String, String)> = [
        ("find", "read"),
        ("findOne", "read"),
        ("create", "write"),
        ("update", "write"),
        ("delete", "write"),
    ]
    .iter()
    .map(|(n, k)| ((*n).to_owned(), (*k).to_owned()))
    .collect();
    assert_eq!(actions, expected);

    // The same name again is a conflict.
    sandbox
        .run(&["resource", "create", "article", "--read", "find"])
        .expect_code(4);
}

// ---------------------------------------------------------------------------
// 3. token create
// ---------------------------------------------------------------------------

#[test]
fn token_create_prints_the_secret_alone_on_stdout() {
    let sandbox = Sandbox::initialized();
    let out = sandbox.run(&[
        "token",
        "create",
        "--name",
        "ci",
        "--type",
        "read-only",
        "--lifespan",
        "30d",
    ]);
    out.ok();
    assert!(
        is_secret_line(&out.stdout),
        "stdout must be exactly the secret and a newline: {:?}",
        out.stdout
    );
    let secret = out.stdout.trim_end();
    assert!(out.stderr.contains("ci"), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("only once"), "stderr: {}", out.stderr);
    assert!(
        !out.stderr.contains(secret),
        "the secret goes to stdout only"
    );

    // The secret works, as a read-only token expiring in about 30 days.
    let verified = sandbox.run(&["verify", "--json", secret]).ok().json();
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["token"]["type"], "read-only");
    let expires =
        chrono::DateTime::parse_from_rfc3339(&str_field(&verified["token"], "expires_at"))
            .expect("expires_at is RFC 3339");
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.1).contains(&days), "expires in {days} days");
}

#[test]
fn token_create_json_gives_the_record_and_the_secret() {
    let sandbox = Sandbox::initialized();
    let out = sandbox.run(&[
        "token",
        "create",
        "--json",
        "--name",
        "deploy",
        "--type",
        "full-access",
        "--lifespan",
        "7d",
        "--description",
        "deploys",
    ]);
    let created = out.ok().json();
    assert!(created.is_object(), "{created}");
    let secret = str_field(&created, "token");
    assert!(is_secret_line(&format!("{secret}\n")), "{secret}");
    assert!(!str_field(&created, "id").is_empty());
    assert_eq!(created["name"], "deploy");
    assert_eq!(created["type"], "full-access");
    assert_eq!(created["lifespan"], "7d");
    assert_eq!(created["description"], "deploys");
    assert_eq!(created["status"], "active");
    assert_eq!(created["last_used_at"], Value::Null);
    assert!(secret.starts_with(&str_field(&created, "hint")));
}

#[test]
fn token_create_refuses_duplicates_and_bad_input() {
    let sandbox = Sandbox::initialized();
    sandbox.add_article();
    sandbox.create_token("ci", &["--type", "read-only"]);

    let create = |args: &[&str]| {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        sandbox.run(&all)
    };
    // Names are unique, case-insensitively.
    for name in ["ci", "CI"] {
        let out = create(&["--name", name, "--type", "read-only", "--lifespan", "7d"]);
        out.expect_code(4);
        assert!(
            out.stdout.is_empty(),
            "no secret on failure: {}",
            out.stdout
        );
    }
    let out = create(&["--name", "x", "--type", "admin"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--type"), "stderr: {}", out.stderr);
    create(&["--name", "x", "--type", "read-only", "--lifespan", "5d"]).expect_code(2);
    create(&["--name", "x"]).expect_code(2);
    // A lifespan is required, with the API's own words: no silent "unlimited".
    let out = create(&["--name", "forever", "--type", "read-only"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("give a lifespan (7d, 30d, 90d, unlimited) or an expires_at"),
        "stderr: {}",
        out.stderr
    );
    // Custom permissions must exist in the catalog, and a custom token needs some.
    let out = create(&[
        "--name",
        "x",
        "--type",
        "custom",
        "--permission",
        "article.publish",
    ]);
    out.expect_code(2);
    // Named by its place in the list: errors never repeat what was typed.
    assert!(
        out.stderr.contains("permissions[0]") && out.stderr.contains("catalog"),
        "stderr: {}",
        out.stderr
    );
    create(&["--name", "x", "--type", "custom"]).expect_code(2);
    // Nothing of the above was created.
    let page = sandbox.run(&["token", "list", "--json"]).ok().json();
    assert_eq!(page["total"], 1, "{page}");
}

#[test]
fn token_create_custom_grants_exactly_its_permissions() {
    let sandbox = Sandbox::initialized();
    sandbox.add_article();
    let out = sandbox.run(&[
        "token",
        "create",
        "--lifespan",
        "unlimited",
        "--name",
        "writer",
        "--type",
        "custom",
        "--permission",
        "article.create",
        "--permission",
        "article.find",
    ]);
    out.ok();
    assert!(is_secret_line(&out.stdout), "{:?}", out.stdout);
    let secret = out.stdout.trim_end();

    for permission in ["article.create", "article.find"] {
        sandbox
            .run(&["verify", secret, "--permission", permission])
            .ok();
    }
    for permission in ["article.delete", "article.findOne"] {
        let out = sandbox.run(&["verify", "--json", secret, "--permission", permission]);
        out.expect_code(1);
        assert_eq!(out.json(), json!({"valid": false, "code": "forbidden"}));
    }
    let page = sandbox.run(&["token", "list", "--json"]).ok().json();
    let mut permissions: Vec<&str> = page["items"][0]["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    permissions.sort_unstable();
    assert_eq!(permissions, ["article.create", "article.find"]);
}

// ---------------------------------------------------------------------------
// 4. token list / show / disable / enable / regenerate / delete
// ---------------------------------------------------------------------------

#[test]
fn token_list_and_show() {
    let sandbox = Sandbox::initialized();
    let (ci, ci_secret) = sandbox.create_token("ci", &["--type", "read-only"]);
    let (deploy, deploy_secret) = sandbox.create_token("deploy", &["--type", "full-access"]);

    let out = sandbox.run(&["token", "list"]);
    out.ok();
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert!(out.stdout.contains(&ci) && out.stdout.contains("ci"));
    assert!(out.stdout.contains(&deploy) && out.stdout.contains("deploy"));

    let out = sandbox.run(&["token", "list", "--json"]);
    let page = out.ok().json();
    assert_eq!(page["total"], 2, "{page}");
    let items = page["items"].as_array().expect("items array");
    let mut ids: Vec<String> = items.iter().map(|t| str_field(t, "id")).collect();
    ids.sort();
    let mut expected = vec![ci.clone(), deploy.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // Filters.
    let page = sandbox
        .run(&["token", "list", "--json", "--q", "DEP"])
        .ok()
        .json();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["id"], deploy.as_str());
    let page = sandbox
        .run(&["token", "list", "--json", "--type", "read-only"])
        .ok()
        .json();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["id"], ci.as_str());

    let out = sandbox.run(&["token", "show", &ci]);
    out.ok();
    assert!(out.stdout.contains(&ci) && out.stdout.contains("read-only"));
    let shown = sandbox.run(&["token", "show", "--json", &ci]).ok().json();
    assert_eq!(shown["id"], ci.as_str());
    assert_eq!(shown["name"], "ci");
    assert!(
        shown.get("token").is_none(),
        "show never reveals the secret"
    );

    // The secrets never appear again.
    for args in [
        vec!["token", "list"],
        vec!["token", "list", "--json"],
        vec!["token", "show", "--json", ci.as_str()],
        vec!["token", "show", "--json", deploy.as_str()],
    ] {
        let out = sandbox.run(&args);
        for secret in [&ci_secret, &deploy_secret] {
            assert!(
                !out.stdout.contains(secret.as_str()),
                "{args:?} leaks a secret"
            );
            assert!(
                !out.stderr.contains(secret.as_str()),
                "{args:?} leaks a secret"
            );
        }
    }

    // Unknown ids: a well-formed UUID that does not exist, and garbage.
    for id in ["01900000-0000-7000-8000-000000000000", "nope"] {
        let out = sandbox.run(&["token", "show", id]);
        out.expect_code(3);
        assert!(out.stdout.is_empty());
        assert!(
            out.stderr.contains(&format!(
                "no API token has the id or name `{id}` (see `tessera token list`)"
            )),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn token_disable_enable_regenerate_delete() {
    let sandbox = Sandbox::initialized();
    let (id, secret) = sandbox.create_token("ci", &["--type", "read-only"]);
    sandbox.run(&["verify", &secret]).ok();

    let out = sandbox.run(&["token", "disable", &id]);
    out.ok();
    assert!(out.stdout.is_empty());
    let shown = sandbox.run(&["token", "show", "--json", &id]).ok().json();
    assert_eq!(shown["status"], "disabled");
    let out = sandbox.run(&["verify", "--json", &secret]);
    out.expect_code(1);
    assert_eq!(out.json(), json!({"valid": false, "code": "disabled"}));

    sandbox.run(&["token", "enable", &id]).ok();
    let shown = sandbox.run(&["token", "show", "--json", &id]).ok().json();
    assert_eq!(shown["status"], "active");
    sandbox.run(&["verify", &secret]).ok();

    let out = sandbox.run(&["token", "regenerate", &id]);
    out.ok();
    assert!(is_secret_line(&out.stdout), "{:?}", out.stdout);
    assert!(out.stderr.contains("only once"), "{}", out.stderr);
    let new_secret = out.stdout.trim_end().to_owned();
    assert_ne!(new_secret, secret);
    let out = sandbox.run(&["verify", &secret]);
    out.expect_code(1);
    assert!(out.stderr.contains("not_found"), "{}", out.stderr);
    sandbox.run(&["verify", &new_secret]).ok();
    // Same record, same id.
    let shown = sandbox.run(&["token", "show", "--json", &id]).ok().json();
    assert_eq!(shown["name"], "ci");

    let regenerated = sandbox
        .run(&["token", "regenerate", "--json", &id])
        .ok()
        .json();
    assert_eq!(regenerated["id"], id.as_str());
    let newest = str_field(&regenerated, "token");
    sandbox.run(&["verify", &new_secret]).expect_code(1);
    sandbox.run(&["verify", &newest]).ok();

    let out = sandbox.run(&["token", "delete", &id]);
    out.ok();
    assert!(out.stdout.is_empty());
    let out = sandbox.run(&["verify", "--json", &newest]);
    out.expect_code(1);
    assert_eq!(out.json(), json!({"valid": false, "code": "not_found"}));
    sandbox.run(&["token", "show", &id]).expect_code(3);
    let page = sandbox.run(&["token", "list", "--json"]).ok().json();
    assert_eq!(page["total"], 0, "{page}");

    // Acting on a token that is gone: not found.
    for verb in ["disable", "enable", "regenerate", "delete"] {
        let out = sandbox.run(&["token", verb, &id]);
        out.expect_code(3);
        assert!(out.stdout.is_empty(), "{verb}: {}", out.stdout);
    }
}

// ---------------------------------------------------------------------------
// 5. verify
// ---------------------------------------------------------------------------

#[test]
fn token_update_sets_and_clears_settings_and_who_the_token_belongs_to() {
    let sandbox = Sandbox::initialized();
    let (id, secret) = sandbox.create_token(
        "acme",
        &[
            "--type",
            "read-only",
            "--external-id",
            "cus_1",
            "--metadata",
            r#"{"plan":"pro"}"#,
        ],
    );
    sandbox.create_token("other", &["--type", "read-only"]);
    let page = sandbox
        .run(&["token", "list", "--json", "--external-id", "cus_1"])
        .ok()
        .json();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(
        page["items"][0]["metadata"],
        serde_json::json!({"plan": "pro"})
    );

    let updated = sandbox
        .run(&[
            "token",
            "update",
            "--json",
            &id,
            "--name",
            "acme eu",
            "--metadata",
            r#"{"plan":"team"}"#,
            "--rate-limit",
            "10/60",
        ])
        .ok()
        .json();
    assert_eq!(updated["name"], "acme eu");
    assert_eq!(updated["metadata"], serde_json::json!({"plan": "team"}));
    assert_eq!(updated["external_id"], "cus_1", "what is not given stays");
    assert_eq!(updated["rate_limit"]["requests"], 10);

    let cleared = sandbox
        .run(&[
            "token",
            "update",
            "--json",
            &id,
            "--no-external-id",
            "--no-rate-limit",
        ])
        .ok()
        .json();
    assert_eq!(cleared["external_id"], Value::Null);
    assert_eq!(cleared["rate_limit"], Value::Null);
    let verified = sandbox.run(&["verify", "--json", &secret]).ok().json();
    assert_eq!(verified["token"]["name"], "acme eu");
    assert_eq!(
        verified["token"]["metadata"],
        serde_json::json!({"plan": "team"})
    );

    // Bad input: named, nothing changed.
    let out = sandbox.run(&["token", "update", &id, "--metadata", "{plan"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--metadata"), "{}", out.stderr);
    let out = sandbox.run(&["token", "update", &id, "--metadata", "[1]"]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("metadata"), "{}", out.stderr);
    let out = sandbox.run(&["token", "update", &id]);
    out.expect_code(2);
    assert!(out.stderr.contains("nothing to change"), "{}", out.stderr);
    let shown = sandbox.run(&["token", "show", "--json", &id]).ok().json();
    assert_eq!(shown["metadata"], serde_json::json!({"plan": "team"}));
}

#[test]
fn verify_exit_codes_and_json_shape() {
    let sandbox = Sandbox::initialized();
    sandbox.add_article();
    let (id, secret) =
        sandbox.create_token("reader", &["--type", "read-only", "--lifespan", "90d"]);

    // Valid: exit 0, the SPEC's shape.
    let out = sandbox.run(&["verify", "--json", &secret, "--permission", "article.find"]);
    let verified = out.ok().json();
    let object = verified.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["token", "valid"], "{verified}");
    assert_eq!(verified["valid"], true);
    let token = verified["token"].as_object().expect("token object");
    let mut keys: Vec<&str> = token.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "api_version",
            "expires_at",
            "external_id",
            "grace_ends_at",
            "id",
            "kind",
            "metadata",
            "name",
            "project",
            "rate_limit",
            "type"
        ],
        "{verified}"
    );
    assert_eq!(token["id"], id.as_str());
    assert_eq!(token["name"], "reader");
    assert_eq!(token["kind"], "api");
    assert_eq!(token["type"], "read-only");
    assert_eq!(token["project"], Value::Null);
    assert_eq!(token["api_version"], "v1");
    assert!(token["expires_at"].is_string());
    assert!(!out.stdout.contains(&secret));

    // Without --json: exit code only, a message on stderr, nothing on stdout.
    let out = sandbox.run(&["verify", &secret]);
    out.ok();
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("valid"), "{}", out.stderr);

    // Forbidden: a read-only token asked for a write permission.
    let out = sandbox.run(&[
        "verify",
        "--json",
        &secret,
        "--permission",
        "article.create",
    ]);
    out.expect_code(1);
    assert_eq!(out.json(), json!({"valid": false, "code": "forbidden"}));
    let out = sandbox.run(&["verify", &secret, "--permission", "article.create"]);
    out.expect_code(1);
    assert!(out.stderr.contains("forbidden"), "{}", out.stderr);

    // Malformed: not the format, or a bad checksum.
    let mut tampered = secret.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for bad in ["not-a-token", "tsr_short", tampered.as_str()] {
        let out = sandbox.run(&["verify", "--json", bad]);
        out.expect_code(1);
        assert_eq!(
            out.json(),
            json!({"valid": false, "code": "malformed"}),
            "{bad}"
        );
    }

    // Disabled.
    sandbox.run(&["token", "disable", &id]).ok();
    let out = sandbox.run(&["verify", "--json", &secret]);
    out.expect_code(1);
    assert_eq!(out.json(), json!({"valid": false, "code": "disabled"}));
}

#[test]
fn verify_checks_the_project() {
    let sandbox = Sandbox::initialized();
    sandbox
        .run(&["project", "create", "shop", "--name", "Shop"])
        .ok();
    sandbox
        .run(&["project", "create", "blog", "--name", "Blog"])
        .ok();
    let (_, secret) =
        sandbox.create_token("shop-reader", &["--type", "read-only", "--project", "shop"]);

    let verified = sandbox
        .run(&["verify", "--json", &secret, "--project", "shop"])
        .ok()
        .json();
    assert_eq!(verified["token"]["project"], "shop");
    let out = sandbox.run(&["verify", "--json", &secret, "--project", "blog"]);
    out.expect_code(1);
    assert_eq!(out.json(), json!({"valid": false, "code": "wrong_project"}));

    // A project that does not exist cannot be bound.
    sandbox
        .run(&[
            "token",
            "create",
            "--lifespan",
            "unlimited",
            "--name",
            "x",
            "--type",
            "read-only",
            "--project",
            "nope",
        ])
        .expect_code(2);
    // A project with tokens bound to it cannot be deleted.
    sandbox.run(&["project", "delete", "shop"]).expect_code(4);
    sandbox.run(&["project", "delete", "blog"]).ok();
}

// ---------------------------------------------------------------------------
// 6. configuration layering
// ---------------------------------------------------------------------------

#[test]
fn config_file_data_dir_is_honoured() {
    let sandbox = Sandbox::initialized();
    let data_dir = sandbox.data_dir();
    let config = sandbox.root().join("custom.toml");
    let data_dir_text = data_dir.to_str().expect("utf-8 temp path");
    assert!(!data_dir_text.contains('\''));
    std::fs::write(&config, format!("data_dir = '{data_dir_text}'\n")).expect("write config");

    // Through the file only (no --data-dir).
    let mut command = sandbox.bare();
    command.arg("--config").arg(&config).args([
        "token",
        "create",
        "--lifespan",
        "unlimited",
        "--json",
        "--name",
        "from-config",
        "--type",
        "read-only",
    ]);
    let created = run_command(command, None).ok().json();
    let id = str_field(&created, "id");

    // Seen through --data-dir directly.
    let page = sandbox.run(&["token", "list", "--json"]).ok().json();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["id"], id.as_str());

    // TESSERA_CONFIG names the file too.
    let mut command = sandbox.bare();
    command
        .env("TESSERA_CONFIG", &config)
        .args(["token", "show", "--json", &id]);
    run_command(command, None).ok();

    // The flag beats the file: another data dir, which does not exist, is refused.
    let other = sandbox.root().join("other");
    let mut command = sandbox.bare();
    command
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&other)
        .args(["token", "show", &id]);
    let out = run_command(command, None);
    out.expect_code(2);
    assert!(
        out.stderr.contains(&other.display().to_string()) && out.stderr.contains("--data-dir"),
        "{}",
        out.stderr
    );
    assert!(!other.exists(), "nothing was created");

    // ./tessera.toml in the working directory is read when no file is named.
    std::fs::copy(&config, sandbox.root().join("tessera.toml")).expect("copy config");
    let mut command = sandbox.bare();
    command.args(["token", "show", "--json", &id]);
    run_command(command, None).ok();
}

#[test]
fn config_file_with_an_unknown_key_is_refused() {
    let sandbox = Sandbox::new();
    let config = sandbox.root().join("tessera.toml");
    std::fs::write(&config, "listn = \"127.0.0.1:9000\"\n").expect("write config");
    let mut command = sandbox.bare();
    command
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(sandbox.data_dir())
        .args(["token", "list"]);
    let out = run_command(command, None);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("listn"), "stderr: {}", out.stderr);
    // A named file that does not exist is an error too.
    let mut command = sandbox.bare();
    command
        .arg("--config")
        .arg(sandbox.root().join("missing.toml"))
        .args(["token", "list"]);
    let out = run_command(command, None);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("missing.toml"),
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn unknown_environment_variable_is_warned_about() {
    let sandbox = Sandbox::initialized();
    let mut command = sandbox.command(["resource", "list", "--json"]);
    command.env("TESSERA_BOGUS", "1");
    let out = run_command(command, None);
    out.ok();
    assert!(
        out.stderr.contains("TESSERA_BOGUS"),
        "stderr: {}",
        out.stderr
    );
    assert_eq!(out.json(), json!([]), "stdout stays clean");

    // A known variable with a bad value is an error naming it.
    let mut command = sandbox.command(["resource", "list"]);
    command.env("TESSERA_CHANGE_POLL_MILLISECONDS", "fast");
    let out = run_command(command, None);
    out.expect_code(2);
    assert!(
        out.stderr.contains("TESSERA_CHANGE_POLL_MILLISECONDS"),
        "stderr: {}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// 7. a running server follows the CLI's changes within one second
// ---------------------------------------------------------------------------

/// The SPEC's bound: a change made by any process takes effect everywhere within 1 s.
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);
/// How long to keep polling before giving up (longer than the bound, so that a slow
/// propagation is reported with its actual delay rather than as a timeout).
const POLL_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

async fn wait_healthy(client: &reqwest::Client, server: &common::Server) {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Ok(response) = client.get(server.url("/healthz")).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never answered 200; server log:\n{}",
            server.log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn verify_http(client: &reqwest::Client, server: &common::Server, secret: &str) -> Value {
    let response = client
        .post(server.url("/v1/verify"))
        .json(&json!({ "token": secret }))
        .send()
        .await
        .expect("POST /v1/verify");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.expect("verify answers JSON")
}

/// Polls `/v1/verify` until `done` holds for the answer; returns it and when it came.
async fn poll_verify(
    client: &reqwest::Client,
    server: &common::Server,
    secret: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> (Value, Instant) {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let answer = verify_http(client, server, secret).await;
        let now = Instant::now();
        if done(&answer) {
            return (answer, now);
        }
        assert!(
            now < deadline,
            "{what}: still {answer} after {POLL_DEADLINE:?}; server log:\n{}",
            server.log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn is_valid(answer: &Value) -> bool {
    answer["valid"] == true
}

/// Runs the CLI (blocking) and returns its output and the instant it had exited.
fn run_timed(sandbox: &Sandbox, args: &[&str]) -> (common::Output, Instant) {
    let out = sandbox.run(args);
    let exited = Instant::now();
    out.ok();
    (out, exited)
}

/// Polls until `secret` is refused with `code` and asserts that happened within the
/// bound of `since`.
async fn assert_refused_within_bound(
    client: &reqwest::Client,
    server: &common::Server,
    secret: &str,
    code: &str,
    since: Instant,
    what: &str,
) {
    let (answer, at) = poll_verify(client, server, secret, what, |a| !is_valid(a)).await;
    let delay = at.duration_since(since);
    assert_eq!(answer, json!({"valid": false, "code": code}), "{what}");
    assert!(
        delay <= PROPAGATION_BOUND,
        "{what}: refused only {delay:?} after the CLI exited (bound {PROPAGATION_BOUND:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_follows_cli_changes_within_one_second() {
    let sandbox = Sandbox::new();
    // Start with an empty database: the server creates it.
    let server = sandbox.serve();
    let client = http_client();
    wait_healthy(&client, &server).await;

    // Insert through the CLI: the server picks it up from the change feed.
    let out = sandbox.run(&[
        "token",
        "create",
        "--lifespan",
        "unlimited",
        "--json",
        "--name",
        "ci",
        "--type",
        "read-only",
    ]);
    let created_at = Instant::now();
    let created = out.ok().json();
    let id = str_field(&created, "id");
    let secret = str_field(&created, "token");
    let (answer, at) = poll_verify(&client, &server, &secret, "created", is_valid).await;
    assert_eq!(answer["token"]["id"], id.as_str());
    let delay = at.duration_since(created_at);
    assert!(
        delay <= PROPAGATION_BOUND,
        "created token valid only after {delay:?}"
    );

    // Disable.
    let (_, exited) = run_timed(&sandbox, &["token", "disable", &id]);
    assert_refused_within_bound(&client, &server, &secret, "disabled", exited, "disable").await;

    // Enable again (so the same token can be regenerated).
    let (_, exited) = run_timed(&sandbox, &["token", "enable", &id]);
    let (_, at) = poll_verify(&client, &server, &secret, "enable", is_valid).await;
    let delay = at.duration_since(exited);
    assert!(delay <= PROPAGATION_BOUND, "enabled only after {delay:?}");

    // Regenerate: the old secret stops, the new one works.
    let (out, exited) = run_timed(&sandbox, &["token", "regenerate", &id]);
    assert!(is_secret_line(&out.stdout), "{:?}", out.stdout);
    let new_secret = out.stdout.trim_end().to_owned();
    assert_refused_within_bound(
        &client,
        &server,
        &secret,
        "not_found",
        exited,
        "regenerate (old secret)",
    )
    .await;
    let (answer, at) =
        poll_verify(&client, &server, &new_secret, "regenerate (new)", is_valid).await;
    assert_eq!(answer["token"]["id"], id.as_str());
    let delay = at.duration_since(exited);
    assert!(
        delay <= PROPAGATION_BOUND,
        "new secret valid only after {delay:?}"
    );

    // Delete.
    let (_, exited) = run_timed(&sandbox, &["token", "delete", &id]);
    assert_refused_within_bound(&client, &server, &new_secret, "not_found", exited, "delete").await;

    drop(server);
}

// ---------------------------------------------------------------------------
// 8. graceful shutdown flushes usage
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_usage_before_exit() {
    let sandbox = Sandbox::initialized();
    let (id, secret) = sandbox.create_token("ci", &["--type", "read-only"]);
    let shown = sandbox.run(&["token", "show", "--json", &id]).ok().json();
    assert_eq!(shown["last_used_at"], Value::Null);

    let mut server = sandbox.serve();
    let client = http_client();
    wait_healthy(&client, &server).await;
    for _ in 0..3 {
        let answer = verify_http(&client, &server, &secret).await;
        assert_eq!(answer["valid"], true, "{answer}");
    }

    // Well before the periodic flush (5 s by default): only the shutdown flush can
    // have written the usage.
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    let exit = server.wait_exit(Duration::from_secs(15));
    assert_eq!(exit.code(), Some(0), "server log:\n{}", server.log());
    assert!(server.log().contains("SIGTERM"), "{}", server.log());

    let shown = sandbox.run(&["token", "show", "--json", &id]).ok().json();
    let last_used = shown["last_used_at"]
        .as_str()
        .unwrap_or_else(|| panic!("last_used_at still null after shutdown: {shown}"));
    chrono::DateTime::parse_from_rfc3339(last_used).expect("last_used_at is RFC 3339");
}

// ---------------------------------------------------------------------------
// 9. first run: the one-time setup code
// ---------------------------------------------------------------------------

/// Waits for `serve`'s first-run notice on stderr and answers the setup code in it
/// (the line after "… enter this one-time setup code …").
fn printed_setup_code(server: &common::Server) -> String {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let log = server.log();
        let mut lines = log.lines();
        if lines.any(|line| line.contains("enter this one-time setup code"))
            && let Some(code) = lines.next()
        {
            return code.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no setup code on stderr:\n{log}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_a_setup_code_until_an_administrator_exists() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let file = sandbox.data_dir().join("setup-code");
    let client = http_client();

    let server = sandbox.serve();
    let code = printed_setup_code(&server);
    assert!(
        code.len() == 19
            && code.split('-').all(|group| group.len() == 4
                && group
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())),
        "not a setup code: {code:?}"
    );
    let log = server.log();
    assert!(log.contains("No administrator exists yet"), "{log}");
    assert!(
        log.contains(&format!(
            "created the data directory {}",
            sandbox.data_dir().display()
        )),
        "serve says it started a new installation:\n{log}"
    );
    assert!(log.contains(&server.url("/admin")), "{log}");
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(
        log.contains(&format!(
            "tessera --data-dir {} admin create --email admin@example.com --password-stdin",
            sandbox.data_dir().display()
        )),
        "{log}"
    );
    // Shown once, on its own line: no log record carries it.
    assert_eq!(
        log.lines().filter(|l| l.contains(&code)).count(),
        1,
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("setup-code").trim(),
        code
    );
    assert_eq!(
        std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    wait_healthy(&client, &server).await;
    drop(server);

    // A restart keeps the code someone may already have copied.
    let server = sandbox.serve();
    assert_eq!(printed_setup_code(&server), code);
    assert!(!server.log().contains("created"), "{}", server.log());
    drop(server);

    // Once an administrator exists (made without any code), no code and no file.
    sandbox
        .run_stdin(
            &[
                "admin",
                "create",
                "--email",
                "root@example.com",
                "--password-stdin",
            ],
            PASSWORD,
        )
        .ok();
    let server = sandbox.serve();
    wait_healthy(&client, &server).await;
    assert!(!file.exists(), "the leftover setup-code file is removed");
    let log = server.log();
    assert!(
        !log.contains("setup code") && !log.contains(&code),
        "no code once an admin exists:\n{log}"
    );
    // Where to go next is said all the same.
    assert!(
        log.contains(&format!("admin console: {}", server.url("/admin"))),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_setup_code_registers_the_first_administrator_once() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve();
    let code = printed_setup_code(&server);
    let client = http_client();
    wait_healthy(&client, &server).await;
    let register = |setup_code: &str| {
        client
            .post(server.url("/v1/auth/register-first"))
            .json(&json!({"setup_code": setup_code, "email": "root@example.com", "password": PASSWORD}))
            .send()
    };
    let wrong = register("0000-0000-0000-0000")
        .await
        .expect("register-first");
    assert_eq!(wrong.status(), 422);
    let created = register(&code).await.expect("register-first");
    assert_eq!(created.status(), 201);
    assert!(!sandbox.data_dir().join("setup-code").exists());
    let again = register(&code).await.expect("register-first");
    assert_eq!(again.status(), 409);
    drop(server);
    // The registered admin is there for the CLI too.
    let users = sandbox.run(&["user", "list", "--json"]).ok().json();
    assert!(users.to_string().contains("root@example.com"), "{users}");
}

// ---------------------------------------------------------------------------
// 10. the installation: only serve, migrate and admin create start one; the pepper
// ---------------------------------------------------------------------------

/// Every command that acts on an installation, with arguments that would succeed on
/// one (or fail on their own merits, never before the installation is found).
const ACTING_COMMANDS: &[&[&str]] = &[
    &[
        "token",
        "create",
        "--lifespan",
        "unlimited",
        "--name",
        "ci",
        "--type",
        "read-only",
    ],
    &["token", "list"],
    &["token", "show", "01900000-0000-7000-8000-000000000000"],
    &["verify", "tsr_nope"],
    &["resource", "list"],
    &["project", "create", "shop", "--name", "Shop"],
    &["user", "list"],
    &["role", "list"],
    &["audit"],
];

/// Asserts a refusal for a missing data dir: exit 2, nothing on stdout, the path and
/// every way to name the right one on stderr.
#[track_caller]
fn assert_refused_missing_data_dir(out: &common::Output, path: &str) {
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    for needle in [
        path,
        "does not exist",
        "--data-dir",
        "TESSERA_DATA_DIR",
        "data_dir",
    ] {
        assert!(
            out.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn only_serve_migrate_and_admin_create_start_an_installation() {
    // A mistyped --data-dir: refused, and nothing is created there.
    let sandbox = Sandbox::initialized();
    let typo = sandbox.root().join("dta");
    for args in ACTING_COMMANDS {
        let mut command = sandbox.bare();
        command.arg("--data-dir").arg(&typo).args(*args);
        let out = run_command(command, None);
        assert_refused_missing_data_dir(&out, &typo.display().to_string());
        assert!(out.stderr.contains("from --data-dir"), "{}", out.stderr);
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // Run from another directory (no --data-dir): the default ./tessera-data is not
    // there; the message says where it looked and why.
    let mut command = sandbox.bare();
    command.args([
        "token",
        "create",
        "--lifespan",
        "unlimited",
        "--name",
        "ci",
        "--type",
        "read-only",
    ]);
    let out = run_command(command, None);
    assert_refused_missing_data_dir(&out, "./tessera-data");
    assert!(
        out.stderr
            .contains(&sandbox.root().join("tessera-data").display().to_string())
            && out.stderr.contains("from the default"),
        "{}",
        out.stderr
    );
    let mut command = sandbox.bare();
    command
        .env("TESSERA_DATA_DIR", &typo)
        .args(["token", "list"]);
    let out = run_command(command, None);
    assert_refused_missing_data_dir(&out, &typo.display().to_string());
    assert!(
        out.stderr.contains("from TESSERA_DATA_DIR"),
        "{}",
        out.stderr
    );
    assert!(!sandbox.root().join("tessera-data").exists() && !typo.exists());

    // A data dir that exists but holds no database (an empty mount, say): refused too.
    std::fs::create_dir(&typo).expect("mkdir");
    let mut command = sandbox.bare();
    command.arg("--data-dir").arg(&typo).args(["token", "list"]);
    let out = run_command(command, None);
    out.expect_code(2);
    assert!(out.stderr.contains("no database"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(&typo).expect("read dir").count(),
        0,
        "nothing created in it"
    );

    // migrate and admin create start one, and say so.
    let fresh = Sandbox::new();
    let out = fresh.run(&["migrate"]);
    out.ok();
    let shown = fresh.data_dir().display().to_string();
    assert!(
        out.stderr
            .contains(&format!("created the data directory {shown}"))
            && out.stderr.contains("created a new pepper"),
        "{}",
        out.stderr
    );
    let out = fresh.run(&["migrate"]);
    out.ok();
    assert!(!out.stderr.contains("created"), "{}", out.stderr);
    let fresh = Sandbox::new();
    let out = fresh.run_stdin(
        &[
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    out.ok();
    assert!(
        out.stderr.contains("created the data directory"),
        "{}",
        out.stderr
    );
    // ...after which the other commands work.
    for args in ACTING_COMMANDS {
        let out = fresh.run(args);
        assert_ne!(out.code, Some(2), "{args:?}: {}", out.stderr);
    }
}

/// Replaces the sandbox's pepper with `bytes`, mode 0600.
fn write_pepper(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write pepper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

#[test]
fn a_lost_or_foreign_pepper_is_refused_with_what_to_copy_where() {
    let sandbox = Sandbox::initialized();
    let (_, secret) = sandbox.create_token("ci", &["--type", "read-only"]);
    let pepper = sandbox.data_dir().join("pepper");
    let original = std::fs::read(&pepper).expect("read pepper");
    let shown = pepper.display().to_string();

    // Lost: nothing makes a new one, not even the commands that may start an
    // installation; serve refuses to start.
    std::fs::remove_file(&pepper).expect("remove pepper");
    for args in [
        &["verify", secret.as_str()][..],
        &["token", "list"],
        &["migrate"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let out = run_exiting(sandbox.command(args));
        out.expect_code(2);
        for needle in [
            shown.as_str(),
            "no pepper file",
            "copy the pepper file",
            "--pepper-file",
            "TESSERA_PEPPER_FILE",
        ] {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: no {needle:?} in:\n{}",
                out.stderr
            );
        }
        assert!(!pepper.exists(), "{args:?} made a new pepper");
    }
    let out = sandbox.run_stdin(
        &[
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    out.expect_code(2);
    assert!(!pepper.exists(), "admin create made a new pepper");

    // Another pepper (a node started without the first one's file made its own):
    // refused, with both fingerprints, before anything is done.
    write_pepper(&pepper, &[7; 32]);
    for args in [
        &["verify", secret.as_str()][..],
        &[
            "token",
            "create",
            "--lifespan",
            "unlimited",
            "--name",
            "other",
            "--type",
            "read-only",
        ],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let out = run_exiting(sandbox.command(args));
        out.expect_code(2);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        for needle in [shown.as_str(), "fingerprint", "copy the pepper file"] {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: no {needle:?} in:\n{}",
                out.stderr
            );
        }
    }

    // The right pepper back: everything works, and nothing was created meanwhile.
    write_pepper(&pepper, &original);
    sandbox.run(&["verify", &secret]).ok();
    let page = sandbox.run(&["token", "list", "--json"]).ok().json();
    assert_eq!(page["total"], 1, "{page}");
}

#[cfg(unix)]
#[test]
fn the_pepper_can_come_from_a_file_of_its_own() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::initialized();
    let (_, secret) = sandbox.create_token("ci", &["--type", "read-only"]);
    let secrets = sandbox.root().join("secrets");
    std::fs::create_dir(&secrets).expect("mkdir");
    let file = secrets.join("tessera-pepper");
    std::fs::rename(sandbox.data_dir().join("pepper"), &file).expect("move the pepper");

    sandbox.run(&["verify", &secret]).expect_code(2);
    let flag = file.to_str().expect("utf-8 path");
    sandbox
        .run(&["--pepper-file", flag, "verify", &secret])
        .ok();
    let mut command = sandbox.command(["verify", &secret]);
    command.env("TESSERA_PEPPER_FILE", &file);
    run_command(command, None).ok();
    let config = sandbox.root().join("tessera.toml");
    std::fs::write(&config, format!("pepper_file = '{flag}'\n")).expect("write config");
    run_command(sandbox.command(["verify", &secret]), None).ok();
    assert!(
        !sandbox.data_dir().join("pepper").exists(),
        "no pepper made in the data dir"
    );

    // Checked as the data dir's pepper is: private to its owner.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run_command(sandbox.command(["verify", &secret]), None);
    out.expect_code(2);
    assert!(
        out.stderr.contains(flag)
            && out.stderr.contains("0644")
            && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    run_command(sandbox.command(["verify", &secret]), None).ok();

    // A new installation with its pepper elsewhere gets it there.
    let fresh = Sandbox::new();
    let elsewhere = fresh.root().join("keys/pepper");
    fresh
        .run(&[
            "--pepper-file",
            elsewhere.to_str().expect("utf-8"),
            "migrate",
        ])
        .ok();
    let mode = std::fs::metadata(&elsewhere)
        .expect("the pepper is made at --pepper-file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!fresh.data_dir().join("pepper").exists());
}

/// A database from before fingerprints (tokens, none recorded): the pepper in use is
/// recorded, with a warning that it could not be checked; from then on it is required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_fingerprints_records_the_pepper_in_use() {
    use sqlx::Connection as _;
    let sandbox = Sandbox::initialized();
    let (_, secret) = sandbox.create_token("ci", &["--type", "read-only"]);
    let url = format!(
        "sqlite://{}",
        sandbox.data_dir().join("tessera.db").display()
    );
    let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open");
    sqlx::query("DELETE FROM meta WHERE key = 'pepper_fingerprint'")
        .execute(&mut connection)
        .await
        .expect("forget the fingerprint");
    connection.close().await.expect("close");

    // A command that only reads may not adopt its pepper for such a database: with a
    // stale pepper file it would bind the database to the wrong one for good.
    let out = sandbox.run(&["verify", &secret]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("records no pepper fingerprint") && out.stderr.contains("migrate"),
        "{}",
        out.stderr
    );
    // `migrate` adopts it, and says that it cannot check it.
    let out = sandbox.run(&["migrate"]);
    out.ok();
    assert!(
        out.stderr.contains("held tokens but no pepper fingerprint")
            && out.stderr.contains("cannot be checked"),
        "{}",
        out.stderr
    );
    let out = sandbox.run(&["verify", &secret]);
    out.ok();
    assert!(!out.stderr.contains("fingerprint"), "{}", out.stderr);
    write_pepper(&sandbox.data_dir().join("pepper"), &[9; 32]);
    sandbox.run(&["token", "list"]).expect_code(2);
}

// ---------------------------------------------------------------------------
// A newcomer's CLI: names for ids, tables, messages that say what to do, completions
// ---------------------------------------------------------------------------

/// `arg` as one POSIX shell word.
fn shell_word(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// Runs `tessera --data-dir D ARGS…` with its stdout on a pseudo-terminal (through
/// util-linux's `script`), returning what the terminal showed with `\r\n` as `\n`; `None`
/// (after a loud SKIPPED line) where `script` is missing.
fn run_on_terminal(sandbox: &Sandbox, args: &[&str]) -> Option<String> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: no `script` (util-linux) to give the CLI a terminal");
        return None;
    }
    let mut words = vec![
        shell_word(common::BIN),
        "--data-dir".to_owned(),
        shell_word(&sandbox.data_dir().display().to_string()),
    ];
    words.extend(args.iter().map(|arg| shell_word(arg)));
    let mut script = std::process::Command::new("script");
    script
        .current_dir(sandbox.root())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .args(["-qec", &words.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::null());
    let out = run_command(script, None);
    out.ok();
    Some(out.stdout.replace("\r\n", "\n"))
}

#[test]
fn tokens_users_and_roles_are_named_by_id_or_unique_name() {
    let sandbox = Sandbox::initialized();
    let (deploy, _) = sandbox.create_token("CI deploy", &["--type", "read-only"]);
    sandbox.create_token("other", &["--type", "read-only"]);

    // The issue's own example: a name where an id was the only way.
    let out = sandbox.run(&["token", "disable", "CI deploy"]);
    out.ok();
    assert!(
        out.stderr.contains(&format!(
            "using token \"CI deploy\" ({deploy}), matched by name"
        )),
        "{}",
        out.stderr
    );
    let shown = sandbox
        .run(&["token", "show", "--json", &deploy])
        .ok()
        .json();
    assert_eq!(shown["status"], "disabled");
    // Names are unique ignoring case, and found so.
    let shown = sandbox
        .run(&["token", "show", "--json", "ci DEPLOY"])
        .ok()
        .json();
    assert_eq!(shown["id"], deploy.as_str());
    // An id is used as it is, and nothing is said about it.
    let out = sandbox.run(&["token", "enable", &deploy]);
    out.ok();
    assert!(!out.stderr.contains("matched"), "{}", out.stderr);
    let out = sandbox.run(&["token", "update", "CI deploy", "--description", "ships"]);
    out.ok();
    let out = sandbox.run(&["token", "regenerate", "CI deploy"]);
    out.ok();
    assert!(is_secret_line(&out.stdout), "{}", out.stdout);
    sandbox.run(&["token", "delete", "other"]).ok();
    let out = sandbox.run(&["token", "show", "other"]);
    out.expect_code(3);
    assert!(
        out.stderr
            .contains("no API token has the id or name `other`"),
        "{}",
        out.stderr
    );

    // Administrators: by email or name; a name two of them share is refused with both.
    for email in ["ada1@example.com", "ada2@example.com"] {
        sandbox
            .run(&[
                "user", "create", "--email", email, "--role", "viewer", "--name", "Ada",
            ])
            .ok();
    }
    let out = sandbox.run(&["user", "update", "Ada", "--role", "token-manager"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("2 administrators match `Ada`; name one by its id")
            && out.stderr.contains("ada1@example.com")
            && out.stderr.contains("ada2@example.com"),
        "{}",
        out.stderr
    );
    sandbox
        .run(&["user", "update", "ada1@example.com", "--name", "Ada One"])
        .ok();
    let out = sandbox.run(&["user", "update", "Ada One", "--deactivate"]);
    out.ok();
    assert!(
        out.stderr
            .contains("using administrator ada1@example.com \"Ada One\"")
            && out.stderr.contains("matched by name"),
        "{}",
        out.stderr
    );
    // Now "Ada" names one administrator only.
    sandbox.run(&["user", "delete", "Ada"]).ok();
    let out = sandbox.run(&["user", "delete", "nobody"]);
    out.expect_code(3);
    assert!(
        out.stderr.contains(
            "no administrator has the id, email or name `nobody` (see `tessera user list`)"
        ),
        "{}",
        out.stderr
    );

    // Roles: a role's id is its name; an unknown one is answered with the roles there are.
    sandbox
        .run(&["role", "create", "auditor", "--permission", "audit.read"])
        .ok();
    let out = sandbox.run(&["role", "update", "nosuch", "--description", "x"]);
    out.expect_code(3);
    assert!(
        out.stderr
            .contains("no role is named `nosuch`; the roles are: ")
            && out.stderr.contains("auditor")
            && out.stderr.contains("viewer"),
        "{}",
        out.stderr
    );
    sandbox.run(&["role", "delete", "Auditor"]).ok();
}

#[test]
fn listings_have_a_header_on_a_terminal_and_tabs_when_piped() {
    let sandbox = Sandbox::initialized();
    sandbox.add_article();
    sandbox
        .run(&["project", "create", "shop", "--name", "Shop"])
        .ok();
    let (deploy, _) = sandbox.create_token(
        "CI deploy",
        &["--type", "custom", "--permission", "article.create"],
    );
    let (dashboard, _) =
        sandbox.create_token("dashboard", &["--type", "read-only", "--project", "shop"]);

    // Piped: one tab-separated line per token, no header, no colour.
    let out = sandbox.run(&["token", "list"]);
    out.ok();
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|line| line.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 2, "no header when piped:\n{}", out.stdout);
    let row = |id: &str| {
        rows.iter()
            .find(|row| row[0] == id)
            .unwrap_or_else(|| panic!("no row for {id}:\n{}", out.stdout))
    };
    assert_eq!(
        row(&deploy)[1..6],
        ["CI deploy", "custom", "active", "-", "article.create"]
    );
    assert_eq!(
        row(&dashboard)[1..6],
        [
            "dashboard",
            "read-only",
            "active",
            "shop",
            "every read action"
        ]
    );
    assert!(rows.iter().all(|row| row.len() == 8), "{}", out.stdout);

    // On a terminal: a header row, then aligned columns, no tabs and no colour.
    if let Some(shown) = run_on_terminal(&sandbox, &["token", "list"]) {
        let lines: Vec<&str> = shown.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "ID",
                "NAME",
                "TYPE",
                "STATUS",
                "PROJECT",
                "PERMISSIONS",
                "EXPIRES",
                "LAST",
                "USED"
            ],
            "{shown}"
        );
        assert!(
            !shown.contains('\t') && !shown.contains('\u{1b}'),
            "{shown:?}"
        );
        let column = lines[0].find("PROJECT").expect("PROJECT column");
        let dashboard_line = lines
            .iter()
            .find(|line| line.starts_with(&dashboard))
            .expect("dashboard row");
        assert_eq!(&dashboard_line[column..column + 4], "shop", "{shown}");
    }
    // The other listings too.
    for (args, first) in [
        (vec!["project", "list"], "SLUG"),
        (vec!["resource", "list"], "NAME"),
        (vec!["role", "list"], "NAME"),
        (vec!["audit"], "TIME"),
    ] {
        let piped = sandbox.run(&args);
        piped.ok();
        assert!(
            !piped.stdout.starts_with(first) && piped.stdout.contains('\t'),
            "{args:?} piped:\n{}",
            piped.stdout
        );
        if let Some(shown) = run_on_terminal(&sandbox, &args) {
            assert!(shown.starts_with(first), "{args:?} on a terminal:\n{shown}");
        }
    }

    // `token show` says what the token may do.
    let out = sandbox.run(&["token", "show", "CI deploy"]);
    out.ok();
    assert!(
        out.stdout
            .lines()
            .any(|line| line == "permissions  article.create"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("project      none"), "{}", out.stdout);
    let out = sandbox.run(&["token", "show", &dashboard]);
    assert!(
        out.stdout
            .lines()
            .any(|line| line == "permissions  every read action"),
        "{}",
        out.stdout
    );
}

#[test]
fn help_describes_flags_and_ids_and_keeps_the_old_search_flag() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["token", "list", "--help"]);
    out.ok();
    assert!(
        out.stdout.contains("--search <TEXT>") && !out.stdout.contains("--q"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
    for value in [
        "read-only",
        "full-access",
        "custom",
        "active",
        "disabled",
        "expired",
    ] {
        assert!(out.stdout.contains(value), "{value}: {}", out.stdout);
    }
    let out = sandbox.run(&["token", "disable", "--help"]);
    assert!(
        out.ok()
            .stdout
            .contains("<TOKEN>  The token: its id (a UUID) or its unique name"),
        "{}",
        out.stdout
    );
    let out = sandbox.run(&["user", "create", "--help"]);
    assert!(
        out.ok()
            .stdout
            .contains("super-admin (everything), token-manager (API tokens and the audit log), viewer (read tokens), or a custom role"),
        "{}",
        out.stdout
    );
    // A type that does not exist is refused by the parser, naming the ones that do.
    let out = sandbox.run(&[
        "token",
        "create",
        "--lifespan",
        "unlimited",
        "--name",
        "x",
        "--type",
        "admin",
    ]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("[possible values: read-only, full-access, custom]"),
        "{}",
        out.stderr
    );

    // `--q`, the old name of `--search`, still works for scripts.
    let sandbox = Sandbox::initialized();
    sandbox.create_token("deploy", &["--type", "read-only"]);
    sandbox.create_token("other", &["--type", "read-only"]);
    for flag in ["--search", "--q"] {
        let page = sandbox
            .run(&["token", "list", "--json", flag, "DEP"])
            .ok()
            .json();
        assert_eq!(page["total"], 1, "{flag}: {page}");
    }
}

#[test]
fn an_unsupported_database_url_names_the_supported_schemes() {
    let sandbox = Sandbox::new();
    for args in [
        vec![
            "--database-url",
            "mysql://app:hunter2@db/tessera",
            "token",
            "list",
        ],
        vec!["--database-url", "mysql://app:hunter2@db/tessera", "serve"],
        vec![
            "db",
            "copy",
            "--from",
            "mysql://app:hunter2@db/tessera",
            "--to",
            "sqlite://./copy.db",
        ],
    ] {
        let mut command = sandbox.bare();
        command.args(&args);
        let out = run_command(command, None);
        out.expect_code(2);
        assert!(
            out.stderr
                .contains("scheme `mysql:`, which Tessera does not support")
                && out.stderr.contains("sqlite:PATH")
                && out
                    .stderr
                    .contains("postgres://USER:PASSWORD@HOST/DATABASE"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
        assert!(!out.stderr.contains("internal"), "{}", out.stderr);
    }
}

#[test]
fn completions_and_a_manual_page_come_from_the_command_line_definition() {
    let sandbox = Sandbox::new();
    for (shell, marker) in [
        ("bash", "_tessera()"),
        ("zsh", "#compdef tessera"),
        ("fish", "complete -c tessera"),
    ] {
        let out = sandbox
            .bare()
            .arg("completions")
            .arg(shell)
            .output()
            .expect("run");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["regenerate", "search", "read-only"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let out = sandbox.run(&["completions", "powershell"]);
    out.expect_code(2);

    let out = sandbox.bare().arg("man").output().expect("run");
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".TH tessera 1") && page.contains("token"),
        "{page}"
    );
    // Neither needs a data dir, and neither makes one.
    assert!(!sandbox.root().join("tessera-data").exists());
}

#[test]
fn a_listen_value_that_is_no_address_shows_the_forms_it_takes() {
    let sandbox = Sandbox::new();
    for value in ["80x81", "localhost:", "http://localhost:8081"] {
        let out = sandbox.run(&["serve", "--listen", value]);
        out.expect_code(2);
        assert!(
            out.stderr
                .contains(&format!("`{value}` is not a listen address"))
                && out.stderr.contains("use HOST:PORT (e.g. 127.0.0.1:8080")
                && out
                    .stderr
                    .contains("a bare PORT (e.g. 8080, which listens on 127.0.0.1 only)"),
            "{value}: {}",
            out.stderr
        );
    }
    assert!(!sandbox.data_dir().exists(), "nothing is created");
}

/// `T=$(tessera token create …)` then `tessera token delete $T`: the secret given where a
/// name belongs is refused without being repeated (stderr reaches terminals and CI logs).
#[test]
fn a_secret_given_for_a_name_is_refused_without_repeating_it() {
    let sandbox = Sandbox::initialized();
    let (_, secret) = sandbox.create_token("ci", &["--type", "read-only"]);
    for command in [
        vec!["token", "show", secret.as_str()],
        vec!["token", "delete", secret.as_str()],
        vec!["user", "update", secret.as_str(), "--name", "x"],
        vec!["role", "delete", secret.as_str()],
    ] {
        let out = sandbox.run(&command);
        out.expect_code(2);
        assert!(
            out.stderr.contains("is a token secret"),
            "{command:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains(&secret[secret.len() - 20..]),
            "{command:?} repeated the secret: {}",
            out.stderr
        );
    }
    // Still there: nothing was deleted.
    sandbox.run(&["token", "show", "ci"]).ok();
}
