//! The node's in-memory verify index: token digest → what verification needs.
//!
//! It is loaded once at start and then kept current from the store's change feed
//! ([`VerifyIndex::catch_up`]); a lookup never touches the database, for a valid token
//! or an unknown one.
//!
//! Memory layout, sized for millions of tokens (see ARCHITECTURE.md, "The verify
//! index"): each token is one allocation, its [`TokenFacts`] then its name and external
//! id, behind a thin pointer ([`IndexedToken`]) in a slab (`entries`), found through
//! two hash tables of 4-byte slab positions (by digest, grace digests included, and by
//! id) rather than maps that repeat 32-byte digests and 16-byte ids as keys. Strings
//! many tokens share (project, API version, metadata, custom permission sets) are
//! interned: one allocation per distinct value, a thin pointer per token. Usage
//! counters live in the entry. The valid answer is not kept per entry: it is rendered
//! on demand and kept in a bounded cache ([`IndexedToken::answer`]).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hashbrown::HashTable;
use tessera_api_types::VerifiedToken;
use tessera_core::{
    Catalog, ChangeKind, GraceDigest, TokenDigest, TokenId, TokenKind, TokenStatus, TokenType,
    UserId,
};
use tessera_store::{IndexRecord, Store, StoreError, StoreResult};
use triomphe::ThinArc;

use super::interned::{Interner, PermissionSet, Shared};
use super::limits::{RateLimiters, TokenLimiter};
use crate::clock::Clock;
use crate::usage::{UsageCounters, UsageRecorder};

/// A digest's hash: its first eight bytes. Digests are HMAC outputs under a secret
/// pepper, so they are uniformly spread and an attacker cannot aim collisions: SipHash's
/// flood protection buys nothing here and costs time on every lookup.
fn digest_hash(digest: &TokenDigest) -> u64 {
    let bytes = digest.as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// A serial number per entry, never reused: the key of its cached answer.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// How many rendered valid answers are kept (a few hundred bytes each): the tokens
/// verified most recently answer without rendering; any other renders once.
const ANSWER_CACHE_ENTRIES: usize = 16_384;

/// Rendered `{"valid":true,…}` answers by entry serial. An entry never changes (an
/// edit builds a new one with a new serial), so a cached answer is never stale.
static ANSWERS: LazyLock<quick_cache::sync::Cache<u64, Arc<str>>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(ANSWER_CACHE_ENTRIES));

/// One token's index entry: its [`TokenFacts`], with its name and external id in the
/// same allocation. A thin pointer: cloning it (a verify answer, a usage flush) counts a
/// reference; an entry never changes (an edit builds a new one).
#[derive(Clone)]
pub struct IndexedToken(ThinArc<TokenFacts, u8>);

/// What verification needs to know about one token, besides its name and external id
/// (held after it in the entry's allocation).
#[derive(Debug)]
pub struct TokenFacts {
    pub id: TokenId,
    pub kind: TokenKind,
    pub token_type: TokenType,
    pub status: TokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub project: Option<Shared>,
    pub api_version: Shared,
    /// The name's length in bytes: the text after the facts is the name, then the
    /// external id.
    name_len: u32,
    has_external_id: bool,
    /// The metadata object as JSON text (serde_json's: keys sorted, compact).
    metadata: Shared,
    /// A custom token's list; `None` for the other types (and an empty list).
    permissions: Option<PermissionSet>,
    digest: TokenDigest,
    /// What few tokens have, boxed so the others do not carry its room.
    rare: Option<Box<RareFacts>>,
    /// Shared with the token's next entries while its limit is unchanged (see
    /// [`super::limits`]).
    pub(crate) limiter: Option<Arc<TokenLimiter>>,
    /// Usage counted through this entry and not written yet (see [`crate::usage`]).
    pub usage: UsageCounters,
    serial: u64,
}

/// A personal token's owner, and a regenerated token's previous digest during its
/// grace period.
#[derive(Debug)]
struct RareFacts {
    owner_id: Option<UserId>,
    grace: Option<GraceDigest>,
}

impl std::ops::Deref for IndexedToken {
    type Target = TokenFacts;

