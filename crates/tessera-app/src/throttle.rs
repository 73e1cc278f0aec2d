//! Throttling of repeated failures (logins, verifications) per key, in memory, per node.
//!
//! A key may fail `max_failures` times within `window`, each answered normally; after
//! that it is blocked until the window that began with its first failure ends. Success does not count, so a
//! client that only presents good credentials is never slowed down.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Entries kept before stale windows are swept, bounding memory under a flood of keys.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
struct Window {
    started: DateTime<Utc>,
    failures: u32,
}

#[derive(Debug)]
pub struct FailureThrottle<K> {
    max_failures: u32,
    window: chrono::Duration,
    windows: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq + Clone> FailureThrottle<K> {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(1)),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Window>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `key` must wait, or `None` when it may try now.
    pub fn blocked_for(&self, key: &K, now: DateTime<Utc>) -> Option<Duration> {
        let windows = self.lock();
        let window = windows.get(key)?;
        let ends = window.started + self.window;
        (window.failures >= self.max_failures && ends > now)
            .then(|| (ends - now).to_std().unwrap_or(Duration::from_secs(1)))
    }

    /// Counts a failure of `key`; returns how long it is now blocked, if it is.
    pub fn record_failure(&self, key: &K, now: DateTime<Utc>) -> Option<Duration> {
        let mut windows = self.lock();
        if windows.len() >= SWEEP_AT {
            let window = self.window;
            windows.retain(|_, w| w.started + window > now);
        }
        let entry = windows.entry(key.clone()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if entry.started + self.window <= now {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        let ends = entry.started + self.window;
        (entry.failures > self.max_failures)
            .then(|| (ends - now).to_std().unwrap_or(Duration::from_secs(1)))
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn clear(&self, key: &K) {
        self.lock().remove(key);
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
}
