//! A real Tessera (app + HTTP server) in this process on 127.0.0.1, over a temporary
//! SQLite data dir, with a clock the tests move; and an admin signed in over HTTP.
//!
//! The HTTP server can be stopped and started again on the same port while the
//! application (and its database) lives on, so a test can make changes while the
//! verifier cannot reach Tessera.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_app::auth::{NewAdmin, Password};
use tessera_app::{ManualClock, Principal, Settings, Tessera};
use tessera_core::ApiVersions;
use tessera_server::{ConnectionOptions, HttpOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PASSWORD: &str = "correct horse battery";

pub struct TestTessera {
    pub app: Arc<Tessera>,
    pub clock: Arc<ManualClock>,
    pub base: String,
    address: SocketAddr,
    _dir: TempDir,
    http: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

impl TestTessera {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
            .await
            .unwrap();
        let pepper = tessera_app::pepper::load_or_create(&dir.path().join("pepper")).unwrap();
        let settings = Settings {
            api_versions: ApiVersions::new(vec!["v1".into()]).unwrap(),
            ..Settings::default()
        };
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let app = Arc::new(Tessera::new(store, pepper, settings, clock.clone()).unwrap());
        app.load().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut server = Self {
            app,
            clock,
            base: format!("http://{address}"),
            address,
            _dir: dir,
            http: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, signal) = oneshot::channel::<()>();
        let router = tessera_server::router(Arc::clone(&self.app), HttpOptions::default());
        let task = tokio::spawn(tessera_server::serve_with(
            listener,
            router,
            ConnectionOptions::default(),
            async move {
                let _ = signal.await;
            },
        ));
        self.http = Some((stop, task));
    }

    /// Moves Tessera's manual clock along with the real one (forward only) until the
    /// returned task is aborted: for tests of times the verifier reads on its own
    /// clock (a grace end, an expiry), which must agree with Tessera's.
    pub fn follow_real_time(&self) -> JoinHandle<()> {
        let clock = Arc::clone(&self.clock);
        let sync = move || {
            let behind = Utc::now() - tessera_app::Clock::now(&*clock);
            if behind > chrono::Duration::zero() {
                clock.advance(behind);
            }
        };
        sync();
        tokio::spawn(async move {
            loop {
                sync();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    /// Stops answering HTTP (the application and its data stay).
    pub async fn stop_http(&mut self) {
        if let Some((stop, task)) = self.http.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }

    /// Answers HTTP again, on the same address.
    pub async fn start_http(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.address).await.unwrap();
        self.serve(listener);
    }

    /// A signed-in admin of `role`.
    pub async fn admin(&self, role: &str) -> Admin {
        let email = format!("{role}-{}@example.com", rand_suffix());
        self.app
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
            .unwrap();
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let login: Value = client
            .post(format!("{}/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Admin {
            client,
            base: self.base.clone(),
            csrf: login["csrf_token"].as_str().unwrap().to_owned(),
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub struct Admin {
    client: reqwest::Client,
    base: String,
    csrf: String,
}

impl Admin {
    /// A request with the session cookie and CSRF header; answers status and body.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-CSRF-Token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.send(reqwest::Method::POST, path, body).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    /// A read-only personal token of this admin: the verifier's credential.
    pub async fn personal_token(&self) -> String {
        self.personal_token_with("read-only").await
    }

    /// A personal token of this admin with `access` (`read-only` | `full`).
    pub async fn personal_token_with(&self, access: &str) -> String {
        let body = self
            .post(
                "/v1/me/tokens",
                json!({"name": format!("verifier {}", rand_suffix()), "access": access, "lifespan": "30d"}),
            )
            .await;
        body["token"].as_str().unwrap().to_owned()
    }

    /// `GET path`: status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates an API token from `body` (name added); answers `(id, secret)`.
    pub async fn token(&self, mut body: Value) -> (String, String) {
        body["name"] = json!(format!("token {}", rand_suffix()));
        if body.get("lifespan").is_none() && body.get("expires_at").is_none() {
            body["lifespan"] = json!("30d");
        }
        let created = self.post("/v1/tokens", body).await;
        (
            created["id"].as_str().unwrap().to_owned(),
            created["token"].as_str().unwrap().to_owned(),
        )
    }

    /// The `article` resource: `find` (read), `create` (write).
    pub async fn article_resource(&self) {
        self.post(
            "/v1/resources",
            json!({"name": "article", "actions": [
                {"name": "find", "kind": "read"},
                {"name": "create", "kind": "write"}
            ]}),
        )
        .await;
    }
}

/// Polls `check` every 10 ms until it answers `Some`, or panics after `deadline`.
pub async fn within<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the subscription has applied `n` changes since `before` (a token's
/// creation is one), so that caching an answer now is not undone by a late drop.
pub async fn applied(verifier: &tessera_verifier::Verifier, before: u64, n: u64) {
    within("the changes applied", Duration::from_secs(2), async || {
        (verifier.stats().changes >= before + n).then_some(())
    })
    .await;
}

/// Waits until the verifier follows Tessera's changes.
pub async fn connected(verifier: &tessera_verifier::Verifier) {
    within(
        "the subscription to connect",
        Duration::from_secs(5),
        async || {
            (verifier.subscription_state() == tessera_verifier::SubscriptionState::Connected)
                .then_some(())
        },
    )
    .await;
}
