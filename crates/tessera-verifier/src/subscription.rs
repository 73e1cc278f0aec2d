//! The change subscription: a long poll of Tessera's `GET /v1/changes`, resumed from
//! the last position it was given, that drops cached answers as changes arrive.
//!
//! Tessera lists a change only once the node answering has applied it to the index its
//! verify calls read, so an answer asked for after the drop is the new one. A change
//! names a token by id (the id is in every valid answer; the server's digests are
//! keyed with a pepper this process does not have); a catalog or project change, a
//! kind this crate does not know, or a `reset` drops everything.
//!
//! The subscription counts as current while its last successful answer was to a
//! request sent less than [`BOUND`] ago: every change Tessera had applied by then is
//! applied here. Past that, valid answers are reused only for the fallback TTL.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_api_types::ChangesPage;
use uuid::Uuid;

use crate::config::{StateCallback, SubscriptionState};
use crate::verifier::Shared;

/// How old the last successful subscription request may be for the cache to trust
/// answers past the fallback TTL: the SPEC's one-second bound.
pub const BOUND: Duration = Duration::from_secs(1);

/// The first and the longest wait between failed subscription requests.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LONGEST_BACKOFF: Duration = Duration::from_secs(5);

/// Whether, and as of when, the subscription follows Tessera.
pub(crate) struct Following {
    anchor: Instant,
    /// 1 + milliseconds after `anchor` at which the last successful request was sent;
    /// 0 while not following.
    current_as_of: AtomicU64,
    /// Bumped before every drop of cached answers: a verify call that started before
    /// a drop does not cache its answer (it may predate the change).
    generation: AtomicU64,
    /// What the latest drops covered, by the generation they produced: a verify call
    /// that overlapped drops keeps its answer when none was about its token.
    recent: Mutex<VecDeque<(u64, Dropped)>>,
    connected: AtomicBool,
    on_state: Option<StateCallback>,
}

impl std::fmt::Debug for Following {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Following")
            .field("connected", &self.connected)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Following {
    pub(crate) fn new(on_state: Option<StateCallback>) -> Self {
        Self {
            anchor: Instant::now(),
            current_as_of: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            connected: AtomicBool::new(false),
            on_state,
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.anchor).as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether every change Tessera applied up to less than [`BOUND`] ago is applied.
    pub(crate) fn is_current(&self) -> bool {
        let as_of = self.current_as_of.load(Ordering::Acquire);
        as_of != 0 && self.millis(Instant::now()) < as_of - 1 + BOUND.as_millis() as u64
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records a drop of `dropped` and moves the generation on; called before the
    /// answers are dropped.
    fn bump(&self, dropped: Dropped) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        recent.push_back((generation, dropped));
        while recent.len() > RECENT_DROPS {
            recent.pop_front();
        }
    }

    /// Whether a drop after `generation` may have concerned the token `id` (`None`: a
    /// refusal, which names no token, so any drop may have).
    pub(crate) fn dropped_since(&self, generation: u64, id: Option<Uuid>) -> bool {
        if self.generation() == generation {
            return false;
        }
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Drops older than the window are forgotten: assume they concerned it.
        if recent
            .front()
            .is_none_or(|(oldest, _)| *oldest > generation + 1)
        {
            return true;
        }
        recent
            .iter()
            .filter(|(at, _)| *at > generation)
            .any(|(_, dropped)| match (dropped, id) {
                (Dropped::Tokens(ids), Some(id)) => ids.contains(&id),
                _ => true,
            })
    }

    fn succeeded(&self, sent: Instant) {
        self.current_as_of
            .store(self.millis(sent) + 1, Ordering::Release);
        if !self.connected.swap(true, Ordering::AcqRel) {
            tracing::info!("following Tessera's changes");
            self.notify(SubscriptionState::Connected);
        }
    }

    /// Returns whether this is a transition (to log it once).
    fn failed(&self) -> bool {
        self.current_as_of.store(0, Ordering::Release);
        let was = self.connected.swap(false, Ordering::AcqRel);
        if was {
            self.notify(SubscriptionState::Disconnected);
        }
        was
    }

    fn notify(&self, state: SubscriptionState) {
        if let Some(callback) = &self.on_state {
            callback(state);
        }
    }
}

/// How many drops [`Following::dropped_since`] remembers.
const RECENT_DROPS: usize = 64;

/// What one drop of cached answers covered.
#[derive(Debug)]
enum Dropped {
    Everything,
    Tokens(HashSet<Uuid>),
}

/// Why one subscription request failed. Never carries the credential.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("{0}")]
    Transport(String),
    #[error(
        "Tessera refused the subscription credential ({0}); check the personal token and its role (tokens.read)"
    )]
    Refused(u16),
    #[error("Tessera answered {0}")]
    Status(u16),
    #[error("Tessera's answer is not a change page")]
    Body,
}

