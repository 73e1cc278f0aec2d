//! Throttling of repeated failures (logins, verifications) per key, in memory, per node.
//!
//! A key may fail `max_failures` times within `window`, each answered normally; after
//! that it is blocked until the window that began with its first failure ends. Success does not count, so a
//! client that only presents good credentials is never slowed down.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Size at which stale windows are swept (at most once a second).
const SWEEP_AT: usize = 10_000;
/// Most keys tracked at once; past it, new keys go untracked rather than letting a
/// flood of addresses grow memory without bound.
const MAX_KEYS: usize = 200_000;

#[derive(Debug)]
struct Window {
    started: DateTime<Utc>,
    failures: u32,
}

#[derive(Debug, Default)]
struct Windows<K> {
    by_key: HashMap<K, Window>,
    last_sweep: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct FailureThrottle<K> {
    max_failures: u32,
    window: chrono::Duration,
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
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(1)),
            windows: Mutex::new(Windows {
                by_key: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows<K>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remaining(&self, window: &Window, now: DateTime<Utc>) -> Duration {
        (window.started + self.window - now)
            .to_std()
            .unwrap_or(Duration::from_secs(1))
    }

    /// The live window of `key`, started afresh when the old one ended; `None` when
    /// the key is new and the table is full.
    fn window<'a>(
        &self,
        windows: &'a mut Windows<K>,
        key: &K,
        now: DateTime<Utc>,
    ) -> Option<&'a mut Window> {
        if windows.by_key.len() >= SWEEP_AT
            && windows
                .last_sweep
                .is_none_or(|at| now - at >= chrono::Duration::seconds(1))
        {
            let window = self.window;
            windows.by_key.retain(|_, w| w.started + window > now);
            windows.last_sweep = Some(now);
        }
        if windows.by_key.len() >= MAX_KEYS && !windows.by_key.contains_key(key) {
            return None;
        }
        let entry = windows.by_key.entry(key.clone()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if entry.started + self.window <= now {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        Some(entry)
    }

    /// How long `key` must wait, or `None` when it may try now.
    pub fn blocked_for(&self, key: &K, now: DateTime<Utc>) -> Option<Duration> {
        let windows = self.lock();
        let window = windows.by_key.get(key)?;
        (window.failures >= self.max_failures && window.started + self.window > now)
            .then(|| self.remaining(window, now))
    }

    /// Counts a failure of `key`; returns how long it is now blocked, if it is.
    pub fn record_failure(&self, key: &K, now: DateTime<Utc>) -> Option<Duration> {
        let mut windows = self.lock();
        let window = self.window(&mut windows, key, now)?;
        window.failures = window.failures.saturating_add(1);
        let failures = window.failures;
        (failures > self.max_failures).then(|| self.remaining(window, now))
    }

    /// Reserves an attempt for `key` before it is checked, so concurrent attempts
    /// cannot all pass a check made before any of them failed. `Err` carries the wait
    /// when the key has no attempts left. Call [`FailureThrottle::forgive`] when the
    /// attempt succeeds.
    pub fn attempt(&self, key: &K, now: DateTime<Utc>) -> Result<(), Duration> {
        let mut windows = self.lock();
        let Some(window) = self.window(&mut windows, key, now) else {
            return Ok(());
        };
        if window.failures >= self.max_failures {
            return Err(self.remaining(window, now));
        }
        window.failures += 1;
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let throttle = FailureThrottle::new(3, Duration::from_secs(60));
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
        let throttle = FailureThrottle::new(2, Duration::from_secs(60));
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(throttle.attempt(&"a", now), Ok(()));
        assert_eq!(throttle.attempt(&"a", now), Ok(()));
        assert_eq!(
            throttle.attempt(&"a", now),
            Err(Duration::from_secs(60)),
            "two in flight use the budget"
        );
        throttle.forgive(&"a");
        assert_eq!(
            throttle.attempt(&"a", now),
            Ok(()),
            "a success gives its attempt back"
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
