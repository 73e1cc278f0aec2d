//! Per-token rate limiters, kept outside the index entries.
//!
//! An index entry is rebuilt whenever its token changes (a rename, a new description,
//! a disable/enable), so a limiter inside it would start afresh on every edit and give
//! the token a new burst. The limiters live here instead, keyed by token, and an entry
//! keeps its token's limiter until the limit itself changes. They read the
//! application's clock, like every other time rule, so tests can move it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tessera_core::{RateLimit, TokenId};

use crate::clock::Clock;

/// `at` as a distance from the Unix epoch, the instants the limiters count in. Times
/// before 1970 count as 1970 (no clock Tessera runs on reads them).
pub(crate) fn since_epoch(at: DateTime<Utc>) -> Duration {
    (at - DateTime::UNIX_EPOCH)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// The application's clock, as governor reads clocks.
#[derive(Debug, Clone)]
pub(crate) struct AppClock(Arc<dyn Clock>);

impl governor::clock::Clock for AppClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        since_epoch(self.0.now())
    }
}

/// One token's limiter, with the limit it counts (which its verify answers carry).
#[derive(Debug)]
pub struct TokenLimiter {
    limit: RateLimit,
    gcra: RateLimiter<NotKeyed, InMemoryState, AppClock, NoOpMiddleware<Duration>>,
}

impl TokenLimiter {
    /// The limit this limiter counts.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }
}

/// Every rate-limited token's limiter, with the limit it was made for.
#[derive(Debug)]
pub(crate) struct RateLimiters {
    clock: AppClock,
    by_token: Mutex<HashMap<TokenId, (RateLimit, Arc<TokenLimiter>)>>,
}

impl RateLimiters {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock: AppClock(clock),
            by_token: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenId, (RateLimit, Arc<TokenLimiter>)>> {
        self.by_token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limiter for token `id` under `limit`: the one it had while the limit is the
    /// same, a fresh one when the limit changed, none without a limit.
    pub(crate) fn for_token(
        &self,
        id: TokenId,
        limit: Option<RateLimit>,
    ) -> Option<Arc<TokenLimiter>> {
        let mut by_token = self.lock();
        let Some(limit) = limit else {
            by_token.remove(&id);
            return None;
        };
        if let Some((current, limiter)) = by_token.get(&id)
            && *current == limit
        {
            return Some(Arc::clone(limiter));
        }
        let Some(quota) = quota(limit) else {
            by_token.remove(&id);
            return None;
        };
        let limiter = Arc::new(TokenLimiter {
            limit,
            gcra: RateLimiter::direct_with_clock(quota, self.clock.clone()),
        });
        by_token.insert(id, (limit, Arc::clone(&limiter)));
        Some(limiter)
    }

    /// Drops the limiters of tokens that are gone.
    pub(crate) fn retain(&self, mut keep: impl FnMut(TokenId) -> bool) {
        self.lock().retain(|id, _| keep(*id));
    }

    /// How many tokens have a limiter.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// `requests` per `per_seconds`, bursting up to `requests`; `None` for a limit that
/// allows nothing to be measured (zero requests or seconds are refused when saved).
fn quota(limit: RateLimit) -> Option<Quota> {
    let (burst, period) = limit.burst_and_period()?;
    Some(Quota::with_period(period)?.allow_burst(burst))
}

/// How long until `limiter` lets a verification through again, at `now` (at least a
/// second: `Retry-After` counts whole seconds); `None` when it lets one through now.
pub(crate) fn check(limiter: &TokenLimiter, now: DateTime<Utc>) -> Option<Duration> {
    limiter.gcra.check().err().map(|not_until| {
        not_until
            .wait_time_from(since_epoch(now))
            .max(Duration::from_secs(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limit(requests: u32, per_seconds: u32) -> Option<RateLimit> {
        Some(RateLimit {
            requests,
            per_seconds,
        })
    }

    #[test]
    fn a_token_keeps_its_limiter_until_its_limit_changes() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let limiters = RateLimiters::new(clock.clone());
        let id = TokenId(uuid::Uuid::nil());
        let first = limiters.for_token(id, limit(1, 3600)).expect("a limiter");
        assert_eq!(check(&first, clock.now()), None);
        let wait = check(&first, clock.now()).expect("the second is refused");
        assert!(wait > Duration::from_secs(3590), "{wait:?}");
        // The same limit (the token was edited otherwise): the same limiter, still spent.
        let again = limiters.for_token(id, limit(1, 3600)).expect("a limiter");
        assert!(check(&again, clock.now()).is_some());
        // The app's clock moves the limiter: an hour later it lets one through.
        clock.advance(chrono::Duration::hours(1));
        assert_eq!(check(&again, clock.now()), None);
        // A new limit starts afresh; no limit, no limiter.
        let raised = limiters.for_token(id, limit(5, 3600)).expect("a limiter");
        assert_eq!(check(&raised, clock.now()), None);
        assert!(limiters.for_token(id, None).is_none());
        assert_eq!(limiters.len(), 0);
    }

    #[test]
    fn limiters_of_gone_tokens_are_dropped() {
        let limiters = RateLimiters::new(Arc::new(ManualClock::new(Utc::now())));
        let kept = TokenId(uuid::Uuid::from_u128(1));
        let gone = TokenId(uuid::Uuid::from_u128(2));
        limiters.for_token(kept, limit(1, 60));
        limiters.for_token(gone, limit(1, 60));
        limiters.retain(|id| id == kept);
        assert_eq!(limiters.len(), 1);
    }
}
