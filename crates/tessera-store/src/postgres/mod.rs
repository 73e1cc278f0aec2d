//! The PostgreSQL backend, for a cluster of stateless nodes sharing one database.
//! Migrations live in `migrations/postgres/`, with the same version numbers as SQLite's.
//!
//! It behaves like the SQLite backend, with two things SQLite gets for free made
//! explicit: change-feed rows become visible in sequence order (an advisory lock, see
//! [`PostgresStore::finish`]), and usage flushes from several nodes lock token rows in
//! one order (see `record_usage`). Writes also `NOTIFY`, so other nodes wake at once
//! ([`listener`]).

mod admin;
mod connect;
mod listener;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Connection as _;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult,
};
use sqlx::{Postgres, QueryBuilder};

use tessera_core::{
    AuditEntry, Change, ChangeKind, Project, Resource, Role, TokenId, TokenRecord, UserId,
    UserRecord,
};

use self::listener::{CHANNEL, ChangeListener};
use crate::rows::{
    ProjectRow, ResourceRow, TOKEN_COLUMNS, TokenRow, USER_COLUMNS, UserRow, corrupt, day_text,
    from_millis, millis, parse_day,
};
use crate::{
    AuditQuery, AuditRow, Cursor, Pruned, SessionRecord, SortField, SortKey, StatusFilter, Store,
    StoreError, StoreResult, TokenPage, TokenQuery, UsageDelta, UsageRow, meta,
};

/// The sqlx options of `url`, without Tessera's own parameters (see [`connect`]).
pub(crate) fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    Ok(connect::ConnectSettings::from_url(url)?.options)
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The transaction-level advisory lock that orders change-feed inserts ("tessera" + 1
/// in ASCII; sqlx's migration lock is derived from the database name, so they differ).
const CHANGE_FEED_LOCK: i64 = 0x7465_7373_6572_6101;
/// The transaction-level advisory lock one pruner of the change feed holds at a time.
const CHANGE_FEED_PRUNE_LOCK: i64 = 0x7465_7373_6572_6102;

/// Connections per node; management writes are short and verification never queries.
const POOL_SIZE: u32 = 10;

/// Tessera's store on a PostgreSQL database shared by any number of nodes.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    listener: Arc<ChangeListener>,
    /// How long a call may take before [`crate::open`]'s deadline abandons it.
    call_deadline: Option<Duration>,
}

/// SQLSTATEs that mean "try again later" rather than "this request is wrong":
/// connection exceptions (class 08), insufficient resources (53), operator intervention
/// such as a shutdown or a server that is starting (57P0x), serialization failures and
/// deadlocks (40001, 40P01), a lock wait that timed out (55P03), a read-only server
/// (25006, e.g. a standby during a failover) and a statement cancelled by
/// `statement_timeout` (57014).
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || matches!(code, "40001" | "40P01" | "55P03" | "25006" | "57014")
}

fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            what: "a record with that name already exists".into(),
        },
        // `ON DELETE RESTRICT` fails as a foreign-key violation (23503) too; 23001
        // (restrict_violation) is mapped as well in case a server raises it.
        sqlx::Error::Database(db)
            if db.is_foreign_key_violation() || db.code().as_deref() == Some("23001") =>
        {
            StoreError::Conflict {
                what: "the record is referenced elsewhere, or references a missing record".into(),
            }
        }
        sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_transient) => {
            StoreError::Unavailable(Box::new(error))
        }
        // A protocol error is a connection that broke mid-conversation (e.g. cut while
        // it asked for TLS): the next one may well work.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(error)),
        _ => StoreError::Backend(Box::new(error)),
    }
}

