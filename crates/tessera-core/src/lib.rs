//! Tessera's domain core: the rules every surface shares.
//!
//! This crate owns the token format (base62 + CRC-32 checksum), the keyed digest
//! under the server pepper, secret newtypes that never print themselves, token types
//! and permission evaluation, admin roles, lifecycle rules (expiry, status, API
//! version upgrades) and field validation.
//!
//! **Invariant:** no I/O and no clock. Time is always a parameter (`now`), randomness
//! comes from a caller-supplied RNG, so every rule is deterministic under test.

pub mod admin;
pub mod base62;
pub mod catalog;
pub mod digest;
pub mod lifecycle;
pub mod listing;
pub mod record;
pub mod route_rules;
pub mod token;
pub mod validate;

pub use admin::{AdminPermission, BuiltinRole, PersonalAccess, Role};
pub use catalog::{Action, ActionKind, Catalog, Permission, Resource, TokenType};
pub use digest::{Pepper, TokenDigest};
pub use lifecycle::{ApiVersions, GracePeriod, Lifespan, RateLimit, TokenStatus};
pub use listing::{
    AuditFilter, AuditPageSize, CreatedWindow, SortField, StatusFilter, TokenFilter, TokenPageSize,
    TokenSort, UsageDays,
};
pub use record::{
    AuditEntry, Change, ChangeKind, GraceDigest, Project, TokenId, TokenKind, TokenMetadata,
    TokenRecord, TokenSettings, UserId, UserRecord,
};
pub use route_rules::{DefaultRoute, ForwardAuthConfig, RouteDecision, RouteRules, RuleConfig};
pub use token::{ParsedToken, TokenFormat, TokenFormatError, TokenPrefix, TokenSecret};
pub use validate::{FieldErrors, ValidationError};