    fn deref(&self) -> &TokenFacts {
        &self.0.header.header
    }
}

impl std::fmt::Debug for IndexedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedToken")
            .field("facts", &**self)
            .field("name", &self.name())
            .field("external_id", &self.external_id())
            .finish()
    }
}

impl TokenFacts {
    /// The owner of a personal token.
    pub fn owner_id(&self) -> Option<UserId> {
        self.rare.as_ref().and_then(|rare| rare.owner_id)
    }

    /// The previous secret's digest while it is in its grace period.
    fn grace(&self) -> Option<&GraceDigest> {
        self.rare.as_ref().and_then(|rare| rare.grace.as_ref())
    }
}

impl IndexedToken {
    /// The name and the external id, one after the other.
    fn text(&self) -> &str {
        // Built from a `String`'s bytes, so this never fails.
        std::str::from_utf8(&self.0.slice).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.text()
            .get(..self.name_len as usize)
            .unwrap_or_default()
    }

    pub fn external_id(&self) -> Option<&str> {
        if self.has_external_id {
            self.text().get(self.name_len as usize..)
        } else {
            None
        }
    }

    /// The metadata object as JSON text.
    pub fn metadata_json(&self) -> &str {
        &self.metadata
    }

    /// What a caller learns about this token when it verifies. Fails only if the
    /// metadata text, checked to be a JSON object when the entry was built, no longer
    /// reads as one.
    pub fn summary(&self) -> Result<VerifiedToken, serde_json::Error> {
        Ok(VerifiedToken {
            id: self.id.0,
            name: self.name().to_owned(),
            kind: self.kind,
            token_type: self.token_type,
            project: self.project.as_deref().map(str::to_owned),
            api_version: self.api_version.to_string(),
            expires_at: self.expires_at,
            external_id: self.external_id().map(str::to_owned),
            metadata: serde_json::from_str(&self.metadata)?,
            rate_limit: self.limiter.as_deref().map(TokenLimiter::limit),
            grace_ends_at: None,
        })
    }

    /// This token's `{"valid": true, "token": …}` answer: from the bounded answer
    /// cache (no allocation), or rendered now and cached.
    pub fn answer(&self) -> Arc<str> {
        if let Some(answer) = ANSWERS.get(&self.serial) {
            return answer;
        }
        let answer = self.render(None);
        ANSWERS.insert(self.serial, Arc::clone(&answer));
        answer
    }

    /// The answer to this token's previous secret while it is in its grace period:
    /// the same, with `grace_ends_at` (rendered each time: such answers are few).
    pub fn answer_in_grace(&self, grace_ends_at: DateTime<Utc>) -> Arc<str> {
        self.render(Some(grace_ends_at))
    }

    fn render(&self, grace_ends_at: Option<DateTime<Utc>>) -> Arc<str> {
        let mut rendered = Vec::with_capacity(256);
        self.render_answer(&mut rendered, grace_ends_at);
        String::from_utf8_lossy(&rendered).into()
    }

