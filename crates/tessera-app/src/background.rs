//! The node's background work: following the change feed and flushing usage.
//! Both stop when `shutdown` flips; usage is flushed one last time on the way out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::Tessera;

/// How often each background job runs.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Polling the change feed: the bound on how stale another process's change is here.
    pub follow: Duration,
    /// Writing usage counters: the bound on how stale `last_used_at` is in the API.
    pub flush: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            follow: Duration::from_millis(250),
            flush: Duration::from_secs(5),
        }
    }
}

/// Runs until `shutdown` becomes true (or its sender is dropped), then flushes usage.
pub async fn run(app: Arc<Tessera>, intervals: Intervals, mut shutdown: watch::Receiver<bool>) {
    // Wakes the follower as soon as another node writes (PostgreSQL); the interval
    // stays the floor, for lost notifications and for backends without a signal.
    let signal = app.change_signal();
    let mut follow = tokio::time::interval(intervals.follow);
    let mut flush = tokio::time::interval(intervals.flush);
    follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = follow.tick() => follow_changes(&app).await,
            () = changed(signal.as_deref()) => follow_changes(&app).await,
            _ = flush.tick() => {
                match app.flush_usage().await {
                    Ok(0) => {}
                    Ok(written) => tracing::debug!(written, "usage flushed"),
                    Err(error) => tracing::warn!(%error, "could not flush usage; keeping it for the next try"),
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    match app.flush_usage().await {
        Ok(written) => tracing::info!(written, "usage flushed at shutdown"),
        Err(error) => tracing::error!(%error, "could not flush usage at shutdown"),
    }
}

async fn follow_changes(app: &Tessera) {
    if let Err(error) = app.follow_changes().await {
        tracing::warn!(%error, "could not follow the change feed; retrying");
    }
}

/// Resolves when `signal` fires; never without one.
async fn changed(signal: Option<&tokio::sync::Notify>) {
    match signal {
        Some(signal) => signal.notified().await,
        None => std::future::pending().await,
    }
}
