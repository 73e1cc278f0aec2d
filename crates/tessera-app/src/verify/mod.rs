//! The verify hot path: parse and checksum (core) → HMAC under the pepper → lookup in
//! the in-memory index → rules → answer. No await, no I/O, no lock but the index's
//! read lock; usage is counted in atomics and flushed elsewhere.

mod freshness;
mod index;
mod interned;
mod limits;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera_api_types::{VerifiedToken, VerifyCode, VerifyResponse};
use tessera_core::{Pepper, TokenFormat, TokenKind, TokenStatus};

pub(crate) use freshness::Freshness;
pub(crate) use index::IndexState;
pub use index::{IndexedToken, VerifyIndex};
pub use interned::Shared;

use crate::throttle::FailureThrottle;

/// What a caller asks: the presented token, and optionally a permission and project.
#[derive(Clone, Copy)]
pub struct VerifyQuery<'a> {
    pub token: &'a str,
    pub permission: Option<&'a str>,
    pub project: Option<&'a str>,
}

impl std::fmt::Debug for VerifyQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyQuery")
            .field("token", &"<redacted>")
            .field("permission", &self.permission)
            .field("project", &self.project)
            .finish()
    }
}

/// The answer, with the wait a refused caller should observe when rate limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid(VerifiedToken),
    Invalid {
        code: VerifyCode,
        retry_after: Option<Duration>,
    },
}

impl Verdict {
    pub fn into_response(self) -> VerifyResponse {
        match self {
            Self::Valid(token) => VerifyResponse::valid(token),
            Self::Invalid { code, .. } => VerifyResponse::invalid(code),
        }
    }
}

/// A verification answer ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderedVerdict {
    /// The JSON text of `{"valid": true, "token": …}`.
    Valid(Arc<str>),
    /// The refusal, and for `rate_limited` how long to wait.
    Invalid {
        response: VerifyResponse,
        retry_after: Option<Duration>,
    },
}

/// Whose API a token is presented to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// The API Tessera protects: API tokens only.
    ProtectedApi,
    /// Tessera's own management API: personal tokens only.
    Tessera,
}

/// Checks presented tokens against the index.
#[derive(Debug)]
pub struct Verifier {
    format: TokenFormat,
    pepper: Pepper,
    index: std::sync::Arc<VerifyIndex>,
    failures: FailureThrottle<IpAddr>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Verifier {
    pub fn new(
        format: TokenFormat,
        pepper: Pepper,
        index: std::sync::Arc<VerifyIndex>,
        failures: FailureThrottle<IpAddr>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            format,
            pepper,
            index,
            failures,
            metrics,
        }
    }

    /// Verifies `query` at `now` for a caller at `client`.
    pub fn verify(
        &self,
        query: VerifyQuery<'_>,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Verdict {
        match self.accept_for(Audience::ProtectedApi, query, client, now) {
            Ok(accepted) => match accepted.summary() {
                Ok(summary) => Verdict::Valid(summary),
                Err(error) => {
                    // Refusing is the safe answer to an entry that cannot be read.
                    tracing::error!(%error, token_id = %accepted.token.id.0,
                        "a verify index entry's metadata does not read back");
                    Verdict::Invalid {
                        code: VerifyCode::NotFound,
                        retry_after: None,
                    }
                }
            },
            Err((code, retry_after)) => Verdict::Invalid { code, retry_after },
        }
    }

    /// [`Verifier::verify`] with the answer ready to send. A valid token's answer was
    /// rendered when its index entry was built, so this serializes nothing; only a
    /// previous secret in its grace period gets an answer of its own, which says when
    /// the grace ends (`grace_ends_at`), so caches know when to stop reusing it.
    pub fn verify_rendered(
        &self,
        query: VerifyQuery<'_>,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> RenderedVerdict {
        match self.accept_for(Audience::ProtectedApi, query, client, now) {
            Ok(Accepted {
                token,
                grace_until: None,
            }) => RenderedVerdict::Valid(token.answer()),
            Ok(Accepted {
                token,
                grace_until: Some(until),
            }) => RenderedVerdict::Valid(token.answer_in_grace(until)),
            Err((code, retry_after)) => RenderedVerdict::Invalid {
                response: Verdict::Invalid { code, retry_after }.into_response(),
                retry_after,
            },
        }
    }

