//! Usage counters: `last_used_at` and daily allowed/denied counts, gathered in memory
//! on the verify path (atomics, no lock, no I/O) and written in one batch per interval.
//!
//! Counters live in the verify index's entries (no map of a million counters beside
//! the index). Counting happens under the index's read lock, so once an entry is
//! replaced (an edit) or removed (a deletion, a reload), nothing counts into it any
//! more: the index hands such an entry to `UsageRecorder::retire` when it still holds
//! counts, and the next flush writes them. A flush swaps each counter to zero and
//! writes the sums; if the write fails (or is abandoned) the sums are added back and go
//! out with the next flush. Counts are attributed to the UTC day of the flush, so a
//! count made just before midnight may land on the next day (by at most one flush
//! interval).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::{DateTime, TimeZone, Utc};
use tessera_core::TokenId;
use tessera_store::{Store, StoreResult, UsageDelta};

use crate::verify::{IndexState, IndexedToken};

/// The counters of one index entry.
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

    pub(crate) fn is_empty(&self) -> bool {
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
struct Taken(Vec<(IndexedToken, u64, u64, i64)>);

impl Drop for Taken {
    fn drop(&mut self) {
        for (token, allowed, denied, last_used) in self.0.drain(..) {
            token.usage.give_back(allowed, denied, last_used);
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

/// All counters of this node: those of the verify index's entries, and of entries it
/// replaced or removed that still hold counts.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    index: OnceLock<Arc<RwLock<IndexState>>>,
    retired: Mutex<Vec<IndexedToken>>,
}

impl UsageRecorder {
    /// Reads counters from `index` (the verify index calls this once, when made).
    pub(crate) fn attach(&self, index: Arc<RwLock<IndexState>>) {
        let _ = self.index.set(index);
    }

    fn retired(&self) -> std::sync::MutexGuard<'_, Vec<IndexedToken>> {
        self.retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the entries (replaced or removed from the index, so counted into no more)
    /// that hold counts, for the next flush.
    pub(crate) fn retire<'a>(&self, entries: impl IntoIterator<Item = &'a IndexedToken>) {
        let holding: Vec<IndexedToken> = entries
            .into_iter()
            .filter(|token| !token.usage.is_empty())
            .cloned()
            .collect();
        if !holding.is_empty() {
            self.retired().extend(holding);
        }
    }

    /// Every entry with counts pending: the index's, then the retired ones.
    fn holding(&self) -> Vec<IndexedToken> {
        let mut holding: Vec<IndexedToken> = match self.index.get() {
            Some(index) => index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entries()
                .filter(|token| !token.usage.is_empty())
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        holding.extend(self.retired().iter().cloned());
        holding
    }

    /// What is counted and not written yet.
    pub fn pending(&self) -> PendingUsage {
        let mut pending = PendingUsage::default();
        let mut tokens = std::collections::HashSet::new();
        for token in self.holding() {
            if token.usage.is_empty() {
                continue;
            }
            let (allowed, denied) = token.usage.pending();
            tokens.insert(token.id);
            pending.allowed = pending.allowed.saturating_add(allowed);
            pending.denied = pending.denied.saturating_add(denied);
        }
        pending.tokens = tokens.len();
        pending
    }

    /// Writes everything counted so far in one batch (one row per token: an entry and
    /// the retired entries of the same token are added up).
    ///
    /// `_live` is not needed any more (counters live and die with index entries); it
    /// stays so callers need not change.
    pub async fn flush(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        _live: impl Fn(TokenId) -> bool,
    ) -> StoreResult<usize> {
        let holding = self.holding();
        let written = self.write_batch(store, now, holding).await;
        // Retired entries whose counts were written are done with; a failed write gave
        // its counts back, so those stay for the next flush.
        self.retired().retain(|token| !token.usage.is_empty());
        written
    }

    async fn write_batch(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        holding: Vec<IndexedToken>,
    ) -> StoreResult<usize> {
        let day = now.date_naive();
        let mut taken = Taken(Vec::new());
        let mut batch: Vec<UsageDelta> = Vec::new();
        let mut position: HashMap<TokenId, usize> = HashMap::new();
        for token in holding {
            let (allowed, denied, last_used) = token.usage.take();
            if allowed == 0 && denied == 0 && last_used == 0 {
                continue;
            }
            let last_used_at = (last_used > 0)
                .then(|| Utc.timestamp_millis_opt(last_used).single())
                .flatten();
            match position.get(&token.id) {
                Some(&at) => {
                    if let Some(delta) = batch.get_mut(at) {
                        delta.allowed = delta.allowed.saturating_add(allowed);
                        delta.denied = delta.denied.saturating_add(denied);
                        delta.last_used_at = delta.last_used_at.max(last_used_at);
                    }
                }
                None => {
                    position.insert(token.id, batch.len());
                    batch.push(UsageDelta {
                        token_id: token.id,
                        day,
                        allowed,
                        denied,
                        last_used_at,
                    });
                }
            }
            taken.0.push((token, allowed, denied, last_used));
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