fn map_migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(error) => map_error(error),
        other => StoreError::Backend(Box::new(other)),
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and migrates it. The database must exist;
    /// tables go into the connection's current schema. Any failure to connect (the
    /// server is down, refuses us, or the database is missing) is `Unavailable`, told
    /// once with the address and what to do; a malformed URL is `Backend`. The URL's
    /// own parameters are described in [`connect`].
    pub async fn open(url: &str) -> StoreResult<Self> {
        Ok(Self::open_migrated(url).await?.0)
    }

    /// [`PostgresStore::open`], also telling which migrations it applied.
    pub async fn open_migrated(url: &str) -> StoreResult<(Self, crate::Migrated)> {
        let settings = connect::ConnectSettings::from_url(url)?;
        // One connection first, bounded and not retried, so that a server that is down
        // or a database that is missing is reported once, plainly (a pool would retry
        // until its timeout and report only that it timed out). Migrations run on it,
        // without the pool's statement timeout: a migration may take its time.
        let mut first = match tokio::time::timeout(
            settings.connect_timeout,
            PgConnection::connect_with(&settings.options),
        )
        .await
        {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(settings.explain(error)),
            Err(_) => return Err(settings.timed_out()),
        };
        let migrated = crate::run_migrations(&MIGRATOR, &mut first)
            .await
            .map_err(map_migrate_error)?;
        let _ = sqlx::Connection::close(first).await;

        let setup = Arc::new(settings.session_values());
        let check_timeout = settings.connect_timeout;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            // How long a call waits for a connection (opening one included) before it
            // answers `Unavailable` (a 503): short, so that management calls fail fast
            // while the database is unreachable.
            .acquire_timeout(settings.connect_timeout)
            .after_connect(move |connection, _| {
                let [statement_timeout, idle, interval, count] = (*setup).clone();
                Box::pin(async move {
                    sqlx::query(connect::SESSION_SETUP)
                        .bind(statement_timeout)
                        .bind(idle)
                        .bind(interval)
                        .bind(count)
                        .execute(connection)
                        .await?;
                    Ok(())
                })
            })
            // A connection comes back from a call that may have been abandoned mid-way
            // (a deadline, a cancelled request): it is reused only if it answers at
            // once, else closed. (sqlx's own check on release is not bounded in time.)
            .after_release(move |connection, _| {
                Box::pin(async move {
                    match tokio::time::timeout(check_timeout, connection.ping()).await {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(error)) => Err(error),
                        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the connection did not answer a ping; closing it",
                        ))),
                    }
                })
            })
            .connect_lazy_with(settings.options.clone());
        let schema: String = sqlx::query_scalar("SELECT COALESCE(current_schema(), '')")
            .fetch_one(&pool)
            .await
            .map_err(map_error)?;
        let listener = Arc::new(ChangeListener::new(&pool.connect_options(), schema));
        let store = Self {
            pool,
            listener,
            call_deadline: settings.call_deadline(),
        };
        Ok((store, migrated))
    }

    /// How long a call may take before it is abandoned (`None`: no statement timeout,
    /// so no deadline either).
    pub(crate) fn call_deadline(&self) -> Option<Duration> {
        self.call_deadline
    }

    /// Starts a write transaction (READ COMMITTED, the server default). Dropping it
    /// uncommitted (an error, a cancelled request) rolls it back.
    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(map_error)
    }

    /// Appends the audit row and the change-feed row to `transaction` and commits it.
    ///
    /// Why the advisory lock: a `BIGSERIAL` value is taken when the row is inserted,
    /// but becomes visible when its transaction commits, and transactions commit in
    /// any order. Without the lock, writer A could take sequence 7, writer B take 8
    /// and commit first; a follower reading `sequence > 6` sees 8, moves its position
    /// to 8, and never sees 7 when A commits a moment later: a change skipped for good.
    ///
    /// With the lock, taking a sequence number and committing happen inside one
    /// critical section: `pg_advisory_xact_lock` is held until the transaction ends,
    /// and PostgreSQL releases it only after the commit is visible. So B cannot take a
    /// number until A's row is visible, every snapshot sees a prefix of the feed, and
    /// `sequence > last_seen` is safe. The lock is taken as late as possible (the last
    /// statements before COMMIT, after every row lock of the write) so that only the
    /// insert and the commit are serialized, and no lock is ever awaited while holding
    /// it, so it cannot take part in a deadlock. (It also needs the sequence's default
    /// `CACHE 1`: see the migration.) Sequence numbers can still have gaps, from
    /// transactions that roll back after the insert; followers do not mind.
    async fn finish(
        transaction: sqlx::Transaction<'static, Postgres>,
        audit: &AuditEntry,
        change: Option<(ChangeKind, &str)>,
    ) -> StoreResult<()> {
        Self::finish_all(transaction, audit, change.as_slice()).await
    }

    /// [`PostgresStore::finish`] for a write that changes several things (a user and
    /// the personal tokens deleted with them): one lock, one row per change.
    async fn finish_all(
        mut transaction: sqlx::Transaction<'static, Postgres>,
        audit: &AuditEntry,
        changes: &[(ChangeKind, &str)],
    ) -> StoreResult<()> {
        insert_audit(&mut transaction, audit)
            .await
            .map_err(map_error)?;
        if !changes.is_empty() {
            // Delivered at commit, and only if the transaction commits.
            sqlx::query("SELECT pg_notify($1, current_schema())")
                .bind(CHANNEL)
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHANGE_FEED_LOCK)
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
            for (kind, key) in changes {
                sqlx::query("INSERT INTO changes (kind, key, at) VALUES ($1, $2, $3)")
                    .bind(kind.as_str())
                    .bind(*key)
                    .bind(millis(audit.at))
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_error)?;
            }
        }
        transaction.commit().await.map_err(map_error)
    }
}

