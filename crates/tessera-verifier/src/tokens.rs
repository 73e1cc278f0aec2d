//! What the verifier keeps per token id, apart from its cached answers: the token's rate
//! limiter, and the verifications it answered from its cache that Tessera has not been
//! told of yet.
//!
//! Cached answers are dropped on every change to their token, and a token has one
//! answer per permission and project asked; this state outlives them, so an edit or a
//! second permission neither resets the token's limiter nor loses its counts. Each
//! cached answer holds its token's state, so a cache hit touches no map and no lock:
//! one limiter check and one atomic add.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tessera_core::RateLimit;
use uuid::Uuid;

type Gcra = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// Verifications answered here and not yet reported to Tessera.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    allowed: AtomicU64,
    denied: AtomicU64,
}

impl Counts {
    fn take(&self) -> (u64, u64) {
        (
            self.allowed.swap(0, Ordering::Relaxed),
            self.denied.swap(0, Ordering::Relaxed),
        )
    }

    fn give_back(&self, allowed: u64, denied: u64) {
        self.allowed.fetch_add(allowed, Ordering::Relaxed);
        self.denied.fetch_add(denied, Ordering::Relaxed);
    }

    fn is_empty(&self) -> bool {
        self.allowed.load(Ordering::Relaxed) == 0 && self.denied.load(Ordering::Relaxed) == 0
    }
}

/// One token's state: its limiter (for the limit its last answer carried) and counts.
#[derive(Debug)]
pub(crate) struct TokenState {
    limit: Option<RateLimit>,
    limiter: Option<Gcra>,
    counts: Arc<Counts>,
    /// Whether cache hits are counted for usage reports (off when none are sent, so
    /// nothing piles up).
    counted: bool,
    /// Milliseconds after the table's anchor of the last admission or refusal.
    last_used: AtomicU64,
    anchor: Instant,
}

