//! A deadline on every call of a store whose connections can hang (PostgreSQL over a
//! network): a call that has not answered in time is abandoned and answers
//! `Unavailable`, instead of waiting for the operating system to give up on a dead TCP
//! connection. The connection it used is closed, not reused (see the PostgreSQL
//! store's `after_release` check). [`crate::sql::SqlStore`] bounds each call of the
//! `Store` trait with it when its backend has a deadline.

use std::future::Future;
use std::time::Duration;

use crate::{StoreError, StoreResult};

/// `call`, abandoned as `Unavailable` once `limit` has passed.
pub(crate) async fn bound<T>(
    limit: Duration,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(
            format!(
                "the database did not answer within {} s; the connection was abandoned",
                limit.as_secs_f64()
            )
            .into(),
        )),
    }
}
