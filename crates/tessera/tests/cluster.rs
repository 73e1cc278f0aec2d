#![cfg(test)]
//! A cluster of real `tessera serve` processes on one real PostgreSQL database:
//! changes made on one node (or by the CLI) reach every other node within the SPEC's
//! one second, a node started late is caught up before it reports ready, and a node
//! cut off from the database keeps verifying from memory, reports not ready, answers
//! management calls with 503, keeps its usage and flushes it after recovery, loses no
//! acknowledged write, and past its maximum staleness refuses to verify.
//!
//! Runs only when `TESSERA_TEST_POSTGRES_URL` names a database (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); without it every test passes after one
//! SKIPPED line on stderr. Each test gets a fresh schema, dropped afterwards.
//!
//! The database outage is made by a TCP proxy the test controls, between one node and
//! PostgreSQL: cutting it drops every live connection and leaves new ones hanging
//! unanswered (a network partition, the worst case: nothing fails fast).

// Each test binary compiles `common` again; this one does not use all of it.
#[allow(dead_code)]
mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Sandbox, Server, str_field};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_test_support::PgSchema;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";

/// The SPEC's bound: a change made anywhere takes effect everywhere within 1 s.
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long to poll for something that should happen (well past any bound, so that a
/// slow result is reported with its real delay rather than as a timeout).
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The database: a fresh schema per test
// ---------------------------------------------------------------------------

/// A fresh schema in the database `TESSERA_TEST_POSTGRES_URL` names, dropped (with
/// everything in it) on drop; `None`, after one SKIPPED line, when the variable is unset.
struct TestDb {
    schema: PgSchema,
    /// The URL the nodes use: the base URL with `search_path` set to the schema.
    url: String,
}

impl TestDb {
    async fn create() -> Option<Self> {
        let schema = PgSchema::for_tests("multi-node PostgreSQL tests", "tessera_cluster").await?;
        let url = schema.url();
        Some(Self { schema, url })
    }

    /// The nodes' URL with the host and port replaced by `address` (a proxy).
    fn url_via(&self, address: SocketAddr) -> String {
        let (before, _, after) = split_authority(&self.url);
        format!("{before}{address}{after}")
    }

    /// Where PostgreSQL listens (`host:port`).
    fn upstream(&self) -> String {
        let (_, host, _) = split_authority(self.schema.base());
        let has_port = host.rsplit_once(':').is_some_and(|(_, port)| {
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']')
        });
        if has_port {
            host.to_owned()
        } else {
            format!("{host}:5432")
        }
    }
}

/// `postgres://user@host:port/db?…` → (`postgres://user@`, `host:port`, `/db?…`).
fn split_authority(url: &str) -> (&str, &str, &str) {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let host_start = url[scheme_end..authority_end]
        .rfind('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    (
        &url[..host_start],
        &url[host_start..authority_end],
        &url[authority_end..],
    )
}

// ---------------------------------------------------------------------------
// A TCP proxy the test controls
// ---------------------------------------------------------------------------

/// Forwards connections to PostgreSQL until cut. Cutting drops every live connection
/// and leaves new ones open but unanswered (as a network partition would); restoring
/// closes those and forwards again.
struct Proxy {
    address: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept: AbortHandle,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    /// Forwarding connections.
    live: Vec<AbortHandle>,
    /// Connections accepted while cut, held unanswered.
    held: Vec<AbortHandle>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let accept = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&state)));
        Self {
            address,
            state,
            accept: accept.abort_handle(),
        }
    }

    fn cut(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.cut = true;
        for connection in state.live.drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.cut = false;
        for connection in state.held.drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(mut state) = self.state.lock() {
            let state = &mut *state;
            for connection in state.live.drain(..).chain(state.held.drain(..)) {
                connection.abort();
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, state: Arc<Mutex<ProxyState>>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        // Spawned and registered under the lock, so a concurrent `cut` sees it.
        let mut state = state.lock().expect("proxy state");
        state.live.retain(|task| !task.is_finished());
        state.held.retain(|task| !task.is_finished());
        if state.cut {
            let task = tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            });
            state.held.push(task.abort_handle());
        } else {
            let upstream = upstream.clone();
            let task = tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
            state.live.push(task.abort_handle());
        }
    }
}

