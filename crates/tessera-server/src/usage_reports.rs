//! `POST /v1/usage-reports`: embedded verifiers (the `tessera-verifier` crate) report
//! the verifications they answered from their cache, so usage and `last_used_at`
//! include them.

use axum::extract::State;
use axum::routing::post;
use axum::{Json as AxumJson, Router};
use tessera_api_types::{UsageReport, UsageReportOutcome};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Caller, Json};
use crate::openapi::ManagementErrors;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/usage-reports", post(report))
}

#[utoipa::path(post, path = "/v1/usage-reports", tag = "verify",
    security(("session" = []), ("personal_token" = [])),
    summary = "Report cached verifications (for embedded verifiers)",
    description = "The verifications an embedded verifier answered from its cache since its \
                   last report, by token id (`tokens.update`): counted in the tokens' usage \
                   like this server's own verifications, on the day the report arrives, and \
                   `last_used_at` set to its arrival for tokens with `allowed > 0`. Written \
                   with the next usage flush. At most 500 tokens per report; tokens this \
                   server does not know (deleted since) or that are not API tokens are \
                   ignored and counted in `ignored`.",
    request_body = UsageReport,
    responses((status = 200, description = "Recorded", body = UsageReportOutcome), ManagementErrors))]
pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Json(report): Json<UsageReport>,
) -> ApiResult<AxumJson<UsageReportOutcome>> {
    Ok(AxumJson(
        state.app.record_usage_report(&caller.principal, &report)?,
    ))
}
