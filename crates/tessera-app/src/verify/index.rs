//! The node's in-memory verify index: token digest → what verification needs.
//!
//! It is loaded once at start and then kept current from the store's change feed
//! ([`VerifyIndex::catch_up`]); a lookup never touches the database, for a valid token
//! or an unknown one.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tessera_api_types::{VerifiedToken, VerifyResponse};
use tessera_core::{
    Catalog, ChangeKind, TokenDigest, TokenId, TokenKind, TokenRecord, TokenStatus, TokenType,
    UserId,
};
use tessera_store::{Store, StoreError, StoreResult};

use super::limits::{RateLimiters, TokenLimiter};
use crate::clock::Clock;
use crate::usage::{UsageCounters, UsageRecorder};

/// Hashes a digest by its first eight bytes. Digests are HMAC outputs under a secret
/// pepper, so they are uniformly spread and an attacker cannot aim collisions: SipHash's
/// flood protection buys nothing here and costs time on every lookup.
#[derive(Debug, Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

type DigestMap<V> = HashMap<TokenDigest, V, BuildHasherDefault<DigestHasher>>;

/// What verification needs to know about one token.
#[derive(Debug)]
pub struct IndexedToken {
    pub id: TokenId,
    pub name: String,
    pub kind: TokenKind,
    pub token_type: TokenType,
    pub permissions: HashSet<String>,
    pub project: Option<String>,
    pub owner_id: Option<UserId>,
    pub status: TokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub api_version: String,
    pub external_id: Option<String>,
    pub metadata: tessera_core::TokenMetadata,
    /// Shared with the token's next entries while its limit is unchanged (see
    /// [`super::limits`]).
    pub(crate) limiter: Option<Arc<TokenLimiter>>,
    pub usage: Arc<UsageCounters>,
    /// This token's `{"valid": true, "token": …}` answer, rendered once when the entry
    /// is built, so a valid verification serializes nothing.
    pub answer: Arc<str>,
}

impl IndexedToken {
    /// What a caller learns about this token when it verifies.
    pub fn summary(&self) -> VerifiedToken {
        VerifiedToken {
            id: self.id.0,
            name: self.name.clone(),
            kind: self.kind,
            token_type: self.token_type,
            project: self.project.clone(),
            api_version: self.api_version.clone(),
            expires_at: self.expires_at,
            external_id: self.external_id.clone(),
            metadata: self.metadata.clone(),
            rate_limit: self.limiter.as_deref().map(TokenLimiter::limit),
            grace_ends_at: None,
        }
    }

    /// The entry for `record`, its valid answer rendered now. A record whose answer
    /// cannot be rendered is an error (the load or catch-up fails and says so), never
    /// an entry that would answer with an empty body.
    fn new(record: &TokenRecord, kept: KeptState) -> StoreResult<Self> {
        let KeptState { usage, limiter } = kept;
        let mut token = Self {
            id: record.id,
            name: record.name.clone(),
            kind: record.kind,
            token_type: record.token_type,
            permissions: record.permissions.iter().cloned().collect(),
            project: record.project.clone(),
            owner_id: record.owner_id,
            status: record.status,
            expires_at: record.expires_at,
            api_version: record.api_version.clone(),
            external_id: record.external_id.clone(),
            metadata: record.metadata.clone(),
            limiter,
            usage,
            answer: Arc::from(""),
        };
        let answer = serde_json::to_string(&VerifyResponse::valid(token.summary()))
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        token.answer = answer.into();
        Ok(token)
    }

    /// Whether this token grants `permission` under `catalog`.
    pub fn grants(&self, catalog: &Catalog, permission: &str) -> bool {
        self.token_type
            .grants(&|p| self.permissions.contains(p), catalog, permission)
    }
}

