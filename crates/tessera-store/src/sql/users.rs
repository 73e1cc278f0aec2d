//! Users, their sessions, and roles.
//!
//! **Invariant:** a user write that would leave no active super-admin is refused inside
//! its transaction. On PostgreSQL (READ COMMITTED) the super-admins' rows are locked
//! first, so two transactions demoting different super-admins at once cannot both see
//! the other as remaining: the second waits, then re-reads which rows still qualify.

use chrono::{DateTime, Utc};
use tessera_core::{AuditEntry, ChangeKind, Role, UserId, UserRecord};

use super::{Backend, Expect, Lock, Sql, SqlStore, conflict, fetch_one, finish, one_row};
use crate::rows::{
    ROLE_COLUMNS, RoleRow, SessionUserRow, USER_COLUMNS, UserRow, count, from_millis, json_text,
    millis,
};
use crate::{SessionRecord, StoreError, StoreResult};

const SUPER_ADMIN: &str = "super-admin";

fn last_super_admin() -> StoreError {
    StoreError::Conflict {
        what: "the last active super-admin cannot be removed, demoted or deactivated".into(),
    }
}

fn email_taken(user: &UserRecord) -> String {
    format!("a user with email `{}` already exists", user.email)
}

/// The active super-admins, their rows locked until the transaction ends.
async fn lock_super_admins<B: Backend>(connection: &mut B::Connection) -> StoreResult<usize> {
    let sql = Sql::new(format!(
        "SELECT id FROM users WHERE role = $1 AND active ORDER BY id{}",
        B::FOR_UPDATE
    ))
    .bind(SUPER_ADMIN);
    Ok(B::fetch_all::<(String,)>(connection, sql).await?.len())
}

/// Refuses the write unless an active super-admin remains, where there was one.
async fn keep_a_super_admin<B: Backend>(
    connection: &mut B::Connection,
    before: usize,
) -> StoreResult<()> {
    let sql = Sql::new("SELECT COUNT(*) FROM users WHERE role = $1 AND active").bind(SUPER_ADMIN);
    let (after,): (i64,) = fetch_one::<B, _>(connection, sql).await?;
    if before > 0 && after == 0 {
        return Err(last_super_admin());
    }
    Ok(())
}

/// Refuses a user write naming a role that does not exist (or was just deleted): the
/// check runs inside the write's transaction, with the role row share-locked (on
/// PostgreSQL) so a concurrent delete waits.
async fn ensure_role_exists<B: Backend>(
    connection: &mut B::Connection,
    role: &str,
) -> StoreResult<()> {
    let sql = Sql::new(format!(
        "SELECT name FROM roles WHERE name = $1{}",
        B::FOR_SHARE
    ))
    .bind(role);
    match B::fetch_optional::<(String,)>(connection, sql).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict {
            what: format!("no role `{role}` exists"),
        }),
    }
}

/// Inserts a user row (shared by `insert_user` and first-run registration).
async fn insert_user_row<B: Backend>(
    connection: &mut B::Connection,
    user: &UserRecord,
) -> StoreResult<()> {
    ensure_role_exists::<B>(connection, &user.role).await?;
    let sql = Sql::new(
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
    .bind(millis(user.updated_at));
    B::execute(connection, sql)
        .await
        .map_err(conflict(email_taken(user)))?;
    Ok(())
}

pub(super) async fn count_users<B: Backend>(store: &SqlStore<B>) -> StoreResult<u64> {
    let mut connection = B::acquire(&store.pool).await?;
    let (users,): (i64,) =
        fetch_one::<B, _>(&mut connection, Sql::new("SELECT COUNT(*) FROM users")).await?;
    count(users)
}

pub(super) async fn insert<B: Backend>(
    store: &SqlStore<B>,
    user: &UserRecord,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let id = user.id.to_string();
    let mut transaction = B::begin(&store.pool).await?;
    insert_user_row::<B>(&mut transaction, user).await?;
    finish(transaction, audit, &[(ChangeKind::User, &id)]).await
}

pub(super) async fn insert_first<B: Backend>(
    store: &SqlStore<B>,
    user: &UserRecord,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let mut transaction = B::begin(&store.pool).await?;
    B::lock(&mut transaction, Lock::FirstUser).await?;
    let (existing,): (i64,) =
        fetch_one::<B, _>(&mut transaction, Sql::new("SELECT COUNT(*) FROM users")).await?;
    if existing > 0 {
        return Err(StoreError::Conflict {
            what: "an administrator already exists".into(),
        });
    }
    insert_user_row::<B>(&mut transaction, user).await?;
    let id = user.id.to_string();
    finish(transaction, audit, &[(ChangeKind::User, &id)]).await
}

pub(super) async fn get<B: Backend>(
    store: &SqlStore<B>,
    id: UserId,
) -> StoreResult<Option<UserRecord>> {
    let sql = Sql::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"));
    store
        .optional(sql.bind(id.to_string()), UserRow::into_record)
        .await
}

pub(super) async fn get_by_email<B: Backend>(
    store: &SqlStore<B>,
    email: &str,
) -> StoreResult<Option<UserRecord>> {
    let sql = Sql::new(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email_key = $1"
    ));
    store
        .optional(sql.bind(email.to_lowercase()), UserRow::into_record)
        .await
}

