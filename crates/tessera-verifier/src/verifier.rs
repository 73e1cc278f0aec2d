//! The [`Verifier`]: answers a presented token from its cache, asks Tessera's
//! `POST /v1/verify` on a miss, and drops cached answers when the change subscription
//! (see [`crate::subscription`]) reports a change.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tessera_api_types::{VerifiedToken, VerifyCode, VerifyResponse};
use tessera_core::{TokenFormat, TokenKind, TokenPrefix};

use crate::cache::{Answer, Answers, Entry, Keyer, Lifetimes};
use crate::config::{SubscriptionState, VerifierBuilder, WhenUnreachable};
use crate::report::ReportError;
use crate::subscription::Following;
use crate::tokens::TokenStates;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Tessera's verdict (or the format check's, `malformed`, made without asking;
    /// or `rate_limited` by the token's limit as counted here).
    #[error("the token was refused ({})", code.as_str())]
    Refused {
        code: VerifyCode,
        /// For `rate_limited`: how long to wait.
        retry_after: Option<Duration>,
    },
    /// Tessera could not be reached and no usable cached answer exists.
    #[error("Tessera cannot be reached to verify the token")]
    Unavailable,
}

/// The verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    TokenPrefix(String),
    #[error("the Tessera URL must start with http:// or https://")]
    BaseUrl,
    #[error("cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    #[error("the verifier must be built inside a Tokio runtime")]
    NoRuntime,
}

/// Counters of what the verifier did, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifierStats {
    /// Answers given from the cache.
    pub hits: u64,
    /// Questions sent to Tessera.
    pub misses: u64,
    /// Strings refused by the format check, without asking.
    pub malformed: u64,
    /// Verify calls to Tessera that failed (unreachable, timeout, 5xx).
    pub unreachable: u64,
    /// Answers served past their lifetime because Tessera was unreachable
    /// ([`WhenUnreachable::ServeStale`]).
    pub stale: u64,
    /// Changes applied from the subscription.
    pub changes: u64,
    /// Requests refused here by their token's rate limit.
    pub rate_limited: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    malformed: AtomicU64,
    unreachable: AtomicU64,
    stale: AtomicU64,
    changes: AtomicU64,
    rate_limited: AtomicU64,
}

