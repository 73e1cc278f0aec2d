//! The SQLite backend: WAL journal, foreign keys, a busy timeout, `synchronous=FULL` so
//! an acknowledged write survives a crash. Migrations live in `migrations/sqlite/`.

mod admin;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use tessera_core::{
    AuditEntry, Change, ChangeKind, Project, Resource, Role, TokenId, TokenRecord, UserId,
    UserRecord,
};

use crate::rows::{
    ProjectRow, ResourceRow, TOKEN_COLUMNS, TokenRow, USER_COLUMNS, UserRow, corrupt, day_text,
    from_millis, millis, parse_day,
};
use crate::{
    AuditQuery, AuditRow, Cursor, Pruned, SessionRecord, SortField, SortKey, StatusFilter, Store,
    StoreError, StoreResult, TokenPage, TokenQuery, UsageDelta, UsageRow, meta,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Tessera's store on an embedded SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            what: "a record with that name already exists".into(),
        },
        // `ON DELETE RESTRICT` fails as SQLITE_CONSTRAINT_TRIGGER (1811), which sqlx
        // does not classify as a foreign-key violation.
        sqlx::Error::Database(db)
            if db.is_foreign_key_violation()
                || db.message().contains("FOREIGN KEY constraint failed") =>
        {
            StoreError::Conflict {
                what: "the record is referenced elsewhere, or references a missing record".into(),
            }
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(Box::new(error))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(error)),
        _ => StoreError::Backend(Box::new(error)),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Ok(Self::open_migrated(url).await?.0)
    }

    /// [`SqliteStore::open`], also telling which migrations it applied.
    pub async fn open_migrated(url: &str) -> StoreResult<(Self, crate::Migrated)> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(map_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        let mut connection = pool.acquire().await.map_err(map_error)?;
        let migrated = crate::run_migrations(&MIGRATOR, &mut *connection)
            .await
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        drop(connection);
        Ok((Self { pool }, migrated))
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock up front, so
    /// concurrent writers wait on the busy timeout instead of failing on a lock upgrade.
    /// Dropping it uncommitted (an error, a cancelled request) rolls it back.
    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)
    }

    /// Appends the audit row and the change-feed row to `transaction` and commits it.
    async fn finish(
        mut transaction: sqlx::Transaction<'static, Sqlite>,
        audit: &AuditEntry,
        change: Option<(ChangeKind, &str)>,
    ) -> StoreResult<()> {
        insert_audit(&mut transaction, audit)
            .await
            .map_err(map_error)?;
        if let Some((kind, key)) = change {
            sqlx::query("INSERT INTO changes (kind, key, at) VALUES (?, ?, ?)")
                .bind(kind.as_str())
                .bind(key)
                .bind(millis(audit.at))
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)
    }
}

/// `Err(NotFound)` when a statement meant to change one row changed none.
fn one_row(result: sqlx::sqlite::SqliteQueryResult) -> StoreResult<()> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

async fn insert_audit(
    connection: &mut SqliteConnection,
    audit: &AuditEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, client_address, changes) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(millis(audit.at))
    .bind(&audit.actor)
    .bind(&audit.action)
    .bind(&audit.target)
    .bind(&audit.client_address)
    .bind(audit.changes.to_string())
    .execute(connection)
    .await?;
    Ok(())
}

/// Binds every column of `token` in [`TOKEN_COLUMNS`] order.
fn bind_token<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    token: &'q TokenRecord,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(token.id.to_string())
        .bind(token.kind.as_str())
        .bind(&token.name)
        .bind(tessera_core::validate::name_key(&token.name))
        .bind(&token.description)
        .bind(token.token_type.as_str())
        .bind(permissions_json(&token.permissions))
        .bind(&token.project)
        .bind(token.owner_id.map(|id| id.to_string()))
        .bind(token.status.as_str())
        .bind(token.lifespan.as_str())
        .bind(token.expires_at.map(millis))
        .bind(&token.api_version)
        .bind(&token.hint)
        .bind(token.digest.as_bytes().to_vec())
        .bind(token.grace.map(|g| g.digest.as_bytes().to_vec()))
        .bind(token.grace.map(|g| millis(g.until)))
        .bind(millis(token.created_at))
        .bind(&token.created_by)
        .bind(millis(token.updated_at))
        .bind(token.last_used_at.map(millis))
        .bind(token.rate_limit.map(|r| i64::from(r.requests)))
        .bind(token.rate_limit.map(|r| i64::from(r.per_seconds)))
        .bind(&token.external_id)
        .bind(metadata_json(&token.metadata))
}

