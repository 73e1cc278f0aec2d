//! Users, roles and the audit log on PostgreSQL. The trait implementation in `mod.rs`
//! forwards here, keeping each file to one job.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use tessera_core::{
    AdminPermission, AuditEntry, ChangeKind, Role, TokenRecord, UserId, UserRecord,
};

use super::{PostgresStore, map_error};
use crate::rows::{TOKEN_COLUMNS, TokenRow, USER_COLUMNS, UserRow, corrupt, from_millis, millis};
use crate::{AuditQuery, AuditRow, StoreError, StoreResult};

const SUPER_ADMIN: &str = "super-admin";

/// One row of the `audit` table.
#[derive(Debug, sqlx::FromRow)]
struct AuditRecord {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    client_address: Option<String>,
    changes: String,
}

async fn active_super_admins(connection: &mut PgConnection) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = $1 AND active")
        .bind(SUPER_ADMIN)
        .fetch_one(connection)
        .await
        .map_err(map_error)
}

/// Locks the active super-admins' rows, so that two transactions demoting different
/// super-admins at once cannot both see the other as remaining (READ COMMITTED): the
/// second waits, then re-reads which rows still qualify.
async fn lock_super_admins(connection: &mut PgConnection) -> StoreResult<i64> {
    let locked: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM users WHERE role = $1 AND active ORDER BY id FOR UPDATE",
    )
    .bind(SUPER_ADMIN)
    .fetch_all(connection)
    .await
    .map_err(map_error)?;
    Ok(i64::try_from(locked.len()).unwrap_or(i64::MAX))
}

/// Serializes first-run registrations (two at once must not both see no users).
const FIRST_USER_LOCK: i64 = 0x7465_7373_6572_6102;

/// Refuses a user write naming a role that does not exist (or was just deleted): the
/// check runs inside the write's transaction, with the role row share-locked so a concurrent delete waits.
async fn ensure_role_exists(connection: &mut PgConnection, role: &str) -> StoreResult<()> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT name FROM roles WHERE name = $1 FOR SHARE")
            .bind(role)
            .fetch_optional(connection)
            .await
            .map_err(map_error)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict {
            what: format!("no role `{role}` exists"),
        }),
    }
}

fn last_super_admin() -> StoreError {
    StoreError::Conflict {
        what: "the last active super-admin cannot be removed, demoted or deactivated".into(),
    }
}

fn role_from_row(
    name: String,
    description: String,
    permissions: String,
    builtin: bool,
) -> StoreResult<Role> {
    let names: Vec<String> =
        serde_json::from_str(&permissions).map_err(|_| corrupt("role permissions"))?;
    let permissions: BTreeSet<AdminPermission> = names
        .iter()
        .filter_map(|n| AdminPermission::parse(n))
        .collect();
    Ok(Role {
        name,
        description,
        permissions,
        builtin,
    })
}

fn permissions_json(role: &Role) -> String {
    let names: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned())
}

impl PostgresStore {
    pub(super) async fn list_users_impl(&self) -> StoreResult<Vec<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email_key");
        sqlx::query_as::<_, UserRow>(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?
            .into_iter()
            .map(UserRow::into_record)
            .collect()
    }

