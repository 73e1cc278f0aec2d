//! The README's tour, run as a newcomer pastes it: every `sh` block of "A five-minute
//! tour" and "Endpoints", in order, in one bash with `set -e`, in a fresh directory,
//! with the built `tessera` first on PATH. The one thing changed is the port: a free
//! one in place of 8080, so the test runs beside others. A block that fails fails the
//! test, naming the block, so the README cannot rot.

#![cfg(test)]

#[allow(dead_code)]
mod common;

use std::process::{Command, Stdio};

/// The `sh` blocks between the heading `from` and the heading after `to`.
fn sh_blocks(readme: &str, from: &str, to: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n## {from}\n"))
        .unwrap_or_else(|| panic!("no section {from:?} in the README"));
    let after = readme[start..]
        .find(&format!("\n## {to}\n"))
        .map(|at| start + at)
        .unwrap_or_else(|| panic!("no section {to:?} in the README"));
    let next = readme[after + 1..]
        .find("\n## ")
        .map_or(readme.len(), |at| after + 1 + at);
    let mut blocks = Vec::new();
    let mut rest = &readme[start..next];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("\n```").expect("an sh block is closed");
        blocks.push(body[..close].to_owned());
        rest = &body[close..];
    }
    blocks
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn the_readme_tour_runs_as_written() {
    if !have("curl") || !have("bash") {
        eprintln!("SKIPPED: the README's tour needs curl and bash");
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let blocks = sh_blocks(&readme, "A five-minute tour", "Endpoints");
    assert!(blocks.len() >= 4, "the tour has its blocks: {blocks:#?}");
    // The first block builds the release binary and puts it on PATH: the test has built
    // the binary already and puts it on PATH itself.
    assert!(
        blocks[0].contains("cargo build --release"),
        "the tour starts by building: {}",
        blocks[0]
    );
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    let mut script = String::from(
        "set -euo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n",
    );
    for (index, block) in blocks.iter().enumerate().skip(1) {
        script.push_str(&format!("echo '### block {}' >&2\n", index + 1));
        script.push_str(&block.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")));
        script.push('\n');
    }
    script.push_str("echo '### done' >&2\n");

    let dir = tempfile::tempdir().expect("temp dir");
    let bin_dir = std::path::Path::new(common::BIN)
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("timeout");
    command
        .args(["120", "bash", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESSERA_") {
            command.env_remove(&key);
        }
    }
    command.env("TESSERA_LISTEN", format!("127.0.0.1:{port}"));
    let out = command.output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last_block = stderr
        .lines()
        .rfind(|line| line.starts_with("### "))
        .unwrap_or("none");
    assert!(
        out.status.success() && last_block == "### done",
        "the tour failed in {last_block} (exit {:?})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status.code()
    );
    // What the tour says each step shows.
    for expected in [
        "allowed",
        "refused",
        "\"name\":\"dashboard\"",
        "\"valid\":true",
        "\"action\":\"token.create\"",
    ] {
        assert!(
            stdout.contains(expected),
            "the tour's output lacks {expected:?}:\n{stdout}\n--- stderr ---\n{stderr}"
        );
    }
    // The tour's files stay out of the directory it runs in (the cookie jar is a temp file).
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["tessera-data"], "files left by the tour");
}
