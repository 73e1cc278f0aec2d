//! Token records and the requests that manage them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use tessera_core::listing::FieldParser;
use tessera_core::{
    FieldErrors, Lifespan, RateLimit, TokenFilter, TokenKind, TokenMetadata, TokenRecord,
    TokenStatus, TokenType, UsageDays,
};
use uuid::Uuid;

/// RFC 3339 in UTC with a `Z`, to the millisecond.
pub fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// [`rfc3339`] for optional times.
pub fn rfc3339_opt<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// A token as the API shows it. It never carries the secret or its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "Token", complex)
)]
pub struct TokenView {
    pub id: Uuid,
    pub kind: TokenKind,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "graphql", graphql(name = "type"))]
    pub token_type: TokenType,
    pub permissions: Vec<String>,
    pub project: Option<String>,
    pub owner_id: Option<Uuid>,
    pub status: TokenStatus,
    pub expired: bool,
    pub lifespan: Lifespan,
    #[serde(serialize_with = "rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub api_version: String,
    pub hint: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<RateLimit>,
    pub external_id: Option<String>,
    #[schema(value_type = Object)]
    #[cfg_attr(feature = "graphql", graphql(skip))]
    pub metadata: TokenMetadata,
}

impl TokenView {
    /// The view of `record` at `now` (which decides `expired`).
    pub fn new(record: &TokenRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: record.id.0,
            kind: record.kind,
            name: record.name.clone(),
            description: record.description.clone(),
            token_type: record.token_type,
            permissions: record.permissions.clone(),
            project: record.project.clone(),
            owner_id: record.owner_id.map(|id| id.0),
            status: record.status,
            expired: record.is_expired(now),
            lifespan: record.lifespan,
            expires_at: record.expires_at,
            api_version: record.api_version.clone(),
            hint: record.hint.clone(),
            created_at: record.created_at,
            created_by: record.created_by.clone(),
            updated_at: record.updated_at,
            last_used_at: record.last_used_at,
            rate_limit: record.rate_limit,
            external_id: record.external_id.clone(),
            metadata: record.metadata.clone(),
        }
    }
}

/// The one response that reveals a secret: the record plus `token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct CreatedToken {
    #[serde(flatten)]
    #[cfg_attr(feature = "graphql", graphql(flatten))]
    pub record: TokenView,
    pub token: String,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "CreateTokenInput")
)]
pub struct CreateTokenRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "graphql", graphql(name = "type"))]
    pub token_type: Option<TokenType>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub lifespan: Option<Lifespan>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// Any JSON here: the application answers 422 naming `metadata` unless it is an
    /// object of at most 4 KB, rather than a bare deserialization error.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// `PATCH /v1/tokens/{id}`: absent fields stay; `null` clears a nullable field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTokenRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type", default)]
    pub token_type: Option<TokenType>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub lifespan: Option<Lifespan>,
    #[serde(
        default,
        deserialize_with = "crate::double_option::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub project: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate_limit: Option<Option<RateLimit>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<Option<String>>,
    /// Replaces the whole object; `null` empties it.
    #[serde(
        default,
        deserialize_with = "crate::double_option::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Option<serde_json::Value>>,
}

/// `POST /v1/tokens/{id}/regenerate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "RegenerateInput")
)]
pub struct RegenerateRequest {
    #[serde(default)]
    pub grace_period_seconds: Option<u32>,
}

/// `POST /v1/tokens/{id}/duplicate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRequest {
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/tokens/{id}/upgrade-version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeVersionRequest {
    #[serde(default)]
    pub api_version: Option<String>,
}

/// `GET /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct TokenPage {
    pub items: Vec<TokenView>,
    pub next_cursor: Option<String>,
    /// How many tokens match, counted up to 10,000.
    pub total: u64,
    /// Whether `total` is every match; false when more than 10,000 match, and `total`
    /// is 10,000 ("at least").
    pub total_exact: bool,
}