fn metadata_json(metadata: &tessera_core::TokenMetadata) -> String {
    serde_json::Value::Object(metadata.clone()).to_string()
}

fn permissions_json(permissions: &[String]) -> String {
    serde_json::Value::from(permissions.to_vec()).to_string()
}

fn actions_json(resource: &Resource) -> String {
    serde_json::to_string(&resource.actions).unwrap_or_else(|_| "[]".to_owned())
}

/// Pushes the WHERE clause shared by the page query and the count.
fn push_filters(builder: &mut QueryBuilder<'_, Sqlite>, query: &TokenQuery) {
    let now = millis(query.now);
    builder
        .push(" WHERE kind = ")
        .push_bind(query.kind.as_str());
    if let Some(owner) = query.owner {
        builder
            .push(" AND owner_id = ")
            .push_bind(owner.to_string());
    }
    if let Some(text) = &query.name_contains {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        builder
            .push(" AND name_key LIKE ")
            .push_bind(format!("%{escaped}%"))
            .push(" ESCAPE '\\'");
    }
    if let Some(after) = query.created_after {
        builder.push(" AND created_at >= ").push_bind(millis(after));
    }
    if let Some(before) = query.created_before {
        builder.push(" AND created_at < ").push_bind(millis(before));
    }
    match query.status {
        Some(StatusFilter::Active) => {
            builder
                .push(" AND status = 'active' AND (expires_at IS NULL OR expires_at > ")
                .push_bind(now)
                .push(")");
        }
        Some(StatusFilter::Disabled) => {
            builder.push(" AND status = 'disabled'");
        }
        Some(StatusFilter::Expired) => {
            builder.push(" AND expires_at <= ").push_bind(now);
        }
        None => {}
    }
    if let Some(token_type) = query.token_type {
        builder
            .push(" AND token_type = ")
            .push_bind(token_type.as_str());
    }
    if let Some(project) = &query.project {
        builder.push(" AND project = ").push_bind(project.clone());
    }
    if let Some(external_id) = &query.external_id {
        builder
            .push(" AND external_id = ")
            .push_bind(external_id.clone());
    }
}

fn sort_expression(field: SortField) -> &'static str {
    match field {
        SortField::CreatedAt => "created_at",
        SortField::Name => "name_key",
        SortField::LastUsedAt => "COALESCE(last_used_at, -1)",
    }
}

