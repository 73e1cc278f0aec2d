//! The answer cache: bounded (quick_cache, least useful evicted first), keyed by a
//! per-process HMAC of the question, so neither a token nor its server digest is ever
//! held in memory past the call that presented it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_api_types::{VerifiedToken, VerifyCode};
use uuid::Uuid;

use crate::tokens::TokenState;

/// The key of one question: HMAC-SHA-256, under a random key made at start, of the
/// token, the permission and the project.
pub(crate) type Key = [u8; 32];

/// Makes cache keys. The keyed HMAC state is computed once and cloned per question.
#[derive(Clone)]
pub(crate) struct Keyer {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Keyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyer(<redacted>)")
    }
}

impl Keyer {
    pub(crate) fn random() -> Self {
        // A key of SHA-256's block size: HMAC uses it as it is.
        let mut key = [0u8; 64];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
        let keyed = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&key.into());
        Self { keyed }
    }

    pub(crate) fn key(&self, token: &str, permission: Option<&str>, project: Option<&str>) -> Key {
        let mut mac = self.keyed.clone();
        mac.update(token.as_bytes());
        // Each optional part is tagged and length-prefixed, so no two questions share
        // a key (`None` vs `Some("")`, or text moved from one part to the next).
        for part in [permission, project] {
            match part {
                None => mac.update(&[0]),
                Some(text) => {
                    mac.update(&[1]);
                    mac.update(&(text.len() as u64).to_le_bytes());
                    mac.update(text.as_bytes());
                }
            }
        }
        mac.finalize().into_bytes().into()
    }
}

/// What Tessera answered.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// A valid token, and its state here (rate limiter, unreported counts).
    Valid(Arc<VerifiedToken>, Arc<TokenState>),
    Refused {
        code: VerifyCode,
        retry_after: Option<Duration>,
    },
}

/// A cached answer and when the question was asked.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) answer: Answer,
    /// When the verify call that produced the answer was sent: the answer reflects
    /// Tessera's state at that instant or later.
    pub(crate) asked_at: Instant,
    /// When a valid answer stops being true without any change announcing it (on this
    /// process's monotonic clock): the token's `expires_at`, or the end of the grace
    /// period of the previous secret it was asked with, whichever comes first.
    pub(crate) ends_at: Option<Instant>,
}

impl Entry {
    /// `tessera_now`: Tessera's time when it answered (what its wall-clock times are
    /// read against).
    pub(crate) fn new(
        answer: Answer,
        asked_at: Instant,
        tessera_now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let ends_at = match &answer {
            Answer::Valid(token, _) => ends_at(token, asked_at, tessera_now),
            Answer::Refused { .. } => None,
        };
        Self {
            answer,
            asked_at,
            ends_at,
        }
    }

    /// The token id a cached valid answer is about.
    pub(crate) fn token_id(&self) -> Option<Uuid> {
        match &self.answer {
            Answer::Valid(token, _) => Some(token.id),
            Answer::Refused { .. } => None,
        }
    }
}

/// When the answer `token`, asked at `asked_at`, stops holding: the earlier of its
/// expiry and its grace end, as a monotonic instant. Tessera's times are wall-clock
/// times, read against Tessera's own clock at `now` (when it answered, from the
/// answer's `Date`) and counted from `asked_at` (earlier), so the entry ends no later
/// than Tessera's own answer changes, whatever this host's clock says.
fn ends_at(
    token: &VerifiedToken,
    asked_at: Instant,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Instant> {
    let at = match (token.expires_at, token.grace_ends_at) {
        (Some(expires), Some(grace)) => expires.min(grace),
        (at, None) | (None, at) => at?,
    };
    let left = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(asked_at + left)
}

/// How long cached answers may be reused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub(crate) negative: Duration,
    pub(crate) fallback: Duration,
    pub(crate) max_age: Duration,
}