/// The credential, kept for usage reports; never printed.
pub(crate) struct Credential(pub(crate) String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What the verifier and its subscription task share.
#[derive(Debug)]
pub(crate) struct Shared {
    format: TokenFormat,
    keyer: Keyer,
    pub(crate) answers: Answers,
    lifetimes: Lifetimes,
    when_unreachable: WhenUnreachable,
    pub(crate) http: reqwest::Client,
    verify_url: String,
    pub(crate) following: Following,
    counters: Counters,
    /// Per token: its rate limiter and the cache hits not yet reported.
    pub(crate) tokens: TokenStates,
    pub(crate) report_url: String,
    pub(crate) credential: Credential,
}

impl Shared {
    pub(crate) fn count_changes(&self, n: usize) {
        self.counters.changes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// What `answer` says now. A valid answer is also subject to the token's rate
    /// limit as counted here, which counts every request this process admits for the
    /// token; `report` says whether Tessera has yet to hear of it (a cache hit) or
    /// counted it already (the answer it just gave).
    fn outcome(&self, answer: &Answer, report: bool) -> Result<Arc<VerifiedToken>, VerifyError> {
        match answer {
            Answer::Valid(token, state) => match state.admit(report) {
                Ok(()) => Ok(Arc::clone(token)),
                Err(wait) => {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    Err(VerifyError::Refused {
                        code: VerifyCode::RateLimited,
                        retry_after: Some(wait),
                    })
                }
            },
            Answer::Refused { code, retry_after } => Err(VerifyError::Refused {
                code: *code,
                retry_after: *retry_after,
            }),
        }
    }
}

/// Verifies Tessera API tokens in-process. Cheap to clone (all clones share one cache
/// and one subscription); the subscription stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Verifier {
    shared: Arc<Shared>,
    _task: Arc<TaskGuard>,
}

/// Stops the subscription and report tasks when the last [`Verifier`] goes.
#[derive(Debug)]
struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Verifier {
    /// Starts building a verifier for the Tessera at `base_url` (e.g.
    /// `https://tessera.internal:8080`). `credential` is a personal token of an admin:
    /// it authenticates the change subscription (`tokens.read`) and the usage reports
    /// of cache hits (`tokens.update`), never a verify call. A full personal token of a
    /// role with just those two permissions is the least it takes; with a read-only
    /// one (a `viewer`'s, say) the cache works but Tessera refuses the usage reports,
    /// so `last_used_at` and usage counts miss the cache hits (a warning is logged).
    pub fn builder(base_url: &str, credential: &str) -> VerifierBuilder {
        VerifierBuilder::new(base_url, credential)
    }

    pub(crate) fn build(builder: VerifierBuilder) -> Result<Self, BuildError> {
        let prefix = TokenPrefix::new(&builder.token_prefix).map_err(BuildError::TokenPrefix)?;
        if !(builder.base_url.starts_with("http://") || builder.base_url.starts_with("https://")) {
            return Err(BuildError::BaseUrl);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let http = reqwest::Client::builder()
            .timeout(builder.request_timeout)
            .build()
            .map_err(BuildError::Http)?;
        let following = Following::new(builder.on_state.clone());
        let shared = Arc::new(Shared {
            format: TokenFormat::new(prefix),
            keyer: Keyer::random(),
            answers: Answers::new(builder.capacity),
            lifetimes: Lifetimes {
                negative: builder.negative_ttl,
                fallback: builder.fallback_ttl,
                max_age: builder.max_age,
            },
            when_unreachable: builder.when_unreachable,
            http,
            verify_url: format!("{}/v1/verify", builder.base_url),
            following,
            counters: Counters::default(),
            tokens: TokenStates::new(builder.report_interval.is_some()),
            report_url: format!("{}/v1/usage-reports", builder.base_url),
            credential: Credential(builder.credential.clone()),
        });
        let mut tasks = vec![runtime.spawn(crate::subscription::run(
            Arc::clone(&shared),
            format!("{}/v1/changes", builder.base_url),
            builder.credential,
            builder.poll_wait,
            builder.request_timeout,
        ))];
        if let Some(interval) = builder.report_interval {
            tasks.push(runtime.spawn(crate::report::run(Arc::clone(&shared), interval)));
        }
        Ok(Self {
            shared,
            _task: Arc::new(TaskGuard(tasks)),
        })
    }

    /// Verifies `token` for `permission` (`resource.action`) and `project`, as
    /// `POST /v1/verify` would: from the cache when it can, asking Tessera when not.
    /// A string that fails the token format, or a personal token, is refused without
    /// any I/O.
    pub async fn verify(
        &self,
        token: &str,
        permission: Option<&str>,
        project: Option<&str>,
    ) -> Result<Arc<VerifiedToken>, VerifyError> {
        let shared = &*self.shared;
        let key = match self.cached(token, permission, project) {
            Lookup::Answer(answer) => return answer,
            Lookup::Miss(key) => key,
        };
        shared.counters.misses.fetch_add(1, Ordering::Relaxed);
        let generation = shared.following.generation();
        let asked_at = Instant::now();
        match self.ask(token, permission, project).await {
            Ok((answer, tessera_now)) => {
                let result = shared.outcome(&answer, false);

                // A change reported while the question was out may not be in the
                // answer: keep it only if no drop since concerned its token.
                let entry = Entry::new(answer, asked_at, tessera_now);
                if !shared.following.dropped_since(generation, entry.token_id()) {
                    shared.answers.insert(key, entry);
                }
                result
            }
            Err(problem) => {
                shared.counters.unreachable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%problem, "cannot verify a token with Tessera");
                self.when_unreachable(&key)
            }
        }
    }

    /// [`Verifier::verify`] without I/O: the answer when the format check or the
    /// cache gives it (parse, keyed digest, lookup), `None` when Tessera must be asked.
    /// An answer given counts as a verification, as in `verify`: against the token's
    /// rate limit, and in the next usage report.
    pub fn verify_cached(
        &self,
        token: &str,
        permission: Option<&str>,
        project: Option<&str>,
    ) -> Option<Result<Arc<VerifiedToken>, VerifyError>> {
        match self.cached(token, permission, project) {
            Lookup::Answer(answer) => Some(answer),
            Lookup::Miss(_) => None,
        }
    }

    /// The cache part of [`Verifier::verify`]: parse, key, look up. Answers at once
    /// for a malformed or personal token and for a fresh cached answer.
    fn cached(&self, token: &str, permission: Option<&str>, project: Option<&str>) -> Lookup {
        let shared = &*self.shared;
        match shared.format.parse(token) {
            Ok(parsed) if parsed.kind == TokenKind::Api => {}
            // Personal tokens act on Tessera's own API only, as verify answers them.
            Ok(_) => return Lookup::Answer(Err(refused(VerifyCode::NotFound))),
            Err(_) => {
                shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
                return Lookup::Answer(Err(refused(VerifyCode::Malformed)));
            }
        }
        let key = shared.keyer.key(token, permission, project);
        if let Some(entry) = shared.answers.get(&key) {
            let following = shared.following.is_current();
            if shared.lifetimes.fresh(&entry, Instant::now(), following) {
                shared.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Lookup::Answer(shared.outcome(&entry.answer, true));
            }
        }
        Lookup::Miss(key)
    }

    fn when_unreachable(&self, key: &crate::cache::Key) -> Result<Arc<VerifiedToken>, VerifyError> {
        let shared = &*self.shared;
        let WhenUnreachable::ServeStale { max_staleness } = shared.when_unreachable else {
            return Err(VerifyError::Unavailable);
        };
        let Some(entry) = shared.answers.get(key) else {
            return Err(VerifyError::Unavailable);
        };
        let now = Instant::now();
        if now.saturating_duration_since(entry.asked_at) > max_staleness
            || entry.ends_at.is_some_and(|at| at <= now)
        {
            return Err(VerifyError::Unavailable);
        }
        shared.counters.stale.fetch_add(1, Ordering::Relaxed);
        shared.outcome(&entry.answer, true)
    }

    /// One `POST /v1/verify`: the answer, and Tessera's time when it answered (see
    /// [`tessera_now`]).
    async fn ask(
        &self,
        token: &str,
        permission: Option<&str>,
        project: Option<&str>,
    ) -> Result<(Answer, DateTime<Utc>), AskError> {
        let body = serde_json::json!({
            "token": token,
            "permission": permission,
            "project": project,
        });
        let response = self
            .shared
            .http
            .post(&self.shared.verify_url)
            .json(&body)
            .send()
            .await
            // Without the URL: reqwest's errors carry it, and nothing else of ours.
            .map_err(|error| AskError::Transport(error.without_url().to_string()))?;
        let status = response.status();
        let answered_at = tessera_now(response.headers().get(http::header::DATE));
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            // Tessera throttles this service's address for too many unknown tokens.
            return Ok((
                Answer::Refused {
                    code: VerifyCode::RateLimited,
                    retry_after: retry_after.or(Some(Duration::from_secs(1))),
                },
                answered_at,
            ));
        }
        if !status.is_success() {
            return Err(AskError::Status(status.as_u16()));
        }
        let answer: VerifyResponse = response.json().await.map_err(|_| AskError::Body)?;
        let answer = match (answer.valid, answer.token, answer.code) {
            (true, Some(token), _) if token.kind == TokenKind::Api => {
                let state = self.shared.tokens.for_token(token.id, token.rate_limit);
                Answer::Valid(Arc::new(token), state)
            }
            (true, Some(_), _) => Answer::Refused {
                code: VerifyCode::NotFound,
                retry_after: None,
            },
            (false, _, Some(code)) => Answer::Refused {
                code,
                retry_after: if code == VerifyCode::RateLimited {
                    retry_after.or(Some(Duration::from_secs(1)))
                } else {
                    None
                },
            },
            _ => return Err(AskError::Body),
        };
        Ok((answer, answered_at))
    }

    /// What the verifier did so far.
    pub fn stats(&self) -> VerifierStats {
        let counters = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        VerifierStats {
            hits: load(&counters.hits),
            misses: load(&counters.misses),
            malformed: load(&counters.malformed),
            unreachable: load(&counters.unreachable),
            stale: load(&counters.stale),
            changes: load(&counters.changes),
            rate_limited: load(&counters.rate_limited),
        }
    }

    /// Reports the verifications answered from the cache since the last report to
    /// Tessera now (`POST /v1/usage-reports`), as the report task does every
    /// [`VerifierBuilder::report_interval`]; answers how many tokens Tessera recorded.
    /// Call it before shutting down, so the last interval's hits are not lost.
    pub async fn report_usage(&self) -> Result<usize, ReportError> {
        crate::report::send(&self.shared).await
    }

    /// Whether the change subscription is following Tessera now.
    pub fn subscription_state(&self) -> SubscriptionState {
        if self.shared.following.is_current() {
            SubscriptionState::Connected
        } else {
            SubscriptionState::Disconnected
        }
    }

    /// How many answers the cache holds.
    pub fn cached_answers(&self) -> usize {
        self.shared.answers.len()
    }
}

