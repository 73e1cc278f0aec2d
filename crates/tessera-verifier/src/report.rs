//! Usage reports: the verifications this verifier answered from its cache, sent to
//! Tessera's `POST /v1/usage-reports` in batches, so a token's `last_used_at` and usage
//! counts include them. Tessera counts the verify calls it answers itself.
//!
//! A report names tokens by id and carries counts only: no token, no time (Tessera
//! stamps `last_used_at` with its own clock when the report arrives). Counts that could
//! not be sent (Tessera unreachable, a 5xx) are given back and go with the next report;
//! counts Tessera refuses (the credential lacks `tokens.update`, or the report itself)
//! are dropped, with a warning, since sending them again would be refused again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera_api_types::{UsageReport, UsageReportOutcome, UsageReportToken};

use crate::tokens::Taken;
use crate::verifier::Shared;

/// How many tokens one report names at most (Tessera's limit).
const BATCH: usize = tessera_api_types::UsageReport::MAX_TOKENS;

/// Why a report was not recorded. Never carries the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Tessera could not be reached, failed (5xx) or did not take the report for a
    /// reason other than the credential (408, 413, 429, …): the counts are kept for the
    /// next report.
    #[error("cannot send usage to Tessera: {0}")]
    Unreachable(String),
    /// Tessera refused the credential (401/403: the credential's role lacks
    /// `tokens.update`): the counts are dropped.
    #[error("Tessera refused the usage report ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// Sends everything counted so far; answers how many tokens Tessera recorded.
pub(crate) async fn send(shared: &Shared) -> Result<usize, ReportError> {
    let taken = shared
        .tokens
        .take()
        .into_iter()
        .map(|taken| taken.at_most(UsageReport::MAX_COUNT));
    let mut recorded = 0;
    let mut batches = taken.peekable();
    let mut outcome = Ok(());
    while batches.peek().is_some() {
        let batch: Vec<Taken> = batches.by_ref().take(BATCH).collect();
        if outcome.is_err() {
            // An earlier batch could not go: keep these for the next report.
            batch.into_iter().for_each(Taken::give_back);
            continue;
        }
        match post(shared, &batch).await {
            Ok(answer) => recorded += answer.recorded,
            Err(error @ ReportError::Unreachable(_)) => {
                batch.into_iter().for_each(Taken::give_back);
                outcome = Err(error);
            }
            Err(error @ ReportError::Refused { .. }) => outcome = Err(error),
        }
    }
    outcome.map(|()| recorded)
}

async fn post(shared: &Shared, batch: &[Taken]) -> Result<UsageReportOutcome, ReportError> {
    let report = UsageReport {
        tokens: batch
            .iter()
            .map(|taken| UsageReportToken {
                id: taken.id,
                allowed: taken.allowed,
                denied: taken.denied,
            })
            .collect(),
    };
    let response = shared
        .http
        .post(&shared.report_url)
        .bearer_auth(&shared.credential.0)
        .json(&report)
        .send()
        .await
        .map_err(|error| ReportError::Unreachable(error.without_url().to_string()))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|_| ReportError::Unreachable("the answer is not a report outcome".into()));
    }
    // Only a refused credential drops the counts; anything else (a 5xx, 408, 429, a
    // body limit set too low, an older Tessera without the route) keeps them for the
    // next report.
    if !matches!(status.as_u16(), 401 | 403) {
        return Err(ReportError::Unreachable(format!(
            "Tessera answered {status}"
        )));
    }
    let message = response
        .json::<tessera_api_types::ErrorBody>()
        .await
        .map(|body| body.error.message)
        .unwrap_or_default();
    Err(ReportError::Refused {
        status: status.as_u16(),
        message,
    })
}

/// Reports every `interval` until the verifier is dropped (the task is aborted then;
/// what was counted since the last report is lost, unless
/// [`Verifier::report_usage`](crate::Verifier::report_usage) ran first).
pub(crate) async fn run(shared: Arc<Shared>, interval: Duration) {
    let warned = AtomicBool::new(false);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match send(&shared).await {
            Ok(_) => {
                if warned.swap(false, Ordering::Relaxed) {
                    tracing::info!("reporting cache hits to Tessera again");
                }
            }
            Err(problem) => {
                if !warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%problem, "cannot report cache hits to Tessera; usage and last_used_at miss them meanwhile");
                } else {
                    tracing::debug!(%problem, "still cannot report cache hits to Tessera");
                }
            }
        }
    }
}
