//! The change subscription (`GET /v1/changes`): the change feed as this node has
//! applied it to its verify index, for embedded verifiers that cache answers.
//!
//! Changes are handed out only up to the sequence the node's own index has applied, so
//! a verifier that drops a cached answer on a change and asks this node again gets the
//! new answer, never the one the index held before it caught up.

use std::time::Duration;

use tessera_api_types::{ChangeView, ChangesPage, ChangesParams};
use tessera_core::AdminPermission;

use crate::Tessera;
use crate::error::AppResult;
use crate::principal::Principal;

/// The longest a subscriber may hold a request open.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// How many changes one answer carries at most.
const PAGE: u32 = 1_000;

/// How often a held request looks whether the index applied something new: a read of
/// an atomic, no database work.
const WAKE_EVERY: Duration = Duration::from_millis(20);

/// The typed parameters of one subscription request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangesQuery {
    pub after: Option<i64>,
    pub wait: Duration,
}

impl ChangesQuery {
    /// Checks the parameters as given; each bad one is named.
    pub fn parse(params: &ChangesParams) -> AppResult<Self> {
        let mut errors = tessera_core::FieldErrors::default();
        let after = match params.after.as_deref() {
            None => None,
            Some(text) => match text.parse::<i64>() {
                Ok(after) if after >= 0 => Some(after),
                _ => {
                    errors.add("after", "is not a position in the change feed");
                    None
                }
            },
        };
        let max = u64::try_from(MAX_WAIT.as_millis()).unwrap_or(u64::MAX);
        let wait = match params.wait_ms.as_deref() {
            None => Duration::ZERO,
            Some(text) => match text.parse::<u64>() {
                Ok(millis) if millis <= max => Duration::from_millis(millis),
                _ => {
                    errors.add("wait_ms", format!("must be a whole number from 0 to {max}"));
                    Duration::ZERO
                }
            },
        };
        if errors.is_empty() {
            Ok(Self { after, wait })
        } else {
            Err(errors.into())
        }
    }
}

impl Tessera {
    /// The changes after `query.after` that this node's verify index has applied,
    /// waiting up to `query.wait` for one when there is none yet (`tokens.read`).
    pub async fn changes(
        &self,
        principal: &Principal,
        query: ChangesQuery,
    ) -> AppResult<ChangesPage> {
        principal.require(AdminPermission::TokensRead)?;
        let reset = |next: i64| ChangesPage {
            changes: Vec::new(),
            next,
            reset: true,
        };
        let Some(after) = query.after else {
            return Ok(reset(self.index.applied_sequence()));
        };
        let deadline = tokio::time::Instant::now() + query.wait;
        let applied = loop {
            let applied = self.index.applied_sequence();
            if applied != after || tokio::time::Instant::now() >= deadline {
                break applied;
            }
            tokio::time::sleep(WAKE_EVERY).await;
        };
        if applied < after {
            // Ahead of this feed: another database, or one restored from a backup.
            return Ok(reset(applied));
        }
        if applied == after {
            return Ok(ChangesPage {
                changes: Vec::new(),
                next: after,
                reset: false,
            });
        }
        let found = self.store.changes_after(after, PAGE).await?;
        if found
            .first()
            .is_some_and(|first| first.sequence > after + 1)
            && self.store.changes_pruned_through().await? > after
        {
            // Changes the subscriber has not seen were pruned: it cannot catch up by
            // listing, only by starting over.
            return Ok(reset(applied));
        }
        let full = found.len() == PAGE as usize;
        let changes: Vec<ChangeView> = found
            .into_iter()
            .filter(|change| change.sequence <= applied)
            .map(|change| ChangeView {
                sequence: change.sequence,
                kind: change.kind.as_str().to_owned(),
                key: change.key,
            })
            .collect();
        // A full page may stop short of `applied`: continue from its last change.
        let next = match changes.last() {
            Some(last) if full => last.sequence,
            _ => applied,
        };
        Ok(ChangesPage {
            changes,
            next,
            reset: false,
        })
    }
}