    pub(super) async fn insert_first_user_impl(
        &self,
        user: &UserRecord,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut transaction = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FIRST_USER_LOCK)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        if existing > 0 {
            return Err(StoreError::Conflict {
                what: "an administrator already exists".into(),
            });
        }
        insert_user_row(&mut transaction, user).await?;
        let id = user.id.to_string();
        Self::finish(transaction, audit, Some((ChangeKind::User, &id))).await
    }

    pub(super) async fn update_user_impl(
        &self,
        user: &UserRecord,
        end_sessions: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let id = user.id.to_string();
        let mut transaction = self.begin().await?;
        let before = lock_super_admins(&mut transaction).await?;
        ensure_role_exists(&mut transaction, &user.role).await?;
        let result = sqlx::query(
            "UPDATE users SET email = $1, email_key = $2, name = $3, role = $4, password_hash = $5, \
             active = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.name)
        .bind(&user.role)
        .bind(&user.password_hash)
        .bind(user.active)
        .bind(millis(user.updated_at))
        .bind(&id)
        .execute(&mut *transaction)
        .await
        .map_err(|error| match map_error(error) {
            StoreError::Conflict { .. } => StoreError::Conflict {
                what: format!("a user with email `{}` already exists", user.email),
            },
            other => other,
        })?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if before > 0 && active_super_admins(&mut transaction).await? == 0 {
            return Err(last_super_admin());
        }
        if end_sessions {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(&id)
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
        }
        Self::finish(transaction, audit, Some((ChangeKind::User, &id))).await
    }

    pub(super) async fn delete_user_impl(
        &self,
        user: UserId,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let id = user.to_string();
        let mut transaction = self.begin().await?;
        let before = lock_super_admins(&mut transaction).await?;
        // Personal tokens and sessions go with the user (ON DELETE CASCADE); each
        // deleted token is also a change the verify index must see.
        let tokens: Vec<String> = sqlx::query_scalar("SELECT id FROM tokens WHERE owner_id = $1")
            .bind(&id)
            .fetch_all(&mut *transaction)
            .await
            .map_err(map_error)?;
        let result = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&id)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if before > 0 && active_super_admins(&mut transaction).await? == 0 {
            return Err(last_super_admin());
        }
        let mut changes: Vec<(ChangeKind, &str)> = tokens
            .iter()
            .map(|t| (ChangeKind::Token, t.as_str()))
            .collect();
        changes.push((ChangeKind::User, &id));
        Self::finish_all(transaction, audit, &changes).await
    }

    pub(super) async fn tokens_of_owner_impl(
        &self,
        owner: UserId,
    ) -> StoreResult<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE owner_id = $1");
        sqlx::query_as::<_, TokenRow>(&sql)
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?
            .into_iter()
            .map(TokenRow::into_record)
            .collect()
    }

    pub(super) async fn list_roles_impl(&self) -> StoreResult<Vec<Role>> {
        let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
            "SELECT name, description, permissions, builtin FROM roles ORDER BY builtin DESC, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.into_iter()
            .map(|(name, description, permissions, builtin)| {
                role_from_row(name, description, permissions, builtin)
            })
            .collect()
    }

    pub(super) async fn get_role_impl(&self, name: &str) -> StoreResult<Option<Role>> {
        let row: Option<(String, String, String, bool)> = sqlx::query_as(
            "SELECT name, description, permissions, builtin FROM roles WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(|(name, description, permissions, builtin)| {
            role_from_row(name, description, permissions, builtin)
        })
        .transpose()
    }

    pub(super) async fn insert_role_impl(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut transaction = self.begin().await?;
        sqlx::query(
            "INSERT INTO roles (name, description, permissions, builtin, created_at, updated_at) \
             VALUES ($1, $2, $3, FALSE, $4, $4)",
        )
        .bind(&role.name)
        .bind(&role.description)
        .bind(permissions_json(role))
        .bind(millis(now))
        .execute(&mut *transaction)
        .await
        .map_err(|error| match map_error(error) {
            StoreError::Conflict { .. } => StoreError::Conflict {
                what: format!("a role named `{}` already exists", role.name),
            },
            other => other,
        })?;
        Self::finish(transaction, audit, None).await
    }

    pub(super) async fn update_role_impl(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut transaction = self.begin().await?;
        let result = sqlx::query(
            "UPDATE roles SET description = $1, permissions = $2, updated_at = $3 WHERE name = $4",
        )
        .bind(&role.description)
        .bind(permissions_json(role))
        .bind(millis(now))
        .bind(&role.name)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Self::finish(transaction, audit, None).await
    }

    pub(super) async fn delete_role_impl(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        let mut transaction = self.begin().await?;
        // Lock the role first: a user write naming it (which share-locks it) either
        // finished before, and is seen below, or waits and then finds it gone.
        sqlx::query("SELECT name FROM roles WHERE name = $1 FOR UPDATE")
            .bind(name)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        let holders: Vec<String> =
            sqlx::query_scalar("SELECT email FROM users WHERE role = $1 ORDER BY email_key")
                .bind(name)
                .fetch_all(&mut *transaction)
                .await
                .map_err(map_error)?;
        if !holders.is_empty() {
            return Err(StoreError::Conflict {
                what: format!("role `{name}` is held by {}", holders.join(", ")),
            });
        }
        let result = sqlx::query("DELETE FROM roles WHERE name = $1")
            .bind(name)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Self::finish(transaction, audit, None).await
    }

    pub(super) async fn list_audit_impl(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        let mut builder = QueryBuilder::<Postgres>::new(
            "SELECT id, at, actor, action, target, client_address, changes FROM audit WHERE TRUE",
        );
        if let Some(actor) = &query.actor {
            builder.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &query.action {
            builder.push(" AND action = ").push_bind(action.clone());
        }
        if let Some(target) = &query.target {
            builder.push(" AND target = ").push_bind(target.clone());
        }
        if let Some(since) = query.since {
            builder.push(" AND at >= ").push_bind(millis(since));
        }
        if let Some(until) = query.until {
            builder.push(" AND at < ").push_bind(millis(until));
        }
        if let Some(before) = query.before {
            builder.push(" AND id < ").push_bind(before);
        }
        builder
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows: Vec<AuditRecord> = builder
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.into_iter()
            .map(
                |AuditRecord {
                     id,
                     at,
                     actor,
                     action,
                     target,
                     client_address,
                     changes,
                 }| {
                    Ok(AuditRow {
                        id,
                        entry: AuditEntry {
                            at: from_millis(at)?,
                            actor,
                            action,
                            target,
                            client_address,
                            changes: serde_json::from_str(&changes)
                                .map_err(|_| corrupt("audit changes"))?,
                        },
                    })
                },
            )
            .collect()
    }
}

/// Inserts a user row (shared by `insert_user` and first-run registration).
pub(super) async fn insert_user_row(
    connection: &mut PgConnection,
    user: &UserRecord,
) -> StoreResult<()> {
    ensure_role_exists(connection, &user.role).await?;
    sqlx::query(
        "INSERT INTO users (id, email, email_key, name, role, password_hash, active, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(user.id.to_string())
    .bind(&user.email)
    .bind(user.email.to_lowercase())
    .bind(&user.name)
    .bind(&user.role)
    .bind(&user.password_hash)
    .bind(user.active)
    .bind(millis(user.created_at))
    .bind(millis(user.updated_at))
    .execute(connection)
    .await
    .map_err(|error| match map_error(error) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            what: format!("a user with email `{}` already exists", user.email),
        },
        other => other,
    })?;
    Ok(())
}
