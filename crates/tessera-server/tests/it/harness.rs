//! A real Tessera server on 127.0.0.1:0 over a temporary data dir, admins signed in
//! through `/v1/auth/login`, and the helpers every test module shares.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_app::Tessera;
use tessera_app::auth::{NewAdmin, Password};
use tessera_app::first_run::SETUP_CODE_FILE;
use tessera_app::{Principal, Settings, SystemClock};
use tessera_core::ApiVersions;
use tessera_server::{ConnectionOptions, HttpOptions};
use tessera_test_support::PgSchema;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------------------------
// Log capture: one global subscriber for the whole test binary, at DEBUG, into memory.

/// Everything every server of this process logged.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(Arc::clone(&self.0))
    }
}

/// Installs the capturing subscriber once; every server start calls this first, so
/// every server of the process logs into the buffer.
pub fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let installed = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(Capture(Arc::clone(log_buffer())))
            .try_init();
        assert!(installed.is_ok(), "could not install the log capture");
    });
}

/// A copy of everything logged so far.
pub fn captured_logs() -> Vec<u8> {
    log_buffer()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

// ---------------------------------------------------------------------------------
// Polling instead of sleeping.

/// Polls `check` every 25 ms until it yields a value, failing after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------
// Responses.

/// A response read to the end: status, headers, raw text and JSON (Null if not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            body,
        }
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        self
    }

    /// Asserts a SPEC error body `{"error": {"code", "message", "details"}}` with
    /// `code` and the status that goes with it.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "error code of {}", self.text);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error message missing: {}",
            self.text
        );
        assert!(
            error["details"].is_object(),
            "error details must be an object: {}",
            self.text
        );
        let keys: Vec<&String> = error.as_object().expect("error object").keys().collect();
        assert_eq!(
            keys.len(),
            3,
            "error has exactly code/message/details: {keys:?}"
        );
        self
    }

    /// Asserts a 422 `validation_failed` whose details name `field`.
    #[track_caller]
    pub fn expect_invalid(&self, field: &str) -> &Self {
        self.expect_error(422, "validation_failed");
        assert!(
            self.body["error"]["details"].get(field).is_some(),
            "details should name `{field}`: {}",
            self.text
        );
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `id` field as a string.
    #[track_caller]
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.text))
            .to_owned()
    }

    /// The `token` (secret) field.
    #[track_caller]
    pub fn secret(&self) -> String {
        self.body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {}", self.text))
            .to_owned()
    }
}

// ---------------------------------------------------------------------------------
// The database: SQLite in the data dir, or PostgreSQL when the suite runs against it.

