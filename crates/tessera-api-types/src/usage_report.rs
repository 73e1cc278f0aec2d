//! `POST /v1/usage-reports`: the verifications an embedded verifier answered from its
//! cache, so that a token's usage counts and `last_used_at` include them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{tokens: [{id, allowed?, denied?}]}`: what an embedded verifier answered from its
/// cache since its last report, per token id. No secret, no time: Tessera counts the
/// verifications on the day it receives the report and sets `last_used_at` (for tokens
/// with `allowed > 0`) to when it received it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// At most 500 tokens per report.
    pub tokens: Vec<UsageReportToken>,
}

impl UsageReport {
    /// How many tokens one report may name.
    pub const MAX_TOKENS: usize = 500;
    /// The largest `allowed` or `denied` one entry may carry.
    pub const MAX_COUNT: u64 = 1_000_000_000;
}

/// One token's verifications since the last report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageReportToken {
    /// The token's id (as in a valid verify answer).
    pub id: Uuid,
    /// Verifications answered valid (0 to 1,000,000,000; default 0).
    #[serde(default)]
    pub allowed: u64,
    /// Verifications refused for this token (by its rate limit; 0 to 1,000,000,000;
    /// default 0).
    #[serde(default)]
    pub denied: u64,
}

/// What Tessera did with a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageReportOutcome {
    /// Tokens whose counts were recorded.
    pub recorded: usize,
    /// Tokens not recorded: unknown to this server (deleted since), or not API tokens.
    pub ignored: usize,
}
