//! Administrators: list, create, edit (email, name, role, password reset, active),
//! delete. The store refuses any write that would leave no active super-admin.
//! Deactivating a user, resetting their password or removing them ends their sessions
//! at once, and the verify index stops their personal tokens at once.

use tessera_api_types::{CreateUserRequest, UpdateUserRequest, UserView};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{AdminPermission, UserId, UserRecord};

use crate::auth::{Password, grants_of, user_view_with};
use crate::error::{AppError, AppResult, not_found};
use crate::principal::Principal;
use crate::{Tessera, audit};

pub(crate) fn parse_user_id(id: &str) -> AppResult<UserId> {
    UserId::parse(id).ok_or_else(|| AppError::NotFound("user (the id is not a UUID)".into()))
}

impl Tessera {
    /// Managing a user whose role (or assigning a role that) holds permissions the
    /// caller lacks is refused: `users.manage` must not be a path to super-admin.
    pub(crate) async fn ensure_within_reach(
        &self,
        principal: &Principal,
        role: &str,
    ) -> AppResult<()> {
        let granted = self.role_grants(role).await?;
        if granted.is_subset(&principal.permissions) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "the role `{role}` holds permissions you do not hold"
            )))
        }
    }

    pub(crate) async fn user(&self, id: &str) -> AppResult<UserRecord> {
        self.store
            .get_user(parse_user_id(id)?)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("user `{id}`")))
    }

    pub async fn list_users(&self, principal: &Principal) -> AppResult<Vec<UserView>> {
        principal.require(AdminPermission::UsersManage)?;
        // Two queries whatever the number of users: every role once, then each user's
        // grants from that list (an unknown role grants nothing, as in `role_grants`).
        let roles: std::collections::BTreeMap<String, _> = self
            .store
            .list_roles()
            .await?
            .into_iter()
            .map(|role| (role.name.clone(), role))
            .collect();
        let users = self.store.list_users().await?;
        Ok(users
            .iter()
            .map(|user| user_view_with(user, grants_of(roles.get(&user.role))))
            .collect())
    }

    pub async fn create_user(
        &self,
        principal: &Principal,
        request: CreateUserRequest,
    ) -> AppResult<UserView> {
        self.insert_admin(
            principal,
            request.email,
            request.name,
            request.role,
            request.password.map(Password),
        )
        .await
    }

    pub async fn update_user(
        &self,
        principal: &Principal,
        id: &str,
        request: UpdateUserRequest,
    ) -> AppResult<UserView> {
        principal.require(AdminPermission::UsersManage)?;
        let before = self.user(id).await?;
        self.ensure_within_reach(principal, &before.role).await?;
        if request.password.is_some() {
            principal.require_session_for_password()?;
        }
        if let Some(role) = &request.role
            && *role != before.role
        {
            self.ensure_within_reach(principal, role).await?;
        }
        if principal.user_id == Some(before.id) {
            if request.active == Some(false) {
                return Err(AppError::Conflict(
                    "you cannot deactivate yourself: you would be locked out; \
                     ask another administrator"
                        .into(),
                ));
            }
            if request
                .role
                .as_ref()
                .is_some_and(|role| *role != before.role)
            {
                return Err(AppError::Conflict(
                    "you cannot change your own role: you could lock yourself out; \
                     ask another administrator"
                        .into(),
                ));
            }
        }
        let mut after = before.clone();
        let mut errors = FieldErrors::default();
        if let Some(email) = request.email {
            errors.collect(validate::email(&email));
            after.email = email;
        }
        if let Some(name) = request.name {
            errors.collect(validate::display_name("name", &name));
            after.name = name;
        }
        if let Some(role) = request.role {
            if self.find_role(&role).await?.is_none() {
                errors.add("role", "names no role; see the role list");
            }
            after.role = role;
        }
        let password = request.password.map(Password);
        if let Some(password) = &password {
            errors.collect(validate::password(&password.0));
        }
        if let Some(active) = request.active {
            after.active = active;
        }
        errors.into_result()?;
        if let Some(password) = password {
            after.password_hash = self.hash(password).await?;
        }
        let end_sessions =
            (before.active && !after.active) || after.password_hash != before.password_hash;
        after.updated_at = self.clock.now();
        let before_view = self.user_view(&before).await?;
        let after_view = self.user_view(&after).await?;
        let mut changes = audit::diff(
            Some(&audit::snapshot(&before_view)?),
            Some(&audit::snapshot(&after_view)?),
        );
        if after.password_hash != before.password_hash
            && let Some(map) = changes.as_object_mut()
        {
            // That it changed, never what it is.
            map.insert(
                "password".into(),
                serde_json::json!({"from": "<set>", "to": "<reset>"}),
            );
        }
        let entry = audit::entry(
            principal,
            after.updated_at,
            "user.update",
            format!("user:{}", after.id),
            changes,
        );
        self.store
            .update_user(&after, end_sessions, &entry)
            .await
            .map_err(not_found(format!("user `{id}`")))?;
        self.apply_own_write().await;
        Ok(after_view)
    }

    pub async fn delete_user(&self, principal: &Principal, id: &str) -> AppResult<()> {
        principal.require(AdminPermission::UsersManage)?;
        let before = self.user(id).await?;
        self.ensure_within_reach(principal, &before.role).await?;
        if principal.user_id == Some(before.id) {
            return Err(AppError::Conflict(
                "you cannot delete yourself: ask another administrator".into(),
            ));
        }
        let view = self.user_view(&before).await?;
        let changes = audit::diff(Some(&audit::snapshot(&view)?), None);
        let entry = audit::entry(
            principal,
            self.clock.now(),
            "user.delete",
            format!("user:{}", before.id),
            changes,
        );
        self.store
            .delete_user(before.id, &entry)
            .await
            .map_err(not_found(format!("user `{id}`")))?;
        self.apply_own_write().await;
        Ok(())
    }
}
