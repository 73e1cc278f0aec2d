//! Real gateways in front of Tessera: nginx (`auth_request`) and Caddy
//! (`forward_auth`) run as child processes from the example configs in
//! `docs/gateways/`, on ports the test picks, with a tiny upstream that reports what it
//! received. Traefik and Envoy are checked with exactly the requests they send, read
//! from their example configs. nginx and Caddy are found through
//! `TESSERA_TEST_NGINX` / `TESSERA_TEST_CADDY`; without them those tests say SKIPPED.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::{ForwardAuthConfig, RouteRules};

use crate::harness::{Admin, Resp, TestServer, default_settings, eventually};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gateways")
}

/// The route rules of `docs/gateways/tessera.toml`.
fn example_rules() -> RouteRules {
    #[derive(serde::Deserialize)]
    struct File {
        forward_auth: ForwardAuthConfig,
    }
    let text = std::fs::read_to_string(docs().join("tessera.toml")).expect("example config");
    let file: File = toml::from_str(&text).expect("example config parses");
    RouteRules::new(&file.forward_auth).expect("example rules are valid")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// The upstream API: answers every request with the path and the `x-tessera-*`
/// headers it received.
async fn upstream() -> SocketAddr {
    async fn echo(uri: axum::http::Uri, headers: HeaderMap) -> axum::Json<Value> {
        let tessera: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-tessera-"))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Value::from(value.to_str().unwrap_or_default()),
                )
            })
            .collect();
        axum::Json(json!({"path": uri.path(), "tessera": tessera}))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(echo))
            .await
            .ok();
    });
    address
}

/// A gateway process, stopped on drop.
struct Gateway {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example config with its documented addresses swapped for the test's.
fn adapted(file: &str, listen: &str, tessera: &str, api: &str) -> String {
    std::fs::read_to_string(docs().join(file))
        .expect("example gateway config")
        .replace("127.0.0.1:8080", tessera)
        .replace("127.0.0.1:3000", api)
        .replace(listen, "{LISTEN}")
}

async fn wait_for(base: &str) {
    let http = reqwest::Client::new();
    eventually("the gateway to listen", Duration::from_secs(15), || {
        let http = http.clone();
        let url = format!("{base}/");
        async move { http.get(url).send().await.ok().map(|_| ()) }
    })
    .await;
}

async fn start_nginx(binary: &str, tessera: &str, api: SocketAddr) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let port = free_port();
    let config = adapted("nginx.conf", "127.0.0.1:8000", tessera, &api.to_string())
        .replace("{LISTEN}", &format!("127.0.0.1:{port}"));
    // As root, nginx would hand its workers to `nobody`, who cannot use the temp dir.
    let config = if is_root() {
        format!("user root;\n{config}")
    } else {
        config
    };
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, config).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&base).await;
    Gateway {
        child,
        base,
        _dir: dir,
    }
}

async fn start_caddy(binary: &str, tessera: &str, api: SocketAddr) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = adapted("Caddyfile", "127.0.0.1:8001", tessera, &api.to_string())
        .replace("{LISTEN}", &format!("127.0.0.1:{port}"));
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, config).unwrap();
    let child = Command::new(binary)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start caddy");
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&base).await;
    Gateway {
        child,
        base,
        _dir: dir,
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0"))
}

fn binary(variable: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!(
                "SKIPPED gateway test `{test}`: set {variable} to the gateway's binary \
                 (apt-get install nginx caddy) to run it"
            );
            None
        }
    }
}

/// A server with the example rules, the `article` catalog, a reader, a writer and a
/// rate-limited token.
async fn protected() -> (TestServer, Admin, [String; 3]) {
    let mut settings = default_settings();
    settings.forward_auth = example_rules();
    let server = TestServer::start_with(settings).await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let (_, reader) = admin.token("reader").await;
    let writer = admin
        .create_token(
            json!({"name": "writer", "type": "full-access", "lifespan": "30d",
                             "external_id": "cus_w1"}),
        )
        .await
        .secret();
    let limited = admin
        .create_token(
            json!({"name": "limited", "type": "read-only", "lifespan": "30d",
                              "rate_limit": {"requests": 1, "per_seconds": 3600}}),
        )
        .await
        .secret();
    (server, admin, [reader, writer, limited])
}

async fn call(base: &str, method: Method, path: &str, token: Option<&str>) -> Resp {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    Resp::read(request.send().await.expect("request through the gateway")).await
}

