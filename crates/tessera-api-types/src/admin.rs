//! Users, roles, personal tokens and the audit log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::listing::FieldParser;
use tessera_core::{AdminPermission, AuditFilter, FieldErrors, Lifespan, PersonalAccess};

use crate::token::TokenView;

/// `POST /v1/users`. Without a password the user cannot sign in until an admin sets
/// one.
// `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "CreateUserInput")
)]
pub struct CreateUserRequest {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    pub role: String,
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /v1/users/{id}`: absent fields stay. Setting a password or deactivating ends
/// the user's sessions.
// `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "UpdateUserInput")
)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// `POST /v1/auth/register-first`: the first administrator, while none exists, with
/// the one-time setup code `tessera serve` printed.
// `Debug` hides the code and the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFirstRequest {
    pub setup_code: String,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    pub password: String,
}

macro_rules! redacted_debug {
    ($type:ident { $($field:ident),* }) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($field), &self.$field))*
                    .field("password", &"<redacted>")
                    .finish()
            }
        }
    };
}

redacted_debug!(CreateUserRequest { email, name, role });
redacted_debug!(UpdateUserRequest {
    email,
    name,
    role,
    active
});
impl std::fmt::Debug for RegisterFirstRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterFirstRequest")
            .field("setup_code", &"<redacted>")
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A role as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "Role")
)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<AdminPermission>,
    pub builtin: bool,
    /// `false` for `super-admin`.
    pub editable: bool,
}

/// `POST /v1/roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "CreateRoleInput")
)]
pub struct RoleRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub permissions: Vec<AdminPermission>,
}

/// `PATCH /v1/roles/{id}`. A role's name is its id and does not change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "UpdateRoleInput")
)]
pub struct RoleUpdate {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub permissions: Option<Vec<AdminPermission>>,
}

/// `POST /v1/me/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "CreatePersonalTokenInput")
)]
pub struct CreatePersonalTokenRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub access: PersonalAccess,
    #[serde(default)]
    pub lifespan: Option<Lifespan>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A personal token as shown: the record plus its access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "PersonalToken")
)]
pub struct PersonalTokenView {
    #[serde(flatten)]
    #[cfg_attr(feature = "graphql", graphql(flatten))]
    pub record: TokenView,
    pub access: PersonalAccess,
}

/// The one response that reveals a personal token's secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct CreatedPersonalToken {
    #[serde(flatten)]
    #[cfg_attr(feature = "graphql", graphql(flatten))]
    pub record: PersonalTokenView,
    pub token: String,
}

/// `GET /v1/audit` query parameters, as given; [`AuditParams::parse`] names bad ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Exactly this actor, e.g. `user:ada@example.com` or `cli:root`.
    pub actor: Option<String>,
    /// Exactly this action, e.g. `token.create`.
    pub action: Option<String>,
    /// Exactly this target, e.g. `token:<id>`.
    pub target: Option<String>,
    /// At or after this RFC 3339 time.
    pub since: Option<String>,
    /// Before this RFC 3339 time.
    pub until: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl AuditParams {
    /// The typed filter, or an error for each parameter that does not parse.
    pub fn parse(self) -> Result<AuditFilter, FieldErrors> {
        let mut parser = FieldParser::default();
        let filter = AuditFilter {
            since: parser.time("since", self.since.as_deref()),
            until: parser.time("until", self.until.as_deref()),
            limit: parser
                .parse("limit", self.limit.as_deref())
                .unwrap_or_default(),
            actor: self.actor,
            action: self.action,
            target: self.target,
            cursor: self.cursor,
        };
        parser.finish(filter)
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "AuditEntry")
)]
pub struct AuditView {
    pub id: i64,
    #[serde(serialize_with = "crate::token::rfc3339")]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub client_address: Option<String>,
    /// `{field: {"from": …, "to": …}}`.
    pub changes: serde_json::Value,
}

/// `GET /v1/audit`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_first_debug_hides_the_setup_code_and_the_password() {
        let request: RegisterFirstRequest = serde_json::from_value(serde_json::json!({
            "setup_code": "ABCD-EFGH-JKMN-PQRS",
            "email": "first@example.com",
            "password": "correct horse battery",
        }))
        .unwrap();
        let shown = format!("{request:?}");
        assert!(shown.contains("first@example.com"), "{shown}");
        assert!(!shown.contains("ABCD"), "{shown}");
        assert!(!shown.contains("correct horse"), "{shown}");
        let missing = serde_json::from_value::<RegisterFirstRequest>(serde_json::json!({
            "email": "first@example.com",
            "password": "correct horse battery",
        }));
        assert!(missing.is_err(), "the setup code is required");
    }
}