/// `Err(NotFound)` when a statement meant to change one row changed none.
fn one_row(result: PgQueryResult) -> StoreResult<()> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

async fn insert_audit(
    connection: &mut PgConnection,
    audit: &AuditEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, client_address, changes) \
         VALUES ($1, $2, $3, $4, $5, $6)",
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

/// Binds every column of `token` in [`TOKEN_COLUMNS`] order (less `revision`).
fn bind_token<'q>(
    query: sqlx::query::Query<'q, Postgres, PgArguments>,
    token: &'q TokenRecord,
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
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
fn push_filters(builder: &mut QueryBuilder<'_, Postgres>, query: &TokenQuery) {
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
        // `standard_conforming_strings` (on by default) keeps '\' one backslash.
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

/// The sort expression. `name_key` and `id` are `COLLATE "C"` columns, so names and
/// ids order by bytes, as in SQLite, whatever the database's locale.
fn sort_expression(field: SortField) -> &'static str {
    match field {
        SortField::CreatedAt => "created_at",
        SortField::Name => "name_key",
        SortField::LastUsedAt => "COALESCE(last_used_at, -1)",
    }
}

fn push_sort_key(builder: &mut QueryBuilder<'_, Postgres>, key: &SortKey) {
    match key {
        SortKey::Number(value) => builder.push_bind(*value),
        SortKey::Text(value) => builder.push_bind(value.clone()),
    };
}

/// One token's usage in a flush: its days' counts and its newest use.
#[derive(Default)]
struct TokenUsage {
    days: BTreeMap<NaiveDate, (i64, i64)>,
    last_used_at: Option<i64>,
}

/// Merges a batch by token (in id order) and day, so each row is written once.
fn merge_usage(batch: &[UsageDelta]) -> BTreeMap<TokenId, TokenUsage> {
    let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let mut merged: BTreeMap<TokenId, TokenUsage> = BTreeMap::new();
    for delta in batch {
        let usage = merged.entry(delta.token_id).or_default();
        let day = usage.days.entry(delta.day).or_insert((0, 0));
        day.0 = day.0.saturating_add(count(delta.allowed));
        day.1 = day.1.saturating_add(count(delta.denied));
        usage.last_used_at = usage.last_used_at.max(delta.last_used_at.map(millis));
    }
    merged
}

#[async_trait]
impl Store for PostgresStore {
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

        let placeholders = (1..=25)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO tokens (id, kind, name, name_key, description, token_type, \
                 permissions, project, owner_id, status, lifespan, expires_at, api_version, \
                 hint, digest, grace_digest, grace_until, created_at, created_by, updated_at, \
                 last_used_at, rate_limit_requests, rate_limit_seconds, external_id, metadata) \
                 VALUES ({placeholders})"
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