pub(super) async fn list<B: Backend>(store: &SqlStore<B>) -> StoreResult<Vec<UserRecord>> {
    let sql = Sql::new(format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY email_key"
    ));
    store.all(sql, UserRow::into_record).await
}

pub(super) async fn update<B: Backend>(
    store: &SqlStore<B>,
    user: &UserRecord,
    end_sessions: bool,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let id = user.id.to_string();
    let mut transaction = B::begin(&store.pool).await?;
    let before = lock_super_admins::<B>(&mut transaction).await?;
    ensure_role_exists::<B>(&mut transaction, &user.role).await?;
    let sql = Sql::new(
        "UPDATE users SET email = $1, email_key = $2, name = $3, role = $4, \
         password_hash = $5, active = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&user.email)
    .bind(user.email.to_lowercase())
    .bind(&user.name)
    .bind(&user.role)
    .bind(&user.password_hash)
    .bind(user.active)
    .bind(millis(user.updated_at))
    .bind(&id);
    let changed = B::execute(&mut transaction, sql)
        .await
        .map_err(conflict(email_taken(user)))?;
    one_row(changed)?;
    keep_a_super_admin::<B>(&mut transaction, before).await?;
    if end_sessions {
        let sql = Sql::new("DELETE FROM sessions WHERE user_id = $1").bind(&id);
        B::execute(&mut transaction, sql).await?;
    }
    finish(transaction, audit, &[(ChangeKind::User, &id)]).await
}

/// Personal tokens and sessions go with the user (`ON DELETE CASCADE`); each deleted
/// token is also a change the verify index must see.
pub(super) async fn delete<B: Backend>(
    store: &SqlStore<B>,
    user: UserId,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let id = user.to_string();
    let mut transaction = B::begin(&store.pool).await?;
    let before = lock_super_admins::<B>(&mut transaction).await?;
    let sql = Sql::new("SELECT id FROM tokens WHERE owner_id = $1").bind(&id);
    let tokens: Vec<(String,)> = B::fetch_all(&mut transaction, sql).await?;
    let sql = Sql::new("DELETE FROM users WHERE id = $1").bind(&id);
    one_row(B::execute(&mut transaction, sql).await?)?;
    keep_a_super_admin::<B>(&mut transaction, before).await?;
    let mut changes: Vec<(ChangeKind, &str)> = tokens
        .iter()
        .map(|(token,)| (ChangeKind::Token, token.as_str()))
        .collect();
    changes.push((ChangeKind::User, &id));
    finish(transaction, audit, &changes).await
}

pub(super) async fn insert_session<B: Backend>(
    store: &SqlStore<B>,
    session: &SessionRecord,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let mut transaction = B::begin(&store.pool).await?;
    let expired =
        Sql::new("DELETE FROM sessions WHERE expires_at <= $1").bind(millis(session.created_at));
    B::execute(&mut transaction, expired).await?;
    let sql = Sql::new(
        "INSERT INTO sessions (digest, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(session.digest.to_vec())
    .bind(session.user_id.to_string())
    .bind(millis(session.created_at))
    .bind(millis(session.expires_at));
    B::execute(&mut transaction, sql).await?;
    finish(transaction, audit, &[]).await
}

pub(super) async fn get_session<B: Backend>(
    store: &SqlStore<B>,
    digest: &[u8; 32],
    now: DateTime<Utc>,
) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
    let user_columns: Vec<String> = USER_COLUMNS
        .split(", ")
        .map(|column| format!("u.{column}"))
        .collect();
    let sql = Sql::new(format!(
        "SELECT s.created_at AS session_created, s.expires_at AS session_expires, {} \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.digest = $1 AND s.expires_at > $2",
        user_columns.join(", ")
    ))
    .bind(digest.to_vec())
    .bind(millis(now));
    let mut connection = B::acquire(&store.pool).await?;
    let Some(row) = B::fetch_optional::<SessionUserRow>(&mut connection, sql).await? else {
        return Ok(None);
    };
    let user = row.user.into_record()?;
    let session = SessionRecord {
        digest: *digest,
        user_id: user.id,
        created_at: from_millis(row.session_created)?,
        expires_at: from_millis(row.session_expires)?,
    };
    Ok(Some((session, user)))
}

pub(super) async fn delete_session<B: Backend>(
    store: &SqlStore<B>,
    digest: &[u8; 32],
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new("DELETE FROM sessions WHERE digest = $1").bind(digest.to_vec());
    store.write(sql, Expect::Any, audit, &[]).await
}

fn role_permissions(role: &Role) -> StoreResult<String> {
    let names: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
    json_text(&names)
}

pub(super) async fn list_roles<B: Backend>(store: &SqlStore<B>) -> StoreResult<Vec<Role>> {
    let sql = Sql::new(format!(
        "SELECT {ROLE_COLUMNS} FROM roles ORDER BY builtin DESC, name"
    ));
    store.all(sql, RoleRow::into_role).await
}

pub(super) async fn get_role<B: Backend>(
    store: &SqlStore<B>,
    name: &str,
) -> StoreResult<Option<Role>> {
    let sql = Sql::new(format!("SELECT {ROLE_COLUMNS} FROM roles WHERE name = $1")).bind(name);
    store.optional(sql, RoleRow::into_role).await
}

pub(super) async fn insert_role<B: Backend>(
    store: &SqlStore<B>,
    role: &Role,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new(
        "INSERT INTO roles (name, description, permissions, builtin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&role.name)
    .bind(&role.description)
    .bind(role_permissions(role)?)
    .bind(false)
    .bind(millis(now));
    let exists = format!("a role named `{}` already exists", role.name);
    store
        .write(sql, Expect::Any, audit, &[])
        .await
        .map_err(conflict(exists))
}

pub(super) async fn update_role<B: Backend>(
    store: &SqlStore<B>,
    role: &Role,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new(
        "UPDATE roles SET description = $1, permissions = $2, updated_at = $3 WHERE name = $4",
    )
    .bind(&role.description)
    .bind(role_permissions(role)?)
    .bind(millis(now))
    .bind(&role.name);
    store.write(sql, Expect::OneRow, audit, &[]).await
}

/// `Conflict` naming the users (by email) while any user holds the role.
pub(super) async fn delete_role<B: Backend>(
    store: &SqlStore<B>,
    name: &str,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let mut transaction = B::begin(&store.pool).await?;
    // Lock the role first (PostgreSQL): a user write naming it (which share-locks it)
    // either finished before, and is seen below, or waits and then finds it gone.
    let lock = Sql::new(format!(
        "SELECT name FROM roles WHERE name = $1{}",
        B::FOR_UPDATE
    ));
    B::fetch_optional::<(String,)>(&mut transaction, lock.bind(name)).await?;
    let sql = Sql::new("SELECT email FROM users WHERE role = $1 ORDER BY email_key").bind(name);
    let holders: Vec<(String,)> = B::fetch_all(&mut transaction, sql).await?;
    if !holders.is_empty() {
        let holders: Vec<String> = holders.into_iter().map(|(email,)| email).collect();
        return Err(StoreError::Conflict {
            what: format!("role `{name}` is held by {}", holders.join(", ")),
        });
    }
    let sql = Sql::new("DELETE FROM roles WHERE name = $1").bind(name);
    one_row(B::execute(&mut transaction, sql).await?)?;
    finish(transaction, audit, &[]).await
}
