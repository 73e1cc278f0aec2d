//! `POST /v1/verify`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::{RateLimit, TokenKind, TokenType};
use uuid::Uuid;

/// `{token, permission?, project?}`.
// `Debug` hides the token.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub token: String,
    #[serde(default)]
    pub permission: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
}

impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("token", &"<redacted>")
            .field("permission", &self.permission)
            .field("project", &self.project)
            .finish()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum VerifyCode {
    Malformed,
    NotFound,
    Expired,
    Disabled,
    Forbidden,
    WrongProject,
    RateLimited,
}

impl VerifyCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotFound => "not_found",
            Self::Expired => "expired",
            Self::Disabled => "disabled",
            Self::Forbidden => "forbidden",
            Self::WrongProject => "wrong_project",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// What a caller learns about a valid token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(complex)
)]
pub struct VerifiedToken {
    pub id: Uuid,
    pub name: String,
    pub kind: TokenKind,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "graphql", graphql(name = "type"))]
    pub token_type: TokenType,
    pub project: Option<String>,
    pub api_version: String,
    #[serde(serialize_with = "crate::token::rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    #[schema(value_type = Object)]
    #[cfg_attr(feature = "graphql", graphql(skip))]
    pub metadata: tessera_core::TokenMetadata,
    /// The token's per-token rate limit (`{requests, per_seconds}`), or `null`. Each
    /// Tessera node counts it on the verifications it answers; an embedded verifier
    /// (`tessera-verifier`) counts it on the ones it answers from its cache.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Set only when the presented secret is a regenerated token's previous one, still
    /// accepted during its grace period: when that grace ends (RFC 3339 UTC). From then
    /// the old secret answers `not_found`, with no change announced; a cache must not
    /// reuse this answer past it.
    #[serde(default, serialize_with = "crate::token::rfc3339_opt")]
    pub grace_ends_at: Option<DateTime<Utc>>,
}

/// `{"valid": true, "token": …}` or `{"valid": false, "code": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token: Option<VerifiedToken>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<VerifyCode>,
}

impl VerifyResponse {
    pub fn valid(token: VerifiedToken) -> Self {
        Self {
            valid: true,
            token: Some(token),
            code: None,
        }
    }

    pub fn invalid(code: VerifyCode) -> Self {
        Self {
            valid: false,
            token: None,
            code: Some(code),
        }
    }
}
