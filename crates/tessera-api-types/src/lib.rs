//! The wire format of Tessera's REST API (SPEC.md): request bodies, records, the error
//! body and verify answers, as serde types shared by the server, the CLI's `--json`
//! output and clients.
//!
//! Requests reject unknown fields, so a typo is a clear 422 rather than a silent no-op.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod changes;
pub mod error;
#[cfg(feature = "graphql")]
pub mod graphql;
pub mod token;
pub mod usage_report;
pub mod verify;

pub use admin::{
    AuditPage, AuditParams, AuditView, CreatePersonalTokenRequest, CreateUserRequest,
    CreatedPersonalToken, PersonalTokenView, RegisterFirstRequest, RoleRequest, RoleUpdate,
    RoleView, UpdateUserRequest,
};
pub use auth::{LoginRequest, LoginResponse, UserView};
pub use catalog::{
    ActionView, ApiVersionsView, ProjectRequest, ProjectView, ResourceRequest, ResourceUpdate,
    ResourceView,
};
pub use changes::{ChangeView, ChangesPage, ChangesParams};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use token::{
    CreateTokenRequest, CreatedToken, DuplicateRequest, RegenerateRequest, TokenListParams,
    TokenPage, TokenView, UpdateTokenRequest, UpgradeVersionRequest, UsageDay, UsageParams,
    UsageView,
};
pub use usage_report::{UsageReport, UsageReportOutcome, UsageReportToken};
pub use verify::{VerifiedToken, VerifyCode, VerifyRequest, VerifyResponse};

/// Deserializes a field that distinguishes "absent" (`None`) from `null`
/// (`Some(None)`), for PATCH bodies that can clear a value.
pub mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}
