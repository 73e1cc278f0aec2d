//! Throttling of repeated failures (logins, verifications) per key, in memory, per node.
//!
//! A key may fail `max_failures` times within `window`, each answered normally; after
//! that it is blocked until the window that began with its first failure ends. Success does not count, so a
//! client that only presents good credentials is never slowed down.
//!
//! The table is bounded and never fails open: when it is full, windows that have ended
//! are dropped first, then the key whose failures were least recently counted is
//! forgotten to make room. A key under attack is touched by every attempt, so pushing it
//! out takes `capacity` other keys counted after its last attempt, which the callers
//! make expensive (logins reserve the client address's budget before any account key is
//! recorded).

use std::collections::hash_map::RandomState;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hashlink::LinkedHashMap;
use hashlink::linked_hash_map::Entry;

/// Most keys tracked at once (about 100 bytes each).
pub const MAX_KEYS: usize = 200_000;

#[derive(Debug)]
struct Window {
    started: DateTime<Utc>,
    failures: u32,
}

#[derive(Debug)]
struct Windows<K> {
    /// Least recently counted first. SipHash with a random key: the keys are chosen by
    /// clients.
    by_key: LinkedHashMap<K, Window, RandomState>,
    /// When a full table last made us forget a live key (logged once a minute at most).
    last_eviction_warning: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct FailureThrottle<K> {
    /// Names the throttle in logs.
    name: &'static str,
    max_failures: u32,
    window: chrono::Duration,
    capacity: usize,
    windows: Mutex<Windows<K>>,
}

/// The key an address is throttled under: IPv6 clients by their /64 (one host
/// usually holds a whole /64), IPv4 (also when mapped into IPv6) by address.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl<K: Hash + Eq + Clone> FailureThrottle<K> {
    /// A throttle tracking at most [`MAX_KEYS`] keys.
    pub fn new(name: &'static str, max_failures: u32, window: Duration) -> Self {
        Self::with_capacity(name, max_failures, window, MAX_KEYS)
    }

