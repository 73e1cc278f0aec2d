//! Serving connections: hyper's HTTP/1 connection builder (hyper-util's tokio runtime
//! glue) behind an accept loop that bounds what a client can hold.
//!
//! - **Header timeout**: a request's head (request line and headers) must arrive
//!   within `header_timeout` of its first byte, or, on a new connection, of the
//!   connection opening. A client that sends half its headers, or nothing, is
//!   disconnected.
//! - **Idle keep-alive timeout**: between requests a connection may stay open for
//!   `keep_alive` with nothing to say, then it is closed.
//! - **Connection cap**: at most `max_connections` are open at once; beyond it the
//!   listener stops accepting (further clients wait in the kernel's backlog) until one
//!   closes.
//!
//! Why not hyper's own `header_read_timeout`: hyper starts that timer as soon as a
//! connection waits for its next request, so it would also close every idle keep-alive
//! connection after the header timeout, and the two cannot differ (gateways keep
//! upstream connections idle for a minute or two and race a server that closes them
//! sooner). So the two clocks run here, in [`Deadlines`], a thin wrapper around the
//! socket that only watches bytes move and requests start and finish; parsing HTTP
//! stays with hyper. A body that trickles in after its head is not timed (the body
//! limit bounds its size and the connection cap bounds how many there can be).

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// Default [`ConnectionOptions::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionOptions::keep_alive`]: longer than the upstream idle timeouts
/// of common gateways (nginx 60 s, Traefik 90 s), so that they close idle connections
/// first rather than race the server closing them.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(120);
/// Default [`ConnectionOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept for everything but client connections (the database pool,
/// the listener, log and data files) when the cap is fitted to the process's limit.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;

/// How the server treats client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// How long a request's head may take to arrive, from its first byte (on a new
    /// connection, from the connection opening).
    pub header_timeout: Duration,
    /// How long a connection may stay idle between requests; `None`: no keep-alive
    /// (one request per connection).
    pub keep_alive: Option<Duration>,
    /// At most this many open connections; further clients wait to be accepted.
    pub max_connections: usize,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit (as Go's runtime
/// does), so that the connection cap, not `EMFILE`, is what bounds connections.
/// Returns the soft limit in force afterwards (`None`: unlimited or unknown).
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one for files (Linux refuses values
    // above `fs.nr_open`); a million is already far more than any cap here.
    let wanted = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|current| current < wanted) {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "could not raise the open-files limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The connection cap that fits this process's open-files limit, with a warning when
/// `wanted` does not fit.
fn fitted_cap(wanted: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let Some(limit) = limit else {
        return wanted.max(1);
    };
    let usable = usize::try_from(limit.saturating_sub(RESERVED_FILE_DESCRIPTORS))
        .unwrap_or(usize::MAX)
        .max(1);
    if wanted > usable {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = limit,
            "max_connections is above what the open-files limit allows: at most {usable} \
             connections will be accepted (raise the limit, e.g. LimitNOFILE= in systemd)"
        );
        usable
    } else {
        wanted.max(1)
    }
}

/// How long shutdown waits for open connections to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` with `options` until `shutdown` resolves; then stops
/// accepting, lets each connection finish its request in flight (idle ones close at
/// once), and returns when every connection has closed.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    options: ConnectionOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = fitted_cap(options.max_connections);
    let permits = u32::try_from(cap).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(permits as usize));
    let (closing, closing_seen) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The clocks are ours (see the module docs); hyper's would close idle connections
    // after the header timeout.
    builder
        .header_read_timeout(None)
        .keep_alive(options.keep_alive.is_some());
    let builder = Arc::new(builder);
    let clocks = Clocks {
        header: options.header_timeout,
        idle: options.keep_alive.unwrap_or(options.header_timeout),
    };
    let mut shutdown = pin!(shutdown);
    let mut at_cap = false;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                at_cap = false;
                slot
            }
            Err(_) => {
                if !at_cap {
                    at_cap = true;
                    tracing::warn!(
                        max_connections = cap,
                        "connection limit reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        let builder = Arc::clone(&builder);
        let router = router.clone();
        let mut closing = closing_seen.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let requests = Arc::new(Requests::default());
            let io = TokioIo::new(Deadlines::new(stream, Arc::clone(&requests), clocks));
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let finished = RequestGuard::start(Arc::clone(&requests));
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                let response = router.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(finished);
                    response
                }
            });
            let mut connection = pin!(builder.serve_connection(io, service));
            let mut told = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "connection closed");
                        }
                        break;
                    }
                    changed = closing.changed(), if !told => {
                        told = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every connection holds a slot until it closes: all slots back means all closed.
    // A connection that will not finish (a request that hangs) must not keep the
    // process from stopping: past DRAIN_TIMEOUT the rest are dropped.
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(permits))
        .await
        .is_err()
    {
        tracing::warn!(
            open = permits as usize - slots.available_permits(),
            "connections still open {DRAIN_TIMEOUT:?} after shutdown began: closing them"
        );
    }
    Ok(())
}