/// What every gateway must do with the example rules.
async fn check_gateway(base: &str, [reader, writer, limited]: &[String; 3]) {
    let allowed = call(base, Method::GET, "/api/articles/7?x=1", Some(reader)).await;
    allowed.expect(200);
    assert_eq!(allowed.body["path"], "/api/articles/7");
    assert_eq!(allowed.body["tessera"]["x-tessera-token-name"], "reader");
    assert!(allowed.body["tessera"]["x-tessera-token-id"].is_string());
    assert_eq!(allowed.body["tessera"]["x-tessera-api-version"], "v3");

    // A client cannot pose as another token: its own X-Tessera-* headers are replaced
    // by Tessera's answer, or removed where the answer has none.
    let spoofed = reqwest::Client::new()
        .get(format!("{base}/api/articles"))
        .header("authorization", format!("Bearer {reader}"))
        .header("x-tessera-token-name", "admin")
        .header("x-tessera-project", "billing")
        .header("x-tessera-external-id", "someone-else")
        .send()
        .await
        .unwrap();
    let spoofed = Resp::read(spoofed).await;
    spoofed.expect(200);
    assert_eq!(spoofed.body["tessera"]["x-tessera-token-name"], "reader");
    assert!(
        spoofed.body["tessera"]
            .get("x-tessera-project")
            .is_none_or(|v| v == ""),
        "{}",
        spoofed.body
    );
    assert!(
        spoofed.body["tessera"]
            .get("x-tessera-external-id")
            .is_none_or(|v| v == ""),
        "{}",
        spoofed.body
    );

    let missing = call(base, Method::GET, "/api/articles", None).await;
    assert_eq!(missing.status, 401, "{}", missing.text);
    assert!(
        missing
            .header("www-authenticate")
            .is_some_and(|value| value.starts_with("Bearer")),
        "{:?}",
        missing.headers
    );
    let bad = call(base, Method::GET, "/api/articles", Some("tsr_nope")).await;
    assert_eq!(bad.status, 401);

    let forbidden = call(base, Method::POST, "/api/articles", Some(reader)).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    let created = call(base, Method::POST, "/api/articles", Some(writer)).await;
    created.expect(200);
    assert_eq!(created.body["tessera"]["x-tessera-token-name"], "writer");
    assert_eq!(created.body["tessera"]["x-tessera-external-id"], "cus_w1");
    let unmatched = call(base, Method::GET, "/admin", Some(writer)).await;
    assert_eq!(unmatched.status, 403, "unmatched routes are denied");

    call(base, Method::GET, "/api/articles", Some(limited))
        .await
        .expect(200);
    let throttled = call(base, Method::GET, "/api/articles", Some(limited)).await;
    assert_eq!(throttled.status, 429, "{}", throttled.text);
    assert!(
        throttled
            .header("retry-after")
            .and_then(|value| value.parse::<u64>().ok())
            .is_some_and(|seconds| seconds >= 1),
        "{:?}",
        throttled.headers
    );
}

#[tokio::test]
async fn nginx_auth_request_protects_an_api() {
    let Some(nginx) = binary("TESSERA_TEST_NGINX", "nginx_auth_request_protects_an_api") else {
        return;
    };
    let (server, _admin, tokens) = protected().await;
    let api = upstream().await;
    let tessera = server.base.trim_start_matches("http://").to_owned();
    let gateway = start_nginx(&nginx, &tessera, api).await;
    check_gateway(&gateway.base, &tokens).await;
}

#[tokio::test]
async fn caddy_forward_auth_protects_an_api() {
    let Some(caddy) = binary("TESSERA_TEST_CADDY", "caddy_forward_auth_protects_an_api") else {
        return;
    };
    let (server, _admin, tokens) = protected().await;
    let api = upstream().await;
    let tessera = server.base.trim_start_matches("http://").to_owned();
    let gateway = start_caddy(&caddy, &tessera, api).await;
    check_gateway(&gateway.base, &tokens).await;
}

/// Traefik's ForwardAuth: a GET to the configured address with X-Forwarded-Method,
/// -Uri, -Host, -Proto and -For, and the client's Authorization header.
#[tokio::test]
async fn traefik_forward_auth_requests_are_answered() {
    let config = std::fs::read_to_string(docs().join("traefik.yml")).unwrap();
    let address = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("address: "))
        .expect("forwardAuth address")
        .trim_matches('"');
    let path = address.trim_start_matches("http://127.0.0.1:8080");
    assert_eq!(path, "/v1/forward-auth");
    let (server, _admin, [reader, writer, _]) = protected().await;
    let send = |method: &'static str, uri: &'static str, token: String| {
        let server = &server;
        async move {
            let authorization = format!("Bearer {token}");
            server
                .raw(
                    Method::GET,
                    path,
                    &[
                        ("x-forwarded-method", method),
                        ("x-forwarded-proto", "http"),
                        ("x-forwarded-host", "api.example.com"),
                        ("x-forwarded-uri", uri),
                        ("x-forwarded-for", "203.0.113.7"),
                        ("authorization", &authorization),
                    ],
                    Vec::new(),
                )
                .await
        }
    };
    let allowed = send("GET", "/api/articles?page=2", reader.clone()).await;
    allowed.expect(200);
    for header in config
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- X-Tessera-"))
        .filter(|name| *name != "Project")
    {
        assert!(
            allowed.header(&format!("x-tessera-{header}")).is_some(),
            "{header} in {:?}",
            allowed.headers
        );
    }
    send("DELETE", "/api/articles/1", reader).await.expect(403);
    send("DELETE", "/api/articles/1", writer).await.expect(200);
}

/// Envoy's HTTP ext_authz: the original method, `path_prefix` + the original path and
/// query, and only the allowed headers.
#[tokio::test]
async fn envoy_ext_authz_requests_are_answered() {
    let config = std::fs::read_to_string(docs().join("envoy.yaml")).unwrap();
    let prefix = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("path_prefix: "))
        .expect("ext_authz path_prefix");
    let (server, _admin, [reader, writer, _]) = protected().await;
    let with = |token: &str| vec![("authorization".to_owned(), format!("Bearer {token}"))];
    let send = |method: Method, path: &str, headers: Vec<(String, String)>| {
        let server = &server;
        let url = format!("{prefix}{path}");
        async move {
            let borrowed: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            server.raw(method, &url, &borrowed, Vec::new()).await
        }
    };
    send(Method::GET, "/api/articles/3?full=1", with(&reader))
        .await
        .expect(200);
    send(Method::PATCH, "/api/articles/3", with(&reader))
        .await
        .expect(403);
    send(Method::PATCH, "/api/articles/3", with(&writer))
        .await
        .expect(200);
    let missing = send(Method::GET, "/api/articles", Vec::new()).await;
    missing.expect(401);
    assert!(missing.header("www-authenticate").is_some());
}
