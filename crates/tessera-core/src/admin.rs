//! Admin permissions (who may manage what in Tessera) and the built-in roles.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

/// A permission over Tessera's own management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum AdminPermission {
    #[serde(rename = "tokens.read")]
    TokensRead,
    #[serde(rename = "tokens.create")]
    TokensCreate,
    #[serde(rename = "tokens.update")]
    TokensUpdate,
    #[serde(rename = "tokens.regenerate")]
    TokensRegenerate,
    #[serde(rename = "tokens.delete")]
    TokensDelete,
    #[serde(rename = "resources.manage")]
    ResourcesManage,
    #[serde(rename = "projects.manage")]
    ProjectsManage,
    #[serde(rename = "users.manage")]
    UsersManage,
    #[serde(rename = "roles.manage")]
    RolesManage,
    #[serde(rename = "audit.read")]
    AuditRead,
}

impl AdminPermission {
    pub const ALL: [Self; 10] = [
        Self::TokensRead,
        Self::TokensCreate,
        Self::TokensUpdate,
        Self::TokensRegenerate,
        Self::TokensDelete,
        Self::ResourcesManage,
        Self::ProjectsManage,
        Self::UsersManage,
        Self::RolesManage,
        Self::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokensRead => "tokens.read",
            Self::TokensCreate => "tokens.create",
            Self::TokensUpdate => "tokens.update",
            Self::TokensRegenerate => "tokens.regenerate",
            Self::TokensDelete => "tokens.delete",
            Self::ResourcesManage => "resources.manage",
            Self::ProjectsManage => "projects.manage",
            Self::UsersManage => "users.manage",
            Self::RolesManage => "roles.manage",
            Self::AuditRead => "audit.read",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// Permissions that only read. A read-only personal token keeps just these.
    pub fn is_read(self) -> bool {
        matches!(self, Self::TokensRead | Self::AuditRead)
    }
}

/// The roles every deployment has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinRole {
    SuperAdmin,
    TokenManager,
    Viewer,
}

impl BuiltinRole {
    pub const ALL: [Self; 3] = [Self::SuperAdmin, Self::TokenManager, Self::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super-admin",
            Self::TokenManager => "token-manager",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn permissions(self) -> BTreeSet<AdminPermission> {
        use AdminPermission::*;
        match self {
            Self::SuperAdmin => AdminPermission::ALL.into_iter().collect(),
            Self::TokenManager => [
                TokensRead,
                TokensCreate,
                TokensUpdate,
                TokensRegenerate,
                TokensDelete,
                AuditRead,
            ]
            .into_iter()
            .collect(),
            Self::Viewer => [TokensRead].into_iter().collect(),
        }
    }
}

/// An admin role: a named set of permissions. Built-in roles are seeded by the
/// schema; `super-admin` always holds every permission and cannot be edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: BTreeSet<AdminPermission>,
    pub builtin: bool,
}

impl Role {
    /// What the role grants: everything for `super-admin`, else its list.
    pub fn granted(&self) -> BTreeSet<AdminPermission> {
        if self.name == BuiltinRole::SuperAdmin.as_str() {
            AdminPermission::ALL.into_iter().collect()
        } else {
            self.permissions.clone()
        }
    }

    pub fn is_super_admin(&self) -> bool {
        self.name == BuiltinRole::SuperAdmin.as_str()
    }
}

/// A role name: `[a-z][a-z0-9-]{0,62}`. Names are the roles' ids, so they never change.
pub fn validate_role_name(name: &str) -> Result<(), FieldErrors> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FieldErrors::single(
            "name",
            "must match [a-z][a-z0-9-]{0,62}",
        ))
    }
}

/// What a personal token may do with its owner's permissions: `full` keeps them all,
/// `read-only` keeps only the reading ones ([`AdminPermission::is_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum PersonalAccess {
    Full,
    ReadOnly,
}

impl PersonalAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read-only",
        }
    }

    /// The token type a personal token of this access is stored with: read-only
    /// tokens keep the reading permissions, full ones all of them.
    pub fn token_type(self) -> crate::TokenType {
        match self {
            Self::Full => crate::TokenType::FullAccess,
            Self::ReadOnly => crate::TokenType::ReadOnly,
        }
    }

    /// The access a personal token stored with `token_type` has (the inverse of
    /// [`PersonalAccess::token_type`]; a custom type, which personal tokens never get,
    /// counts as full).
    pub fn of_token_type(token_type: crate::TokenType) -> Self {
        match token_type {
            crate::TokenType::ReadOnly => Self::ReadOnly,
            crate::TokenType::FullAccess | crate::TokenType::Custom => Self::Full,
        }
    }

    /// The owner's permissions as seen through a token with this access.
    pub fn restrict(self, permissions: BTreeSet<AdminPermission>) -> BTreeSet<AdminPermission> {
        match self {
            Self::Full => permissions,
            Self::ReadOnly => permissions.into_iter().filter(|p| p.is_read()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_round_trip() {
        for permission in AdminPermission::ALL {
            assert_eq!(
                AdminPermission::parse(permission.as_str()),
                Some(permission)
            );
        }
        assert_eq!(AdminPermission::parse("tokens.*"), None);
    }

    #[test]
    fn super_admin_always_holds_every_permission() {
        let role = Role {
            name: "super-admin".into(),
            description: String::new(),
            permissions: BTreeSet::new(),
            builtin: true,
        };
        assert_eq!(role.granted().len(), AdminPermission::ALL.len());
        let custom = Role {
            name: "auditor".into(),
            permissions: [AdminPermission::AuditRead].into(),
            ..role
        };
        assert_eq!(custom.granted(), [AdminPermission::AuditRead].into());
    }

    #[test]
    fn read_only_access_keeps_reading_permissions_only() {
        let all: BTreeSet<_> = AdminPermission::ALL.into_iter().collect();
        let kept = PersonalAccess::ReadOnly.restrict(all.clone());
        assert_eq!(
            kept,
            [AdminPermission::TokensRead, AdminPermission::AuditRead].into()
        );
        assert_eq!(PersonalAccess::Full.restrict(all.clone()), all);
    }

    #[test]
    fn role_names() {
        for ok in ["auditor", "a", "ops-2"] {
            assert!(validate_role_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Ops", "2ops", "ops_2", &"a".repeat(64)] {
            assert!(validate_role_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_roles_match_the_spec() {
        assert_eq!(BuiltinRole::SuperAdmin.permissions().len(), 10);
        let manager = BuiltinRole::TokenManager.permissions();
        assert!(manager.contains(&AdminPermission::TokensDelete));
        assert!(manager.contains(&AdminPermission::AuditRead));
        assert!(!manager.contains(&AdminPermission::UsersManage));
        assert!(!manager.contains(&AdminPermission::ResourcesManage));
        let viewer = BuiltinRole::Viewer.permissions();
        assert_eq!(
            viewer.into_iter().collect::<Vec<_>>(),
            vec![AdminPermission::TokensRead]
        );
    }
}
