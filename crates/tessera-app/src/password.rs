//! Password hashing and checking: argon2id with argon2's default parameters (19 MiB,
//! two passes, one lane), off the async workers, a few at a time, in working memory that
//! is reused from one computation to the next.
//!
//! - **Bounded**: at most [`Passwords::permits`] computations run at once (the CPU
//!   count, at most 4); the others wait for a permit before they reach the blocking
//!   pool. A permit is held by the blocking task itself, so a caller that goes away
//!   (a client that disconnects) does not let another computation start beside its own.
//! - **Reused memory**: each computation borrows a 19 MiB block buffer from a pool and
//!   gives it back, so memory stays at `permits × 19 MiB` however many logins fail,
//!   instead of argon2 allocating 19 MiB per check and the allocator keeping it per
//!   thread.
//! - **Uniform cost**: a check always runs exactly one argon2 computation. An account
//!   with no usable hash (no password yet, or an unreadable one) and an unknown email
//!   are checked against [`DUMMY_HASH`], which has the default parameters, so a failed
//!   login costs the same whoever it names. [`PasswordWork`] counts the computations, so
//!   tests can check this without timing anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use tessera_core::digest::constant_time_eq;
use tokio::sync::Semaphore;

use crate::auth::Password;
use crate::error::{AppError, AppResult};

/// An argon2id hash with the default parameters, checked in place of a missing or
/// unusable hash so that the check costs the same. Its salt and output are zeros: no
/// password is known to produce it, and a check against it never signs anyone in
/// whatever it computes.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Most password computations at once, whatever the CPU count: each holds 19 MiB.
pub const MAX_PERMITS: usize = 4;

/// What the password engine has done since start (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordWork {
    /// Passwords hashed.
    pub hashes: u64,
    /// Passwords checked against a hash (the stored one or [`DUMMY_HASH`]).
    pub checks: u64,
    /// Memory blocks argon2 filled, over all passes of all computations: the work done.
    pub blocks_filled: u64,
    /// Working-memory buffers allocated (at most one per permit, then reused).
    pub buffers_allocated: u64,
    /// How many computations may run at once.
    pub permits: usize,
}

/// Runs argon2 for logins and password changes (see the module documentation).
pub struct Passwords {
    permits: Arc<Semaphore>,
    permit_count: usize,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Idle working memory, one buffer of the default block count each.
    pool: Mutex<Vec<Vec<Block>>>,
    hashes: AtomicU64,
    checks: AtomicU64,
    blocks_filled: AtomicU64,
    buffers_allocated: AtomicU64,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("work", &self.work())
            .finish_non_exhaustive()
    }
}

/// The CPU count, at most [`MAX_PERMITS`].
pub fn default_permits() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, MAX_PERMITS)
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new(default_permits())
    }
}

impl Passwords {
    /// An engine running at most `permits` computations at once (at least one).
    pub fn new(permits: usize) -> Self {
        let permits = permits.max(1);
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            permit_count: permits,
            shared: Arc::default(),
        }
    }

    /// How many computations may run at once.
    pub fn permits(&self) -> usize {
        self.permit_count
    }

    /// What has been done so far.
    pub fn work(&self) -> PasswordWork {
        let shared = &self.shared;
        PasswordWork {
            hashes: shared.hashes.load(Ordering::Relaxed),
            checks: shared.checks.load(Ordering::Relaxed),
            blocks_filled: shared.blocks_filled.load(Ordering::Relaxed),
            buffers_allocated: shared.buffers_allocated.load(Ordering::Relaxed),
            permits: self.permit_count,
        }
    }

    /// Hashes `password` (PHC string, argon2id, default parameters, random salt).
    pub async fn hash(&self, password: Password) -> AppResult<String> {
        self.run(move |shared, memory| shared.hash(&password, memory))
            .await?
    }

    /// Whether `password` matches `stored`. Runs one argon2 computation whatever
    /// `stored` is: a missing, empty or unusable hash is replaced by [`DUMMY_HASH`] and
    /// never matches.
    pub async fn check(&self, password: Password, stored: Option<String>) -> AppResult<bool> {
        self.run(move |shared, memory| shared.check(&password, stored.as_deref(), memory))
            .await
    }

    /// Runs `job` on the blocking pool once a permit is free, with a working-memory
    /// buffer from the pool, and gives the buffer back afterwards.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Shared, &mut [Block]) -> T + Send + 'static,
    ) -> AppResult<T> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| AppError::Internal("password check semaphore closed".into()))?;
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut memory = shared.take_memory();
            let outcome = job(&shared, &mut memory);
            shared.give_back(memory);
            drop(permit);
            outcome
        })
        .await
        .map_err(|error| AppError::Internal(format!("password check failed: {error}")))
    }
}

/// What a hash asks argon2 to compute, and the output it expects.
struct Expected {
    argon2: Argon2<'static>,
    blocks: usize,
    passes: u32,
    salt: Vec<u8>,
    output: Output,
}

