//! Admin sign-in and the signed-in user.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::AdminPermission;
use uuid::Uuid;

/// `POST /v1/auth/login`.
// `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An admin user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "User")
)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub permissions: Vec<AdminPermission>,
    pub active: bool,
    #[serde(serialize_with = "crate::token::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The answer to a successful login: the user and the CSRF token that
/// cookie-authenticated unsafe requests send as `X-CSRF-Token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub user: UserView,
    pub csrf_token: String,
}
