//! Verify Tessera API tokens inside a Rust service, without a
//! network round trip per request.
//!
//! A [`Verifier`] answers repeated tokens from a bounded in-process cache and asks
//! Tessera's `POST /v1/verify` only on a miss. It follows Tessera's change subscription
//! (`GET /v1/changes`, a long poll authenticated with a personal token whose role has
//! `tokens.read`), so a token that is deleted, disabled, regenerated or re-scoped stops
//! being accepted within one second, as on Tessera itself. While the subscription is
//! down, a valid answer is reused for the fallback TTL only (default 1 s).
//!
//! - A string that fails the token format or checksum is refused before any I/O, and a
//!   personal token (`tsrp_…`) is never accepted.
//! - Refusals are reused for at most the negative TTL (default 1 s).
//! - A valid answer is never reused past the token's `expires_at`, nor, for a
//!   regenerated token's previous secret, past the end of its grace period
//!   (`grace_ends_at` in the answer): neither is announced as a change.
//! - The token's rate limit (in the answer) is enforced here on every request this
//!   process admits for the token, cache hits included: per process, as Tessera counts
//!   per node. Over it, [`VerifyError::Refused`] with `rate_limited` and the wait.
//! - Cache hits can be reported to Tessera (`POST /v1/usage-reports`, by token id; off
//!   by default) so its usage counts and `last_used_at` include them; that needs
//!   `tokens.update` on the credential's role and a full (not read-only) personal
//!   token. See [`VerifierBuilder::report_interval`] and [`Verifier::report_usage`].
//! - Tessera unreachable: refused by default ([`WhenUnreachable::FailClosed`]), or
//!   answered from the cache up to a maximum staleness
//!   ([`WhenUnreachable::ServeStale`]). [`Verifier::subscription_state`],
//!   [`VerifierBuilder::on_state_change`] and [`Verifier::stats`] report the state.
//!
//! [`TesseraLayer`] puts it in front of any tower service (axum routers included).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::{Extension, Router, routing::get};
//! use tessera_verifier::{RouteRules, RouteRulesExt, TesseraLayer, VerifiedToken, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The same rules as forward-auth's `[forward_auth]` table.
//! let rules = RouteRules::from_toml(r#"
//!     default = "deny"
//!     [[rules]]
//!     methods = ["GET"]
//!     path = "/articles/**"
//!     permission = "article.find"
//! "#)?;
//! let verifier = Verifier::builder("http://127.0.0.1:8080", &std::env::var("TESSERA_CREDENTIAL")?)
//!     .build()?;
//!
//! let app = Router::new()
//!     .route("/articles/{id}", get(|Extension(token): Extension<Arc<VerifiedToken>>| async move {
//!         format!("hello, {}", token.name)
//!     }))
//!     .layer(TesseraLayer::with_rules(verifier, rules));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! **Boundary:** this crate depends on `tessera-core` and `tessera-api-types` only, and
//! speaks to Tessera over HTTP.

mod cache;
mod config;
mod layer;
mod report;
mod rules;
mod subscription;
mod tokens;
mod verifier;

pub use config::{StateCallback, SubscriptionState, VerifierBuilder, WhenUnreachable};
pub use layer::{Requirement, TesseraBody, TesseraLayer, TesseraService, presented_token};
pub use report::ReportError;
pub use rules::RouteRulesExt;
pub use subscription::BOUND;
pub use tessera_api_types::{ErrorBody, VerifiedToken, VerifyCode};
pub use tessera_core::route_rules::{ForwardAuthConfig, RouteRules, RuleConfig};
pub use verifier::{BuildError, Verifier, VerifierStats, VerifyError};

impl VerifierBuilder {
    /// Builds the verifier and starts its change subscription (on the current Tokio
    /// runtime).
    pub fn build(self) -> Result<Verifier, BuildError> {
        Verifier::build(self)
    }
}