impl TokenState {
    /// Admits one request under the token's limit (counting it), or answers how long
    /// to wait. `report` says whether the verification is to be reported to Tessera
    /// (a cache hit) or Tessera counted it already (an answer it just gave).
    pub(crate) fn admit(&self, report: bool) -> Result<(), Duration> {
        let outcome = match &self.limiter {
            None => Ok(()),
            Some(gcra) => {
                self.last_used.store(
                    u64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                gcra.check().map_err(|not_until| {
                    not_until
                        .wait_time_from(gcra.clock().now())
                        .max(Duration::from_secs(1))
                })
            }
        };
        if report && self.counted {
            let counter = match outcome {
                Ok(()) => &self.counts.allowed,
                Err(_) => &self.counts.denied,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    /// Whether forgetting this state loses nothing: nothing left to report, and a
    /// limiter that would let a full burst through again (idle for its whole period).
    fn forgettable(&self) -> bool {
        if !self.counts.is_empty() {
            return false;
        }
        match self.limit {
            None => true,
            Some(limit) => {
                let idle = u64::try_from(self.anchor.elapsed().as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(self.last_used.load(Ordering::Relaxed));
                idle > u64::from(limit.per_seconds) * 1000
            }
        }
    }
}

/// `requests` per `per_seconds`, bursting up to `requests`: the quota Tessera's own
/// limiter applies to the token (GCRA). `None` for a limit that measures nothing
/// (zero requests or seconds, which Tessera refuses to save).
fn quota(limit: RateLimit) -> Option<Quota> {
    let (burst, period) = limit.burst_and_period()?;
    Some(Quota::with_period(period)?.allow_burst(burst))
}

/// The fewest states at which the table looks for forgettable ones on its own.
const PRUNE_FLOOR: usize = 1_024;

/// Every token's state, by id. Bounded by what must be kept: states a cached answer
/// holds (bounded by the cache), unreported counts, and limiters still within their
/// period. The rest is forgotten at each report and, without reports, whenever the
/// table has doubled since it last looked.
#[derive(Debug)]
pub(crate) struct TokenStates {
    anchor: Instant,
    by_id: Mutex<HashMap<Uuid, Arc<TokenState>>>,
    counted: bool,
    /// The size at which `for_token` next forgets what it can.
    prune_at: std::sync::atomic::AtomicUsize,
}

/// Forgets the states that lose nothing by it and that no cached answer holds.
fn forget_what_loses_nothing(by_id: &mut HashMap<Uuid, Arc<TokenState>>) {
    by_id.retain(|_, state| Arc::strong_count(state) > 1 || !state.forgettable());
}

/// One token's counts taken out for a report.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) id: Uuid,
    pub(crate) allowed: u64,
    pub(crate) denied: u64,
    counts: Arc<Counts>,
}

impl Taken {
    /// Keeps at most `max` of each count for this report and gives the rest back for
    /// the next (after a long outage a hot token can have more than one report carries).
    pub(crate) fn at_most(mut self, max: u64) -> Self {
        let extra = (
            self.allowed.saturating_sub(max),
            self.denied.saturating_sub(max),
        );
        if extra != (0, 0) {
            self.counts.give_back(extra.0, extra.1);
            self.allowed -= extra.0;
            self.denied -= extra.1;
        }
        self
    }

    /// Puts the counts back, for the next report.
    pub(crate) fn give_back(self) {
        self.counts.give_back(self.allowed, self.denied);
    }
}

impl TokenStates {
    /// `counted`: whether cache hits are counted for usage reports.
    pub(crate) fn new(counted: bool) -> Self {
        Self {
            anchor: Instant::now(),
            by_id: Mutex::default(),
            counted,
            prune_at: std::sync::atomic::AtomicUsize::new(PRUNE_FLOOR),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<TokenState>>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state of token `id` under `limit` (the limit Tessera's answer carried): the
    /// one it had while the limit is the same, a fresh limiter (same counts) when it
    /// changed.
    pub(crate) fn for_token(&self, id: Uuid, limit: Option<RateLimit>) -> Arc<TokenState> {
        let mut by_id = self.lock();
        if let Some(state) = by_id.get(&id)
            && state.limit == limit
        {
            return Arc::clone(state);
        }
        let counts = by_id
            .get(&id)
            .map(|state| Arc::clone(&state.counts))
            .unwrap_or_default();
        let state = Arc::new(TokenState {
            limit,
            limiter: limit
                .and_then(quota)
                .map(|quota| RateLimiter::direct_with_clock(quota, DefaultClock::default())),
            counts,
            counted: self.counted,
            last_used: AtomicU64::new(0),
            anchor: self.anchor,
        });
        by_id.insert(id, Arc::clone(&state));
        if by_id.len() >= self.prune_at.load(Ordering::Relaxed) {
            forget_what_loses_nothing(&mut by_id);
            self.prune_at
                .store((by_id.len() * 2).max(PRUNE_FLOOR), Ordering::Relaxed);
        }
        state
    }

    /// Takes every pending count out, to report; forgets states that lose nothing by
    /// it and that no cached answer holds.
    pub(crate) fn take(&self) -> Vec<Taken> {
        let mut by_id = self.lock();
        forget_what_loses_nothing(&mut by_id);
        by_id
            .iter()
            .filter_map(|(id, state)| {
                let (allowed, denied) = state.counts.take();
                (allowed > 0 || denied > 0).then(|| Taken {
                    id: *id,
                    allowed,
                    denied,
                    counts: Arc::clone(&state.counts),
                })
            })
            .collect()
    }

    /// How many tokens have state.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, per_seconds: u32) -> Option<RateLimit> {
        Some(RateLimit {
            requests,
            per_seconds,
        })
    }

    #[test]
    fn a_token_keeps_its_limiter_and_counts_until_its_limit_changes() {
        let states = TokenStates::new(true);
        let id = Uuid::from_u128(7);
        let first = states.for_token(id, limit(2, 3600));
        assert_eq!(first.admit(true), Ok(()));
        assert_eq!(first.admit(false), Ok(()));
        let wait = first.admit(true).expect_err("the third is refused");
        assert!(wait > Duration::from_secs(1700), "{wait:?}");
        // Another answer about the same token (an edit, another permission): the same
        // limiter, still spent.
        let again = states.for_token(id, limit(2, 3600));
        assert!(again.admit(true).is_err());
        // A new limit: a fresh limiter, the same counts.
        let raised = states.for_token(id, limit(5, 3600));
        assert_eq!(raised.admit(true), Ok(()));
        drop((first, again, raised));
        let taken = states.take();
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].allowed, taken[0].denied), (2, 2));
        // Given back, reported next time.
        taken.into_iter().for_each(Taken::give_back);
        let taken = states.take();
        assert_eq!((taken[0].allowed, taken[0].denied), (2, 2));
        // Nothing pending, but the limiter is not idle for its period: kept.
        assert!(states.take().is_empty());
        assert_eq!(states.len(), 1);
    }

    #[test]
    fn unlimited_tokens_are_forgotten_once_reported_and_uncached() {
        let states = TokenStates::new(true);
        let held = states.for_token(Uuid::from_u128(1), None);
        let dropped = states.for_token(Uuid::from_u128(2), None);
        held.admit(true).unwrap();
        dropped.admit(true).unwrap();
        drop(dropped);
        assert_eq!(states.take().len(), 2);
        assert!(states.take().is_empty());
        // The one a cached answer still holds stays.
        assert_eq!(states.len(), 1);
        drop(held);
    }

    #[test]
    fn a_report_carries_at_most_its_bound_and_keeps_the_rest() {
        let states = TokenStates::new(true);
        let state = states.for_token(Uuid::from_u128(9), None);
        for _ in 0..5 {
            state.admit(true).unwrap();
        }
        let taken: Vec<Taken> = states.take().into_iter().map(|t| t.at_most(3)).collect();
        assert_eq!((taken[0].allowed, taken[0].denied), (3, 0));
        let rest = states.take();
        assert_eq!(
            (rest[0].allowed, rest[0].denied),
            (2, 0),
            "the rest goes next time"
        );
    }

    #[test]
    fn without_reports_nothing_is_counted_and_idle_states_are_forgotten() {
        let states = TokenStates::new(false);
        for n in 0..(PRUNE_FLOOR as u128 * 4) {
            let state = states.for_token(Uuid::from_u128(n), None);
            state.admit(true).unwrap();
            assert!(state.counts.is_empty(), "not counted without reports");
        }
        // Each state was dropped as soon as it was used: the table never holds more
        // than its pruning floor.
        assert!(states.len() <= PRUNE_FLOOR, "{}", states.len());
    }
}
