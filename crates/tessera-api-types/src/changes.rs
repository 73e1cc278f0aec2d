//! `GET /v1/changes`: the change subscription embedded verifiers follow to drop cached
//! answers as soon as a token, the catalog or a project changes.

use serde::{Deserialize, Serialize};

/// `GET /v1/changes` query parameters, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    /// The `next` of the previous answer. Absent: start now (the answer is a `reset`
    /// carrying the current position and no changes).
    pub after: Option<String>,
    /// 0 to 10000 (default 0): how long to hold the request open, in milliseconds,
    /// while there is no change after `after` (a long poll).
    pub wait_ms: Option<String>,
}

/// What changed, by kind. `key` names the thing: a token id for `token`, a resource
/// name for `catalog`, a project slug for `project`, a user id for `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeView {
    /// The change's position in the feed; increasing.
    pub sequence: i64,
    /// `token` | `catalog` | `project` | `user` (more kinds may come: a verifier drops
    /// everything it cached on a kind it does not know).
    pub kind: String,
    pub key: String,
}

/// One answer of the subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangesPage {
    /// Changes after `after`, oldest first (at most 1000).
    pub changes: Vec<ChangeView>,
    /// Pass as `after` next time: every change up to it is in this answer or an
    /// earlier one.
    pub next: i64,
    /// True when the changes since `after` cannot be listed (no `after`; `after` fell
    /// behind the feed's retention; or `after` is ahead of this server's feed, as after a
    /// restore): forget everything learned before and start again from `next`.
    pub reset: bool,
}