/// `GET /v1/tokens/{id}/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct UsageView {
    pub days: Vec<UsageDay>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct UsageDay {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub allowed: u64,
    pub denied: u64,
}

/// `GET /v1/tokens` query parameters, as given. [`TokenListParams::parse`] turns them
/// into the typed filter the application takes, naming each bad one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenListParams {
    /// A part of the name, in any case and width.
    pub q: Option<String>,
    /// `last-7-days`, `last-30-days` or `older-than-30-days`.
    pub created: Option<String>,
    /// Created at or after this RFC 3339 time.
    pub created_after: Option<String>,
    /// Created before this RFC 3339 time.
    pub created_before: Option<String>,
    /// `active`, `disabled` or `expired`.
    pub status: Option<String>,
    /// `read-only`, `full-access` or `custom`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub token_type: Option<String>,
    /// A project's slug.
    pub project: Option<String>,
    /// The exact external id.
    pub external_id: Option<String>,
    /// `created_at`, `name` or `last_used_at`, `-` first for descending (default `-created_at`).
    pub sort: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl TokenListParams {
    /// The typed filter, or an error for each parameter that does not parse.
    pub fn parse(self) -> Result<TokenFilter, FieldErrors> {
        let mut parser = FieldParser::default();
        let filter = TokenFilter {
            created: parser.parse("created", self.created.as_deref()),
            created_after: parser.time("created_after", self.created_after.as_deref()),
            created_before: parser.time("created_before", self.created_before.as_deref()),
            status: parser.parse("status", self.status.as_deref()),
            token_type: parser.parse("type", self.token_type.as_deref()),
            sort: parser
                .parse("sort", self.sort.as_deref())
                .unwrap_or_default(),
            limit: parser
                .parse("limit", self.limit.as_deref())
                .unwrap_or_default(),
            search: self.q,
            project: self.project,
            external_id: self.external_id,
            cursor: self.cursor,
        };
        parser.finish(filter)
    }
}

/// `GET /v1/tokens/{id}/usage` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// 1 to 366 days, ending today (default 30).
    pub days: Option<String>,
}

impl UsageParams {
    /// How many days of history are asked for (30 when not said).
    pub fn parse(self) -> Result<UsageDays, FieldErrors> {
        let mut parser = FieldParser::default();
        let days = parser
            .parse("days", self.days.as_deref())
            .unwrap_or_default();
        parser.finish(days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters_name_each_bad_field() {
        let params = TokenListParams {
            sort: Some("size".into()),
            limit: Some("500".into()),
            status: Some("gone".into()),
            created: Some("yesterday".into()),
            created_after: Some("monday".into()),
            token_type: Some("admin".into()),
            ..TokenListParams::default()
        };
        let error = params.parse().unwrap_err();
        for field in [
            "sort",
            "limit",
            "status",
            "created",
            "created_after",
            "type",
        ] {
            assert!(error.get(field).is_some(), "{field} not named: {error:?}");
        }
    }

    #[test]
    fn list_parameters_parse_into_the_filter_they_name() {
        let filter = TokenListParams {
            q: Some("deploy".into()),
            status: Some("expired".into()),
            token_type: Some("custom".into()),
            sort: Some("-name".into()),
            limit: Some("10".into()),
            ..TokenListParams::default()
        }
        .parse()
        .unwrap();
        assert_eq!(filter.search.as_deref(), Some("deploy"));
        assert_eq!(filter.status, Some(tessera_core::StatusFilter::Expired));
        assert_eq!(filter.token_type, Some(TokenType::Custom));
        assert_eq!(filter.sort.to_string(), "-name");
        assert_eq!(filter.limit.get(), 10);
        let days = UsageParams { days: None }.parse().unwrap();
        assert_eq!(days.get(), 30);
        let error = UsageParams {
            days: Some("367".into()),
        }
        .parse()
        .unwrap_err();
        assert_eq!(
            error.get("days"),
            Some("must be a whole number from 1 to 366")
        );
    }
}