/// Follows the changes until the verifier is dropped (the task is aborted then).
pub(crate) async fn run(
    shared: Arc<Shared>,
    url: String,
    credential: String,
    wait: Duration,
    timeout: Duration,
) {
    let mut position: Option<i64> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let sent = Instant::now();
        let target = match position {
            Some(after) => format!("{url}?after={after}&wait_ms={}", wait.as_millis()),
            None => url.clone(),
        };
        match poll(&shared, &target, &credential, wait + timeout).await {
            Ok(page) => {
                apply(&shared, &page);
                position = Some(page.next);
                shared.following.succeeded(sent);
                backoff = FIRST_BACKOFF;
            }
            Err(problem) => {
                if shared.following.failed() || matches!(problem, PollError::Refused(_)) {
                    tracing::warn!(%problem, "cannot follow Tessera's changes; cached answers are trusted for the fallback TTL only");
                } else {
                    tracing::debug!(%problem, "still cannot follow Tessera's changes");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LONGEST_BACKOFF);
            }
        }
    }
}

async fn poll(
    shared: &Shared,
    target: &str,
    credential: &str,
    timeout: Duration,
) -> Result<ChangesPage, PollError> {
    let response = shared
        .http
        .get(target)
        .bearer_auth(credential)
        .timeout(timeout)
        .send()
        .await
        .map_err(|error| PollError::Transport(error.without_url().to_string()))?;
    let status = response.status().as_u16();
    match status {
        200 => response.json().await.map_err(|_| PollError::Body),
        401 | 403 => Err(PollError::Refused(status)),
        _ => Err(PollError::Status(status)),
    }
}

/// Drops what `page` makes stale.
fn apply(shared: &Shared, page: &ChangesPage) {
    if page.reset {
        shared.following.bump(Dropped::Everything);
        shared.answers.clear();
        return;
    }
    if page.changes.is_empty() {
        return;
    }
    let mut tokens = HashSet::new();
    let mut everything = false;
    for change in &page.changes {
        match change.kind.as_str() {
            "token" => match Uuid::parse_str(&change.key) {
                Ok(id) => {
                    tokens.insert(id);
                }
                Err(_) => everything = true,
            },
            // Users own personal tokens only, which this crate never accepts.
            "user" => {}
            // The catalog decides what read-only and full-access grant; a project's
            // tokens follow it; an unknown kind may matter: drop everything.
            _ => everything = true,
        }
    }
    // Recorded first: a verify call in flight across the drop does not cache an answer
    // about a token it covers.
    if everything {
        shared.following.bump(Dropped::Everything);
        shared.answers.clear();
    } else if !tokens.is_empty() {
        shared.following.bump(Dropped::Tokens(tokens.clone()));
        shared
            .answers
            .retain(|_, entry| entry.token_id().is_none_or(|id| !tokens.contains(&id)));
    }
    shared.count_changes(page.changes.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_unless_a_drop_since_it_was_asked_concerned_its_token() {
        let following = Following::new(None);
        let asked = following.generation();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(!following.dropped_since(asked, Some(a)));
        following.bump(Dropped::Tokens(HashSet::from([b])));
        assert!(!following.dropped_since(asked, Some(a)));
        assert!(following.dropped_since(asked, Some(b)));
        // A refusal names no token: any drop may have concerned it.
        assert!(following.dropped_since(asked, None));
        let later = following.generation();
        following.bump(Dropped::Everything);
        assert!(following.dropped_since(later, Some(a)));
        // Drops older than the window are assumed to concern everything.
        let old = following.generation();
        for _ in 0..=RECENT_DROPS {
            following.bump(Dropped::Tokens(HashSet::from([b])));
        }
        assert!(following.dropped_since(old, Some(a)));
        let recent = following.generation();
        following.bump(Dropped::Tokens(HashSet::from([b])));
        assert!(!following.dropped_since(recent, Some(a)));
    }

    #[test]
    fn the_subscription_is_current_only_after_a_success_within_the_bound() {
        let following = Following::new(None);
        assert!(!following.is_current());
        following.succeeded(Instant::now());
        assert!(following.is_current());
        following.failed();
        assert!(!following.is_current());
    }
}
