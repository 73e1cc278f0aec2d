//! What every management service shares: the store it writes through, the clock it
//! reads, and this node's verify index, so that a write holds on this node before it
//! is acknowledged.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tessera_core::Catalog;
use tessera_store::Store;

use crate::clock::Clock;
use crate::error::AppResult;
use crate::verify::VerifyIndex;

/// Cheap to clone: every service holds its own copy.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    index: Arc<VerifyIndex>,
}

impl Context {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, index: Arc<VerifyIndex>) -> Self {
        Self {
            store,
            clock,
            index,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The catalog as stored now: what a saved permission list is checked against.
    pub async fn current_catalog(&self) -> AppResult<Catalog> {
        Ok(Catalog::new(&self.store.list_resources().await?))
    }

    /// Brings this node's index up to date after its own write, so the change holds
    /// here before the write is acknowledged. A failure only delays it to the next
    /// follower tick, so it is logged rather than returned.
    pub async fn apply_own_write(&self) {
        if let Err(error) = self.index.catch_up(self.store.as_ref()).await {
            tracing::warn!(%error, "could not apply a change to the verify index at once");
        }
    }
}
