//! Administrators: list, create, edit (email, name, role, password reset, active),
//! delete. The store refuses any write that would leave no active super-admin.
//! Deactivating a user, resetting their password or removing them ends their sessions
//! at once, and the verify index stops their personal tokens at once.

use tessera_api_types::{CreateUserRequest, UpdateUserRequest, UserView};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{AdminPermission, UserId, UserRecord};

use crate::audit;
use crate::auth::{NewAdmin, Password, grants_of, user_view_with};
use crate::context::Context;
use crate::error::{AppError, AppResult, not_found};
use crate::password::Passwords;
use crate::principal::Principal;
use crate::roles::Roles;
use std::sync::Arc;

use rand::rngs::OsRng;

pub(crate) fn parse_user_id(id: &str) -> AppResult<UserId> {
    UserId::parse(id).ok_or_else(|| AppError::NotFound("user (the id is not a UUID)".into()))
}

/// Administrators: their records, within the reach of the caller's own permissions.
#[derive(Debug, Clone)]
pub struct Users {
    cx: Context,
    roles: Roles,
    passwords: Arc<Passwords>,
}

impl Users {
    pub(crate) fn new(cx: Context, roles: Roles, passwords: Arc<Passwords>) -> Self {
        Self {
            cx,
            roles,
            passwords,
        }
    }

    /// Managing a user whose role (or assigning a role that) holds permissions the
    /// caller lacks is refused: `users.manage` must not be a path to super-admin.
    pub(crate) async fn ensure_within_reach(
        &self,
        principal: &Principal,
        role: &str,
    ) -> AppResult<()> {
        let granted = self.roles.grants(role).await?;
        if granted.is_subset(&principal.permissions) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "the role `{role}` holds permissions you do not hold"
            )))
        }
    }

    pub(crate) async fn get(&self, id: &str) -> AppResult<UserRecord> {
        self.cx
            .store
            .get_user(parse_user_id(id)?)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("user `{id}`")))
    }

    pub async fn list(&self, principal: &Principal) -> AppResult<Vec<UserView>> {
        principal.require(AdminPermission::UsersManage)?;
        // Two queries whatever the number of users: every role once, then each user's
        // grants from that list (an unknown role grants nothing, as in `role_grants`).
        let roles: std::collections::BTreeMap<String, _> = self
            .cx
            .store
            .list_roles()
            .await?
            .into_iter()
            .map(|role| (role.name.clone(), role))
            .collect();
        let users = self.cx.store.list_users().await?;
        Ok(users
            .iter()
            .map(|user| user_view_with(user, grants_of(roles.get(&user.role))))
            .collect())
    }

    pub async fn create(
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

    pub async fn update(
        &self,
        principal: &Principal,
        id: &str,
        request: UpdateUserRequest,
    ) -> AppResult<UserView> {
        principal.require(AdminPermission::UsersManage)?;
        let before = self.get(id).await?;
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
            if self.roles.find(&role).await?.is_none() {
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
            after.password_hash = self.passwords.hash(password).await?;
        }
        let end_sessions =
            (before.active && !after.active) || after.password_hash != before.password_hash;
        after.updated_at = self.cx.now();
        let before_view = self.roles.user_view(&before).await?;
        let after_view = self.roles.user_view(&after).await?;
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
        self.cx
            .store
            .update_user(&after, end_sessions, &entry)
            .await
            .map_err(not_found(format!("user `{id}`")))?;
        self.cx.apply_own_write().await;
        Ok(after_view)
    }

    pub async fn delete(&self, principal: &Principal, id: &str) -> AppResult<()> {
        principal.require(AdminPermission::UsersManage)?;
        let before = self.get(id).await?;
        self.ensure_within_reach(principal, &before.role).await?;
        if principal.user_id == Some(before.id) {
            return Err(AppError::Conflict(
                "you cannot delete yourself: ask another administrator".into(),
            ));
        }
        let view = self.roles.user_view(&before).await?;
        let changes = audit::diff(Some(&audit::snapshot(&view)?), None);
        let entry = audit::entry(
            principal,
            self.cx.now(),
            "user.delete",
            format!("user:{}", before.id),
            changes,
        );
        self.cx
            .store
            .delete_user(before.id, &entry)
            .await
            .map_err(not_found(format!("user `{id}`")))?;
        self.cx.apply_own_write().await;
        Ok(())
    }

    /// Creates an administrator. The CLI's operator may always; over the API this needs
    /// `users.manage`.
    pub async fn create_admin(
        &self,
        principal: &Principal,
        admin: NewAdmin,
    ) -> AppResult<UserView> {
        self.insert_admin(
            principal,
            admin.email,
            admin.name,
            admin.role,
            Some(admin.password),
        )
        .await
    }

    /// Validates and stores a new administrator. Without a password the account
    /// cannot sign in until an admin sets one.
    pub(crate) async fn insert_admin(
        &self,
        principal: &Principal,
        email: String,
        name: Option<String>,
        role: String,
        password: Option<Password>,
    ) -> AppResult<UserView> {
        principal.require(AdminPermission::UsersManage)?;
        if password.is_some() {
            principal.require_session_for_password()?;
        }
        if self.roles.find(&role).await?.is_some() {
            self.ensure_within_reach(principal, &role).await?;
        }
        let user = self.new_record(email, name, role, password).await?;
        let view = self.roles.user_view(&user).await?;
        let changes = audit::diff(None, Some(&audit::snapshot(&view)?));
        let entry = audit::entry(
            principal,
            user.created_at,
            "user.create",
            format!("user:{}", user.id),
            changes,
        );
        self.cx.store.insert_user(&user, &entry).await?;
        self.cx.apply_own_write().await;
        Ok(view)
    }

    /// A validated user record (not yet stored).
    pub(crate) async fn new_record(
        &self,
        email: String,
        name: Option<String>,
        role: String,
        password: Option<Password>,
    ) -> AppResult<UserRecord> {
        let mut errors = FieldErrors::default();
        errors.collect(validate::email(&email));
        let name = name.unwrap_or_else(|| email.clone());
        errors.collect(validate::display_name("name", &name));
        if self.roles.find(&role).await?.is_none() {
            errors.add("role", "names no role; see the role list");
        }
        if let Some(password) = &password {
            errors.collect(validate::password(&password.0));
        }
        errors.into_result()?;
        let now = self.cx.now();
        let password_hash = match &password {
            Some(password) => self.passwords.hash(password.clone()).await?,
            None => String::new(),
        };
        Ok(UserRecord {
            id: UserId::new_at(now, &mut OsRng),
            email,
            name,
            role,
            password_hash,
            active: true,
            created_at: now,
            updated_at: now,
        })
    }
}