/// A digest slot: the token, and for a superseded digest the end of its grace period.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub token: Arc<IndexedToken>,
    pub grace_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub(crate) struct IndexState {
    pub by_digest: DigestMap<Slot>,
    by_id: HashMap<TokenId, (TokenDigest, Option<TokenDigest>)>,
    pub catalog: Catalog,
    /// Owners who are deactivated (or gone): their personal tokens refuse at once.
    pub inactive_owners: HashSet<UserId>,
}

impl IndexState {
    fn remove(&mut self, id: TokenId) {
        if let Some((digest, grace)) = self.by_id.remove(&id) {
            self.by_digest.remove(&digest);
            if let Some(grace) = grace {
                self.by_digest.remove(&grace);
            }
        }
    }

    fn insert(&mut self, record: &TokenRecord, token: Arc<IndexedToken>) {
        self.remove(record.id);
        self.by_digest.insert(
            record.digest,
            Slot {
                token: Arc::clone(&token),
                grace_until: None,
            },
        );
        let grace = record.grace.map(|grace| {
            self.by_digest.insert(
                grace.digest,
                Slot {
                    token,
                    grace_until: Some(grace.until),
                },
            );
            grace.digest
        });
        self.by_id.insert(record.id, (record.digest, grace));
    }
}

/// The index and its position in the change feed.
#[derive(Debug)]
pub struct VerifyIndex {
    pub(crate) state: RwLock<IndexState>,
    /// The last change applied. The async mutex also serializes catch-ups.
    sequence: tokio::sync::Mutex<i64>,
    /// A copy of `sequence` readable without the lock: the change subscription
    /// (`GET /v1/changes`) hands out changes only up to what this index has applied.
    applied: AtomicI64,
    /// Whether [`VerifyIndex::load`] ran. An index that was never loaded (a CLI
    /// command that only writes) has nothing to keep current.
    loaded: std::sync::atomic::AtomicBool,
    /// How fresh the index is, on the monotonic clock (wall-clock jumps and the app's
    /// manual test clock do not move it).
    freshness: Freshness,
    /// Full reloads after falling behind the pruned feed (see `apply_changes`).
    reloads: AtomicU64,
    usage: Arc<UsageRecorder>,
    limiters: RateLimiters,
}

/// When the index last caught up with the feed, and whether it has since the last
/// failure.
#[derive(Debug)]
struct Freshness {
    anchor: Instant,
    /// Milliseconds after `anchor` at which the last successful catch-up *started*:
    /// the index holds at least every change committed before that instant.
    caught_up_at: AtomicU64,
    /// False from the start until the first successful catch-up, and from any failed
    /// catch-up (or failed readiness check) until the next successful one.
    current: AtomicBool,
}

impl Freshness {
    fn new() -> Self {
        Self {
            anchor: Instant::now(),
            caught_up_at: AtomicU64::new(0),
            current: AtomicBool::new(false),
        }
    }

    fn elapsed_millis(&self) -> u64 {
        u64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn succeeded(&self, started_at: u64) {
        self.caught_up_at.fetch_max(started_at, Ordering::Release);
        self.current.store(true, Ordering::Release);
    }

    fn failed(&self) {
        self.current.store(false, Ordering::Release);
    }
}

/// How many tokens a load or catch-up reads per query.
const PAGE: u32 = 1_000;

/// What a token's index entry takes over from its previous one: usage counted and
/// not yet written, and its rate limiter's state.
pub(crate) struct KeptState {
    usage: Arc<UsageCounters>,
    limiter: Option<Arc<TokenLimiter>>,
}

impl VerifyIndex {
    pub fn new(usage: Arc<UsageRecorder>, clock: Arc<dyn Clock>) -> Self {
        Self {
            limiters: RateLimiters::new(clock),
            state: RwLock::new(IndexState::default()),
            sequence: tokio::sync::Mutex::new(0),
            applied: AtomicI64::new(0),
            loaded: AtomicBool::new(false),
            freshness: Freshness::new(),
            reloads: AtomicU64::new(0),
            usage,
        }
    }