impl Expected {
    /// `None` when `hash` is not a complete argon2 PHC string argon2 can compute.
    fn parse(hash: &str) -> Option<Self> {
        let parsed = PasswordHash::new(hash).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(version) => Version::try_from(version).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        let mut salt = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt).ok()?.to_vec();
        let output = parsed.hash?;
        Some(Self {
            blocks: params.block_count(),
            passes: params.t_cost(),
            argon2: Argon2::new(algorithm, version, params),
            salt,
            output,
        })
    }

    /// Whether `password` hashes to the expected output (compared in constant time);
    /// `None` when argon2 refuses the inputs.
    fn matches(&self, password: &[u8], memory: &mut [Block]) -> Option<bool> {
        let mut computed = [0u8; Output::MAX_LENGTH];
        let computed = computed.get_mut(..self.output.len())?;
        self.argon2
            .hash_password_into_with_memory(password, &self.salt, computed, memory)
            .ok()?;
        Some(constant_time_eq(computed, self.output.as_bytes()))
    }
}

/// The expected output of [`DUMMY_HASH`].
fn dummy() -> &'static Option<Expected> {
    static DUMMY: std::sync::OnceLock<Option<Expected>> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| Expected::parse(DUMMY_HASH))
}

impl Shared {
    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_memory(&self) -> Vec<Block> {
        if let Some(memory) = self.lock_pool().pop() {
            return memory;
        }
        self.buffers_allocated.fetch_add(1, Ordering::Relaxed);
        vec![Block::default(); Params::DEFAULT.block_count()]
    }

    fn give_back(&self, memory: Vec<Block>) {
        self.lock_pool().push(memory);
    }

    fn count(&self, blocks: usize, passes: u32) {
        let filled = u64::try_from(blocks)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(passes));
        self.blocks_filled.fetch_add(filled, Ordering::Relaxed);
    }

    fn hash(&self, password: &Password, memory: &mut [Block]) -> AppResult<String> {
        let failed = |error: &dyn std::fmt::Display| {
            AppError::Internal(format!("password hashing failed: {error}"))
        };
        let params = Params::DEFAULT;
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(password.0.as_bytes(), salt_bytes, &mut output, memory)
            .map_err(|e| failed(&e))?;
        self.hashes.fetch_add(1, Ordering::Relaxed);
        self.count(params.block_count(), params.t_cost());
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&output).map_err(|e| failed(&e))?),
        };
        Ok(hash.to_string())
    }

    fn check(&self, password: &Password, stored: Option<&str>, memory: &mut [Block]) -> bool {
        let genuine = stored.and_then(Expected::parse);
        let (expected, genuine) = match (&genuine, dummy()) {
            (Some(expected), _) => (expected, true),
            (None, Some(dummy)) => (dummy, false),
            (None, None) => return false,
        };
        // A stored hash asking for more memory than the default (none of ours does)
        // gets a buffer of its own, so the pool keeps its size.
        let mut larger;
        let memory: &mut [Block] = if expected.blocks > memory.len() {
            larger = vec![Block::default(); expected.blocks];
            &mut larger
        } else {
            memory
        };
        let matches = expected.matches(password.0.as_bytes(), memory);
        if matches.is_some() {
            self.checks.fetch_add(1, Ordering::Relaxed);
            self.count(expected.blocks, expected.passes);
        }
        genuine && matches == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    fn password(text: &str) -> Password {
        Password(text.into())
    }

    #[test]
    fn the_dummy_hash_has_the_default_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        assert_eq!(parsed.version, Some(Version::V0x13.into()));
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(params.m_cost(), Params::DEFAULT.m_cost());
        assert_eq!(params.t_cost(), Params::DEFAULT.t_cost());
        assert_eq!(params.p_cost(), Params::DEFAULT.p_cost());
        assert_eq!(params.output_len(), Some(Params::DEFAULT_OUTPUT_LEN));
        assert!(dummy().is_some());
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        let engine = Passwords::new(1);
        let hash = engine
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        Argon2::default()
            .verify_password(b"correct horse battery", &PasswordHash::new(&hash).unwrap())
            .unwrap();
        let standard = Argon2::default()
            .hash_password(b"another long password", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(
            engine
                .check(password("another long password"), Some(standard.clone()))
                .await
                .unwrap()
        );
        assert!(
            !engine
                .check(password("another long passwore"), Some(standard))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn passwords_match_their_hash_only_in_reused_memory() {
        let engine = Passwords::new(1);
        let first = engine
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        let second = engine
            .hash(password("another long password"))
            .await
            .unwrap();
        for _ in 0..2 {
            assert!(
                engine
                    .check(password("correct horse battery"), Some(first.clone()))
                    .await
                    .unwrap()
            );
            assert!(
                !engine
                    .check(password("correct horse battery"), Some(second.clone()))
                    .await
                    .unwrap()
            );
        }
        let work = engine.work();
        assert_eq!(
            (work.hashes, work.checks, work.buffers_allocated),
            (2, 4, 1)
        );
    }

    #[tokio::test]
    async fn a_missing_or_unusable_hash_costs_a_full_check_and_never_matches() {
        let engine = Passwords::new(1);
        let per_check = Params::DEFAULT.block_count() as u64 * u64::from(Params::DEFAULT.t_cost());
        for stored in [
            None,
            Some(String::new()),
            Some("not a hash".to_owned()),
            Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$".to_owned()),
            Some("$bcrypt$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
            Some(DUMMY_HASH.to_owned()),
        ] {
            let before = engine.work();
            assert!(!engine.check(password(""), stored.clone()).await.unwrap());
            let after = engine.work();
            assert_eq!(after.checks - before.checks, 1, "{stored:?}");
            assert_eq!(after.blocks_filled - before.blocks_filled, per_check, "{stored:?}");
        }
    }
}