    /// Writes what `serde_json::to_string(&VerifyResponse::valid(self.summary()))`
    /// writes (a test holds the two equal), without building the summary.
    fn render_answer(&self, out: &mut Vec<u8>, grace_ends_at: Option<DateTime<Utc>>) {
        fn json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
            // Strings, enums, UUIDs and options of them always serialize.
            let _ = serde_json::to_writer(&mut *out, value);
        }
        out.extend_from_slice(br#"{"valid":true,"token":{"id":"#);
        json(out, &self.id.0);
        out.extend_from_slice(br#","name":"#);
        json(out, self.name());
        out.extend_from_slice(br#","kind":"#);
        json(out, &self.kind);
        out.extend_from_slice(br#","type":"#);
        json(out, &self.token_type);
        out.extend_from_slice(br#","project":"#);
        json(out, &self.project.as_deref());
        out.extend_from_slice(br#","api_version":"#);
        json(out, &*self.api_version);
        out.extend_from_slice(br#","expires_at":"#);
        let _ = tessera_api_types::token::rfc3339_opt(
            &self.expires_at,
            &mut serde_json::Serializer::new(&mut *out),
        );
        out.extend_from_slice(br#","external_id":"#);
        json(out, &self.external_id());
        out.extend_from_slice(br#","metadata":"#);
        out.extend_from_slice(self.metadata.as_bytes());
        out.extend_from_slice(br#","rate_limit":"#);
        json(out, &self.limiter.as_deref().map(TokenLimiter::limit));
        out.extend_from_slice(br#","grace_ends_at":"#);
        let _ = tessera_api_types::token::rfc3339_opt(
            &grace_ends_at,
            &mut serde_json::Serializer::new(&mut *out),
        );
        out.extend_from_slice(b"}}");
    }

    /// Whether this token grants `permission` under `catalog`.
    pub fn grants(&self, catalog: &Catalog, permission: &str) -> bool {
        self.token_type.grants(
            &|p| self.permissions.as_ref().is_some_and(|set| set.contains(p)),
            catalog,
            permission,
        )
    }
}

/// A position in the slab, with [`GRACE`] set for a superseded digest.
type Slot = u32;
const GRACE: Slot = 1 << 31;

fn entry_at(entries: &[Option<IndexedToken>], slot: Slot) -> Option<&IndexedToken> {
    entries.get((slot & !GRACE) as usize)?.as_ref()
}

fn digest_at(entries: &[Option<IndexedToken>], slot: Slot) -> Option<TokenDigest> {
    let token = entry_at(entries, slot)?;
    if slot & GRACE == 0 {
        Some(token.digest)
    } else {
        token.grace().map(|grace| grace.digest)
    }
}

#[derive(Debug, Default)]
pub(crate) struct IndexState {
    /// The slab: every token's entry; `None` where a removed one was (reused).
    entries: Vec<Option<IndexedToken>>,
    free: Vec<Slot>,
    by_digest: HashTable<Slot>,
    by_id: HashTable<Slot>,
    /// Token ids are not secret, so they are hashed with a keyed hasher.
    ids: RandomState,
    interner: Interner,
    pub catalog: Catalog,
    /// Owners who are deactivated (or gone): their personal tokens refuse at once.
    pub inactive_owners: HashSet<UserId>,
}

impl IndexState {
    fn id_hash(&self, id: TokenId) -> u64 {
        self.ids.hash_one(id)
    }

    /// The entry `digest` finds, with the end of its grace period when it is a
    /// superseded digest.
    pub(crate) fn lookup(
        &self,
        digest: &TokenDigest,
    ) -> Option<(&IndexedToken, Option<DateTime<Utc>>)> {
        let entries = &self.entries;
        let slot = *self.by_digest.find(digest_hash(digest), |&slot| {
            digest_at(entries, slot).as_ref() == Some(digest)
        })?;
        let token = entry_at(entries, slot)?;
        let grace_until = if slot & GRACE == 0 {
            None
        } else {
            token.grace().map(|grace| grace.until)
        };
        Some((token, grace_until))
    }

    fn slot_of(&self, id: TokenId) -> Option<Slot> {
        let entries = &self.entries;
        self.by_id
            .find(self.id_hash(id), |&slot| {
                entry_at(entries, slot).is_some_and(|token| token.id == id)
            })
            .copied()
    }

    pub(crate) fn contains(&self, id: TokenId) -> bool {
        self.slot_of(id).is_some()
    }

    /// The entry of the token with `id`.
    pub(crate) fn get(&self, id: TokenId) -> Option<&IndexedToken> {
        entry_at(&self.entries, self.slot_of(id)?)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &IndexedToken> {
        self.entries.iter().flatten()
    }

    fn unlink_digest(&mut self, digest: &TokenDigest, slot: Slot) {
        if let Ok(found) = self
            .by_digest
            .find_entry(digest_hash(digest), |&held| held == slot)
        {
            found.remove();
        }
    }

    /// Removes token `id`'s entry; answers it.
    fn remove(&mut self, id: TokenId) -> Option<IndexedToken> {
        let hash = self.id_hash(id);
        let entries = &self.entries;
        let found = self
            .by_id
            .find_entry(hash, |&slot| {
                entry_at(entries, slot).is_some_and(|token| token.id == id)
            })
            .ok()?;
        let (slot, _) = found.remove();
        let token = self.entries.get_mut(slot as usize)?.take()?;
        self.unlink_digest(&token.digest, slot);
        if let Some(grace) = token.grace() {
            self.unlink_digest(&grace.digest, slot | GRACE);
        }
        self.free.push(slot);
        Some(token)
    }

    fn link_digest(&mut self, digest: TokenDigest, slot: Slot) {
        let entries = &self.entries;
        let hash = digest_hash(&digest);
        match self.by_digest.find_entry(hash, |&held| {
            digest_at(entries, held).as_ref() == Some(&digest)
        }) {
            // The same digest under another entry (never, for real secrets): the newer
            // entry answers, as a map's insert would.
            Ok(mut found) => *found.get_mut() = slot,
            Err(_) => {
                self.by_digest.insert_unique(hash, slot, |&held| {
                    digest_at(entries, held).map_or(0, |digest| digest_hash(&digest))
                });
            }
        }
    }

    /// Puts `token` in the index in place of the entry its id had; answers that one.
    fn insert(&mut self, token: IndexedToken) -> Option<IndexedToken> {
        let previous = self.remove(token.id);
        let (id, digest, grace) = (token.id, token.digest, token.grace().map(|g| g.digest));
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(free) = self.entries.get_mut(slot as usize) {
                    *free = Some(token);
                }
                slot
            }
            None => {
                self.entries.push(Some(token));
                Slot::try_from(self.entries.len() - 1).unwrap_or(GRACE - 1)
            }
        };
        self.link_digest(digest, slot);
        if let Some(grace) = grace {
            self.link_digest(grace, slot | GRACE);
        }
        let hash = self.id_hash(id);
        let (entries, ids) = (&self.entries, &self.ids);
        self.by_id.insert_unique(hash, slot, |&held| {
            entry_at(entries, held).map_or(0, |token| ids.hash_one(token.id))
        });
        previous
    }

    /// The entry for `record`. A record whose metadata is not a JSON object is an
    /// error (the load or catch-up fails and says so).
    fn build(
        &mut self,
        record: &IndexRecord,
        limiter: Option<Arc<TokenLimiter>>,
    ) -> StoreResult<IndexedToken> {
        let interner = &mut self.interner;
        let mut text = String::with_capacity(
            record.name.len() + record.external_id.as_ref().map_or(0, String::len),
        );
        text.push_str(&record.name);
        if let Some(external_id) = &record.external_id {
            text.push_str(external_id);
        }
        let rare = (record.owner_id.is_some() || record.grace.is_some()).then(|| {
            Box::new(RareFacts {
                owner_id: record.owner_id,
                grace: record.grace,
            })
        });
        let facts = TokenFacts {
            id: record.id,
            kind: record.kind,
            token_type: record.token_type,
            status: record.status,
            expires_at: record.expires_at,
            project: record
                .project
                .as_deref()
                .map(|project| interner.string(project)),
            api_version: interner.string(&record.api_version),
            name_len: u32::try_from(record.name.len())
                .map_err(|_| StoreError::Backend("token name too long".into()))?,
            has_external_id: record.external_id.is_some(),
            metadata: interner.metadata(&record.metadata)?,
            permissions: interner.permissions(&record.permissions),
            digest: record.digest,
            rare,
            limiter,
            usage: UsageCounters::default(),
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
        };
        Ok(IndexedToken(ThinArc::from_header_and_slice(
            facts,
            text.as_bytes(),
        )))
    }
}

/// The index and its position in the change feed.
#[derive(Debug)]
pub struct VerifyIndex {
    /// Shared with the usage recorder, which reads the entries' counters.
    pub(crate) state: Arc<RwLock<IndexState>>,
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
    /// Shared with the thread that builds a load's entries.
    limiters: Arc<RateLimiters>,
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

/// How many changes a catch-up reads per query.
const PAGE: u32 = 1_000;

/// How many tokens a load reads per query. The rows held at once are a few pages'
/// (the one being built, [`LOAD_PAGES_AHEAD`] waiting, the one being read).
const LOAD_PAGE: u32 = 5_000;

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Pages read ahead of the one being built during a load.
const LOAD_PAGES_AHEAD: usize = 2;

impl VerifyIndex {
    pub fn new(usage: Arc<UsageRecorder>, clock: Arc<dyn Clock>) -> Self {
        let state = Arc::new(RwLock::new(IndexState::default()));
        usage.attach(Arc::clone(&state));
        Self {
            limiters: Arc::new(RateLimiters::new(clock)),
            state,
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

    /// The last change of the feed this index has applied (0 before the first load).
    pub fn applied_sequence(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether a token with `id` is in the index.
    pub fn contains(&self, id: TokenId) -> bool {
        self.read().contains(id)
    }

    pub fn len(&self) -> usize {
        self.read().len()
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
        // Keyset pages by id, read here while a blocking thread builds the entries of
        // the pages before: reading (the database, decoding its rows) and building (the
        // tables, interning) overlap on two cores instead of taking turns on one. A
        // page's rows are dropped once built, and at most `LOAD_PAGES_AHEAD` pages
        // wait, so rows are never all held at once. `fresh` is not shared until the
        // builder hands it back.
        let (pages, mut to_build) =
            tokio::sync::mpsc::channel::<Vec<IndexRecord>>(LOAD_PAGES_AHEAD);
        let limiters = Arc::clone(&self.limiters);
        // Should this load be abandoned (its future dropped), the builder stops at its
        // next page instead of building, and taking rate limiters for, stale records.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = SetOnDrop(Arc::clone(&abandoned));
        let builder = tokio::task::spawn_blocking(move || -> StoreResult<IndexState> {
            while let Some(page) = to_build.blocking_recv() {
                if abandoned.load(Ordering::Relaxed) {
                    break;
                }
                for record in &page {
                    let limiter = limiters.for_token(record.id, record.rate_limit);
                    let token = fresh.build(record, limiter)?;
                    fresh.insert(token);
                }
            }
            Ok(fresh)
        });
        let mut after = None;
        loop {
            let page = store.index_records_after(after, LOAD_PAGE).await?;
            let full = page.len() == LOAD_PAGE as usize;
            after = page.last().map(|last| last.id);
            // Refused only when the builder stopped on an error, which its result says.
            if pages.send(page).await.is_err() || !full {
                break;
            }
        }
        drop(pages);
        let mut fresh = builder
            .await
            .map_err(|error| StoreError::Backend(Box::new(error)))??;
        fresh.interner.kept = fresh.interner.len();
        self.limiters.retain(|id| fresh.contains(id));
        let previous = std::mem::replace(&mut *self.write(), fresh);
        *sequence = start;
        self.applied.store(start, Ordering::Release);
        // Counting happens under the read lock, so the replaced entries count no more:
        // what they hold still goes out with the next flush.
        self.usage.retire(previous.entries());
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
            let records: Vec<IndexRecord> = store
                .get_tokens(&token_ids)
                .await?
                .iter()
                .map(IndexRecord::from)
                .collect();
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
            // Lock order: the rate limiters are never locked while the index is locked
            // for writing, so they are fetched first.
            let limiters: Vec<Option<Arc<TokenLimiter>>> = records
                .iter()
                .map(|record| self.limiters.for_token(record.id, record.rate_limit))
                .collect();
            let mut replaced = Vec::new();
            let mut state = self.write();
            // Built under the lock, which the interner needs; a record that cannot be
            // built fails the catch-up before anything is changed.
            let mut tokens = Vec::with_capacity(records.len());
            for (record, limiter) in records.iter().zip(limiters) {
                tokens.push(state.build(record, limiter)?);
            }
            for id in &token_ids {
                replaced.extend(state.remove(*id));
            }
            for token in tokens {
                replaced.extend(state.insert(token));
            }
            state.interner.prune();
            let gone: Vec<TokenId> = token_ids
                .iter()
                .copied()
                .filter(|id| !state.contains(*id))
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
            // The replaced entries count no more (counting holds the read lock); what
            // they counted goes out with the next flush.
            self.usage.retire(replaced.iter());
            if !gone.is_empty() {
                self.limiters.retain(|id| !gone.contains(&id));
            }
            *sequence = last;
            self.applied.store(last, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests;