/// The HTTP suite runs on SQLite unless `TESSERA_TEST_HTTP_BACKEND=postgres` (CI runs
/// it both ways); then each server gets a fresh schema of `TESSERA_TEST_POSTGRES_URL`.
fn postgres_base() -> Option<String> {
    static BASE: OnceLock<Option<String>> = OnceLock::new();
    BASE.get_or_init(|| {
        let wanted = std::env::var("TESSERA_TEST_HTTP_BACKEND").is_ok_and(|b| b == "postgres");
        let url = std::env::var("TESSERA_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty());
        match (wanted, url) {
            (true, Some(url)) => Some(url),
            (true, None) => {
                panic!("TESSERA_TEST_HTTP_BACKEND=postgres needs TESSERA_TEST_POSTGRES_URL")
            }
            (false, _) => None,
        }
    })
    .clone()
}

/// A server's data: its data dir and, when the suite runs on PostgreSQL, its schema
/// (dropped with everything in it when this is dropped). A restarted server is given
/// the same, so it finds the same data.
pub struct DataDir {
    dir: TempDir,
    schema: Option<PgSchema>,
}

impl DataDir {
    async fn fresh() -> Self {
        let schema = match postgres_base() {
            Some(base) => Some(PgSchema::create(&base, "tessera_it").await),
            None => None,
        };
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            schema,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn database_url(&self) -> String {
        match &self.schema {
            Some(schema) => schema.url(),
            None => tessera_store::sqlite_url_in(self.dir.path()),
        }
    }
}

// ---------------------------------------------------------------------------------
// The server.

/// Settings every test server uses unless a test says otherwise.
pub fn default_settings() -> Settings {
    Settings {
        api_versions: ApiVersions::new(vec!["v1".into(), "v2".into(), "v3".into()])
            .expect("api versions"),
        ..Settings::default()
    }
}

/// A running server over its own data dir. Dropping it shuts the server down and
/// removes the directory.
pub struct TestServer {
    pub app: Arc<Tessera>,
    pub base: String,
    /// The one-time setup code the server armed at start (as `tessera serve` does,
    /// in `<data dir>/setup-code`) while no administrator existed; `None` otherwise.
    pub setup_code: Option<String>,
    dir: Option<DataDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    http: reqwest::Client,
    admins: AtomicUsize,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(default_settings()).await
    }

    pub async fn start_with(settings: Settings) -> Self {
        Self::start_in(DataDir::fresh().await, settings).await
    }

    /// Starts a server over an existing data dir (to restart with other settings).
    pub async fn start_in(dir: DataDir, settings: Settings) -> Self {
        Self::start_full(
            dir,
            settings,
            HttpOptions::default(),
            ConnectionOptions::default(),
        )
        .await
    }

    /// Starts a server with HTTP options of the test's choosing.
    pub async fn start_with_options(settings: Settings, options: HttpOptions) -> Self {
        Self::start_full(
            DataDir::fresh().await,
            settings,
            options,
            ConnectionOptions::default(),
        )
        .await
    }

    /// Starts a server with connection timeouts and cap of the test's choosing.
    pub async fn start_with_connections(connections: ConnectionOptions) -> Self {
        Self::start_full(
            DataDir::fresh().await,
            default_settings(),
            HttpOptions::default(),
            connections,
        )
        .await
    }

    async fn start_full(
        dir: DataDir,
        settings: Settings,
        options: HttpOptions,
        connections: ConnectionOptions,
    ) -> Self {
        install_log_capture();
        let store = tessera_store::open(&dir.database_url())
            .await
            .expect("open store");
        let pepper =
            tessera_app::pepper::load_or_create(&dir.path().join("pepper")).expect("pepper");
        let app =
            Arc::new(Tessera::new(store, pepper, settings, Arc::new(SystemClock)).expect("app"));
        app.load().await.expect("load index");
        let setup_code = app
            .auth()
            .prepare_first_run(&dir.path().join(SETUP_CODE_FILE))
            .await
            .expect("prepare the first run");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("local addr");
        let (shutdown, signal) = oneshot::channel::<()>();
        let router = tessera_server::router(Arc::clone(&app), options);
        let task = tokio::spawn(tessera_server::serve_with(
            listener,
            router,
            connections,
            async move {
                let _ = signal.await;
            },
        ));
        let server = Self {
            app,
            base: format!("http://{address}"),
            setup_code,
            dir: Some(dir),
            shutdown: Some(shutdown),
            task: Some(task),
            http: reqwest::Client::new(),
            admins: AtomicUsize::new(0),
        };
        let ready = format!("{}/readyz", server.base);
        let http = server.http.clone();
        eventually("GET /readyz to answer 200", Duration::from_secs(10), || {
            let http = http.clone();
            let ready = ready.clone();
            async move {
                let response = http.get(&ready).send().await.ok()?;
                (response.status() == 200).then_some(())
            }
        })
        .await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether this server's database is PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        postgres_base().is_some()
    }

    /// On PostgreSQL, every row of this server's schema (`pg_dump --data-only`).
    pub fn database_dump(&self) -> Option<Vec<u8>> {
        let schema = self.dir.as_ref().expect("data dir").schema.as_ref()?;
        let output = std::process::Command::new("pg_dump")
            .args(["--data-only", "--schema", schema.name(), schema.base()])
            .output()
            .expect("run pg_dump");
        assert!(output.status.success(), "pg_dump failed");
        Some(output.stdout)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.as_ref().expect("data dir").path()
    }

    /// Shuts the server down, waits for it to stop, and hands back its data dir
    /// (and, on PostgreSQL, keeps its schema for the next `start_in`).
    pub async fn stop(mut self) -> DataDir {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.dir.take().expect("data dir")
    }

    /// A request without any credentials.
    pub async fn anon(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Resp::read(request.send().await.expect("request")).await
    }

    /// `POST /v1/verify` without credentials.
    pub async fn verify(&self, body: Value) -> Resp {
        self.anon(Method::POST, "/v1/verify", Some(body)).await
    }

    /// Verifies `token`, optionally for a permission and a project; answers the body.
    pub async fn check(
        &self,
        token: &str,
        permission: Option<&str>,
        project: Option<&str>,
    ) -> Value {
        let mut body = json!({ "token": token });
        if let Some(permission) = permission {
            body["permission"] = json!(permission);
        }
        if let Some(project) = project {
            body["project"] = json!(project);
        }
        let response = self.verify(body).await;
        response.expect(200);
        response.body
    }

    /// Whether a personal token signs its owner in (`GET /v1/auth/me` as Bearer):
    /// personal tokens act on Tessera's own API only, so verify never knows them.
    pub async fn signs_in(&self, personal: &str) -> bool {
        self.bearer(personal, Method::GET, "/v1/auth/me", None)
            .await
            .status
            == 200
    }

    /// The verify code of `token` (`"valid"` when it verifies).
    pub async fn code(
        &self,
        token: &str,
        permission: Option<&str>,
        project: Option<&str>,
    ) -> String {
        let body = self.check(token, permission, project).await;
        if body["valid"] == true {
            "valid".to_owned()
        } else {
            body["code"].as_str().expect("verify code").to_owned()
        }
    }

    /// Creates an admin with `role` through the application and returns its email.
    pub async fn create_admin(&self, role: &str) -> String {
        self.create_admin_with_id(role).await.0
    }

    /// Creates an admin with `role` through the application; answers `(email, id)`.
    pub async fn create_admin_with_id(&self, role: &str) -> (String, String) {
        let n = self.admins.fetch_add(1, Ordering::Relaxed);
        let email = format!("{role}-{n}@example.com");
        let view = self
            .app
            .users()
            .create_admin(
                &Principal::operator("test"),
                NewAdmin {
                    email: email.clone(),
                    name: None,
                    role: role.to_owned(),
                    password: Password(PASSWORD.into()),
                },
            )
            .await
            .expect("create admin");
        (email, view.id.to_string())
    }

    /// Creates an admin with `role` and signs it in.
    pub async fn admin(&self, role: &str) -> Admin {
        let email = self.create_admin(role).await;
        self.login(&email).await
    }

    /// Signs in an existing admin with the shared password.
    pub async fn login(&self, email: &str) -> Admin {
        self.login_with(email, PASSWORD).await
    }

    /// Signs in an existing admin with `password`; panics unless it succeeds.
    pub async fn login_with(&self, email: &str, password: &str) -> Admin {
        let (response, admin) = self
            .sign_in(
                "/v1/auth/login",
                &json!({ "email": email, "password": password }),
            )
            .await;
        response.expect(200);
        admin.expect("a session")
    }

    /// The armed setup code; panics when the server started with an administrator.
    #[track_caller]
    pub fn armed_code(&self) -> &str {
        self.setup_code.as_deref().expect("a setup code is armed")
    }

    /// POSTs `body` to a sign-in endpoint (`/v1/auth/login`,
    /// `/v1/auth/register-first`) with a fresh cookie jar; answers the response and,
    /// when it set a session cookie and returned a CSRF token, the signed-in admin.
    pub async fn sign_in(&self, path: &str, body: &Value) -> (Resp, Option<Admin>) {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        let response = client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("sign-in request");
        let cookie = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("tessera_session="))
            .and_then(|rest| rest.split(';').next())
            .filter(|value| !value.is_empty())
            .map(str::to_owned);
        let resp = Resp::read(response).await;
        let admin = match (cookie, resp.body["csrf_token"].as_str()) {
            (Some(session), Some(csrf)) => Some(Admin {
                client,
                base: self.base.clone(),
                id: resp.body["user"]["id"]
                    .as_str()
                    .expect("user id")
                    .to_owned(),
                email: resp.body["user"]["email"]
                    .as_str()
                    .expect("user email")
                    .to_owned(),
                csrf: csrf.to_owned(),
                session,
            }),
            _ => None,
        };
        (resp, admin)
    }
}

