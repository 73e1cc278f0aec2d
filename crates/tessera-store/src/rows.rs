//! Row structs of the schema and their conversion to and from core types, shared by
//! both backends: the columns and their Rust types are the same on SQLite and
//! PostgreSQL, and sqlx's `FromRow` derive is generic over the database.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sqlx::FromRow;
use tessera_core::{
    Action, GraceDigest, Lifespan, Project, RateLimit, Resource, TokenDigest, TokenId, TokenKind,
    TokenRecord, TokenStatus, TokenType, UserId, UserRecord,
};
use uuid::Uuid;

use crate::{StoreError, StoreResult};

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Backend(what.into().into())
}

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(value: i64) -> StoreResult<DateTime<Utc>> {
    Utc.timestamp_millis_opt(value)
        .single()
        .ok_or_else(|| corrupt(format!("time {value} out of range")))
}

fn uuid(text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| corrupt(format!("bad id `{text}`")))
}

pub(crate) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

pub(crate) fn parse_day(text: &str) -> StoreResult<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| corrupt(format!("bad day `{text}`")))
}

#[derive(Debug, FromRow)]
pub(crate) struct TokenRow {
    id: String,
    kind: String,
    name: String,
    description: String,
    token_type: String,
    permissions: String,
    project: Option<String>,
    owner_id: Option<String>,
    status: String,
    lifespan: String,
    expires_at: Option<i64>,
    api_version: String,
    hint: String,
    digest: Vec<u8>,
    grace_digest: Option<Vec<u8>>,
    grace_until: Option<i64>,
    created_at: i64,
    created_by: String,
    updated_at: i64,
    last_used_at: Option<i64>,
    rate_limit_requests: Option<i64>,
    rate_limit_seconds: Option<i64>,
    revision: i64,
    external_id: Option<String>,
    metadata: String,
}

/// The column list every token query selects, in [`TokenRow`] order.
pub(crate) const TOKEN_COLUMNS: &str = "id, kind, name, description, token_type, permissions, \
    project, owner_id, status, lifespan, expires_at, api_version, hint, digest, grace_digest, \
    grace_until, created_at, created_by, updated_at, last_used_at, rate_limit_requests, \
    rate_limit_seconds, revision, external_id, metadata";

fn digest(bytes: &[u8]) -> StoreResult<TokenDigest> {
    TokenDigest::from_slice(bytes).ok_or_else(|| corrupt("digest is not 32 bytes"))
}

impl TokenRow {
    pub(crate) fn into_record(self) -> StoreResult<TokenRecord> {
        let grace = grace(self.grace_digest, self.grace_until)?;
        let rate_limit = rate_limit(self.rate_limit_requests, self.rate_limit_seconds)?;
        Ok(TokenRecord {
            id: TokenId(uuid(&self.id)?),
            kind: TokenKind::parse(&self.kind).ok_or_else(|| corrupt("token kind"))?,
            name: self.name,
            description: self.description,
            token_type: TokenType::parse(&self.token_type).ok_or_else(|| corrupt("token type"))?,
            permissions: serde_json::from_str(&self.permissions)
                .map_err(|_| corrupt("token permissions"))?,
            project: self.project,
            owner_id: self.owner_id.as_deref().map(uuid).transpose()?.map(UserId),
            status: TokenStatus::parse(&self.status).ok_or_else(|| corrupt("token status"))?,
            lifespan: Lifespan::parse(&self.lifespan).ok_or_else(|| corrupt("lifespan"))?,
            expires_at: self.expires_at.map(from_millis).transpose()?,
            api_version: self.api_version,
            hint: self.hint,
            digest: digest(&self.digest)?,
            grace,
            created_at: from_millis(self.created_at)?,
            created_by: self.created_by,
            updated_at: from_millis(self.updated_at)?,
            last_used_at: self.last_used_at.map(from_millis).transpose()?,
            rate_limit,
            external_id: self.external_id,
            metadata: serde_json::from_str(&self.metadata)
                .map_err(|_| corrupt("token metadata"))?,
            revision: self.revision,
        })
    }
}

/// The columns the verify index keeps ([`crate::IndexRecord`]): a row, or an element of
/// SQLite's JSON page of them (an array in [`INDEX_COLUMNS`] order, the digests in hex:
/// see `sqlite::index_page`).
#[derive(Debug, FromRow, serde::Deserialize)]
pub(crate) struct IndexRow {
    id: String,
    kind: String,
    name: String,
    token_type: String,
    permissions: String,
    project: Option<String>,
    owner_id: Option<String>,
    status: String,
    expires_at: Option<i64>,
    api_version: String,
    #[serde(deserialize_with = "required_hex")]
    digest: Vec<u8>,
    #[serde(deserialize_with = "optional_hex")]
    grace_digest: Option<Vec<u8>>,
    grace_until: Option<i64>,
    rate_limit_requests: Option<i64>,
    rate_limit_seconds: Option<i64>,
    external_id: Option<String>,
    metadata: String,
}

fn required_hex<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text: &str = serde::Deserialize::deserialize(deserializer)?;
    hex::decode(text).map_err(serde::de::Error::custom)
}

fn optional_hex<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    let text: Option<&str> = serde::Deserialize::deserialize(deserializer)?;
    text.map(hex::decode)
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// The column list of [`IndexRow`], in its order.
pub(crate) const INDEX_COLUMNS: &str = "id, kind, name, token_type, permissions, project, \
    owner_id, status, expires_at, api_version, digest, grace_digest, grace_until, \
    rate_limit_requests, rate_limit_seconds, external_id, metadata";

