//! Who is calling, and the one place that decides whether they may: which permissions
//! each way of signing in carries, and what only a signed-in session may do.

use std::collections::BTreeSet;

use tessera_core::{AdminPermission, PersonalAccess, UserId, UserRecord};

use crate::error::{AppError, AppResult};

/// An authenticated caller of the management API (or the CLI acting as an operator).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The audit log's name for the caller: `user:<email>` or `cli:<os user>`.
    pub actor: String,
    pub user_id: Option<UserId>,
    pub permissions: BTreeSet<AdminPermission>,
    /// Where the request came from, for the audit log.
    pub client_address: Option<String>,
    /// How the caller proved who they are.
    pub via: Via,
}

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The operator at the command line, trusted as the data directory's owner.
    Operator,
    /// An admin session cookie (with its CSRF token on unsafe requests).
    Session,
    /// `Authorization: Bearer` with a personal token.
    PersonalToken,
}

impl Principal {
    /// The operator at the command line: every permission, as the data dir's owner.
    pub fn operator(os_user: &str) -> Self {
        Self {
            actor: format!("cli:{os_user}"),
            user_id: None,
            permissions: AdminPermission::ALL.into_iter().collect(),
            client_address: None,
            via: Via::Operator,
        }
    }

    /// A user signed in with a session: everything their role grants.
    pub(crate) fn session(
        user: &UserRecord,
        granted: BTreeSet<AdminPermission>,
        client_address: Option<String>,
    ) -> Self {
        Self::user(user, granted, client_address, Via::Session)
    }

    /// A user presenting one of their personal tokens: what their role grants, as far
    /// as the token's access allows (a read-only token only reads).
    pub(crate) fn personal_token(
        user: &UserRecord,
        access: PersonalAccess,
        granted: BTreeSet<AdminPermission>,
        client_address: Option<String>,
    ) -> Self {
        let permissions = access.restrict(granted);
        Self::user(user, permissions, client_address, Via::PersonalToken)
    }

    fn user(
        user: &UserRecord,
        permissions: BTreeSet<AdminPermission>,
        client_address: Option<String>,
        via: Via,
    ) -> Self {
        Self {
            actor: format!("user:{}", user.email),
            user_id: Some(user.id),
            permissions,
            client_address,
            via,
        }
    }

    /// The signed-in user, for operations on one's own tokens.
    pub(crate) fn own_user(&self) -> AppResult<UserId> {
        self.user_id
            .ok_or_else(|| AppError::BadRequest("only a signed-in user has personal tokens".into()))
    }

    /// Personal tokens are managed from a session: a personal token cannot mint or
    /// revoke personal tokens, so a leaked one cannot entrench itself.
    pub(crate) fn require_session(&self) -> AppResult<()> {
        match self.via {
            Via::PersonalToken => Err(AppError::Forbidden(
                "personal tokens are managed from a signed-in session, not with a personal token"
                    .into(),
            )),
            Via::Session | Via::Operator => Ok(()),
        }
    }

    /// Setting a password creates a credential: only from a session (or the CLI), so a
    /// leaked personal token cannot turn itself into a sign-in.
    pub(crate) fn require_session_for_password(&self) -> AppResult<()> {
        match self.via {
            Via::PersonalToken => Err(AppError::Forbidden(
                "passwords are set from a signed-in session, not with a personal token".into(),
            )),
            Via::Session | Via::Operator => Ok(()),
        }
    }

    /// `Ok` when the caller holds `permission`, `Forbidden` naming it otherwise.
    pub fn require(&self, permission: AdminPermission) -> AppResult<()> {
        if self.permissions.contains(&permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this action needs the `{}` permission",
                permission.as_str()
            )))
        }
    }

    /// `Ok` when the caller holds at least one of `permissions`.
    pub fn require_any(&self, permissions: &[AdminPermission]) -> AppResult<()> {
        if self.has_any(permissions) {
            return Ok(());
        }
        let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        Err(AppError::Forbidden(format!(
            "this action needs one of these permissions: {}",
            names.join(", ")
        )))
    }

    pub fn has(&self, permission: AdminPermission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Whether [`Principal::require_any`] would let the caller through.
    pub fn has_any(&self, permissions: &[AdminPermission]) -> bool {
        permissions.iter().any(|p| self.permissions.contains(p))
    }
}