/// What to do when `accept` fails: a connection that died before it was accepted is
/// nothing; anything else (e.g. out of file descriptors) is logged and retried after a
/// pause, so as not to spin.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The two timeouts a connection is held to.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    header: Duration,
    idle: Duration,
}

/// One connection's requests, counted by its service as they start and finish and read
/// by its [`Deadlines`] (both run on the connection's task: the atomics are uncontended).
#[derive(Debug, Default)]
struct Requests {
    in_flight: AtomicUsize,
    finished: AtomicU64,
}

/// Counts a request as in flight until dropped (when its response is ready).
struct RequestGuard(Arc<Requests>);

impl RequestGuard {
    fn start(requests: Arc<Requests>) -> Self {
        requests.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(requests)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a connection stands, as far as its clocks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request's head is on its way, since this instant (its first byte; for a new
    /// connection, the connection opening).
    Head(Instant),
    /// A request is being handled, or its response written: no clock runs.
    Busy,
    /// Waiting for the next request since this instant (the last response byte).
    Idle(Instant),
}

/// A socket that fails its reads with `TimedOut` once its phase's deadline passes, so
/// that hyper closes the connection.
struct Deadlines<T> {
    io: T,
    requests: Arc<Requests>,
    clocks: Clocks,
    phase: Phase,
    /// `requests.finished` when the phase was last brought up to date.
    seen_finished: u64,
    timer: Pin<Box<Sleep>>,
}

impl<T> Deadlines<T> {
    fn new(io: T, requests: Arc<Requests>, clocks: Clocks) -> Self {
        let opened = Instant::now();
        Self {
            io,
            requests,
            clocks,
            phase: Phase::Head(opened),
            seen_finished: 0,
            timer: Box::pin(tokio::time::sleep_until(opened + clocks.header)),
        }
    }

    /// Brings the phase up to date with the requests started and finished.
    fn sync(&mut self) {
        if self.requests.in_flight.load(Ordering::Relaxed) > 0 {
            self.phase = Phase::Busy;
            return;
        }
        let finished = self.requests.finished.load(Ordering::Relaxed);
        if finished != self.seen_finished {
            self.seen_finished = finished;
            self.phase = Phase::Idle(Instant::now());
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Head(since) => Some(since + self.clocks.header),
            Phase::Idle(since) => Some(since + self.clocks.idle),
            Phase::Busy => None,
        }
    }

    /// Pending until the deadline of the current phase, then `TimedOut`.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(deadline) = self.deadline() else {
            return Poll::Pending;
        };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                match self.phase {
                    Phase::Idle(_) => "idle keep-alive timeout",
                    _ => "request header timeout",
                },
            ))),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlines<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sync();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && let Phase::Idle(_) = this.phase
                {
                    // The first byte of the next request: its head has until the header
                    // timeout from now.
                    this.phase = Phase::Head(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlines<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.note_write();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.arm_timer(cx);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.note_write();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.arm_timer(cx);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<T> Deadlines<T> {
    /// A response being written: the idle clock starts after its last byte, so a
    /// large response to a slow reader is not cut off.
    fn note_write(&mut self) {
        self.sync();
        if let Phase::Idle(_) = self.phase {
            self.phase = Phase::Idle(Instant::now());
        }
    }

    /// Registers the current phase's deadline with this task from the write side.
    ///
    /// After the last write of a response hyper does not always read again before it
    /// waits (it may have polled the socket while the request was still being handled,
    /// when no clock ran), so a deadline armed only on reads could never fire and an
    /// idle connection stayed open for good. When the timer fires the task wakes, hyper
    /// reads, and the read sees the deadline passed.
    fn arm_timer(&mut self, cx: &mut Context<'_>) {
        let Some(deadline) = self.deadline() else {
            return;
        };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        // Ready only if the deadline already passed: the next read reports it.
        let _ = self.timer.as_mut().poll(cx);
    }
}

/// Serves `router` on `listener` with default [`ConnectionOptions`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, router, ConnectionOptions::default(), shutdown).await
}
