//! Usage reports (`POST /v1/usage-reports`): the verifications an embedded verifier
//! (`tessera-verifier`) answered from its cache, which this node never saw, recorded
//! through the node's usage counters like its own, so `last_used_at` and the daily
//! counts include them (flushed with the next batch).
//!
//! A report names tokens by id and carries counts only. Recording one changes what the
//! API shows about tokens, so it needs `tokens.update`: a read-only credential cannot
//! make a token look used.

use tessera_api_types::{UsageReport, UsageReportOutcome};
use tessera_core::{AdminPermission, FieldErrors, TokenId, TokenKind};

use crate::Tessera;
use crate::error::AppResult;
use crate::principal::Principal;

/// Checks a report as given; each bad field is named (`tokens`, `tokens[3].allowed`).
fn check(report: &UsageReport) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    if report.tokens.len() > UsageReport::MAX_TOKENS {
        errors.add(
            "tokens",
            format!("at most {} tokens per report", UsageReport::MAX_TOKENS),
        );
    }
    let mut seen = std::collections::HashSet::with_capacity(report.tokens.len());
    for (n, token) in report.tokens.iter().enumerate() {
        // Each token once: repeating one would multiply the per-entry bound.
        if !seen.insert(token.id) {
            errors.add(
                format!("tokens[{n}].id"),
                "names a token already in this report",
            );
        }
        for (field, count) in [("allowed", token.allowed), ("denied", token.denied)] {
            if count > UsageReport::MAX_COUNT {
                errors.add(
                    format!("tokens[{n}].{field}"),
                    format!("must be from 0 to {}", UsageReport::MAX_COUNT),
                );
            }
        }
    }
    errors.into_result()
}

impl Tessera {
    /// Records the verifications `report` counts (`tokens.update`). Tokens this node's
    /// index does not hold (deleted since) or that are not API tokens are ignored.
    pub fn record_usage_report(
        &self,
        principal: &Principal,
        report: &UsageReport,
    ) -> AppResult<UsageReportOutcome> {
        principal.require(AdminPermission::TokensUpdate)?;
        check(report)?;
        let now = self.clock.now();
        let mut outcome = UsageReportOutcome::default();
        let index = self.index.read();
        for token in &report.tokens {
            match index.get(TokenId(token.id)) {
                Some(entry) if entry.kind == TokenKind::Api => {
                    entry.usage.reported(token.allowed, token.denied, now);
                    outcome.recorded += 1;
                }
                _ => outcome.ignored += 1,
            }
        }
        Ok(outcome)
    }
}