    /// The token `query` presents, if every rule accepts it; the refusal otherwise.
    ///
    /// Failures count against the client address; once it is over its budget, every
    /// further failure answers `rate_limited`, so a scanner learns nothing more. Valid
    /// tokens keep verifying, so a gateway shared with a misbehaving client is not cut off.
    pub fn accept(
        &self,
        query: VerifyQuery<'_>,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<IndexedToken, (VerifyCode, Option<Duration>)> {
        self.accept_for(Audience::ProtectedApi, query, client, now)
            .map(|accepted| accepted.token)
    }

    /// [`Verifier::accept`] for a personal token presented to Tessera's own API.
    pub fn accept_personal(
        &self,
        query: VerifyQuery<'_>,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<IndexedToken, (VerifyCode, Option<Duration>)> {
        self.accept_for(Audience::Tessera, query, client, now)
            .map(|accepted| accepted.token)
    }

    fn accept_for(
        &self,
        audience: Audience,
        query: VerifyQuery<'_>,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, (VerifyCode, Option<Duration>)> {
        let started = std::time::Instant::now();
        let outcome = self
            .check(audience, query, now)
            .map_err(|(code, retry_after)| {
                // Only guessing counts against the client: a token that is not one, or
                // that no one issued. A real token refused for its permission, project,
                // expiry, status or rate is a caller doing its job.
                if !matches!(code, VerifyCode::Malformed | VerifyCode::NotFound) {
                    return (code, retry_after);
                }
                let blocked = client.and_then(|address| {
                    self.failures
                        .record_failure(&crate::throttle::address_key(address), now)
                });
                match blocked {
                    Some(wait) => (VerifyCode::RateLimited, Some(wait)),
                    None => (code, retry_after),
                }
            });
        self.metrics.verified(
            outcome.as_ref().err().map(|(code, _)| *code),
            started.elapsed(),
        );
        outcome
    }

    fn check(
        &self,
        audience: Audience,
        query: VerifyQuery<'_>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, (VerifyCode, Option<Duration>)> {
        let parsed = self
            .format
            .parse(query.token)
            .map_err(|_| (VerifyCode::Malformed, None))?;
        let digest = self.pepper.digest(&parsed.secret);
        let state = self.index.read();
        let (token, grace_until) = state.lookup(&digest).ok_or((VerifyCode::NotFound, None))?;
        if grace_until.is_some_and(|until| until <= now) {
            return Err((VerifyCode::NotFound, None));
        }
        // Personal tokens act on Tessera's own API only: the protected API (verify,
        // forward-auth) does not know them, with or without a permission.
        let expected = match audience {
            Audience::ProtectedApi => TokenKind::Api,
            Audience::Tessera => TokenKind::Personal,
        };
        if token.kind != parsed.kind || token.kind != expected {
            return Err((VerifyCode::NotFound, None));
        }
        let refuse = |code: VerifyCode, retry_after: Option<Duration>| {
            token.usage.denied();
            (code, retry_after)
        };
        // Checked in the order the SPEC lists the codes: a token that fails several
        // rules answers with the first.
        if tessera_core::lifecycle::is_expired(token.expires_at, now) {
            return Err(refuse(VerifyCode::Expired, None));
        }
        let owner_inactive = token
            .owner_id()
            .is_some_and(|owner| state.inactive_owners.contains(&owner));
        if token.status == TokenStatus::Disabled || owner_inactive {
            return Err(refuse(VerifyCode::Disabled, None));
        }
        if let Some(permission) = query.permission
            && !token.grants(&state.catalog, permission)
        {
            return Err(refuse(VerifyCode::Forbidden, None));
        }
        if let Some(bound) = &token.project
            && query.project != Some(bound.as_str())
        {
            return Err(refuse(VerifyCode::WrongProject, None));
        }
        if let Some(limiter) = &token.limiter
            && let Some(wait) = limits::check(limiter, now)
        {
            return Err(refuse(VerifyCode::RateLimited, Some(wait)));
        }
        token.usage.allowed(now);
        Ok(Accepted {
            token: token.clone(),
            grace_until,
        })
    }
}

/// A token every rule accepted, and, when the secret presented is its previous one
/// (regenerated with a grace period), when that grace ends.
struct Accepted {
    token: IndexedToken,
    grace_until: Option<DateTime<Utc>>,
}

impl Accepted {
    fn summary(&self) -> Result<VerifiedToken, serde_json::Error> {
        Ok(VerifiedToken {
            grace_ends_at: self.grace_until,
            ..self.token.summary()?
        })
    }
}