        // Identity, creation and usage columns never change through an edit. Under READ
        // COMMITTED a concurrent edit of the same row makes this wait, then re-check the
        // revision against the committed row: the later edit finds it moved on (Stale).
        let result = sqlx::query(
            "UPDATE tokens SET name = $1, name_key = $2, description = $3, token_type = $4, \
                 permissions = $5, project = $6, status = $7, lifespan = $8, expires_at = $9, \
                 api_version = $10, hint = $11, digest = $12, grace_digest = $13, \
                 grace_until = $14, updated_at = $15, rate_limit_requests = $16, \
                 rate_limit_seconds = $17, external_id = $18, metadata = $19, \
                 revision = revision + 1 WHERE id = $20 AND revision = $21",
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
        .bind(&id)
        .bind(token.revision)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
        if result.rows_affected() == 0 {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = $1")
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

        let result = sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(&key)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        one_row(result)?;
        Self::finish(transaction, audit, Some((ChangeKind::Token, &key))).await
    }

    async fn get_token(&self, id: TokenId) -> StoreResult<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
        sqlx::query_as::<_, TokenRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?
            .map(TokenRow::into_record)
            .transpose()
    }

    async fn get_tokens(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ANY($1)");
        sqlx::query_as::<_, TokenRow>(&sql)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?
            .into_iter()
            .map(TokenRow::into_record)
            .collect()
    }

