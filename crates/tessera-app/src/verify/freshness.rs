//! The one rule of how stale the verify index may be before answers from it stop.

use std::sync::Arc;
use std::time::Duration;

use super::VerifyIndex;
use crate::error::{AppError, AppResult};

/// Refuses answers from an index that has fallen too far behind the change feed.
#[derive(Debug, Clone)]
pub(crate) struct Freshness {
    index: Arc<VerifyIndex>,
    /// `None`: never refuse.
    max_staleness: Option<Duration>,
}

impl Freshness {
    pub fn new(index: Arc<VerifyIndex>, max_staleness: Option<Duration>) -> Self {
        Self {
            index,
            max_staleness,
        }
    }

    /// `StaleIndex` once the index is further behind the feed than allowed.
    pub fn check(&self) -> AppResult<()> {
        if let Some(max) = self.max_staleness {
            let behind = self.index.staleness();
            if behind > max {
                return Err(AppError::StaleIndex { behind });
            }
        }
        Ok(())
    }
}
