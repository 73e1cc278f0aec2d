//! `tessera token import`: many tokens from JSON lines, each batch one transaction, the
//! secrets out in input order, a bad line named with how to resume.

#![cfg(test)]

#[allow(dead_code)]
mod common;

use common::Sandbox;
use serde_json::Value;

fn line(name: &str, extra: &str) -> String {
    format!(r#"{{"name":"{name}","type":"read-only","lifespan":"90d"{extra}}}"#)
}

fn issued(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
        .collect()
}

fn token_count(sandbox: &Sandbox) -> u64 {
    sandbox.run(&["token", "list", "--json"]).ok().json()["total"]
        .as_u64()
        .expect("a total")
}

#[test]
fn tokens_are_imported_in_batches_with_their_secrets_in_input_order() {
    let sandbox = Sandbox::initialized();
    let input = [
        line("acme", r#","external_id":"cus_1""#),
        line("beta", ""),
        String::new(),
        line("gamma", r#","metadata":{"plan":"pro"}"#),
        line("delta", ""),
    ]
    .join("\n");
    let out = sandbox.run_stdin(&["token", "import", "-", "--batch-size", "2"], &input);
    out.ok();
    let issued = issued(&out.stdout);
    let names: Vec<&str> = issued.iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["acme", "beta", "gamma", "delta"]);
    let lines: Vec<u64> = issued.iter().filter_map(|i| i["line"].as_u64()).collect();
    assert_eq!(
        lines,
        [1, 2, 4, 5],
        "blank lines are skipped, numbering is the file's"
    );
    assert_eq!(issued[0]["external_id"], "cus_1");
    assert!(out.stderr.contains("imported 4 tokens"), "{}", out.stderr);
    // Each secret is a working token for the record next to it.
    for entry in &issued {
        let secret = entry["token"].as_str().expect("a secret");
        let verified = sandbox.run(&["verify", "--json", secret]).ok().json();
        assert_eq!(verified["token"]["id"], entry["id"]);
    }
    assert_eq!(token_count(&sandbox), 4);
    let audit = sandbox
        .run(&["audit", "--json", "--action", "token.create"])
        .ok()
        .json();
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(4));
}

#[test]
fn a_refused_line_is_named_its_batch_is_not_imported_and_skip_resumes() {
    let sandbox = Sandbox::initialized();
    sandbox.create_token("taken", &["--type", "read-only"]);
    let path = sandbox.root().join("tokens.jsonl");
    let write = |lines: &[String]| std::fs::write(&path, lines.join("\n")).expect("write input");
    let mut lines = vec![
        line("one", ""),
        line("two", ""),
        line("three", ""),
        line("TAKEN", ""),
        line("five", ""),
    ];
    write(&lines);
    let file = path.to_str().expect("a UTF-8 path");
    let out = sandbox.run(&[
        "token",
        "import",
        file,
        "--batch-size",
        "2",
        "--out",
        "a.jsonl",
    ]);
    out.expect_code(4);
    assert!(
        out.stderr.contains("line 4: an API token named `TAKEN`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--skip 2"), "{}", out.stderr);
    // The first batch (lines 1–2) is in, with its secrets; line 3 went down with line 4.
    let first = std::fs::read_to_string(sandbox.root().join("a.jsonl")).expect("a.jsonl");
    assert_eq!(issued(&first).len(), 2);
    assert_eq!(token_count(&sandbox), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sandbox.root().join("a.jsonl"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a file of secrets is private");
    }
    // An output file is never overwritten.
    let out = sandbox.run(&["token", "import", file, "--skip", "2", "--out", "a.jsonl"]);
    out.expect_code(2);
    assert!(out.stderr.contains("exists"), "{}", out.stderr);
    // Fixed, the rest imports from where it stopped.
    lines[3] = line("four", "");
    write(&lines);
    let out = sandbox.run(&["token", "import", file, "--skip", "2", "--out", "b.jsonl"]);
    out.ok();
    let rest = std::fs::read_to_string(sandbox.root().join("b.jsonl")).expect("b.jsonl");
    let lines: Vec<u64> = issued(&rest)
        .iter()
        .filter_map(|i| i["line"].as_u64())
        .collect();
    assert_eq!(lines, [3, 4, 5]);
    assert_eq!(token_count(&sandbox), 6);
}

#[test]
fn a_line_that_is_no_request_is_named_without_repeating_a_secret() {
    let sandbox = Sandbox::initialized();
    let secret = "tsr_FuzzFixtureNotARealTokenAbCdEfGhIjKlMnOpQrSt";
    let input = format!(
        "{}\n{{\"name\":\"x\",\"type\":\"{secret}\",\"lifespan\":\"7d\"}}\n",
        line("fine", "")
    );
    let out = sandbox.run_stdin(&["token", "import", "-"], &input);
    out.expect_code(2);
    assert!(
        out.stderr.contains("line 2: not a token create request"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(secret), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(
        token_count(&sandbox),
        0,
        "the batch holding the bad line is not imported"
    );
    // Two lines with one name are refused before anything is written.
    let twice = format!("{}\n{}\n", line("same", ""), line("Same", ""));
    let out = sandbox.run_stdin(&["token", "import", "-"], &twice);
    out.expect_code(4);
    assert!(out.stderr.contains("line 2"), "{}", out.stderr);
    assert_eq!(token_count(&sandbox), 0);
}

/// An import leaves the database's statistics counting the tokens it wrote, so the
/// token list is planned for the table's real size at once (not only once the store
/// next opens, or PostgreSQL's autovacuum comes by).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_refreshes_the_statistics_the_list_is_planned_with() {
    use sqlx::Connection as _;
    let sandbox = Sandbox::initialized();
    let input: Vec<String> = (0..30).map(|n| line(&format!("stats {n}"), "")).collect();
    sandbox
        .run_stdin(&["token", "import", "-"], &input.join("\n"))
        .ok();
    let url = format!(
        "sqlite://{}",
        sandbox.data_dir().join("tessera.db").display()
    );
    let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open");
    let (stat,): (String,) =
        sqlx::query_as("SELECT stat FROM sqlite_stat1 WHERE idx = 'tokens_created'")
            .fetch_one(&mut connection)
            .await
            .expect("statistics for the creation index");
    connection.close().await.expect("close");
    assert!(stat.starts_with("30 "), "{stat}");
}