    async fn tokens_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id > $1 ORDER BY id LIMIT $2");
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
        let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM tokens");
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
        let mut page = QueryBuilder::<Postgres>::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens"));
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
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM tokens WHERE kind = 'api' AND name_key = $1")
                .bind(name_key)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_error)?;
        Ok(found.is_some())
    }

    /// Several nodes flush at once, so this (1) merges the batch per token and day,
    /// (2) locks the batch's token rows in id order — the same order on every node, so
    /// two flushes cannot deadlock, and a token locked here cannot be deleted before
    /// this commits — and skips tokens deleted meanwhile, (3) adds the counts with one
    /// upsert, and (4) moves `last_used_at` forward only.
    async fn record_usage(&self, batch: &[UsageDelta]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let merged = merge_usage(batch);
        let ids: Vec<String> = merged.keys().map(ToString::to_string).collect();
        let mut transaction = self.begin().await?;
        let alive: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM tokens WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *transaction)
        .await
        .map_err(map_error)?;
        let alive: std::collections::HashSet<String> = alive.into_iter().collect();

        let (mut token_ids, mut days, mut allowed, mut denied) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut used_ids, mut used_at) = (Vec::new(), Vec::new());
        for (id, usage) in &merged {
            let id = id.to_string();
            if !alive.contains(&id) {
                continue;
            }
            for (day, (day_allowed, day_denied)) in &usage.days {
                token_ids.push(id.clone());
                days.push(day_text(*day));
                allowed.push(*day_allowed);
                denied.push(*day_denied);
            }
            if let Some(at) = usage.last_used_at {
                used_ids.push(id);
                used_at.push(at);
            }
        }
        if !token_ids.is_empty() {
            sqlx::query(
                "INSERT INTO usage_daily (token_id, day, allowed, denied) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
                 ON CONFLICT (token_id, day) DO UPDATE SET \
                 allowed = usage_daily.allowed + EXCLUDED.allowed, \
                 denied = usage_daily.denied + EXCLUDED.denied",
            )
            .bind(&token_ids)
            .bind(&days)
            .bind(&allowed)
            .bind(&denied)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        }
        if !used_ids.is_empty() {
            sqlx::query(
                "UPDATE tokens SET last_used_at = GREATEST(tokens.last_used_at, used.at) \
                 FROM UNNEST($1::text[], $2::bigint[]) AS used(id, at) \
                 WHERE tokens.id = used.id \
                 AND (tokens.last_used_at IS NULL OR tokens.last_used_at < used.at)",
            )
            .bind(&used_ids)
            .bind(&used_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)
    }

    async fn usage(&self, id: TokenId, since: NaiveDate) -> StoreResult<Vec<UsageRow>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT day, allowed, denied FROM usage_daily \
             WHERE token_id = $1 AND day >= $2 ORDER BY day",
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
                 VALUES ($1, $2, $3, $4, $4)",
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
            "UPDATE resources SET description = $2, actions = $3, updated_at = $4 \
             WHERE name = $1",
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

        let result = sqlx::query("DELETE FROM resources WHERE name = $1")
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

        sqlx::query("INSERT INTO projects (slug, name, created_at) VALUES ($1, $2, $3)")
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
        let result = sqlx::query("DELETE FROM projects WHERE slug = $1")
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
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?
            .map(UserRow::into_record)
            .transpose()
    }

    async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_key = $1");
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

        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(millis(session.created_at))
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO sessions (digest, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
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
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.digest = $1 AND s.expires_at > $2",
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
        let mut transaction = self.begin().await?;

        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest.to_vec())
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
            "SELECT sequence, kind, key FROM changes WHERE sequence > $1 \
             ORDER BY sequence LIMIT $2",
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

    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        let mut connection = self.pool.acquire().await.map_err(map_error)?;
        pruned_through(&mut connection).await
    }

    /// One pruner at a time across the cluster: the transaction takes a second advisory
    /// lock with `pg_try_advisory_xact_lock`, and a node that does not get it leaves the
    /// work to the one that did (`busy`). Two pruners would be safe all the same (each
    /// deletes a prefix and only ever raises the recorded boundary); the lock spares the
    /// database the duplicate work. Writers are not held up: they only append to the
    /// feed, past the newest change, which is never deleted.
    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Pruned> {
        let mut transaction = self.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(CHANGE_FEED_PRUNE_LOCK)
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_error)?;
        if !locked {
            let through = pruned_through(&mut transaction).await?;
            return Ok(Pruned {
                deleted: 0,
                through,
                busy: true,
            });
        }
        let boundary: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(sequence) FROM (SELECT sequence FROM changes \
             WHERE at < $1 AND sequence < (SELECT MAX(sequence) FROM changes) \
             ORDER BY sequence LIMIT $2) AS oldest",
        )
        .bind(millis(before))
        .bind(i64::from(limit))
        .fetch_one(&mut *transaction)
        .await
        .map_err(map_error)?;
        let mut deleted = 0;
        if let Some(boundary) = boundary {
            deleted = sqlx::query("DELETE FROM changes WHERE sequence <= $1")
                .bind(boundary)
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?
                .rows_affected();
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = CASE \
                 WHEN CAST(meta.value AS BIGINT) < CAST(excluded.value AS BIGINT) \
                 THEN excluded.value ELSE meta.value END",
            )
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
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(meta::PEPPER_FINGERPRINT)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn claim_pepper_fingerprint(&self, fingerprint: &str) -> StoreResult<String> {
        // Racing claims: `ON CONFLICT DO NOTHING` waits for a concurrent insert of the
        // key to commit, so the loser's statement completes and its SELECT (a new
        // snapshot under READ COMMITTED) reads the winner's row.
        let mut connection = self.pool.acquire().await.map_err(map_error)?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(meta::PEPPER_FINGERPRINT)
            .bind(fingerprint)
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(meta::PEPPER_FINGERPRINT)
            .fetch_one(&mut *connection)
            .await
            .map_err(map_error)
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.listener.signal()
    }

    fn pool_state(&self) -> Option<(u32, usize)> {
        Some((self.pool.size(), self.pool.num_idle()))
    }
}

async fn pruned_through(connection: &mut PgConnection) -> StoreResult<i64> {
    let value: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(meta::CHANGES_PRUNED_THROUGH)
        .fetch_optional(&mut *connection)
        .await
        .map_err(map_error)?;
    value.map_or(Ok(0), |value| {
        value.parse().map_err(|_| corrupt("changes_pruned_through"))
    })
}