fn push_sort_key(builder: &mut QueryBuilder<'_, Sqlite>, key: &SortKey) {
    match key {
        SortKey::Number(value) => builder.push_bind(*value),
        SortKey::Text(value) => builder.push_bind(value.clone()),
    };
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn insert_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        let id = token.id.to_string();
        let mut transaction = self.begin().await?;

        let sql = format!(
            "INSERT INTO tokens (id, kind, name, name_key, description, token_type, \
                 permissions, project, owner_id, status, lifespan, expires_at, api_version, \
                 hint, digest, grace_digest, grace_until, created_at, created_by, updated_at, \
                 last_used_at, rate_limit_requests, rate_limit_seconds, external_id, metadata) \
                 VALUES ({})",
            vec!["?"; 25].join(", ")
        );
        bind_token(sqlx::query(&sql), token)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        Self::finish(transaction, audit, Some((ChangeKind::Token, &id))).await
    }

    async fn update_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        let id = token.id.to_string();
        let mut transaction = self.begin().await?;

        // Identity, creation and usage columns never change through an edit.
        let result = sqlx::query(
            "UPDATE tokens SET name = ?, name_key = ?, description = ?, token_type = ?, \
                 permissions = ?, project = ?, status = ?, lifespan = ?, expires_at = ?, \
                 api_version = ?, hint = ?, digest = ?, grace_digest = ?, grace_until = ?, \
                 updated_at = ?, rate_limit_requests = ?, rate_limit_seconds = ?, \
                 external_id = ?, metadata = ?, revision = revision + 1 \
                 WHERE id = ? AND revision = ?",
        )
        .bind(&token.name)
        .bind(tessera_core::validate::name_key(&token.name))
        .bind(&token.description)
        .bind(token.token_type.as_str())
        .bind(permissions_json(&token.permissions))
        .bind(&token.project)
        .bind(token.status.as_str())
        .bind(token.lifespan.as_str())
        .bind(token.expires_at.map(millis))
        .bind(&token.api_version)
        .bind(&token.hint)
        .bind(token.digest.as_bytes().to_vec())
        .bind(token.grace.map(|g| g.digest.as_bytes().to_vec()))
        .bind(token.grace.map(|g| millis(g.until)))
        .bind(millis(token.updated_at))
        .bind(token.rate_limit.map(|r| i64::from(r.requests)))
        .bind(token.rate_limit.map(|r| i64::from(r.per_seconds)))
        .bind(&token.external_id)
        .bind(metadata_json(&token.metadata))
        .bind(token.id.to_string())
        .bind(token.revision)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        if result.rows_affected() == 0 {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = ?")
                .bind(&id)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(map_error)?;
            return Err(if exists.is_some() {
                StoreError::Stale
            } else {
                StoreError::NotFound
            });
        }
        Self::finish(transaction, audit, Some((ChangeKind::Token, &id))).await
    }

    async fn delete_token(&self, id: TokenId, audit: &AuditEntry) -> StoreResult<()> {
        let key = id.to_string();
        let mut transaction = self.begin().await?;

        let result = sqlx::query("DELETE FROM tokens WHERE id = ?")
            .bind(&key)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        one_row(result)?;
        Self::finish(transaction, audit, Some((ChangeKind::Token, &key))).await
    }

    async fn get_token(&self, id: TokenId) -> StoreResult<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?");
        sqlx::query_as::<_, TokenRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?
            .map(TokenRow::into_record)
            .transpose()
    }

    async fn get_tokens(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenRecord>> {
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut builder = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE id IN ("
            ));
            let mut separated = builder.separated(", ");
            for id in chunk {
                separated.push_bind(id.to_string());
            }
            builder.push(")");
            let rows = builder
                .build_query_as::<TokenRow>()
                .fetch_all(&self.pool)
                .await
                .map_err(map_error)?;
            for row in rows {
                records.push(row.into_record()?);
            }
        }
        Ok(records)
    }

    async fn tokens_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id > ? ORDER BY id LIMIT ?");
        sqlx::query_as::<_, TokenRow>(&sql)
            .bind(after.map(|id| id.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?
            .into_iter()
            .map(TokenRow::into_record)
            .collect()
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<TokenPage> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM tokens");
        push_filters(&mut count, query);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;

        let key = sort_expression(query.sort.field);
        let (compare, order) = if query.sort.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut page = QueryBuilder::<Sqlite>::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens"));
        push_filters(&mut page, query);
        if let Some(cursor) = &query.after {
            page.push(format!(" AND ({key} {compare} "));
            push_sort_key(&mut page, &cursor.key);
            page.push(format!(" OR ({key} = "));
            push_sort_key(&mut page, &cursor.key);
            page.push(format!(" AND id {compare} "))
                .push_bind(cursor.id.to_string())
                .push("))");
        }
        page.push(format!(" ORDER BY {key} {order}, id {order} LIMIT "))
            .push_bind(i64::from(query.limit) + 1);
        let rows = page
            .build_query_as::<TokenRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        let mut items = rows
            .into_iter()
            .map(TokenRow::into_record)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if items.len() > query.limit as usize {
            items.truncate(query.limit as usize);
            items.last().map(|last| Cursor {
                key: SortKey::of(last, query.sort.field),
                id: last.id,
            })
        } else {
            None
        };
        Ok(TokenPage {
            items,
            next,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn api_token_name_taken(&self, name_key: &str) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM tokens WHERE kind = 'api' AND name_key = ?")
                .bind(name_key)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_error)?;
        Ok(found.is_some())
    }

    async fn record_usage(&self, batch: &[UsageDelta]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut transaction = self.begin().await?;
        for delta in batch {
            let id = delta.token_id.to_string();
            sqlx::query(
                "INSERT INTO usage_daily (token_id, day, allowed, denied) \
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM tokens WHERE id = ?1) \
                 ON CONFLICT (token_id, day) DO UPDATE SET \
                 allowed = allowed + excluded.allowed, denied = denied + excluded.denied",
            )
            .bind(&id)
            .bind(day_text(delta.day))
            .bind(i64::try_from(delta.allowed).unwrap_or(i64::MAX))
            .bind(i64::try_from(delta.denied).unwrap_or(i64::MAX))
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
            if let Some(at) = delta.last_used_at {
                sqlx::query(
                    "UPDATE tokens SET last_used_at = ?2 \
                     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )
                .bind(&id)
                .bind(millis(at))
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
            }
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn usage(&self, id: TokenId, since: NaiveDate) -> StoreResult<Vec<UsageRow>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT day, allowed, denied FROM usage_daily WHERE token_id = ? AND day >= ? ORDER BY day",
        )
        .bind(id.to_string())
        .bind(day_text(since))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.into_iter()
            .map(|(day, allowed, denied)| {
                Ok(UsageRow {
                    day: parse_day(&day)?,
                    allowed: u64::try_from(allowed).unwrap_or(0),
                    denied: u64::try_from(denied).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn list_resources(&self) -> StoreResult<Vec<Resource>> {
        sqlx::query_as::<_, ResourceRow>(
            "SELECT name, description, actions FROM resources ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?
        .into_iter()
        .map(ResourceRow::into_resource)
        .collect()
    }

    async fn insert_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut transaction = self.begin().await?;

        sqlx::query(
            "INSERT INTO resources (name, description, actions, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
        )
        .bind(&resource.name)
        .bind(&resource.description)
        .bind(actions_json(resource))
        .bind(millis(now))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;

        Self::finish(
            transaction,
            audit,
            Some((ChangeKind::Catalog, &resource.name)),
        )
        .await
    }

    async fn update_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut transaction = self.begin().await?;

        let result = sqlx::query(
            "UPDATE resources SET description = ?2, actions = ?3, updated_at = ?4 WHERE name = ?1",
        )
        .bind(&resource.name)
        .bind(&resource.description)
        .bind(actions_json(resource))
        .bind(millis(now))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        one_row(result)?;

        Self::finish(
            transaction,
            audit,
            Some((ChangeKind::Catalog, &resource.name)),
        )
        .await
    }

    async fn delete_resource(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        let mut transaction = self.begin().await?;

        let result = sqlx::query("DELETE FROM resources WHERE name = ?")
            .bind(name)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        one_row(result)?;
        Self::finish(transaction, audit, Some((ChangeKind::Catalog, name))).await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        sqlx::query_as::<_, ProjectRow>("SELECT slug, name, created_at FROM projects ORDER BY slug")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?
            .into_iter()
            .map(ProjectRow::into_project)
            .collect()
    }

    async fn insert_project(&self, project: &Project, audit: &AuditEntry) -> StoreResult<()> {
        let mut transaction = self.begin().await?;

        sqlx::query("INSERT INTO projects (slug, name, created_at) VALUES (?, ?, ?)")
            .bind(&project.slug)
            .bind(&project.name)
            .bind(millis(project.created_at))
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;

        Self::finish(
            transaction,
            audit,
            Some((ChangeKind::Project, &project.slug)),
        )
        .await
    }

    async fn delete_project(&self, slug: &str, audit: &AuditEntry) -> StoreResult<()> {
        let mut transaction = self.begin().await?;
        let result = sqlx::query("DELETE FROM projects WHERE slug = ?")
            .bind(slug)
            .execute(&mut *transaction)
            .await
            .map_err(|error| match map_error(error) {
                StoreError::Conflict { .. } => StoreError::Conflict {
                    what: format!("tokens are bound to project `{slug}`"),
                },
                other => other,
            })?;
        one_row(result)?;
        Self::finish(transaction, audit, Some((ChangeKind::Project, slug))).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn insert_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        let id = user.id.to_string();
        let mut transaction = self.begin().await?;
        admin::insert_user_row(&mut transaction, user).await?;
        Self::finish(transaction, audit, Some((ChangeKind::User, &id))).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?
            .map(UserRow::into_record)
            .transpose()
    }

    async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_key = ?");
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?
            .map(UserRow::into_record)
            .transpose()
    }

    async fn insert_session(&self, session: &SessionRecord, audit: &AuditEntry) -> StoreResult<()> {
        let mut transaction = self.begin().await?;

        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(millis(session.created_at))
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO sessions (digest, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(session.digest.to_vec())
        .bind(session.user_id.to_string())
        .bind(millis(session.created_at))
        .bind(millis(session.expires_at))
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;

        Self::finish(transaction, audit, None).await
    }

    async fn get_session(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        let sql = format!(
            "SELECT s.created_at AS session_created, s.expires_at AS session_expires, {} \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.digest = ? AND s.expires_at > ?",
            USER_COLUMNS
                .split(", ")
                .map(|column| format!("u.{column}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(digest.to_vec())
            .bind(millis(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        let Some(row) = row else { return Ok(None) };
        use sqlx::{FromRow, Row};
        let user = UserRow::from_row(&row).map_err(map_error)?.into_record()?;
        let created: i64 = row.try_get("session_created").map_err(map_error)?;
        let expires: i64 = row.try_get("session_expires").map_err(map_error)?;
        let session = SessionRecord {
            digest: *digest,
            user_id: user.id,
            created_at: from_millis(created)?,
            expires_at: from_millis(expires)?,
        };
        Ok(Some((session, user)))
    }

    async fn delete_session(&self, digest: &[u8; 32], audit: &AuditEntry) -> StoreResult<()> {
        let digest = digest.to_vec();
        let mut transaction = self.begin().await?;

        sqlx::query("DELETE FROM sessions WHERE digest = ?")
            .bind(digest)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        Self::finish(transaction, audit, None).await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        self.list_users_impl().await
    }

    async fn insert_first_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.insert_first_user_impl(user, audit).await
    }

    async fn update_user(
        &self,
        user: &UserRecord,
        end_sessions: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.update_user_impl(user, end_sessions, audit).await
    }

    async fn delete_user(&self, id: UserId, audit: &AuditEntry) -> StoreResult<()> {
        self.delete_user_impl(id, audit).await
    }

    async fn tokens_of_owner(&self, owner: UserId) -> StoreResult<Vec<TokenRecord>> {
        self.tokens_of_owner_impl(owner).await
    }

    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        self.list_roles_impl().await
    }

    async fn get_role(&self, name: &str) -> StoreResult<Option<Role>> {
        self.get_role_impl(name).await
    }

    async fn insert_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.insert_role_impl(role, now, audit).await
    }

    async fn update_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.update_role_impl(role, now, audit).await
    }

    async fn delete_role(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.delete_role_impl(name, audit).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        self.list_audit_impl(query).await
    }

    async fn record_audit(&self, audit: &AuditEntry) -> StoreResult<()> {
        let mut connection = self.pool.acquire().await.map_err(map_error)?;
        insert_audit(&mut connection, audit)
            .await
            .map_err(map_error)
    }

    async fn latest_change(&self) -> StoreResult<i64> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(sequence) FROM changes")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(latest.unwrap_or(0))
    }

    async fn changes_after(&self, sequence: i64, limit: u32) -> StoreResult<Vec<Change>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT sequence, kind, key FROM changes WHERE sequence > ? ORDER BY sequence LIMIT ?",
        )
        .bind(sequence)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.into_iter()
            .map(|(sequence, kind, key)| {
                let kind = ChangeKind::parse(&kind).ok_or_else(|| corrupt("change kind"))?;
                Ok(Change {
                    sequence,
                    kind,
                    key,
                })
            })
            .collect()
    }

    fn pool_state(&self) -> Option<(u32, usize)> {
        Some((self.pool.size(), self.pool.num_idle()))
    }

    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        let mut connection = self.pool.acquire().await.map_err(map_error)?;
        pruned_through(&mut connection).await
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Pruned> {
        // The write lock at once (BEGIN IMMEDIATE): one pruner at a time, and the
        // newest change read below stays the newest until the commit.
        let mut transaction = self.begin().await?;
        let boundary: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(sequence) FROM (SELECT sequence FROM changes \
             WHERE at < ? AND sequence < (SELECT MAX(sequence) FROM changes) \
             ORDER BY sequence LIMIT ?)",
        )
        .bind(millis(before))
        .bind(i64::from(limit))
        .fetch_one(&mut *transaction)
        .await
        .map_err(map_error)?;
        let mut deleted = 0;
        if let Some(boundary) = boundary {
            deleted = sqlx::query("DELETE FROM changes WHERE sequence <= ?")
                .bind(boundary)
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?
                .rows_affected();
            sqlx::query(RAISE_PRUNED_THROUGH)
                .bind(meta::CHANGES_PRUNED_THROUGH)
                .bind(boundary.to_string())
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
        }
        let through = pruned_through(&mut transaction).await?;
        transaction.commit().await.map_err(map_error)?;
        Ok(Pruned {
            deleted,
            through,
            busy: false,
        })
    }

    async fn pepper_fingerprint(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(meta::PEPPER_FINGERPRINT)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn claim_pepper_fingerprint(&self, fingerprint: &str) -> StoreResult<String> {
        let mut transaction = self.begin().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(meta::PEPPER_FINGERPRINT)
            .bind(fingerprint)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        let recorded: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(meta::PEPPER_FINGERPRINT)
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        transaction.commit().await.map_err(map_error)?;
        Ok(recorded)
    }
}

/// Raises `changes_pruned_through` to `?2` (never lowers it). Key `?1`.
const RAISE_PRUNED_THROUGH: &str = "INSERT INTO meta (key, value) VALUES (?1, ?2) \
     ON CONFLICT (key) DO UPDATE SET value = CASE \
     WHEN CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER) \
     THEN excluded.value ELSE meta.value END";

async fn pruned_through(connection: &mut SqliteConnection) -> StoreResult<i64> {
    let value: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
        .bind(meta::CHANGES_PRUNED_THROUGH)
        .fetch_optional(&mut *connection)
        .await
        .map_err(map_error)?;
    value.map_or(Ok(0), |value| {
        value.parse().map_err(|_| corrupt("changes_pruned_through"))
    })
}
