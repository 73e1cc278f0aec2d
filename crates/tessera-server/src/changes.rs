//! `GET /v1/changes`: the change subscription embedded verifiers (the
//! `tessera-verifier` crate) long-poll to drop cached answers within the SPEC's
//! one-second bound.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use tessera_api_types::{ChangesPage, ChangesParams};
use tessera_app::changes::ChangesQuery;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Caller, Query};
use crate::openapi::ManagementErrors;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/changes", get(changes))
}

#[utoipa::path(get, path = "/v1/changes", tag = "verify",
    security(("session" = []), ("personal_token" = [])),
    summary = "Follow changes (for embedded verifiers)",
    description = "The change feed as this server has applied it to its token index \
                   (`tokens.read`), for verifiers that cache answers in-process. Call \
                   without `after` to learn the current position (`reset`), then with the \
                   previous answer's `next`; `wait_ms` holds the request open until a \
                   change comes (a long poll). On a `token` change drop what you cached \
                   about that token id; on any other kind (or `reset`) drop everything. \
                   Changes are listed only once this server answers verify calls with \
                   them applied, so asking it again right away gets the new answer.",
    params(ChangesParams),
    responses((status = 200, description = "Changes after `after`", body = ChangesPage), ManagementErrors))]
pub(crate) async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ChangesParams>,
) -> ApiResult<AxumJson<ChangesPage>> {
    let query = ChangesQuery::parse(&params)?;
    Ok(AxumJson(state.app.changes(&caller.principal, query).await?))
}
