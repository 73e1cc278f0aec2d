//! Tessera's application services: the one layer every surface (REST, GraphQL, the
//! admin UI, the CLI) calls. Each management call authorizes the caller, validates with
//! core, makes one store call that writes the change with its audit row, and brings
//! this node's verify index up to date before it returns.
//!
//! **Invariant:** a secret leaves this crate only inside the one response that reveals
//! it ([`tessera_api_types::CreatedToken`]).

pub mod audit;
pub mod auth;
pub mod background;
pub mod catalog;
pub mod changes;
pub mod clock;
mod context;
pub mod error;
pub mod first_run;
pub mod forward;
pub mod import;
pub mod metrics;
pub mod password;
pub mod pepper;
pub mod personal;
pub mod principal;
pub mod roles;
pub mod throttle;
pub mod token_listing;
pub mod tokens;
pub mod usage;
pub mod usage_reports;
pub mod users;
pub mod verify;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{ApiVersions, Pepper, TokenFormat};
use tessera_store::{Store, StoreError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AppError, AppResult};
pub use principal::{Principal, Via};
pub use verify::{RenderedVerdict, Verdict, VerifyQuery};

pub use audit::Audit;
pub use auth::Auth;
pub use catalog::CatalogService;
pub use personal::PersonalTokens;
pub use roles::Roles;
pub use tokens::Tokens;
pub use users::Users;

use crate::context::Context;
use crate::throttle::FailureThrottle;
use crate::usage::UsageRecorder;
use crate::verify::{Freshness, Verifier, VerifyIndex};

/// How long [`Tessera::ready`] waits for the database before it answers not ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the change feed keeps changes by default: 7 days.
pub const DEFAULT_CHANGE_FEED_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Changes deleted per pruning transaction, so that no prune holds the database (SQLite:
/// its write lock) for long.
const PRUNE_BATCH: u32 = 5_000;

/// What the application needs from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub token_format: TokenFormat,
    pub api_versions: ApiVersions,
    pub session_lifetime: Duration,
    /// Failed logins allowed per account, and per client address, per window.
    pub login_failures_per_account: u32,
    pub login_failures_per_address: u32,
    pub login_failure_window: Duration,
    /// Failed verifications allowed per client address per window.
    pub verify_failures_per_address: u32,
    pub verify_failure_window: Duration,
    /// How far behind the database the verify index may fall (its last successful
    /// catch-up with the change feed that long ago, e.g. while the database is
    /// unreachable) before verification refuses to answer from it; `None`: never.
    pub max_staleness: Option<Duration>,
    /// What forward-auth requires of each route of the protected API.
    pub forward_auth: tessera_core::RouteRules,
    /// How long the change feed keeps a change before pruning may delete it; `None`:
    /// forever. A node further behind than this reloads its whole verify index.
    pub change_feed_retention: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_format: TokenFormat::default(),
            api_versions: ApiVersions::default(),
            session_lifetime: Duration::from_secs(12 * 3600),
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            login_failure_window: Duration::from_secs(300),
            verify_failures_per_address: 600,
            verify_failure_window: Duration::from_secs(60),
            max_staleness: Some(Duration::from_secs(300)),
            forward_auth: tessera_core::RouteRules::default(),
            change_feed_retention: Some(DEFAULT_CHANGE_FEED_RETENTION),
        }
    }
}

/// What [`Tessera::prune_change_feed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedPruning {
    /// Changes deleted.
    pub deleted: u64,
    /// Every change up to this sequence number has been pruned (0: none ever was).
    pub through: i64,
    /// Another node was pruning (PostgreSQL), so this one left it alone.
    pub busy: bool,
}

