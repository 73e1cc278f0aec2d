//! The node's background work: following the change feed, flushing usage, and pruning
//! the change feed of changes past their retention. All stop when `shutdown` flips;
//! usage is flushed one last time on the way out, within [`FINAL_FLUSH_TIMEOUT`].
//!
//! While the database is unreachable each keeps trying: the follower on every tick (the
//! node verifies from its index meanwhile, see [`Tessera::verify`]), the flusher on
//! every interval, keeping what it could not write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::Tessera;

/// How often each background job runs.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Polling the change feed: the bound on how stale another process's change is here.
    pub follow: Duration,
    /// Writing usage counters: the bound on how stale `last_used_at` is in the API.
    pub flush: Duration,
    /// Pruning the change feed of changes older than its retention (the first time
    /// this long after start, or a minute if that is sooner).
    pub prune: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            follow: Duration::from_millis(250),
            flush: Duration::from_secs(5),
            prune: Duration::from_secs(3600),
        }
    }
}

/// How long after start the first pruning of the change feed waits at most (so that
/// start-up does not compete with it, and a node restarted in a loop still prunes).
const FIRST_PRUNE_AFTER: Duration = Duration::from_secs(60);

/// How long the flush at shutdown may take. The database may be unreachable (or a
/// connection may hang): shutdown must not wait for it forever, so past this the
/// pending usage is given up, and the log says how much.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `shutdown` becomes true (or its sender is dropped), then flushes usage.
///
/// The follower and the flusher are separate loops, so that neither waits for the
/// other (while the database is unreachable each attempt can take the pool's acquire
/// timeout). At shutdown both are abandoned wherever they are (a catch-up or a flush
/// is safe to drop at any await: a flush gives its counts back), then one last flush
/// runs within [`FINAL_FLUSH_TIMEOUT`].
pub async fn run(app: Arc<Tessera>, intervals: Intervals, mut shutdown: watch::Receiver<bool>) {
    let work = async {
        tokio::join!(
            follow_loop(&app, intervals.follow),
            flush_loop(&app, intervals.flush),
            prune_loop(&app, intervals.prune)
        )
    };
    tokio::select! {
        _ = work => {}
        // Also returns when the sender is gone.
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    final_flush(&app).await;
}

/// Applies the change feed on every tick and whenever another node signals a change.
async fn follow_loop(app: &Tessera, every: Duration) {
    // Wakes the follower as soon as another node writes (PostgreSQL); the interval
    // stays the floor, for lost notifications and for backends without a signal.
    let signal = app.change_signal();
    let mut follow = tokio::time::interval(every);
    follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outage = Outage::default();
    loop {
        tokio::select! {
            _ = follow.tick() => {}
            () = changed(signal.as_deref()) => {}
        }
        follow_changes(app, &mut outage).await;
    }
}

/// Writes counted usage on every tick; what cannot be written is kept for the next.
async fn flush_loop(app: &Tessera, every: Duration) {
    let mut flush = tokio::time::interval(every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        flush.tick().await;
        match app.flush_usage().await {
            Ok(0) => {}
            Ok(written) => tracing::debug!(written, "usage flushed"),
            Err(error) => {
                let pending = app.pending_usage();
                tracing::warn!(
                    %error,
                    tokens = pending.tokens,
                    allowed = pending.allowed,
                    denied = pending.denied,
                    "could not flush usage; keeping it for the next try"
                );
            }
        }
    }
}

/// Prunes the change feed on every tick. On PostgreSQL every node runs this loop and
/// the store lets one prune at a time (the others find it busy and wait for their next
/// tick); a pruning cut short by shutdown has committed whole batches only.
async fn prune_loop(app: &Tessera, every: Duration) {
    if app.settings().change_feed_retention.is_none() {
        return;
    }
    let first = tokio::time::Instant::now() + every.min(FIRST_PRUNE_AFTER);
    let mut prune = tokio::time::interval_at(first, every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        prune.tick().await;
        match app.prune_change_feed().await {
            Ok(pruned) if pruned.busy => {
                tracing::debug!("another node is pruning the change feed");
            }
            Ok(pruned) if pruned.deleted > 0 => tracing::info!(
                deleted = pruned.deleted,
                pruned_through = pruned.through,
                "pruned old changes from the change feed"
            ),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "could not prune the change feed; trying again later");
            }
        }
    }
}

/// The flush at shutdown, bounded by [`FINAL_FLUSH_TIMEOUT`]; what it cannot write is
/// lost, and logged as such with its size.
async fn final_flush(app: &Tessera) {
    let pending = app.pending_usage();
    if pending.is_empty() {
        tracing::info!("no usage to flush at shutdown");
        return;
    }
    match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, app.flush_usage()).await {
        Ok(Ok(written)) => tracing::info!(written, "usage flushed at shutdown"),
        Ok(Err(error)) => tracing::error!(
            %error,
            tokens = pending.tokens,
            allowed = pending.allowed,
            denied = pending.denied,
            "could not flush usage at shutdown: these usage counts are lost"
        ),
        Err(_) => tracing::error!(
            timeout_seconds = FINAL_FLUSH_TIMEOUT.as_secs(),
            tokens = pending.tokens,
            allowed = pending.allowed,
            denied = pending.denied,
            "the database did not answer the usage flush at shutdown in time: these usage \
             counts are lost"
        ),
    }
}

/// The follower's view of a database outage, so that it logs the start and the end
/// of one rather than every failed tick.
#[derive(Debug, Default)]
struct Outage {
    /// When catching up started failing.
    since: Option<Instant>,
    /// Whether the index was reported past its maximum staleness.
    stale_reported: bool,
}

async fn follow_changes(app: &Tessera, outage: &mut Outage) {
    match app.follow_changes().await {
        Ok(()) => {
            if let Some(since) = outage.since.take() {
                tracing::info!(
                    outage_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "caught up with the change feed again; the node is ready"
                );
            }
            outage.stale_reported = false;
        }
        Err(error) => {
            if outage.since.is_none() {
                outage.since = Some(Instant::now());
                tracing::warn!(
                    %error,
                    "cannot follow the change feed: not ready, verifying from the in-memory \
                     index until the database answers again"
                );
            } else {
                tracing::debug!(%error, "still cannot follow the change feed");
            }
            let staleness = app.index_staleness();
            if let Some(max) = app.settings().max_staleness
                && staleness > max
                && !outage.stale_reported
            {
                outage.stale_reported = true;
                tracing::error!(
                    staleness_seconds = staleness.as_secs(),
                    max_staleness_seconds = max.as_secs(),
                    "the verify index is past its maximum staleness: verification answers \
                     `internal` until the database answers again"
                );
            }
        }
    }
}

/// Resolves when `signal` fires; never without one.
async fn changed(signal: Option<&tokio::sync::Notify>) {
    match signal {
        Some(signal) => signal.notified().await,
        None => std::future::pending().await,
    }
}