// ---------------------------------------------------------------------------
// Nodes, the CLI and the REST API
// ---------------------------------------------------------------------------

/// Runs blocking work (a CLI process, waiting for a node to start) without stalling
/// the runtime's other tasks (the proxy, background loops).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// Starts `tessera serve` on `database_url`, sharing the sandbox's data dir (the pepper).
fn start_node(sandbox: &Sandbox, database_url: &str, env: &[(&str, &str)]) -> Server {
    let mut command = sandbox.command([
        "--database-url",
        database_url,
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    command.env("TESSERA_LOG", "info,sqlx=warn");
    for (key, value) in env {
        command.env(key, value);
    }
    blocking(|| Server::start(command))
}

/// `tessera --database-url URL ARGS…` in the sandbox; asserts success, returns stdout.
fn cli(sandbox: &Sandbox, url: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    let out = blocking(|| match stdin {
        Some(input) => sandbox.run_stdin(&all, input),
        None => sandbox.run(&all),
    });
    out.ok();
    out.stdout
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// An answer: status, `Retry-After` and the JSON body (`Null` when empty).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("send the request");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("read the body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    Answer {
        status,
        retry_after,
        body,
    }
}

/// A signed-in administrator: the session (valid on every node: sessions live in the
/// database) and its CSRF token.
#[derive(Clone)]
struct Admin {
    client: reqwest::Client,
    session: String,
    csrf: String,
}

impl Admin {
    async fn login(client: &reqwest::Client, node: &str) -> Self {
        let response = client
            .post(format!("{node}/v1/auth/login"))
            .json(&json!({"email": EMAIL, "password": PASSWORD}))
            .send()
            .await
            .expect("log in");
        assert_eq!(response.status(), StatusCode::OK, "login");
        let session = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(|cookie| cookie.strip_prefix("tessera_session="))
            .and_then(|rest| rest.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let body: Value = response.json().await.expect("login JSON");
        Self {
            client: client.clone(),
            session,
            csrf: str_field(&body, "csrf_token"),
        }
    }

    async fn call(&self, node: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{node}{path}"))
            .header("cookie", format!("tessera_session={}", self.session))
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    /// Calls, asserts `expected`, returns the body and when the answer arrived.
    async fn expect(
        &self,
        node: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> (Value, Instant) {
        let answer = self.call(node, method.clone(), path, body).await;
        let at = Instant::now();
        assert_eq!(
            answer.status, expected,
            "{method} {path}: {:?}",
            answer.body
        );
        (answer.body, at)
    }

    /// Creates a token on `node`: (id, secret).
    async fn create_token(&self, node: &str, body: Value) -> (String, String) {
        let (created, _) = self
            .expect(
                node,
                Method::POST,
                "/v1/tokens",
                Some(body),
                StatusCode::CREATED,
            )
            .await;
        (str_field(&created, "id"), str_field(&created, "token"))
    }
}

/// `POST /v1/verify`: asserts 200 and returns the answer.
async fn verify(
    client: &reqwest::Client,
    node: &str,
    secret: &str,
    permission: Option<&str>,
) -> Value {
    let answer = send(
        client
            .post(format!("{node}/v1/verify"))
            .json(&json!({"token": secret, "permission": permission})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "verify: {:?}", answer.body);
    answer.body
}

fn is_valid(answer: &Value) -> bool {
    answer["valid"] == true
}

/// Polls `node` every 10 ms until its answer for `secret` satisfies `done`; returns the
/// answer and the delay since `since`.
async fn poll_until(
    client: &reqwest::Client,
    node: &str,
    secret: &str,
    permission: Option<&str>,
    since: Instant,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = verify(client, node, secret, permission).await;
        let now = Instant::now();
        if done(&answer) {
            return (answer, now.duration_since(since));
        }
        assert!(now < deadline, "{node}: still {answer} after {DEADLINE:?}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Watches changes propagate: polls nodes and keeps the delays, reported at the end.
struct Propagation {
    client: reqwest::Client,
    delays: Vec<(String, Duration)>,
}

impl Propagation {
    fn new(client: &reqwest::Client) -> Self {
        Self {
            client: client.clone(),
            delays: Vec::new(),
        }
    }

    /// Asserts every node in `nodes` answers `expected` for `secret` (with
    /// `permission`) within the SPEC's bound of `since` (when the change was
    /// acknowledged), polling them all at once.
    async fn everywhere(
        &mut self,
        nodes: &[(&str, &Server)],
        (secret, permission): (&str, Option<&str>),
        since: Instant,
        expected: Value,
        what: &str,
    ) {
        let mut polls = Vec::new();
        for (name, node) in nodes {
            let (client, base, secret, permission, expected) = (
                self.client.clone(),
                node.base.clone(),
                secret.to_owned(),
                permission.map(str::to_owned),
                expected.clone(),
            );
            let name = (*name).to_owned();
            polls.push(tokio::spawn(async move {
                let is_expected = |answer: &Value| match expected.get("valid") {
                    Some(Value::Bool(true)) => is_valid(answer),
                    _ => *answer == expected,
                };
                let (answer, delay) = poll_until(
                    &client,
                    &base,
                    &secret,
                    permission.as_deref(),
                    since,
                    is_expected,
                )
                .await;
                (name, answer, delay)
            }));
        }
        for poll in polls {
            let (name, answer, delay) = poll.await.expect("poll task");
            if !is_valid(&expected) {
                assert_eq!(answer, expected, "{what} on {name}");
            }
            assert!(
                delay <= PROPAGATION_BOUND,
                "{what}: {name} answered {answer} only {delay:?} after the change (bound \
                 {PROPAGATION_BOUND:?})"
            );
            self.delays.push((format!("{what} on {name}"), delay));
        }
    }

    fn report(&self, test: &str) {
        let worst = self
            .delays
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default();
        let lines: Vec<String> = self
            .delays
            .iter()
            .map(|(what, delay)| format!("  {what}: {delay:?}"))
            .collect();
        let _ = writeln!(
            std::io::stderr(),
            "{test}: propagation delays (worst {worst:?}):\n{}",
            lines.join("\n")
        );
    }
}

fn refused(code: &str) -> Value {
    json!({"valid": false, "code": code})
}

fn valid() -> Value {
    json!({"valid": true})
}

/// Polls `GET /readyz` on `node` until it answers `status`; returns the answer.
async fn wait_ready_status(client: &reqwest::Client, node: &Server, status: StatusCode) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = send(client.get(node.url("/readyz"))).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {} ({:?}), not {status}; log:\n{}",
            answer.status,
            answer.body,
            node.log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Asserts a 503 with the SPEC's error body (`unavailable`) and a `Retry-After`.
#[track_caller]
fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {:?}",
        answer.body
    );
    assert_eq!(answer.body["error"]["code"], "unavailable", "{what}");
    assert!(
        answer.body["error"]["message"].is_string(),
        "{what}: {:?}",
        answer.body
    );
    let retry = answer
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: no Retry-After"));
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s >= 1),
        "{what}: {retry}"
    );
}

/// Sets up a sandbox (data dir with the pepper), migrates, and creates the admin.
fn bootstrap(db: &TestDb) -> Sandbox {
    let sandbox = Sandbox::new();
    cli(
        &sandbox,
        &db.url,
        &["admin", "create", "--email", EMAIL, "--password-stdin"],
        Some(PASSWORD),
    );
    sandbox
}

fn sigterm(server: &Server) {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

// ---------------------------------------------------------------------------
// 1. changes reach every node within one second; a late node is caught up when ready
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_on_one_node_reach_every_node_within_one_second() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = bootstrap(&db);
    let nodes = [
        start_node(&sandbox, &db.url, &[]),
        start_node(&sandbox, &db.url, &[]),
        start_node(&sandbox, &db.url, &[]),
    ];
    let [n1, n2, n3] = [&nodes[0], &nodes[1], &nodes[2]];
    let client = http_client();
    for node in &nodes {
        wait_ready_status(&client, node, StatusCode::OK).await;
    }
    let admin = Admin::login(&client, &n1.base).await;
    let mut propagation = Propagation::new(&client);

    admin
        .expect(
            &n1.base,
            Method::POST,
            "/v1/resources",
            Some(json!({"name": "article", "actions": [
                {"name": "find", "kind": "read"},
                {"name": "create", "kind": "write"},
            ]})),
            StatusCode::CREATED,
        )
        .await;

    // Created on node 1: valid on nodes 2 and 3.
    let (a_id, a) = admin
        .create_token(
            &n1.base,
            json!({"name": "a", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    let created = Instant::now();
    let others = [("node 2", n2), ("node 3", n3)];
    propagation
        .everywhere(&others, (&a, None), created, valid(), "create")
        .await;

    // Disabled on node 2: refused on nodes 1 and 3.
    let (_, at) = admin
        .expect(
            &n2.base,
            Method::POST,
            &format!("/v1/tokens/{a_id}/disable"),
            None,
            StatusCode::OK,
        )
        .await;
    // On the node that made the change, at once.
    assert_eq!(
        verify(&client, &n2.base, &a, None).await,
        refused("disabled")
    );
    let others = [("node 1", n1), ("node 3", n3)];
    propagation
        .everywhere(&others, (&a, None), at, refused("disabled"), "disable")
        .await;
    // Enabled on node 3: valid again on nodes 1 and 2.
    let (_, at) = admin
        .expect(
            &n3.base,
            Method::POST,
            &format!("/v1/tokens/{a_id}/enable"),
            None,
            StatusCode::OK,
        )
        .await;
    let others = [("node 1", n1), ("node 2", n2)];
    propagation
        .everywhere(&others, (&a, None), at, valid(), "enable")
        .await;

    // Deleted by the CLI (another process): refused on every node.
    let (b_id, b) = admin
        .create_token(
            &n1.base,
            json!({"name": "b", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    let all = [("node 1", n1), ("node 2", n2), ("node 3", n3)];
    propagation
        .everywhere(&all, (&b, None), Instant::now(), valid(), "create b")
        .await;
    cli(&sandbox, &db.url, &["token", "delete", &b_id], None);
    let exited = Instant::now();
    propagation
        .everywhere(&all, (&b, None), exited, refused("not_found"), "CLI delete")
        .await;

    // Disabled by the CLI.
    cli(&sandbox, &db.url, &["token", "disable", &a_id], None);
    let exited = Instant::now();
    propagation
        .everywhere(&all, (&a, None), exited, refused("disabled"), "CLI disable")
        .await;

    // Regenerated on node 3: the old secret is refused, the new one valid, on 1 and 2.
    let (c_id, c_old) = admin
        .create_token(
            &n1.base,
            json!({"name": "c", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    propagation
        .everywhere(&all, (&c_old, None), Instant::now(), valid(), "create c")
        .await;
    let (regenerated, at) = admin
        .expect(
            &n3.base,
            Method::POST,
            &format!("/v1/tokens/{c_id}/regenerate"),
            Some(json!({})),
            StatusCode::OK,
        )
        .await;
    let c_new = str_field(&regenerated, "token");
    let others = [("node 1", n1), ("node 2", n2)];
    propagation
        .everywhere(
            &others,
            (&c_old, None),
            at,
            refused("not_found"),
            "regenerate (old secret)",
        )
        .await;
    propagation
        .everywhere(
            &others,
            (&c_new, None),
            at,
            valid(),
            "regenerate (new secret)",
        )
        .await;

    // Permissions changed on node 2 (PATCH permissions): refused on nodes 1 and 3.
    let (d_id, d) = admin
        .create_token(
            &n1.base,
            json!({"name": "d", "type": "custom", "permissions": ["article.find"], "lifespan": "30d"}),
        )
        .await;
    let find = Some("article.find");
    propagation
        .everywhere(&all, (&d, find), Instant::now(), valid(), "create d")
        .await;
    let (_, at) = admin
        .expect(
            &n2.base,
            Method::PATCH,
            &format!("/v1/tokens/{d_id}"),
            Some(json!({"permissions": ["article.create"]})),
            StatusCode::OK,
        )
        .await;
    let others = [("node 1", n1), ("node 3", n3)];
    propagation
        .everywhere(
            &others,
            (&d, find),
            at,
            refused("forbidden"),
            "PATCH permissions",
        )
        .await;
    propagation
        .everywhere(
            &others,
            (&d, Some("article.create")),
            at,
            valid(),
            "PATCH permissions (granted)",
        )
        .await;

    // Type changed on node 1 (full access → read-only): writes refused on 2 and 3.
    let (e_id, e) = admin
        .create_token(
            &n1.base,
            json!({"name": "e", "type": "full-access", "lifespan": "30d"}),
        )
        .await;
    let create = Some("article.create");
    propagation
        .everywhere(&all, (&e, create), Instant::now(), valid(), "create e")
        .await;
    let (_, at) = admin
        .expect(
            &n1.base,
            Method::PATCH,
            &format!("/v1/tokens/{e_id}"),
            Some(json!({"type": "read-only"})),
            StatusCode::OK,
        )
        .await;
    let others = [("node 2", n2), ("node 3", n3)];
    propagation
        .everywhere(
            &others,
            (&e, create),
            at,
            refused("forbidden"),
            "PATCH type",
        )
        .await;

    // Expiry brought forward on node 3 (PATCH expires_at): once that instant passes,
    // nodes 1 and 2 answer `expired`, so they hold the new expiry within the bound.
    let (f_id, f) = admin
        .create_token(
            &n1.base,
            json!({"name": "f", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    propagation
        .everywhere(&all, (&f, None), Instant::now(), valid(), "create f")
        .await;
    let lead = Duration::from_millis(1500);
    let expires_at = (chrono::Utc::now() + chrono::Duration::milliseconds(1500))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (_, at) = admin
        .expect(
            &n3.base,
            Method::PATCH,
            &format!("/v1/tokens/{f_id}"),
            Some(json!({"expires_at": expires_at})),
            StatusCode::OK,
        )
        .await;
    let others = [("node 1", n1), ("node 2", n2)];
    propagation
        .everywhere(
            &others,
            (&f, None),
            at + lead,
            refused("expired"),
            "PATCH expires_at (expired by edit)",
        )
        .await;

    // A node started after all this is caught up by the time it reports ready: its
    // first answers already reflect every change.
    let late = start_node(&sandbox, &db.url, &[]);
    wait_ready_status(&client, &late, StatusCode::OK).await;
    let l = &late.base;
    assert_eq!(verify(&client, l, &a, None).await, refused("disabled"));
    assert_eq!(verify(&client, l, &b, None).await, refused("not_found"));
    assert_eq!(verify(&client, l, &c_old, None).await, refused("not_found"));
    assert!(is_valid(&verify(&client, l, &c_new, None).await));
    assert_eq!(verify(&client, l, &d, find).await, refused("forbidden"));
    assert!(is_valid(&verify(&client, l, &d, create).await));
    assert_eq!(verify(&client, l, &e, create).await, refused("forbidden"));
    assert!(is_valid(&verify(&client, l, &e, find).await));
    assert_eq!(verify(&client, l, &f, None).await, refused("expired"));

    propagation.report("changes_on_one_node_reach_every_node_within_one_second");
    drop(late);
    drop(nodes);
}

// ---------------------------------------------------------------------------
// 2. a database outage: verify answers throughout, nothing acknowledged is lost
// ---------------------------------------------------------------------------

/// Verifies `secret` on `node` in a loop until `stop`: counts the valid answers; any
/// other answer (once the token has been seen valid) is a failure.
async fn verify_loop(
    client: reqwest::Client,
    node: String,
    secret: String,
    stop: Arc<AtomicBool>,
    valid_count: Arc<AtomicU64>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut seen = false;
    while !stop.load(Ordering::Relaxed) {
        let answer = send(
            client
                .post(format!("{node}/v1/verify"))
                .json(&json!({"token": secret})),
        )
        .await;
        if answer.status == StatusCode::OK && is_valid(&answer.body) {
            seen = true;
            valid_count.fetch_add(1, Ordering::Relaxed);
        } else if seen || answer.body != refused("not_found") {
            failures.push(format!("{}: {}", answer.status, answer.body));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    failures
}

/// What the writer saw.
#[derive(Debug, Default)]
struct Writes {
    /// Ids of tokens whose creation was acknowledged (201).
    acknowledged: Vec<String>,
    /// 503 answers (with the SPEC body and Retry-After).
    unavailable: u64,
    failures: Vec<String>,
}

/// Creates tokens on `node` in a loop until `stop`, recording what was acknowledged.
async fn write_loop(admin: Admin, node: String, stop: Arc<AtomicBool>, writes: Arc<Mutex<Writes>>) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let answer = admin
            .call(
                &node,
                Method::POST,
                "/v1/tokens",
                Some(json!({"name": format!("w-{i}"), "type": "read-only", "lifespan": "7d"})),
            )
            .await;
        {
            let mut writes = writes.lock().expect("writes");
            match answer.status {
                StatusCode::CREATED => writes.acknowledged.push(str_field(&answer.body, "id")),
                StatusCode::SERVICE_UNAVAILABLE
                    if answer.body["error"]["code"] == "unavailable"
                        && answer.retry_after.is_some() =>
                {
                    writes.unavailable += 1;
                }
                other => writes.failures.push(format!("{other}: {}", answer.body)),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `condition` every 10 ms until it holds, within `DEADLINE`.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_the_database_keeps_verifying_and_loses_nothing() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = bootstrap(&db);
    let proxy = Proxy::start(db.upstream()).await;
    let flush = [("TESSERA_USAGE_FLUSH_SECONDS", "1")];
    let direct = start_node(&sandbox, &db.url, &flush);
    let proxied = start_node(&sandbox, &db.url_via(proxy.address), &flush);
    let client = http_client();
    wait_ready_status(&client, &direct, StatusCode::OK).await;
    wait_ready_status(&client, &proxied, StatusCode::OK).await;
    let admin = Admin::login(&client, &direct.base).await;
    let (d, p) = (direct.base.clone(), proxied.base.clone());

    let (looped_id, looped) = admin
        .create_token(
            &d,
            json!({"name": "looped", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    let (flipped_id, flipped) = admin
        .create_token(
            &d,
            json!({"name": "flipped", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    poll_until(&client, &p, &flipped, None, Instant::now(), is_valid).await;

    // Load on the proxied node: verifications, and management writes.
    let stop = Arc::new(AtomicBool::new(false));
    let valid_count = Arc::new(AtomicU64::new(0));
    let verifier = tokio::spawn(verify_loop(
        client.clone(),
        p.clone(),
        looped.clone(),
        Arc::clone(&stop),
        Arc::clone(&valid_count),
    ));
    let writes = Arc::new(Mutex::new(Writes::default()));
    let writer = tokio::spawn(write_loop(
        admin.clone(),
        p.clone(),
        Arc::clone(&stop),
        Arc::clone(&writes),
    ));
    let acknowledged = || writes.lock().expect("writes").acknowledged.len();
    eventually("writes acknowledged before the cut", || acknowledged() >= 5).await;
    eventually("verifications before the cut", || {
        valid_count.load(Ordering::Relaxed) >= 50
    })
    .await;

    // Cut the proxied node off.
    proxy.cut();
    let acknowledged_before_cut = writes.lock().expect("writes").acknowledged.clone();
    let valid_at_cut = valid_count.load(Ordering::Relaxed);

    let not_ready = wait_ready_status(&client, &proxied, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_unavailable(&not_ready, "/readyz during the outage");
    let started = Instant::now();
    let listed = admin.call(&p, Method::GET, "/v1/tokens", None).await;
    assert_unavailable(&listed, "GET /v1/tokens during the outage");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the 503 took {took:?}");
    eventually("a write refused with 503 during the outage", || {
        writes.lock().expect("writes").unavailable >= 1
    })
    .await;

    // Meanwhile, through the other node: a new token, and a disabled one.
    let (_, during) = admin
        .create_token(
            &d,
            json!({"name": "during", "type": "read-only", "lifespan": "30d"}),
        )
        .await;
    admin
        .expect(
            &d,
            Method::POST,
            &format!("/v1/tokens/{flipped_id}/disable"),
            None,
            StatusCode::OK,
        )
        .await;
    // The cut-off node cannot know (documented: it answers from its index)...
    assert!(is_valid(&verify(&client, &p, &flipped, None).await));
    assert_eq!(
        verify(&client, &p, &during, None).await,
        refused("not_found")
    );
    // ...and keeps verifying.
    eventually("verifications during the outage", || {
        valid_count.load(Ordering::Relaxed) >= valid_at_cut + 100
    })
    .await;
    assert_unavailable(
        &send(client.get(proxied.url("/readyz"))).await,
        "/readyz still during the outage",
    );

    // Restore: ready again only once caught up, so its first answers are current.
    proxy.restore();
    wait_ready_status(&client, &proxied, StatusCode::OK).await;
    assert!(
        is_valid(&verify(&client, &p, &during, None).await),
        "created during the outage"
    );
    assert_eq!(
        verify(&client, &p, &flipped, None).await,
        refused("disabled"),
        "disabled during the outage"
    );
    admin
        .expect(&p, Method::GET, "/v1/tokens?limit=1", None, StatusCode::OK)
        .await;
    eventually("writes acknowledged after the outage", || {
        acknowledged() >= acknowledged_before_cut.len() + 3
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let failures = verifier.await.expect("verify loop");
    assert!(
        failures.is_empty(),
        "verify failed during the run: {failures:?}"
    );
    writer.await.expect("write loop");
    let writes = Arc::try_unwrap(writes)
        .map(|w| w.into_inner().expect("writes"))
        .expect("the writer is done");
    assert!(
        writes.failures.is_empty(),
        "unexpected write answers: {:?}",
        writes.failures
    );

    // Nothing acknowledged is lost: every 201 is in the database.
    for id in &writes.acknowledged {
        admin
            .expect(
                &d,
                Method::GET,
                &format!("/v1/tokens/{id}"),
                None,
                StatusCode::OK,
            )
            .await;
    }

    // Usage counted during the outage was kept and written after it: the counts add
    // up to the valid answers, exactly.
    let verified = valid_count.load(Ordering::Relaxed);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (usage, _) = admin
            .expect(
                &d,
                Method::GET,
                &format!("/v1/tokens/{looped_id}/usage?days=2"),
                None,
                StatusCode::OK,
            )
            .await;
        let days = usage["days"].as_array().expect("days");
        let sum = |field: &str| {
            days.iter()
                .filter_map(|day| day[field].as_u64())
                .sum::<u64>()
        };
        assert_eq!(sum("denied"), 0, "{usage}");
        if sum("allowed") == verified {
            break;
        }
        assert!(
            sum("allowed") < verified && Instant::now() < deadline,
            "usage counted {} allowed, the loop saw {verified} valid answers: {usage}",
            sum("allowed")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (shown, _) = admin
        .expect(
            &d,
            Method::GET,
            &format!("/v1/tokens/{looped_id}"),
            None,
            StatusCode::OK,
        )
        .await;
    assert!(shown["last_used_at"].is_string(), "{shown}");
    let _ = writeln!(
        std::io::stderr(),
        "outage: {verified} valid verifications ({} since the cut), {} writes \
         acknowledged, {} answered 503",
        verified - valid_at_cut,
        writes.acknowledged.len(),
        writes.unavailable
    );
    assert!(
        proxied.log().contains("cannot follow the change feed"),
        "{}",
        proxied.log()
    );
    drop(proxied);
    drop(direct);
}

// ---------------------------------------------------------------------------
// 3. past its maximum staleness, a cut-off node refuses to verify; shutdown while cut
//    off gives up its usage after a bounded wait, and says so
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_its_maximum_staleness_a_cut_off_node_refuses_to_verify() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = bootstrap(&db);
    let proxy = Proxy::start(db.upstream()).await;
    let mut node = start_node(
        &sandbox,
        &db.url_via(proxy.address),
        &[
            ("TESSERA_MAX_STALENESS_SECONDS", "2"),
            ("TESSERA_USAGE_FLUSH_SECONDS", "1"),
        ],
    );
    let client = http_client();
    wait_ready_status(&client, &node, StatusCode::OK).await;
    let created = cli(
        &sandbox,
        &db.url,
        &[
            "token",
            "create",
            "--lifespan",
            "unlimited",
            "--json",
            "--name",
            "t",
            "--type",
            "read-only",
        ],
        None,
    );
    let secret = str_field(&serde_json::from_str(&created).expect("JSON"), "token");
    let n = node.base.clone();
    poll_until(&client, &n, &secret, None, Instant::now(), is_valid).await;

    proxy.cut();
    let cut = Instant::now();
    let deadline = cut + DEADLINE;
    let refusal = loop {
        let answer = send(
            client
                .post(format!("{n}/v1/verify"))
                .json(&json!({"token": secret})),
        )
        .await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        assert!(is_valid(&answer.body), "{:?}", answer.body);
        assert!(
            Instant::now() < deadline,
            "still answering after {DEADLINE:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    let after = cut.elapsed();
    assert_eq!(
        refusal.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:?}",
        refusal.body
    );
    assert_eq!(refusal.body["error"]["code"], "internal");
    let message = refusal.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("stale"), "{message}");
    // The last catch-up began at most one poll (250 ms) before the cut.
    assert!(
        after >= Duration::from_millis(1500),
        "refused {after:?} after the cut, before the 2 s maximum"
    );

    proxy.restore();
    wait_ready_status(&client, &node, StatusCode::OK).await;
    assert!(is_valid(&verify(&client, &n, &secret, None).await));

    // Cut off again with usage pending: SIGTERM still ends the node promptly, and the
    // log says what was lost.
    proxy.cut();
    for _ in 0..3 {
        assert!(is_valid(&verify(&client, &n, &secret, None).await));
    }
    sigterm(&node);
    let exit = blocking(|| node.wait_exit(Duration::from_secs(30)));
    assert_eq!(exit.code(), Some(0), "log:\n{}", node.log());
    let log = node.log();
    assert!(
        log.contains("these usage counts are lost"),
        "the lost usage is not reported:\n{log}"
    );
}

// ---------------------------------------------------------------------------
// 4. the pepper: every node needs the cluster's
// ---------------------------------------------------------------------------

/// A second node started without the first node's pepper file does not make its own
/// (the database records the cluster's fingerprint): it refuses to start, as does every
/// command there, saying what to copy where; with a pepper of its own it refuses too.
/// With the first node's file copied over, it starts and verifies the cluster's tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_the_clusters_pepper_refuses_to_start() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let first = bootstrap(&db);
    let secret = cli(
        &first,
        &db.url,
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
        None,
    )
    .trim()
    .to_owned();
    let second = Sandbox::new();
    let pepper = second.data_dir().join("pepper");
    let serve = [
        "--database-url",
        db.url.as_str(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ];

    let out = blocking(|| common::run_exiting(second.command(serve)));
    out.expect_code(2);
    for needle in [
        "no pepper file",
        &pepper.display().to_string(),
        "fingerprint",
        "copy the pepper file of a node",
        "--pepper-file",
    ] {
        assert!(
            out.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            out.stderr
        );
    }
    assert!(!pepper.exists(), "the second node made a pepper of its own");
    for args in [
        &["--database-url", db.url.as_str(), "migrate"][..],
        &["--database-url", db.url.as_str(), "verify", &secret],
        &[
            "--database-url",
            db.url.as_str(),
            "admin",
            "create",
            "--email",
            "other@example.com",
            "--password-stdin",
        ],
    ] {
        let out = blocking(|| second.run_stdin(args, PASSWORD));
        out.expect_code(2);
        assert!(
            out.stderr.contains("no pepper file"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!pepper.exists(), "{args:?} made a pepper");
    }

    std::fs::write(&pepper, [5u8; 32]).expect("write a pepper");
    set_private(&pepper);
    let out = blocking(|| common::run_exiting(second.command(serve)));
    out.expect_code(2);
    assert!(
        out.stderr.contains("fingerprint") && out.stderr.contains("copy the pepper file"),
        "{}",
        out.stderr
    );

    std::fs::copy(first.data_dir().join("pepper"), &pepper).expect("copy the pepper");
    set_private(&pepper);
    let node = start_node(&second, &db.url, &[]);
    let client = http_client();
    wait_ready_status(&client, &node, StatusCode::OK).await;
    assert_eq!(
        verify(&client, &node.base, &secret, None).await["valid"],
        true
    );
}

fn set_private(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}
