//! Who is calling, and the one place that decides whether they may.

use std::collections::BTreeSet;

use tessera_core::{AdminPermission, UserId};

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
