//! Admin roles: the built-in ones and custom ones with any subset of the admin
//! permissions. `super-admin` cannot be edited or deleted; other built-in roles can be
//! edited but not deleted; a role someone holds cannot be deleted. A change applies on
//! the next request of every affected session and personal token, since permissions
//! are read from the role on each request.

use std::collections::BTreeSet;

use tessera_api_types::{RoleRequest, RoleUpdate, RoleView, UserView};
use tessera_core::admin::validate_role_name;
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{AdminPermission, Role, UserRecord};

use crate::audit;
use crate::auth::{grants_of, user_view_with};
use crate::context::Context;
use crate::error::{AppError, AppResult, not_found};
use crate::principal::Principal;

pub fn role_view(role: &Role) -> RoleView {
    RoleView {
        id: role.name.clone(),
        name: role.name.clone(),
        description: role.description.clone(),
        permissions: role.granted().into_iter().collect(),
        builtin: role.builtin,
        editable: !role.is_super_admin(),
    }
}

/// A role manager may only grant what they hold themselves: `roles.manage` must not be
/// a path to permissions its holder lacks (removing permissions is always allowed).
fn ensure_grantable(
    principal: &Principal,
    after: &BTreeSet<AdminPermission>,
    before: &BTreeSet<AdminPermission>,
) -> AppResult<()> {
    let beyond: Vec<&str> = after
        .difference(before)
        .filter(|p| !principal.permissions.contains(p))
        .map(|p| p.as_str())
        .collect();
    if beyond.is_empty() {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "you cannot grant permissions you do not hold: {}",
            beyond.join(", ")
        )))
    }
}

fn role_json(role: &Role) -> AppResult<serde_json::Value> {
    audit::snapshot(&role_view(role))
}

/// Admin roles, and what a role grants (read on every request: a role's change applies
/// at once).
#[derive(Debug, Clone)]
pub struct Roles {
    cx: Context,
}

impl Roles {
    pub(crate) fn new(cx: Context) -> Self {
        Self { cx }
    }

    /// Readable by whoever manages roles or users (assigning a role needs the list).
    pub async fn list(&self, principal: &Principal) -> AppResult<Vec<RoleView>> {
        principal.require_any(&[AdminPermission::RolesManage, AdminPermission::UsersManage])?;
        Ok(self
            .cx
            .store
            .list_roles()
            .await?
            .iter()
            .map(role_view)
            .collect())
    }

    /// A role by its id (name). A missing one is answered without echoing the id: a
    /// secret pasted where a name belongs must not come back in an error.
    async fn role(&self, id: &str) -> AppResult<Role> {
        self.find(id)
            .await?
            .ok_or_else(|| AppError::NotFound("role".into()))
    }

    /// The role named `name`, if any. A name that breaks the naming rule names no
    /// role and never reaches the database (where a NUL, say, would be an error).
    pub(crate) async fn find(&self, name: &str) -> AppResult<Option<Role>> {
        if tessera_core::admin::validate_role_name(name).is_err() {
            return Ok(None);
        }
        Ok(self.cx.store.get_role(name).await?)
    }

    pub async fn create(&self, principal: &Principal, request: RoleRequest) -> AppResult<RoleView> {
        principal.require(AdminPermission::RolesManage)?;
        let mut errors = FieldErrors::default();
        errors.collect(validate_role_name(&request.name));
        let description = request.description.unwrap_or_default();
        errors.collect(validate::description(&description));
        errors.into_result()?;
        let role = Role {
            name: request.name,
            description,
            permissions: request.permissions.into_iter().collect::<BTreeSet<_>>(),
            builtin: false,
        };
        ensure_grantable(principal, &role.permissions, &BTreeSet::new())?;
        let now = self.cx.now();
        let entry = audit::entry(
            principal,
            now,
            "role.create",
            format!("role:{}", role.name),
            audit::diff(None, Some(&role_json(&role)?)),
        );
        self.cx.store.insert_role(&role, now, &entry).await?;
        Ok(role_view(&role))
    }

    pub async fn update(
        &self,
        principal: &Principal,
        id: &str,
        update: RoleUpdate,
    ) -> AppResult<RoleView> {
        principal.require(AdminPermission::RolesManage)?;
        let before = self.role(id).await?;
        if before.is_super_admin() {
            return Err(AppError::Conflict(
                "the super-admin role cannot be edited".into(),
            ));
        }
        let mut after = before.clone();
        if let Some(description) = update.description {
            validate::description(&description)?;
            after.description = description;
        }
        if let Some(permissions) = update.permissions {
            after.permissions = permissions.into_iter().collect();
        }
        ensure_grantable(principal, &after.permissions, &before.permissions)?;
        let now = self.cx.now();
        let changes = audit::diff(Some(&role_json(&before)?), Some(&role_json(&after)?));
        let entry = audit::entry(principal, now, "role.update", format!("role:{id}"), changes);
        self.cx
            .store
            .update_role(&after, now, &entry)
            .await
            .map_err(not_found("role"))?;
        Ok(role_view(&after))
    }

    pub async fn delete(&self, principal: &Principal, id: &str) -> AppResult<()> {
        principal.require(AdminPermission::RolesManage)?;
        let before = self.role(id).await?;
        if before.builtin {
            return Err(AppError::Conflict(format!(
                "the built-in role `{id}` cannot be deleted"
            )));
        }
        let entry = audit::entry(
            principal,
            self.cx.now(),
            "role.delete",
            format!("role:{id}"),
            audit::diff(Some(&role_json(&before)?), None),
        );
        self.cx
            .store
            .delete_role(id, &entry)
            .await
            .map_err(not_found("role"))?;
        Ok(())
    }

    /// What `role` grants (see [`grants_of`]).
    pub(crate) async fn grants(&self, role: &str) -> AppResult<BTreeSet<AdminPermission>> {
        Ok(grants_of(self.find(role).await?.as_ref()))
    }

    /// A user as the API shows it, with what their role grants now.
    pub(crate) async fn user_view(&self, user: &UserRecord) -> AppResult<UserView> {
        Ok(user_view_with(user, self.grants(&user.role).await?))
    }
}