    /// A throttle tracking at most `capacity` keys (at least one).
    pub fn with_capacity(
        name: &'static str,
        max_failures: u32,
        window: Duration,
        capacity: usize,
    ) -> Self {
        Self {
            name,
            max_failures: max_failures.max(1),
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(1)),
            capacity: capacity.max(1),
            windows: Mutex::new(Windows {
                by_key: LinkedHashMap::with_hasher(RandomState::new()),
                last_eviction_warning: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows<K>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ended(&self, window: &Window, now: DateTime<Utc>) -> bool {
        window.started + self.window <= now
    }

    fn remaining(&self, window: &Window, now: DateTime<Utc>) -> Duration {
        (window.started + self.window - now)
            .to_std()
            .unwrap_or(Duration::from_secs(1))
    }

    /// The live window of `key`, started afresh when the old one ended, now the most
    /// recently used. Makes room in a full table by dropping ended windows, then the
    /// least recently used key; never leaves a key untracked.
    fn window<'a>(
        &self,
        windows: &'a mut Windows<K>,
        key: &K,
        now: DateTime<Utc>,
    ) -> &'a mut Window {
        // Ended windows at the front are as good as absent (amortized O(1)).
        while windows
            .by_key
            .front()
            .is_some_and(|(_, window)| self.ended(window, now))
        {
            windows.by_key.pop_front();
        }
        if windows.by_key.len() >= self.capacity && !windows.by_key.contains_key(key) {
            windows.by_key.pop_front();
            if windows
                .last_eviction_warning
                .is_none_or(|at| now - at >= chrono::Duration::minutes(1))
            {
                windows.last_eviction_warning = Some(now);
                tracing::warn!(
                    throttle = self.name,
                    capacity = self.capacity,
                    "failure throttle full: forgetting the least recently failed keys"
                );
            }
        }
        let window = match windows.by_key.entry(key.clone()) {
            Entry::Occupied(mut occupied) => {
                occupied.to_back();
                occupied.into_mut()
            }
            Entry::Vacant(vacant) => vacant.insert(Window {
                started: now,
                failures: 0,
            }),
        };
        if self.ended(window, now) {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window
    }

    /// How long `key` must wait, or `None` when it may try now.
    pub fn blocked_for(&self, key: &K, now: DateTime<Utc>) -> Option<Duration> {
        let windows = self.lock();
        let window = windows.by_key.get(key)?;
        (window.failures >= self.max_failures && !self.ended(window, now))
            .then(|| self.remaining(window, now))
    }

    /// Counts a failure of `key`; returns how long it is now blocked, if it is.
    pub fn record_failure(&self, key: &K, now: DateTime<Utc>) -> Option<Duration> {
        let mut windows = self.lock();
        let window = self.window(&mut windows, key, now);
        window.failures = window.failures.saturating_add(1);
        let failures = window.failures;
        (failures > self.max_failures).then(|| self.remaining(window, now))
    }

    /// Reserves an attempt for `key` before it is checked, so concurrent attempts
    /// cannot all pass a check made before any of them failed. `Ok` carries how many
    /// failures (and attempts still in flight) the key had before this one; `Err` the
    /// wait when it has no attempts left. Call [`FailureThrottle::forgive`] when the
    /// attempt succeeds.
    pub fn attempt(&self, key: &K, now: DateTime<Utc>) -> Result<u32, Duration> {
        let mut windows = self.lock();
        let window = self.window(&mut windows, key, now);
        if window.failures >= self.max_failures {
            return Err(self.remaining(window, now));
        }
        let before = window.failures;
        window.failures += 1;
        Ok(before)
    }

    /// Takes back one reserved attempt of `key`.
    pub fn forgive(&self, key: &K) {
        if let Some(window) = self.lock().by_key.get_mut(key) {
            window.failures = window.failures.saturating_sub(1);
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn clear(&self, key: &K) {
        self.lock().by_key.remove(key);
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let throttle = FailureThrottle::new("test", 3, Duration::from_secs(60));
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(throttle.record_failure(&"a", start), None);
        assert_eq!(throttle.record_failure(&"a", start), None);
        assert!(throttle.blocked_for(&"a", start).is_none());
        assert_eq!(
            throttle.record_failure(&"a", start),
            None,
            "the third is allowed"
        );
        assert_eq!(
            throttle.blocked_for(&"a", start),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            throttle.record_failure(&"a", start),
            Some(Duration::from_secs(60))
        );
        let later = start + chrono::Duration::seconds(20);
        assert_eq!(
            throttle.blocked_for(&"a", later),
            Some(Duration::from_secs(40))
        );
        assert!(
            throttle.blocked_for(&"b", later).is_none(),
            "keys are independent"
        );
        let after = start + chrono::Duration::seconds(60);
        assert!(throttle.blocked_for(&"a", after).is_none());
        assert_eq!(
            throttle.record_failure(&"a", after),
            None,
            "a new window starts"
        );
        throttle.clear(&"a");
        assert!(throttle.blocked_for(&"a", after).is_none());
    }

    #[test]
    fn attempts_are_reserved_before_they_are_checked() {
        let throttle = FailureThrottle::new("test", 2, Duration::from_secs(60));
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(throttle.attempt(&"a", now), Ok(0));
        assert_eq!(throttle.attempt(&"a", now), Ok(1));
        assert_eq!(
            throttle.attempt(&"a", now),
            Err(Duration::from_secs(60)),
            "two in flight use the budget"
        );
        throttle.forgive(&"a");
        assert_eq!(
            throttle.attempt(&"a", now),
            Ok(1),
            "a success gives its attempt back"
        );
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_failed_key_and_tracks_the_new_one() {
        let throttle = FailureThrottle::with_capacity("test", 2, Duration::from_secs(60), 3);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for key in ["b", "c", "d"] {
            assert_eq!(throttle.attempt(&key, now), Ok(0));
        }
        assert_eq!(throttle.len(), 3);
        assert_eq!(throttle.attempt(&"e", now), Ok(0));
        assert_eq!(throttle.attempt(&"e", now), Ok(1));
        assert_eq!(
            throttle.attempt(&"e", now),
            Err(Duration::from_secs(60)),
            "a key that arrives when the table is full is throttled like any other"
        );
        assert_eq!(throttle.len(), 3, "the table stays bounded");
        assert_eq!(throttle.attempt(&"c", now), Ok(1), "c is still counted");
        assert_eq!(
            throttle.attempt(&"b", now),
            Ok(0),
            "b, the least recently counted, made room"
        );
    }

    #[test]
    fn a_key_under_attack_is_not_pushed_out_by_quieter_ones() {
        let throttle = FailureThrottle::with_capacity("test", 2, Duration::from_secs(60), 3);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(throttle.attempt(&"victim".to_owned(), now), Ok(0));
        assert_eq!(throttle.attempt(&"victim".to_owned(), now), Ok(1));
        for i in 0..100 {
            let _ = throttle.attempt(&format!("flood {i}"), now);
            assert!(
                throttle.attempt(&"victim".to_owned(), now).is_err(),
                "still blocked after {i} other keys"
            );
        }
    }

    #[test]
    fn ended_windows_make_room_before_live_ones() {
        let throttle = FailureThrottle::with_capacity("test", 2, Duration::from_secs(60), 2);
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(throttle.attempt(&"old", start), Ok(0));
        let later = start + chrono::Duration::seconds(30);
        assert_eq!(throttle.attempt(&"live", later), Ok(0));
        assert_eq!(throttle.attempt(&"live", later), Ok(1));
        let after = start + chrono::Duration::seconds(60);
        assert_eq!(throttle.attempt(&"new", after), Ok(0));
        assert_eq!(throttle.len(), 2, "the ended window went first");
        assert!(
            throttle.attempt(&"live", after).is_err(),
            "the live one stayed"
        );
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