    /// How long ago the last successful catch-up with the change feed started (since
    /// the index was created, before the first): the most this node can be behind
    /// changes made elsewhere.
    pub fn staleness(&self) -> Duration {
        let freshness = &self.freshness;
        let at = freshness.caught_up_at.load(Ordering::Acquire);
        Duration::from_millis(freshness.elapsed_millis().saturating_sub(at))
    }

    /// Whether the index is loaded and its last catch-up succeeded: false from a
    /// failure (the database went away) until the next successful catch-up, so a node
    /// that reconnects applies what it missed before it calls itself ready.
    pub fn is_current(&self) -> bool {
        self.freshness.current.load(Ordering::Acquire)
    }

    /// Records that the database did not answer (a failed readiness check): the index
    /// is not current until its next successful catch-up.
    pub fn mark_behind(&self) {
        self.freshness.failed();
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, IndexState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IndexState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state `record`'s new entry keeps from its previous one. Takes the usage and
    /// limiter locks: never call it while the index is locked for writing.
    fn kept_state(&self, record: &TokenRecord) -> KeptState {
        KeptState {
            usage: self.usage.counters(record.id),
            limiter: self.limiters.for_token(record.id, record.rate_limit),
        }
    }

    /// The last change of the feed this index has applied (0 before the first load).
    pub fn applied_sequence(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether a token with `id` is in the index.
    pub fn contains(&self, id: TokenId) -> bool {
        self.read().by_id.contains_key(&id)
    }

    /// The kind of the token with `id`, if it is in the index.
    pub fn kind_of(&self, id: TokenId) -> Option<TokenKind> {
        let state = self.read();
        let (digest, _) = state.by_id.get(&id)?;
        state.by_digest.get(digest).map(|slot| slot.token.kind)
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads every token and the catalog. Changes made meanwhile are applied by the
    /// next catch-up, since the feed position is read before the tokens.
    pub async fn load(&self, store: &dyn Store) -> StoreResult<()> {
        let mut sequence = self.sequence.lock().await;
        self.load_locked(store, &mut sequence).await?;
        self.loaded.store(true, Ordering::Release);
        drop(sequence);
        self.catch_up(store).await
    }

    /// How many times a catch-up found that changes it had not applied were pruned
    /// from the feed, and reloaded the whole index instead.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// The body of [`VerifyIndex::load`], with the feed position locked: replaces the
    /// whole index and its position with no await in between, so a cancellation leaves
    /// the old index and position (both) in place.
    async fn load_locked(&self, store: &dyn Store, sequence: &mut i64) -> StoreResult<()> {
        let start = store.latest_change().await?;
        let catalog = Catalog::new(&store.list_resources().await?);
        let inactive_owners = store
            .list_users()
            .await?
            .into_iter()
            .filter(|user| !user.active)
            .map(|user| user.id)
            .collect();
        let mut fresh = IndexState {
            catalog,
            inactive_owners,
            ..IndexState::default()
        };
        let mut after = None;
        loop {
            let page = store.tokens_after(after, PAGE).await?;
            for record in &page {
                // `fresh` is not shared yet, so taking the usage lock here is safe.
                let token = IndexedToken::new(record, self.kept_state(record))?;
                fresh.insert(record, Arc::new(token));
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = Some(last.id),
                _ => break,
            }
        }
        self.limiters.retain(|id| fresh.by_id.contains_key(&id));
        *self.write() = fresh;
        *sequence = start;
        self.applied.store(start, Ordering::Release);
        Ok(())
    }

    /// Applies every change after the last one applied. Called by the feed follower
    /// on a timer and by this node's own writes before they answer. Records whether it
    /// succeeded: see [`VerifyIndex::staleness`] and [`VerifyIndex::is_current`].
    pub async fn catch_up(&self, store: &dyn Store) -> StoreResult<()> {
        if !self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut sequence = self.sequence.lock().await;
        // Taken once the lock is held: everything committed before this instant is
        // read by the queries below.
        let started_at = self.freshness.elapsed_millis();
        let result = self.apply_changes(store, &mut sequence).await;
        match &result {
            Ok(()) => self.freshness.succeeded(started_at),
            Err(_) => self.freshness.failed(),
        }
        result
    }

    /// The body of [`VerifyIndex::catch_up`], with the feed position locked. A
    /// cancellation (only ever at an await) leaves the index and `sequence` in step:
    /// each page is applied and its position recorded without an await in between.
    ///
    /// Pruning deletes the oldest changes (see [`Store::prune_changes`]). A node that
    /// fell behind the retained range (cut off from the database for longer than the
    /// retention, say) cannot apply what it missed: a page that does not start right
    /// after `sequence` may mean that (or only a gap in PostgreSQL's sequence numbers),
    /// so the recorded pruning boundary decides, and past it the whole index is loaded
    /// again before the feed is followed on.
    async fn apply_changes(&self, store: &dyn Store, sequence: &mut i64) -> StoreResult<()> {
        loop {
            let changes = store.changes_after(*sequence, PAGE).await?;
            let (Some(first), Some(last)) = (
                changes.first().map(|c| c.sequence),
                changes.last().map(|c| c.sequence),
            ) else {
                return Ok(());
            };
            if first > sequence.saturating_add(1) {
                let pruned_through = store.changes_pruned_through().await?;
                if pruned_through > *sequence {
                    tracing::warn!(
                        applied_through = *sequence,
                        pruned_through,
                        "this node fell behind the change feed's retained range (changes it \
                         had not applied were pruned): reloading the verify index"
                    );
                    self.load_locked(store, sequence).await?;
                    self.reloads.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let mut token_ids = Vec::new();
            let mut catalog_changed = false;
            let mut user_ids = Vec::new();
            for change in &changes {
                match change.kind {
                    ChangeKind::Token => {
                        if let Some(id) = TokenId::parse(&change.key) {
                            token_ids.push(id);
                        }
                    }
                    ChangeKind::Catalog => catalog_changed = true,
                    ChangeKind::User => {
                        if let Some(id) = UserId::parse(&change.key) {
                            user_ids.push(id);
                        }
                    }
                    ChangeKind::Project => {}
                }
            }
            token_ids.sort_unstable();
            token_ids.dedup();
            let records = store.get_tokens(&token_ids).await?;
            // A user's personal tokens follow their owner: a deactivated or removed
            // owner's tokens refuse (removal also deletes them, as token changes).
            let mut owners = Vec::with_capacity(user_ids.len());
            for id in user_ids {
                let active = store.get_user(id).await?.is_some_and(|user| user.active);
                owners.push((id, active));
            }
            let catalog = if catalog_changed {
                Some(Catalog::new(&store.list_resources().await?))
            } else {
                None
            };
            // Lock order: the usage map is never locked while the index is locked for
            // writing (the usage flush reads the index), so counters are fetched first.
            // The same for the rate limiters.
            let tokens = records
                .iter()
                .map(|record| IndexedToken::new(record, self.kept_state(record)).map(Arc::new))
                .collect::<StoreResult<Vec<_>>>()?;
            let mut state = self.write();
            for id in &token_ids {
                state.remove(*id);
            }
            for (record, token) in records.iter().zip(tokens) {
                state.insert(record, token);
            }
            let gone: Vec<TokenId> = token_ids
                .iter()
                .copied()
                .filter(|id| !state.by_id.contains_key(id))
                .collect();
            if let Some(catalog) = catalog {
                state.catalog = catalog;
            }
            for (id, active) in owners {
                if active {
                    state.inactive_owners.remove(&id);
                } else {
                    state.inactive_owners.insert(id);
                }
            }
            drop(state);
            if !gone.is_empty() {
                self.limiters.retain(|id| !gone.contains(&id));
            }
            *sequence = last;
            self.applied.store(last, Ordering::Release);
        }
    }
}
