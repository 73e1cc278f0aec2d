//! Identifiers and the stored token record.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::TokenType;
use crate::digest::{Pepper, TokenDigest};
use crate::lifecycle::{Lifespan, RateLimit, TokenStatus, is_expired};
use crate::token::TokenSecret;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id (UUID v7) for `now`, its random bits from `rng`.
            pub fn new_at(now: DateTime<Utc>, rng: &mut impl rand::RngCore) -> Self {
                let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
                let mut random = [0u8; 10];
                rng.fill_bytes(&mut random);
                Self(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
            }

            pub fn parse(text: &str) -> Option<Self> {
                Uuid::parse_str(text).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies a token (API or personal).
    TokenId
);
uuid_id!(
    /// Identifies an admin user.
    UserId
);

/// Admin-managed API token, or a personal token acting as its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum TokenKind {
    Api,
    Personal,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Personal => "personal",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "api" => Some(Self::Api),
            "personal" => Some(Self::Personal),
            _ => None,
        }
    }
}

/// The previous digest of a regenerated token, still accepted until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraceDigest {
    pub digest: TokenDigest,
    pub until: DateTime<Utc>,
}

/// A token's `metadata`: a JSON object of at most [`crate::validate::METADATA_MAX_BYTES`].
pub type TokenMetadata = serde_json::Map<String, serde_json::Value>;

/// A token as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub kind: TokenKind,
    pub name: String,
    pub description: String,
    pub token_type: TokenType,
    pub permissions: Vec<String>,
    pub project: Option<String>,
    pub owner_id: Option<UserId>,
    pub status: TokenStatus,
    pub lifespan: Lifespan,
    pub expires_at: Option<DateTime<Utc>>,
    pub api_version: String,
    pub hint: String,
    pub digest: TokenDigest,
    pub grace: Option<GraceDigest>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<RateLimit>,
    /// The customer or account this token belongs to, in the protected API's terms.
    pub external_id: Option<String>,
    /// Free-form JSON object the protected API receives on verification.
    pub metadata: TokenMetadata,
    /// The stored revision this record was read at; an edit succeeds only while it is
    /// still current, so two concurrent edits cannot silently undo each other.
    pub revision: i64,
}

/// What a new token is issued with: everything of its record an issuer chooses.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    pub kind: TokenKind,
    pub name: String,
    pub description: String,
    pub token_type: TokenType,
    pub permissions: Vec<String>,
    pub project: Option<String>,
    pub owner_id: Option<UserId>,
    pub lifespan: Lifespan,
    pub expires_at: Option<DateTime<Utc>>,
    pub api_version: String,
    pub rate_limit: Option<RateLimit>,
    pub external_id: Option<String>,
    pub metadata: TokenMetadata,
}

impl TokenSettings {
    /// The settings of a new personal token of `owner`: no permissions, project, rate
    /// limit or customer of its own (it acts with its owner's role, restricted by
    /// `access`).
    pub fn personal(
        owner: UserId,
        name: String,
        description: String,
        access: crate::PersonalAccess,
        (lifespan, expires_at): (Lifespan, Option<DateTime<Utc>>),
        api_version: String,
    ) -> Self {
        Self {
            kind: TokenKind::Personal,
            name,
            description,
            token_type: access.token_type(),
            permissions: Vec::new(),
            project: None,
            owner_id: Some(owner),
            lifespan,
            expires_at,
            api_version,
            rate_limit: None,
            external_id: None,
            metadata: TokenMetadata::new(),
        }
    }
}

impl TokenRecord {
    /// A new token with `settings`: active, never used, at revision 0, identified by
    /// `id` and checked by the digest of `secret` under `pepper`.
    pub fn issue(
        settings: TokenSettings,
        id: TokenId,
        secret: &TokenSecret,
        pepper: &Pepper,
        created_by: String,
        now: DateTime<Utc>,
    ) -> Self {
        let TokenSettings {
            kind,
            name,
            description,
            token_type,
            permissions,
            project,
            owner_id,
            lifespan,
            expires_at,
            api_version,
            rate_limit,
            external_id,
            metadata,
        } = settings;
        Self {
            id,
            kind,
            name,
            description,
            token_type,
            permissions,
            project,
            owner_id,
            status: TokenStatus::Active,
            lifespan,
            expires_at,
            api_version,
            hint: secret.hint(),
            digest: pepper.digest(secret),
            grace: None,
            created_at: now,
            created_by,
            updated_at: now,
            last_used_at: None,
            rate_limit,
            external_id,
            metadata,
            revision: 0,
        }
    }

    /// The settings this token was issued with (as edited since): what a copy starts from.
    pub fn settings(&self) -> TokenSettings {
        TokenSettings {
            kind: self.kind,
            name: self.name.clone(),
            description: self.description.clone(),
            token_type: self.token_type,
            permissions: self.permissions.clone(),
            project: self.project.clone(),
            owner_id: self.owner_id,
            lifespan: self.lifespan,
            expires_at: self.expires_at,
            api_version: self.api_version.clone(),
            rate_limit: self.rate_limit,
            external_id: self.external_id.clone(),
            metadata: self.metadata.clone(),
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        is_expired(self.expires_at, now)
    }
}

/// A project: tokens bound to it verify only for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An administrator of Tessera itself. The password hash is an argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// One line of the audit log: who did what to which target, and what changed.
/// `changes` holds `{field: {"from": …, "to": …}}` and never a secret or digest.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub client_address: Option<String>,
    pub changes: serde_json::Value,
}

/// What a row of the change feed says changed; nodes reload that entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A token row (key: token id) was inserted, updated or deleted.
    Token,
    /// The resource catalog changed (key: resource name).
    Catalog,
    /// A user changed (key: user id): their personal tokens may be affected.
    User,
    /// A project changed (key: slug).
    Project,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Catalog => "catalog",
            Self::User => "user",
            Self::Project => "project",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "token" => Some(Self::Token),
            "catalog" => Some(Self::Catalog),
            "user" => Some(Self::User),
            "project" => Some(Self::Project),
            _ => None,
        }
    }
}

/// One row of the change feed: a monotonic sequence number and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub sequence: i64,
    pub kind: ChangeKind,
    pub key: String,
}