/// The application: this node (its verify index, the hot path, feed following and
/// upkeep) and the per-area management services every surface calls. Each service
/// holds only what its area needs; they share the store, the clock and the index
/// through a `Context` (`context.rs`).
#[derive(Debug)]
pub struct Tessera {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) index: Arc<VerifyIndex>,
    pub(crate) usage: Arc<UsageRecorder>,
    pub(crate) verifier: Arc<Verifier>,
    freshness: Freshness,
    pub(crate) metrics: Arc<metrics::Metrics>,
    tokens: Tokens,
    personal_tokens: PersonalTokens,
    users: Users,
    roles: Roles,
    catalog: CatalogService,
    audit: Audit,
    auth: Auth,
}

impl Tessera {
    /// Builds the application. The verify index starts empty: call [`Tessera::load`].
    pub fn new(
        store: Arc<dyn Store>,
        pepper: Pepper,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> AppResult<Self> {
        let metrics = Arc::new(
            metrics::Metrics::new().map_err(|error| AppError::Internal(error.to_string()))?,
        );
        let usage = Arc::new(UsageRecorder::default());
        let index = Arc::new(VerifyIndex::new(Arc::clone(&usage), Arc::clone(&clock)));
        let verifier = Arc::new(Verifier::new(
            settings.token_format.clone(),
            pepper.clone(),
            Arc::clone(&index),
            FailureThrottle::new(
                "verify failures per address",
                settings.verify_failures_per_address,
                settings.verify_failure_window,
            ),
            Arc::clone(&metrics),
        ));
        let freshness = Freshness::new(Arc::clone(&index), settings.max_staleness);
        let cx = Context::new(Arc::clone(&store), Arc::clone(&clock), Arc::clone(&index));
        let passwords = Arc::new(password::Passwords::default());
        let roles = Roles::new(cx.clone());
        let users = Users::new(cx.clone(), roles.clone(), Arc::clone(&passwords));
        let tokens = Tokens::new(cx.clone(), &settings, pepper.clone());
        let auth = Auth::new(
            cx.clone(),
            &settings,
            pepper,
            users.clone(),
            roles.clone(),
            passwords,
            Arc::clone(&verifier),
            freshness.clone(),
            Arc::clone(&metrics),
        );
        Ok(Self {
            personal_tokens: PersonalTokens::new(tokens.clone(), users.clone()),
            catalog: CatalogService::new(cx.clone(), settings.api_versions.clone()),
            audit: Audit::new(cx),
            tokens,
            users,
            roles,
            auth,
            metrics,
            store,
            settings,
            clock,
            index,
            usage,
            verifier,
            freshness,
        })
    }

    /// API tokens: create, list, edit, regenerate, duplicate, disable, upgrade,
    /// delete, usage, import.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Personal tokens: a user's own, and an admin's view of another user's.
    pub fn personal_tokens(&self) -> &PersonalTokens {
        &self.personal_tokens
    }

    /// Administrators.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// Admin roles.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// The resource catalog, projects and API versions.
    pub fn catalog(&self) -> &CatalogService {
        &self.catalog
    }

    /// The audit log.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Sign-in, sessions, management credentials, CSRF, first run.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// This node's metrics, with the state gauges read now.
    pub fn metrics(&self) -> &metrics::Metrics {
        self.metrics.set_state(&metrics::NodeState {
            index_tokens: self.index.len(),
            change_feed_lag: self.index.staleness(),
            pool: self.store.pool_state(),
        });
        &self.metrics
    }

    /// The metrics handles for recording, without reading the state gauges.
    pub fn record(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Loads the verify index from the store.
    pub async fn load(&self) -> AppResult<()> {
        self.index.load(self.store.as_ref()).await?;
        Ok(())
    }

    /// Applies changes made by other processes to the verify index.
    pub async fn follow_changes(&self) -> AppResult<()> {
        self.index.catch_up(self.store.as_ref()).await?;
        Ok(())
    }

    /// Fires when another process may have changed something, so the feed follower
    /// can catch up before its next poll (PostgreSQL); `None` where only polling works.
    pub fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.store.change_signal()
    }

    /// Deletes the changes older than [`Settings::change_feed_retention`] from the
    /// change feed, in batches; returns how many went. On PostgreSQL one node prunes at a
    /// time: while another does, this returns at once (`busy`).
    pub async fn prune_change_feed(&self) -> AppResult<FeedPruning> {
        let mut outcome = FeedPruning::default();
        let Some(retention) = self.settings.change_feed_retention else {
            return Ok(outcome);
        };
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let before = self
            .clock
            .now()
            .checked_sub_signed(retention)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        loop {
            let pruned = self.store.prune_changes(before, PRUNE_BATCH).await?;
            outcome.deleted += pruned.deleted;
            outcome.through = pruned.through;
            outcome.busy = pruned.busy;
            if pruned.busy || pruned.deleted < u64::from(PRUNE_BATCH) {
                return Ok(outcome);
            }
        }
    }

    /// How many times this node reloaded its verify index because changes it had not
    /// applied were pruned from the feed.
    pub fn index_reloads(&self) -> u64 {
        self.index.reloads()
    }

    /// Writes counted usage; returns how many token-days were written.
    pub async fn flush_usage(&self) -> AppResult<usize> {
        let index = Arc::clone(&self.index);
        let started = std::time::Instant::now();
        let written = self
            .usage
            .flush(self.store.as_ref(), self.clock.now(), move |id| {
                index.contains(id)
            })
            .await;
        self.metrics
            .usage_flushed(written.is_ok(), started.elapsed());
        Ok(written?)
    }

    /// Usage counted on this node and not written yet.
    pub fn pending_usage(&self) -> usage::PendingUsage {
        self.usage.pending()
    }

    /// How many tokens the verify index holds.
    pub fn indexed_tokens(&self) -> usize {
        self.index.len()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> AppResult<()> {
        self.store.ping().await?;
        Ok(())
    }

    /// Whether this node is ready to serve: the verify index catches up with the
    /// change feed, now, within [`READY_TIMEOUT`] (a round trip to the database that
    /// also proves it answers). A node that was cut off is therefore ready only once it
    /// has applied what it missed. On failure the index counts as behind until its next
    /// successful catch-up, and the answer is `Unavailable`.
    pub async fn ready(&self) -> AppResult<()> {
        let outcome =
            match tokio::time::timeout(READY_TIMEOUT, self.index.catch_up(self.store.as_ref()))
                .await
            {
                Ok(Ok(())) if self.index.is_current() => Ok(()),
                // An index that was never loaded has nothing to catch up with.
                Ok(Ok(())) => Err(StoreError::Unavailable(
                    "the verify index is not loaded".into(),
                )),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(StoreError::Unavailable(
                    format!("the verify index could not catch up within {READY_TIMEOUT:?}").into(),
                )),
            };
        outcome.map_err(|error| {
            self.index.mark_behind();
            error.into()
        })
    }

    /// How long ago the verify index last caught up with the change feed.
    pub fn index_staleness(&self) -> Duration {
        self.index.staleness()
    }

    /// Verifies a presented token (the hot path: no I/O).
    ///
    /// Answers from the in-memory index, also while the database is unreachable, until
    /// the index is more than [`Settings::max_staleness`] behind: then every call fails
    /// with [`AppError::StaleIndex`] rather than answer from data that old.
    pub fn verify(&self, query: VerifyQuery<'_>, client: Option<IpAddr>) -> AppResult<Verdict> {
        self.check_freshness()?;
        Ok(self.verifier.verify(query, client, self.clock.now()))
    }

    /// [`Tessera::verify`] with the answer ready to send: a valid token's answer comes
    /// from the index's bounded cache of rendered answers (rendered once on a miss).
    pub fn verify_rendered(
        &self,
        query: VerifyQuery<'_>,
        client: Option<IpAddr>,
    ) -> AppResult<RenderedVerdict> {
        self.check_freshness()?;
        Ok(self
            .verifier
            .verify_rendered(query, client, self.clock.now()))
    }

    /// `StaleIndex` once the index is further behind the feed than allowed.
    pub(crate) fn check_freshness(&self) -> AppResult<()> {
        self.freshness.check()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