/// What the cache knows about a question.
#[derive(Debug)]
enum Lookup {
    /// The answer, without asking Tessera.
    Answer(Result<Arc<VerifiedToken>, VerifyError>),
    /// Not cached (or no longer fresh): Tessera must be asked.
    Miss(crate::cache::Key),
}

/// Why a verify call to Tessera failed. Never carries the token.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("{0}")]
    Transport(String),
    #[error("Tessera answered {0}")]
    Status(u16),
    #[error("Tessera's answer is not a verify answer")]
    Body,
}

fn refused(code: VerifyCode) -> VerifyError {
    VerifyError::Refused {
        code,
        retry_after: None,
    }
}

/// Tessera's time when it answered, from the answer's `Date` header, for reading the
/// answer's wall-clock times (`expires_at`, `grace_ends_at`) against Tessera's clock
/// rather than this host's, so clock skew between the hosts does not stretch them.
/// `Date` counts whole seconds, cut down: a second is added, so a cached answer ends
/// early (a miss Tessera answers) rather than late. Without a usable `Date`, this host's
/// clock.
fn tessera_now(date: Option<&http::HeaderValue>) -> DateTime<Utc> {
    date.and_then(|value| value.to_str().ok())
        .and_then(|text| DateTime::parse_from_rfc2822(text).ok())
        .map_or_else(Utc::now, |date| {
            date.with_timezone(&Utc) + chrono::Duration::seconds(1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tessera_time_comes_from_the_date_header_a_second_late() {
        let date = http::HeaderValue::from_static("Thu, 03 Dec 2026 14:20:00 GMT");
        assert_eq!(
            tessera_now(Some(&date)).to_rfc3339(),
            "2026-12-03T14:20:01+00:00"
        );
        // Without a usable header, this host's clock.
        let before = Utc::now();
        for header in [None, Some(&http::HeaderValue::from_static("yesterday"))] {
            let now = tessera_now(header);
            assert!(now >= before && now <= Utc::now(), "{now}");
        }
    }
}
