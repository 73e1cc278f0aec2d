//! Usage counters: `last_used_at` and daily allowed/denied counts, gathered in memory
//! on the verify path (atomics, no lock, no I/O) and written in one batch per interval.
//!
//! Counters live per token id, apart from the verify index, so an index update never
//! loses counts. A flush swaps each counter to zero and writes the sums; if the write
//! fails (or is abandoned) the sums are added back and go out with the next flush. Counts are attributed
//! to the UTC day of the flush, so a count made just before midnight may land on the
//! next day (by at most one flush interval).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use tessera_core::TokenId;
use tessera_store::{Store, StoreResult, UsageDelta};

/// The counters of one token.
#[derive(Debug, Default)]
pub struct UsageCounters {
    allowed: AtomicU64,
    denied: AtomicU64,
    /// Unix milliseconds of the last allowed verification; 0 when none is pending.
    last_used: AtomicI64,
}

/// Adds `count`, stopping at `u64::MAX` rather than wrapping (reported counts come
/// from outside).
fn saturating_add(counter: &AtomicU64, count: u64) {
    // `fetch_update` retries until its closure's value is stored; the closure always
    // answers `Some`, so this cannot fail.
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
        Some(now.saturating_add(count))
    });
}

impl UsageCounters {
    pub fn allowed(&self, now: DateTime<Utc>) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
        self.last_used
            .fetch_max(now.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }

    /// Verifications answered elsewhere (an embedded verifier's cache) and reported
    /// here: counted like this node's own; `last_used_at` moves to `now` when any was
    /// allowed.
    pub fn reported(&self, allowed: u64, denied: u64, now: DateTime<Utc>) {
        if allowed > 0 {
            saturating_add(&self.allowed, allowed);
            self.last_used
                .fetch_max(now.timestamp_millis(), Ordering::Relaxed);
        }
        if denied > 0 {
            saturating_add(&self.denied, denied);
        }
    }

    fn take(&self) -> (u64, u64, i64) {
        (
            self.allowed.swap(0, Ordering::Relaxed),
            self.denied.swap(0, Ordering::Relaxed),
            self.last_used.swap(0, Ordering::Relaxed),
        )
    }

    fn is_empty(&self) -> bool {
        self.allowed.load(Ordering::Relaxed) == 0
            && self.denied.load(Ordering::Relaxed) == 0
            && self.last_used.load(Ordering::Relaxed) == 0
    }

    fn pending(&self) -> (u64, u64) {
        (
            self.allowed.load(Ordering::Relaxed),
            self.denied.load(Ordering::Relaxed),
        )
    }

    fn give_back(&self, allowed: u64, denied: u64, last_used: i64) {
        self.allowed.fetch_add(allowed, Ordering::Relaxed);
        self.denied.fetch_add(denied, Ordering::Relaxed);
        self.last_used.fetch_max(last_used, Ordering::Relaxed);
    }
}

/// Counts taken out of their counters for a write: given back when dropped, unless
/// the write succeeded and emptied it. So a failed *or cancelled* flush keeps them, and
/// a flush is safe to abandon at any await. (A write whose commit succeeded but whose
/// answer was lost is given back too, and counted again: usage is at-least-once.)
struct Taken(Vec<(Arc<UsageCounters>, u64, u64, i64)>);

impl Drop for Taken {
    fn drop(&mut self) {
        for (counters, allowed, denied, last_used) in self.0.drain(..) {
            counters.give_back(allowed, denied, last_used);
        }
    }
}

/// What is counted and not written yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingUsage {
    /// Tokens with anything pending (counts or a `last_used_at`).
    pub tokens: usize,
    pub allowed: u64,
    pub denied: u64,
}

impl PendingUsage {
    pub fn is_empty(&self) -> bool {
        self.tokens == 0
    }
}

/// All counters of this node.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    counters: Mutex<HashMap<TokenId, Arc<UsageCounters>>>,
}

impl UsageRecorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenId, Arc<UsageCounters>>> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counters of `id`, created on first use.
    pub fn counters(&self, id: TokenId) -> Arc<UsageCounters> {
        Arc::clone(self.lock().entry(id).or_default())
    }

    /// What is counted and not written yet.
    pub fn pending(&self) -> PendingUsage {
        let mut pending = PendingUsage::default();
        for counters in self.lock().values() {
            if counters.is_empty() {
                continue;
            }
            let (allowed, denied) = counters.pending();
            pending.tokens += 1;
            pending.allowed = pending.allowed.saturating_add(allowed);
            pending.denied = pending.denied.saturating_add(denied);
        }
        pending
    }

    /// Writes everything counted so far in one batch. Counters of tokens that are gone
    /// (`live` says which remain) are dropped once they hold nothing.
    ///
    /// `live` may lock the verify index, so it is never called with the map locked
    /// (the index takes the map's lock while it is locked for writing).
    pub async fn flush(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        live: impl Fn(TokenId) -> bool,
    ) -> StoreResult<usize> {
        let snapshot: Vec<(TokenId, Arc<UsageCounters>)> = self
            .lock()
            .iter()
            .map(|(id, c)| (*id, Arc::clone(c)))
            .collect();
        let dead: Vec<TokenId> = snapshot
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !live(*id))
            .collect();
        let written = self.write_batch(store, now, &snapshot).await;
        drop(snapshot);
        if !dead.is_empty() {
            let mut counters = self.lock();
            for id in dead {
                // Only this map holds it and nothing is pending: no index entry can
                // count into it any more.
                if counters
                    .get(&id)
                    .is_some_and(|c| Arc::strong_count(c) == 1 && c.is_empty())
                {
                    counters.remove(&id);
                }
            }
        }
        written
    }

    async fn write_batch(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        snapshot: &[(TokenId, Arc<UsageCounters>)],
    ) -> StoreResult<usize> {
        let day = now.date_naive();
        let mut taken = Taken(Vec::new());
        let mut batch = Vec::new();
        for (id, counters) in snapshot {
            let id = *id;
            let (allowed, denied, last_used) = counters.take();
            if allowed == 0 && denied == 0 && last_used == 0 {
                continue;
            }
            batch.push(UsageDelta {
                token_id: id,
                day,
                allowed,
                denied,
                last_used_at: (last_used > 0)
                    .then(|| Utc.timestamp_millis_opt(last_used).single())
                    .flatten(),
            });
            taken
                .0
                .push((Arc::clone(counters), allowed, denied, last_used));
        }
        if batch.is_empty() {
            return Ok(0);
        }
        // On an error, or if this future is dropped mid-write (a timeout, shutdown),
        // `taken` gives the counts back when it goes out of scope.
        store.record_usage(&batch).await?;
        taken.0.clear();
        Ok(batch.len())
    }
}