impl Lifetimes {
    /// Whether `entry` may answer at `now`. `following` says the change subscription
    /// is up (every change Tessera applied up to a moment less than the bound ago has
    /// been applied here).
    pub(crate) fn fresh(&self, entry: &Entry, now: Instant, following: bool) -> bool {
        let age = now.saturating_duration_since(entry.asked_at);
        match entry.answer {
            Answer::Refused { .. } => age < self.negative,
            Answer::Valid(..) => {
                if entry.ends_at.is_some_and(|at| at <= now) {
                    return false;
                }
                age < self.fallback || (following && age < self.max_age)
            }
        }
    }
}

/// The bounded cache of answers.
pub(crate) type Answers = quick_cache::sync::Cache<Key, Entry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_question_is_in_the_key() {
        let keyer = Keyer::random();
        let token = "tsr_x";
        let keys = [
            keyer.key(token, None, None),
            keyer.key(token, Some(""), None),
            keyer.key(token, None, Some("")),
            keyer.key(token, Some("a.b"), None),
            keyer.key(token, Some("a.b"), Some("shop")),
            keyer.key("tsr_y", Some("a.b"), Some("shop")),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(keys[4], keyer.key(token, Some("a.b"), Some("shop")));
        assert_ne!(Keyer::random().key(token, None, None), keys[0]);
    }

    #[test]
    fn a_valid_answer_outlives_the_fallback_only_while_following() {
        let lifetimes = Lifetimes {
            negative: Duration::from_secs(1),
            fallback: Duration::from_secs(1),
            max_age: Duration::from_secs(60),
        };
        let start = Instant::now();
        let refused = Entry::new(
            Answer::Refused {
                code: VerifyCode::NotFound,
                retry_after: None,
            },
            start,
            chrono::Utc::now(),
        );
        let later = start + Duration::from_secs(2);
        assert!(lifetimes.fresh(&refused, start, true));
        assert!(!lifetimes.fresh(&refused, later, true));
        let token: VerifiedToken = serde_json::from_value(serde_json::json!({
            "id": Uuid::nil(), "name": "n", "kind": "api", "type": "read-only",
            "project": null, "api_version": "v1", "expires_at": null,
            "external_id": null, "metadata": {}
        }))
        .unwrap();
        let state = crate::tokens::TokenStates::new(true).for_token(token.id, None);
        let valid = Entry::new(
            Answer::Valid(Arc::new(token), state),
            start,
            chrono::Utc::now(),
        );
        assert!(lifetimes.fresh(&valid, later, true));
        assert!(!lifetimes.fresh(&valid, later, false));
        assert!(!lifetimes.fresh(&valid, start + Duration::from_secs(61), true));
    }

    #[test]
    fn a_valid_answer_ends_at_the_token_expiry_or_the_grace_end_whichever_is_first() {
        let mut token: VerifiedToken = serde_json::from_value(serde_json::json!({
            "id": Uuid::nil(), "name": "n", "kind": "api", "type": "read-only",
            "project": null, "api_version": "v1", "expires_at": null,
            "external_id": null, "metadata": {}
        }))
        .unwrap();
        // An answer from a Tessera without the newer fields reads as neither.
        assert_eq!(token.rate_limit, None);
        assert_eq!(token.grace_ends_at, None);
        let asked = Instant::now();
        let now = chrono::Utc::now();
        assert_eq!(ends_at(&token, asked, now), None);
        token.expires_at = Some(now + chrono::Duration::seconds(30));
        assert_eq!(
            ends_at(&token, asked, now),
            Some(asked + Duration::from_secs(30))
        );
        token.grace_ends_at = Some(now + chrono::Duration::seconds(2));
        assert_eq!(
            ends_at(&token, asked, now),
            Some(asked + Duration::from_secs(2))
        );
        token.expires_at = None;
        assert_eq!(
            ends_at(&token, asked, now),
            Some(asked + Duration::from_secs(2))
        );
        // Already over: ends at once.
        token.grace_ends_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(ends_at(&token, asked, now), Some(asked));
    }
}
