//! What the GraphQL schema needs beyond the derives on the DTOs themselves (`graphql`
//! feature): the metadata object as a `JSON` field, and the one input whose "absent vs
//! `null`" distinction serde expresses with `Option<Option<_>>` and GraphQL with
//! [`MaybeUndefined`].

use async_graphql::MaybeUndefined;
use chrono::{DateTime, Utc};
use tessera_core::{Lifespan, RateLimit, TokenType};

use crate::token::{TokenView, UpdateTokenRequest};
use crate::verify::{VerifiedToken, VerifyCode, VerifyResponse};

#[async_graphql::ComplexObject]
impl TokenView {
    /// The caller's own key–value data for this token: a JSON object.
    async fn metadata(&self) -> serde_json::Value {
        serde_json::Value::Object(self.metadata.clone())
    }
}

#[async_graphql::ComplexObject]
impl VerifiedToken {
    /// The caller's own key–value data for this token: a JSON object.
    async fn metadata(&self) -> serde_json::Value {
        serde_json::Value::Object(self.metadata.clone())
    }
}

/// `verifyToken`'s answer: the fields of `POST /v1/verify`'s. (A type of its own because
/// the derive's resolver for `valid` would collide with [`VerifyResponse::valid`].)
#[derive(Debug, Clone, async_graphql::SimpleObject)]
#[graphql(name = "VerifyResult")]
pub struct VerifyResult {
    pub valid: bool,
    pub token: Option<VerifiedToken>,
    pub code: Option<VerifyCode>,
    /// For `RATE_LIMITED`: whole seconds until the token (or this client) may try
    /// again, as REST's `Retry-After`.
    pub retry_after_seconds: Option<u64>,
}

impl From<VerifyResponse> for VerifyResult {
    fn from(response: VerifyResponse) -> Self {
        let VerifyResponse { valid, token, code } = response;
        Self {
            valid,
            token,
            code,
            retry_after_seconds: None,
        }
    }
}

/// `updateToken`'s input: an absent field stays, `null` clears a nullable one, as
/// `PATCH /v1/tokens/{id}` does.
#[derive(Debug, Clone, Default, async_graphql::InputObject)]
pub struct UpdateTokenInput {
    pub name: Option<String>,
    pub description: Option<String>,
    #[graphql(name = "type")]
    pub token_type: Option<TokenType>,
    pub permissions: Option<Vec<String>>,
    pub lifespan: Option<Lifespan>,
    pub expires_at: MaybeUndefined<DateTime<Utc>>,
    pub project: MaybeUndefined<String>,
    pub rate_limit: MaybeUndefined<RateLimit>,
    pub external_id: MaybeUndefined<String>,
    /// Replaces the whole object; `null` empties it.
    pub metadata: MaybeUndefined<serde_json::Value>,
}

/// Absent → `None`, `null` → `Some(None)`, a value → `Some(Some(value))`.
fn patch<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(value)),
    }
}

impl From<UpdateTokenInput> for UpdateTokenRequest {
    /// Every field named, so a field added to the REST request fails to compile here
    /// until GraphQL has it too.
    fn from(input: UpdateTokenInput) -> Self {
        Self {
            name: input.name,
            description: input.description,
            token_type: input.token_type,
            permissions: input.permissions,
            lifespan: input.lifespan,
            expires_at: patch(input.expires_at),
            project: patch(input.project),
            rate_limit: patch(input.rate_limit),
            external_id: patch(input.external_id),
            metadata: patch(input.metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_null_and_value_become_keep_clear_and_set() {
        let request = UpdateTokenRequest::from(UpdateTokenInput {
            project: MaybeUndefined::Null,
            external_id: MaybeUndefined::Value("acct_1".into()),
            ..UpdateTokenInput::default()
        });
        assert_eq!(request.project, Some(None), "null clears");
        assert_eq!(
            request.external_id,
            Some(Some("acct_1".into())),
            "a value sets"
        );
        assert_eq!(request.expires_at, None, "absent keeps");
        assert_eq!(request.metadata, None, "absent keeps");
    }
}
