//! Values many index entries share, held once (see [`super::index`]).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tessera_core::TokenMetadata;
use tessera_store::{StoreError, StoreResult};

/// A string held once for every entry that has it (a project, an API version, a
/// metadata object's JSON text): a thin pointer, compared and hashed by its text.
#[derive(Clone)]
pub struct Shared(pub(crate) Arc<Box<str>>);

impl Shared {
    pub(crate) fn new(text: &str) -> Self {
        Self(Arc::new(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Shared {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Shared {}

impl Hash for Shared {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for Shared {
    fn borrow(&self) -> &str {
        self
    }
}

/// A custom token's permissions, sorted: shared by every token with the same list.
#[derive(Debug, Clone)]
pub(crate) struct PermissionSet(pub(crate) Arc<Vec<String>>);

impl PermissionSet {
    pub(crate) fn contains(&self, permission: &str) -> bool {
        self.0
            .binary_search_by(|held| held.as_str().cmp(permission))
            .is_ok()
    }
}

impl PartialEq for PermissionSet {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for PermissionSet {}

impl Hash for PermissionSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_slice().hash(state);
    }
}

impl Borrow<[String]> for PermissionSet {
    fn borrow(&self) -> &[String] {
        &self.0
    }
}

/// The index's shared values. A value no entry holds any more is dropped by
/// [`Interner::prune`] (run as the set doubles) or with the whole index on a reload.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    pub(crate) strings: HashSet<Shared>,
    pub(crate) permissions: HashSet<PermissionSet>,
    /// How many values were held after the last prune.
    pub(crate) kept: usize,
}

impl Interner {
    pub(crate) fn string(&mut self, text: &str) -> Shared {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared = Shared::new(text);
        self.strings.insert(shared.clone());
        shared
    }

    /// The metadata object's JSON text as serde_json writes it (keys sorted, compact),
    /// so answers are the same bytes whatever text the database holds.
    pub(crate) fn metadata(&mut self, text: &str) -> StoreResult<Shared> {
        // Only canonical texts are interned: a text found is canonical already.
        if let Some(shared) = self.strings.get(text) {
            return Ok(shared.clone());
        }
        let map: TokenMetadata = serde_json::from_str(text)
            .map_err(|_| StoreError::Backend("token metadata is not a JSON object".into()))?;
        let canonical =
            serde_json::to_string(&map).map_err(|error| StoreError::Backend(Box::new(error)))?;
        Ok(self.string(&canonical))
    }

    pub(crate) fn permissions(&mut self, list: &[String]) -> Option<PermissionSet> {
        if list.is_empty() {
            return None;
        }
        let mut sorted = list.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if let Some(set) = self.permissions.get(sorted.as_slice()) {
            return Some(set.clone());
        }
        let set = PermissionSet(Arc::new(sorted));
        self.permissions.insert(set.clone());
        Some(set)
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len() + self.permissions.len()
    }

    /// Drops the values only the interner holds, once it has doubled since the last
    /// time: amortized, a catch-up's edits never scan it for nothing.
    pub(crate) fn prune(&mut self) {
        if self.len() < 2 * self.kept + 64 {
            return;
        }
        self.strings
            .retain(|shared| Arc::strong_count(&shared.0) > 1);
        self.permissions.retain(|set| Arc::strong_count(&set.0) > 1);
        self.kept = self.len();
    }
}
