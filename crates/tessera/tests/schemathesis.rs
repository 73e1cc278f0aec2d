//! The OpenAPI document against the live server: schemathesis (PyPI) generates requests
//! for every documented operation, authenticated with a personal token, and checks that
//! no answer is a server error and every answer is one the document describes (status
//! code, content type, body schema).
//!
//! Needs `TESSERA_TEST_SCHEMATHESIS`, the `schemathesis` command (`.ci/run` installs it
//! in a virtual environment); without it the test prints SKIPPED and passes.

#![cfg(test)]

#[allow(dead_code)]
mod common;

use std::io::Write as _;
use std::process::Command;

use common::{Sandbox, str_field};
use serde_json::{Value, json};

const VARIABLE: &str = "TESSERA_TEST_SCHEMATHESIS";
const EMAIL: &str = "root@example.com";
const PASSWORD: &str = "a long enough password";

/// A personal token of the super-admin, made as a user would: sign in, then create it
/// from the session.
async fn personal_token(base: &str) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("http client");
    let login: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    let csrf = str_field(&login, "csrf_token");
    let created: Value = http
        .post(format!("{base}/v1/me/tokens"))
        .header("x-csrf-token", csrf)
        .json(&json!({"name": "schemathesis", "access": "full", "lifespan": "7d"}))
        .send()
        .await
        .expect("create a personal token")
        .json()
        .await
        .expect("personal token body");
    str_field(&created, "token")
}

#[tokio::test]
async fn every_documented_operation_answers_as_the_document_says() {
    let Some(schemathesis) = std::env::var_os(VARIABLE).filter(|v| !v.is_empty()) else {
        // Straight to the stream: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the schemathesis run (set {VARIABLE} to the schemathesis command)"
        );
        return;
    };
    let sandbox = Sandbox::initialized();
    sandbox
        .run_stdin(
            &["admin", "create", "--email", EMAIL, "--password-stdin"],
            PASSWORD,
        )
        .ok();
    sandbox.add_article();
    sandbox.create_token("reader", &["--type", "read-only"]);
    let server = sandbox.serve();
    let token = personal_token(&server.base).await;
    let output = Command::new(schemathesis)
        .current_dir(sandbox.root())
        .args([
            "run",
            &server.url("/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
            // Bounded: the whole run stops after this budget, whatever it has found.
            "--max-time",
            "90",
            "--workers",
            "2",
            "--seed",
            "1",
            "--no-color",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found answers the document does not describe:\n{report}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    assert!(
        !report.contains(&token),
        "the report must not hold the token (schemathesis filters Authorization)"
    );
}