fn grace(digest_bytes: Option<Vec<u8>>, until: Option<i64>) -> StoreResult<Option<GraceDigest>> {
    Ok(match (digest_bytes, until) {
        (Some(bytes), Some(until)) => Some(GraceDigest {
            digest: digest(&bytes)?,
            until: from_millis(until)?,
        }),
        _ => None,
    })
}

fn rate_limit(requests: Option<i64>, per_seconds: Option<i64>) -> StoreResult<Option<RateLimit>> {
    Ok(match (requests, per_seconds) {
        (Some(requests), Some(per_seconds)) => Some(RateLimit {
            requests: u32::try_from(requests).map_err(|_| corrupt("rate limit"))?,
            per_seconds: u32::try_from(per_seconds).map_err(|_| corrupt("rate limit"))?,
        }),
        _ => None,
    })
}

impl IndexRow {
    pub(crate) fn into_record(self) -> StoreResult<crate::IndexRecord> {
        Ok(crate::IndexRecord {
            id: TokenId(uuid(&self.id)?),
            kind: TokenKind::parse(&self.kind).ok_or_else(|| corrupt("token kind"))?,
            name: self.name,
            token_type: TokenType::parse(&self.token_type).ok_or_else(|| corrupt("token type"))?,
            permissions: serde_json::from_str(&self.permissions)
                .map_err(|_| corrupt("token permissions"))?,
            project: self.project,
            owner_id: self.owner_id.as_deref().map(uuid).transpose()?.map(UserId),
            status: TokenStatus::parse(&self.status).ok_or_else(|| corrupt("token status"))?,
            expires_at: self.expires_at.map(from_millis).transpose()?,
            api_version: self.api_version,
            digest: digest(&self.digest)?,
            grace: grace(self.grace_digest, self.grace_until)?,
            rate_limit: rate_limit(self.rate_limit_requests, self.rate_limit_seconds)?,
            external_id: self.external_id,
            metadata: self.metadata,
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct UserRow {
    id: String,
    email: String,
    name: String,
    role: String,
    password_hash: String,
    active: bool,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const USER_COLUMNS: &str =
    "id, email, name, role, password_hash, active, created_at, updated_at";

impl UserRow {
    pub(crate) fn into_record(self) -> StoreResult<UserRecord> {
        Ok(UserRecord {
            id: UserId(uuid(&self.id)?),
            email: self.email,
            name: self.name,
            role: self.role,
            password_hash: self.password_hash,
            active: self.active,
            created_at: from_millis(self.created_at)?,
            updated_at: from_millis(self.updated_at)?,
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct ResourceRow {
    name: String,
    description: String,
    actions: String,
}

impl ResourceRow {
    pub(crate) fn into_resource(self) -> StoreResult<Resource> {
        let actions: Vec<Action> =
            serde_json::from_str(&self.actions).map_err(|_| corrupt("resource actions"))?;
        Ok(Resource {
            name: self.name,
            description: self.description,
            actions,
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct ProjectRow {
    slug: String,
    name: String,
    created_at: i64,
}

impl ProjectRow {
    pub(crate) fn into_project(self) -> StoreResult<Project> {
        Ok(Project {
            slug: self.slug,
            name: self.name,
            created_at: from_millis(self.created_at)?,
        })
    }
}

/// A user with the session that names them (`get_session`).
#[derive(Debug, FromRow)]
pub(crate) struct SessionUserRow {
    pub(crate) session_created: i64,
    pub(crate) session_expires: i64,
    #[sqlx(flatten)]
    pub(crate) user: UserRow,
}

/// One row of the `audit` table.
#[derive(Debug, FromRow)]
pub(crate) struct AuditRecord {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    client_address: Option<String>,
    changes: String,
}

impl AuditRecord {
    pub(crate) fn into_row(self) -> StoreResult<crate::AuditRow> {
        Ok(crate::AuditRow {
            id: self.id,
            entry: tessera_core::AuditEntry {
                at: from_millis(self.at)?,
                actor: self.actor,
                action: self.action,
                target: self.target,
                client_address: self.client_address,
                changes: serde_json::from_str(&self.changes)
                    .map_err(|_| corrupt("audit changes"))?,
            },
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct RoleRow {
    name: String,
    description: String,
    permissions: String,
    builtin: bool,
}

pub(crate) const ROLE_COLUMNS: &str = "name, description, permissions, builtin";

impl RoleRow {
    /// Permissions this version does not know are left out.
    pub(crate) fn into_role(self) -> StoreResult<tessera_core::Role> {
        let names: Vec<String> =
            serde_json::from_str(&self.permissions).map_err(|_| corrupt("role permissions"))?;
        Ok(tessera_core::Role {
            name: self.name,
            description: self.description,
            permissions: names
                .iter()
                .filter_map(|name| tessera_core::AdminPermission::parse(name))
                .collect(),
            builtin: self.builtin,
        })
    }
}

/// `LIMIT` for a count that stops one row past `count_limit` (so it tells "more").
pub(crate) fn limit_past(count_limit: u64) -> i64 {
    i64::try_from(count_limit.saturating_add(1)).unwrap_or(i64::MAX)
}

/// A count from the database (never negative).
pub(crate) fn count(value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| corrupt(format!("count {value}")))
}

/// `value` as JSON text, for a JSON column.
pub(crate) fn json_text(value: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|error| StoreError::Backend(Box::new(error)))
}
