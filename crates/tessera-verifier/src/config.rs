//! How a [`Verifier`](crate::Verifier) is set up: the Tessera it asks, the credential
//! of its change subscription, the cache's size and lifetimes, and what to do when
//! Tessera cannot be reached.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What the verifier does when an answer is not in its cache and Tessera cannot be
/// reached (connection refused, timeout, a 5xx answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenUnreachable {
    /// Refuse (the layer answers 503 `unavailable`). The default: no request is let
    /// through on an answer Tessera could not confirm.
    #[default]
    FailClosed,
    /// Answer from the cache, valid or not, as long as the cached answer is at most
    /// `max_staleness` old; refuse otherwise. A token revoked during the outage keeps
    /// working for up to `max_staleness`: choose it knowingly.
    ServeStale { max_staleness: Duration },
}

/// Whether the change subscription is following Tessera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Following: cached answers are dropped as soon as Tessera reports a change.
    Connected,
    /// Not following (Tessera unreachable, or the credential refused): cached valid
    /// answers are trusted only for [`VerifierBuilder::fallback_ttl`].
    Disconnected,
}

/// Called with the subscription's new state on every transition.
pub type StateCallback = Arc<dyn Fn(SubscriptionState) + Send + Sync>;

/// Builds a [`Verifier`](crate::Verifier); see [`Verifier::builder`](crate::Verifier::builder).
#[derive(Clone)]
pub struct VerifierBuilder {
    pub(crate) base_url: String,
    pub(crate) credential: String,
    pub(crate) token_prefix: String,
    pub(crate) capacity: usize,
    pub(crate) negative_ttl: Duration,
    pub(crate) fallback_ttl: Duration,
    pub(crate) max_age: Duration,
    pub(crate) when_unreachable: WhenUnreachable,
    pub(crate) request_timeout: Duration,
    pub(crate) poll_wait: Duration,
    pub(crate) report_interval: Option<Duration>,
    pub(crate) on_state: Option<StateCallback>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("base_url", &self.base_url)
            .field("credential", &"<redacted>")
            .field("token_prefix", &self.token_prefix)
            .field("capacity", &self.capacity)
            .field("negative_ttl", &self.negative_ttl)
            .field("fallback_ttl", &self.fallback_ttl)
            .field("max_age", &self.max_age)
            .field("when_unreachable", &self.when_unreachable)
            .field("request_timeout", &self.request_timeout)
            .field("poll_wait", &self.poll_wait)
            .field("report_interval", &self.report_interval)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    pub(crate) fn new(base_url: &str, credential: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            credential: credential.to_owned(),
            token_prefix: "tsr".to_owned(),
            capacity: 10_000,
            negative_ttl: Duration::from_secs(1),
            fallback_ttl: Duration::from_secs(1),
            max_age: Duration::from_secs(60),
            when_unreachable: WhenUnreachable::FailClosed,
            request_timeout: Duration::from_secs(2),
            poll_wait: Duration::from_millis(500),
            report_interval: None,
            on_state: None,
        }
    }

    /// The deployment's `token_prefix` (default `tsr`). Strings with another prefix are
    /// refused as malformed without asking Tessera.
    pub fn token_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.token_prefix);
        self
    }

    /// How many answers the cache holds at most (default 10,000); the least useful
    /// go first when it is full.
    pub fn capacity(mut self, answers: usize) -> Self {
        self.capacity = answers.max(1);
        self
    }

    /// How long a refusal (unknown, expired, disabled, forbidden…) is reused
    /// (default 1 s). A token created or enabled meanwhile is refused for that long.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How long a valid answer is reused while the change subscription is down
    /// (default 1 s): the bound on a revocation while Tessera's changes cannot be
    /// followed.
    pub fn fallback_ttl(mut self, ttl: Duration) -> Self {
        self.fallback_ttl = ttl;
        self
    }

    /// How long a valid answer is reused at most while the subscription is up (default
    /// 60 s). Changes end it sooner; so do the token's `expires_at` and, for a
    /// regenerated token's previous secret, the end of its grace period, which Tessera's
    /// answer carries (`grace_ends_at`), since no change announces either.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// What to do when Tessera cannot be reached (default [`WhenUnreachable::FailClosed`]).
    pub fn when_unreachable(mut self, mode: WhenUnreachable) -> Self {
        self.when_unreachable = mode;
        self
    }

    /// The timeout of one verify call to Tessera (default 2 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long one subscription request waits for a change (default 500 ms, at most
    /// 900 ms). Each answer proves the subscription alive, so it stays well inside the
    /// one-second bound.
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait.min(Duration::from_millis(900));
        self
    }

    /// Turns usage reports on: the verifications answered from the cache are counted
    /// and reported to Tessera every `interval` (`POST /v1/usage-reports`; 2 s is a
    /// good choice, at least 100 ms), so its usage counts and `last_used_at` include
    /// them; Tessera writes them with its next usage flush (every 5 s), inside the
    /// SPEC's ten seconds. Nothing is sent while there is nothing to report.
    ///
    /// Off by default: reporting needs a credential with `tokens.update`, which can
    /// also edit tokens (see the crate README, "The credential").
    pub fn report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = Some(interval.max(Duration::from_millis(100)));
        self
    }

    /// Sends no usage reports and counts nothing for them (the default): Tessera's
    /// usage counts and `last_used_at` then see only the verifications it answered
    /// itself (cache misses).
    pub fn without_usage_reports(mut self) -> Self {
        self.report_interval = None;
        self
    }

    /// Called on every change of the subscription's state (for a metric or an alert).
    pub fn on_state_change(
        mut self,
        callback: impl Fn(SubscriptionState) + Send + Sync + 'static,
    ) -> Self {
        self.on_state = Some(Arc::new(callback));
        self
    }
}
