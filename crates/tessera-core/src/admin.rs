//! Admin permissions (who may manage what in Tessera) and the built-in roles.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A permission over Tessera's own management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
