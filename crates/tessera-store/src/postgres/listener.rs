//! The change listener: one `LISTEN` connection per store, in a background task, that
//! turns PostgreSQL notifications on [`CHANNEL`] into wake-ups for the node's feed
//! follower ([`crate::Store::change_signal`]).
//!
//! Notifications are only a hint. They are lost while the listener is disconnected, so
//! the follower keeps polling as the floor, and every (re)connection fires the signal
//! once so that the follower catches up on whatever was announced meanwhile.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// The channel every write transaction with a change-feed row notifies. The payload is
/// the writer's schema, so that stores in different schemas of one database (tests, or
/// several installations) wake only for their own changes.
pub(super) const CHANNEL: &str = "tessera_changes";

/// How long the listener may hear nothing before it checks that its connection still
/// answers: a connection that died without a reset would otherwise wait forever.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Bounds connecting and the idle check.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection backoff: doubles from the first value up to the second.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// Starts the listener on first use and stops it when the last store clone is dropped.
pub(super) struct ChangeListener {
    options: Arc<PgConnectOptions>,
    schema: String,
    started: OnceLock<Running>,
}

/// The signal and the task that fires it; dropping it stops the task.
struct Running {
    signal: Arc<Notify>,
    task: AbortHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for ChangeListener {
    // By hand: the connect options hold the password.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChangeListener")
            .field("schema", &self.schema)
            .field("started", &self.started.get().is_some())
            .finish()
    }
}

impl ChangeListener {
    /// A listener for changes in `schema`. Its connection shows in `pg_stat_activity`
    /// as `tessera listener <schema>`.
    pub(super) fn new(options: &PgConnectOptions, schema: String) -> Self {
        let options = options
            .clone()
            .application_name(&format!("tessera listener {schema}"));
        Self {
            options: Arc::new(options),
            schema,
            started: OnceLock::new(),
        }
    }

    /// The signal, starting the listener task on the current tokio runtime the first
    /// time. `None` outside a runtime (nothing could run the task).
    pub(super) fn signal(&self) -> Option<Arc<Notify>> {
        if let Some(running) = self.started.get() {
            return Some(Arc::clone(&running.signal));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: change notifications are off, polling only");
            return None;
        };
        let running = self.started.get_or_init(|| {
            let signal = Arc::new(Notify::new());
            let task = runtime
                .spawn(listen(
                    Arc::clone(&self.options),
                    self.schema.clone(),
                    Arc::clone(&signal),
                ))
                .abort_handle();
            Running { signal, task }
        });
        Some(Arc::clone(&running.signal))
    }
}

/// Listens for ever: connects, fires the signal for every notification of our schema,
/// and on any failure logs it, waits (with backoff) and starts over on a new connection.
async fn listen(options: Arc<PgConnectOptions>, schema: String, signal: Arc<Notify>) {
    let mut backoff = BACKOFF.0;
    loop {
        let error = follow(&options, &schema, &signal, &mut backoff).await;
        tracing::warn!(
            %error,
            retry_in_ms = backoff.as_millis(),
            "change listener disconnected; other nodes' changes arrive by polling until it is back"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// One connection's life. Returns why it ended; it never ends otherwise.
///
/// Reconnection is done here, not by `PgListener`: its built-in reconnect (inside
/// `try_recv`) is off, so a lost connection always comes back to this loop, which
/// fires the signal after the new `LISTEN` (notifications sent in between are lost)
/// and builds everything afresh, on a new one-connection pool, so a half-dead
/// connection from the old one cannot hold the way.
async fn follow(
    options: &PgConnectOptions,
    schema: &str,
    signal: &Notify,
    backoff: &mut Duration,
) -> sqlx::Error {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options.clone());
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(listener) => listener,
        Err(error) => return error,
    };
    listener.eager_reconnect(false);
    if let Err(error) = listener.listen(CHANNEL).await {
        return error;
    }
    *backoff = BACKOFF.0;
    tracing::debug!(channel = CHANNEL, "listening for changes");
    // Changes may have been announced while nobody listened: let the follower look.
    signal.notify_one();
    loop {
        match tokio::time::timeout(IDLE_CHECK, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                if notification.payload() == schema {
                    signal.notify_one();
                }
            }
            // The connection is gone (with eager reconnect off, nothing reconnected).
            Ok(Ok(None)) => {
                return io_error(
                    std::io::ErrorKind::ConnectionAborted,
                    "the listening connection was lost",
                );
            }
            Ok(Err(error)) => return error,
            // Quiet for a while: make sure the connection still answers. (`try_recv` is
            // cancel-safe while it has a connection, which it always has here.)
            Err(_) => {
                let ping = sqlx::query("SELECT 1").execute(&mut listener);
                match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return error,
                    Err(_) => {
                        return io_error(
                            std::io::ErrorKind::TimedOut,
                            "the listening connection stopped answering",
                        );
                    }
                }
            }
        }
    }
}

fn io_error(kind: std::io::ErrorKind, message: &'static str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(kind, message))
}