impl TestServer {
    /// A request with `Authorization: Bearer <token>` and nothing else: no cookie, no
    /// CSRF header.
    pub async fn bearer(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Resp::read(request.send().await.expect("request")).await
    }

    /// A request with a raw body and headers of the test's choosing, no credentials.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut request = self.http.request(method, self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Resp::read(request.send().await.expect("request")).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // The data dir and its schema go with it, unless `stop()` handed them back
        // for the next server.
    }
}

// ---------------------------------------------------------------------------------
// Signed-in admins.

/// An admin signed in through the API: a cookie jar plus the CSRF token.
pub struct Admin {
    pub client: reqwest::Client,
    pub base: String,
    /// The signed-in user's id.
    pub id: String,
    pub email: String,
    pub csrf: String,
    /// The session cookie's value, as the login set it.
    pub session: String,
}

impl Admin {
    /// A request with the session cookie, and the CSRF header on unsafe methods.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if !safe {
            request = request.header("X-CSRF-Token", &self.csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Resp::read(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }

    /// A request with the session cookie and a raw body and headers of the test's
    /// choosing (no CSRF header unless given).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        Resp::read(request.send().await.expect("request")).await
    }

    /// Creates an API token; panics unless it is created.
    pub async fn create_token(&self, body: Value) -> Resp {
        let response = self.post("/v1/tokens", body).await;
        response.expect(201);
        response
    }

    /// Creates a read-only 30-day token named `name`; answers `(id, secret)`.
    pub async fn token(&self, name: &str) -> (String, String) {
        let created = self
            .create_token(json!({ "name": name, "type": "read-only", "lifespan": "30d" }))
            .await;
        (created.id(), created.secret())
    }

    /// Creates a personal token (`access`: `full` | `read-only`, 30 days) for the
    /// signed-in user; answers `(id, secret)`.
    pub async fn personal_token(&self, name: &str, access: &str) -> (String, String) {
        let created = self
            .post(
                "/v1/me/tokens",
                json!({ "name": name, "access": access, "lifespan": "30d" }),
            )
            .await;
        created.expect(201);
        (created.id(), created.secret())
    }

    /// Creates the `article` resource (`find`, `findOne` read; `create`, `update`,
    /// `delete` write).
    pub async fn article_resource(&self) {
        self.post(
            "/v1/resources",
            json!({
                "name": "article",
                "description": "Blog articles",
                "actions": [
                    {"name": "find", "kind": "read"},
                    {"name": "findOne", "kind": "read"},
                    {"name": "create", "kind": "write"},
                    {"name": "update", "kind": "write"},
                    {"name": "delete", "kind": "write"}
                ]
            }),
        )
        .await
        .expect(201);
    }
}
