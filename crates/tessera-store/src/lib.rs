//! Tessera's storage: one [`Store`] trait, shaped by use case, and its backends.
//!
//! Every write that must be atomic with its audit row and its change-feed row is a
//! single method, so no transaction handle crosses the trait. The store is written
//! once ([`sql`](crate::sql), generic over the database); `sqlite` and `postgres` hold
//! only what differs. Rows are private to the crate; the trait speaks only core types.
//!
//! **Invariant:** only this crate names sqlx; no sqlx type crosses its API.

pub mod copy;
mod deadline;
mod postgres;
mod rows;
mod sql;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tessera_core::{
    AuditEntry, Change, GraceDigest, Project, RateLimit, Resource, Role, TokenDigest, TokenId,
    TokenKind, TokenRecord, TokenStatus, TokenType, UserId, UserRecord,
};

pub use copy::{CopyOptions, CopyProgress, CopyReport, TableCount, copy_database};
use postgres::PostgresStore;
use sqlite::SqliteStore;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule refused the write; `what` says which, for users.
    #[error("conflict: {what}")]
    Conflict { what: String },
    /// The record changed since it was read (its revision moved on); read it again.
    #[error("the record changed since it was read")]
    Stale,
    /// The database cannot be reached (or is locked past the busy timeout).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A row that cannot be decoded, or a query the database refused.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which tokens `GET /v1/tokens` asks for.
#[derive(Debug, Clone)]
pub struct TokenQuery {
    pub kind: TokenKind,
    pub owner: Option<UserId>,
    /// Lower-cased substring of the name.
    pub name_contains: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub status: Option<StatusFilter>,
    pub token_type: Option<TokenType>,
    pub project: Option<String>,
    /// Exact `external_id`.
    pub external_id: Option<String>,
    pub sort: TokenSort,
    pub limit: u32,
    /// Continue after this position (from a previous page).
    pub after: Option<Cursor>,
    /// The instant that decides what counts as expired.
    pub now: DateTime<Utc>,
    /// Count the matches up to this many ([`tessera_core::listing::TOKEN_COUNT_LIMIT`]).
    pub count_limit: u64,
}

impl TokenQuery {
    /// Every token of `kind`, as the list asks by default: newest first, 50 a page,
    /// counted up to the list's limit; `now` decides what has expired.
    pub fn every(kind: TokenKind, now: DateTime<Utc>) -> Self {
        Self {
            kind,
            owner: None,
            name_contains: None,
            created_after: None,
            created_before: None,
            status: None,
            token_type: None,
            project: None,
            external_id: None,
            sort: TokenSort::default(),
            limit: 50,
            after: None,
            now,
            count_limit: tessera_core::listing::TOKEN_COUNT_LIMIT,
        }
    }
}

// The list's filter and sort values are domain types: the surfaces parse them, the
// store only reads them.
pub use tessera_core::listing::{SortField, StatusFilter, TokenSort};

/// A keyset position: the sort key of the last row seen and its id (the tie-breaker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: SortKey,
    pub id: TokenId,
}

/// The value a row sorts by: times as Unix milliseconds (never-used as -1), names by
/// their case-folded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Number(i64),
    Text(String),
}

impl SortKey {
    /// The key of `record` under `field`, as the backends compute it in SQL.
    pub fn of(record: &TokenRecord, field: SortField) -> Self {
        match field {
            SortField::CreatedAt => Self::Number(record.created_at.timestamp_millis()),
            SortField::Name => Self::Text(tessera_core::validate::name_key(&record.name)),
            SortField::LastUsedAt => {
                Self::Number(record.last_used_at.map_or(-1, |at| at.timestamp_millis()))
            }
        }
    }
}

/// One page of tokens.
#[derive(Debug, Clone)]
pub struct TokenPage {
    pub items: Vec<TokenRecord>,
    pub next: Option<Cursor>,
    /// The matches, counted up to the query's `count_limit`.
    pub total: u64,
    /// Whether `total` is every match (false: there are more than `count_limit`).
    pub total_exact: bool,
}

/// What the verify index keeps of a token: its record without what verification never
/// reads (description, hint, creation and usage times, revision), and its metadata as
/// the JSON text stored, so a load of a million tokens decodes no more than it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRecord {
    pub id: TokenId,
    pub kind: TokenKind,
    pub name: String,
    pub token_type: TokenType,
    pub permissions: Vec<String>,
    pub project: Option<String>,
    pub owner_id: Option<UserId>,
    pub status: TokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub api_version: String,
    pub digest: TokenDigest,
    pub grace: Option<GraceDigest>,
    pub rate_limit: Option<RateLimit>,
    pub external_id: Option<String>,
    /// The metadata object as JSON text.
    pub metadata: String,
}

impl From<&TokenRecord> for IndexRecord {
    fn from(record: &TokenRecord) -> Self {
        Self {
            id: record.id,
            kind: record.kind,
            name: record.name.clone(),
            token_type: record.token_type,
            permissions: record.permissions.clone(),
            project: record.project.clone(),
            owner_id: record.owner_id,
            status: record.status,
            expires_at: record.expires_at,
            api_version: record.api_version.clone(),
            digest: record.digest,
            grace: record.grace,
            rate_limit: record.rate_limit,
            external_id: record.external_id.clone(),
            // A map of JSON values always serializes.
            metadata: serde_json::to_string(&record.metadata).unwrap_or_else(|_| "{}".into()),
        }
    }
}

/// Usage gathered in memory for one token and one day, added to what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub token_id: TokenId,
    pub day: NaiveDate,
    pub allowed: u64,
    pub denied: u64,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Stored usage of one token on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub day: NaiveDate,
    pub allowed: u64,
    pub denied: u64,
}

/// An admin session. Only the SHA-256 digest of the cookie value is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub digest: [u8; 32],
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Storage for everything Tessera keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Succeeds when the database answers.
    async fn ping(&self) -> StoreResult<()>;

    // --- tokens -------------------------------------------------------------------

    /// Inserts a token. `Conflict` when an API token already has the name.
    async fn insert_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()>;
    /// Inserts a batch of tokens, each with its audit row and change-feed row, in one
    /// transaction: all or none. `Conflict` when a name is taken (by an API token or
    /// by another of the batch).
    async fn insert_tokens(&self, tokens: &[(TokenRecord, AuditEntry)]) -> StoreResult<()>;
    /// Replaces the editable fields of the token with `token.id`, provided it is still
    /// at `token.revision` (`Stale` otherwise), and moves it to the next revision.
    async fn update_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()>;
    async fn delete_token(&self, id: TokenId, audit: &AuditEntry) -> StoreResult<()>;
    async fn get_token(&self, id: TokenId) -> StoreResult<Option<TokenRecord>>;
    async fn get_tokens(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenRecord>>;
    /// Tokens in id order after `after`, for loading the verify index in pages.
    async fn tokens_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<TokenRecord>>;
    /// What the verify index keeps of each token ([`IndexRecord`]), in id order after
    /// `after`, at most `limit`: the index loads in keyset pages, building its entries
    /// page by page, so no more than one page of rows is held at once.
    async fn index_records_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<IndexRecord>>;
    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<TokenPage>;
    /// Refreshes the statistics the database plans the token list with, after a bulk
    /// change (an import): PostgreSQL `ANALYZE tokens`; SQLite `PRAGMA optimize`, which
    /// analyzes a table grown or shrunk tenfold since its last analysis. Without them a
    /// million new tokens are planned as a table of a few rows until PostgreSQL's
    /// autovacuum, or SQLite's next start, catches up: `status=active` took 785 ms
    /// instead of 4 on PostgreSQL.
    async fn refresh_statistics(&self) -> StoreResult<()>;
    /// Whether an API token already uses this case-folded name.
    async fn api_token_name_taken(&self, name_key: &str) -> StoreResult<bool>;

    // --- usage --------------------------------------------------------------------

    /// Adds the counts and advances `last_used_at`; tokens deleted meanwhile are skipped.
    async fn record_usage(&self, batch: &[UsageDelta]) -> StoreResult<()>;
    async fn usage(&self, id: TokenId, since: NaiveDate) -> StoreResult<Vec<UsageRow>>;

    // --- catalog and projects -------------------------------------------------------

    async fn list_resources(&self) -> StoreResult<Vec<Resource>>;
    async fn insert_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn update_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn delete_resource(&self, name: &str, audit: &AuditEntry) -> StoreResult<()>;

    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    async fn insert_project(&self, project: &Project, audit: &AuditEntry) -> StoreResult<()>;
    /// `Conflict` while a token is bound to the project.
    async fn delete_project(&self, slug: &str, audit: &AuditEntry) -> StoreResult<()>;

    // --- users and sessions -----------------------------------------------------------

    async fn count_users(&self) -> StoreResult<u64>;
    /// `Conflict` when the email is taken.
    async fn insert_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()>;
    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>>;
    async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    async fn insert_session(&self, session: &SessionRecord, audit: &AuditEntry) -> StoreResult<()>;
    /// The live session with this digest and its user.
    async fn get_session(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>>;
    async fn delete_session(&self, digest: &[u8; 32], audit: &AuditEntry) -> StoreResult<()>;

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Inserts the first user; `Conflict` once any user exists (first-run registration).
    async fn insert_first_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()>;
    /// Replaces a user's editable fields (email, name, role, password hash, active).
    /// With `end_sessions` their sessions end in the same transaction. `Conflict` when
    /// the write would leave no active super-admin where there was one.
    async fn update_user(
        &self,
        user: &UserRecord,
        end_sessions: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Deletes a user with their sessions and personal tokens. `Conflict` when it would
    /// leave no active super-admin.
    async fn delete_user(&self, id: UserId, audit: &AuditEntry) -> StoreResult<()>;
    /// Every token `owner` holds (personal tokens), for the verify index.
    async fn tokens_of_owner(&self, owner: UserId) -> StoreResult<Vec<TokenRecord>>;

    // --- roles ---------------------------------------------------------------------------

    async fn list_roles(&self) -> StoreResult<Vec<Role>>;
    async fn get_role(&self, name: &str) -> StoreResult<Option<Role>>;
    async fn insert_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn update_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// `Conflict` naming the users (by email) while any user holds the role.
    async fn delete_role(&self, name: &str, audit: &AuditEntry) -> StoreResult<()>;

    // --- audit and the change feed -------------------------------------------------------

    /// Audit rows matching `query`, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRow>>;

    /// Records an event that changes nothing else (a failed login).
    async fn record_audit(&self, audit: &AuditEntry) -> StoreResult<()>;
    /// The newest sequence number of the change feed (0 when empty).
    async fn latest_change(&self) -> StoreResult<i64>;
    /// Changes after `sequence`, oldest first.
    async fn changes_after(&self, sequence: i64, limit: u32) -> StoreResult<Vec<Change>>;

    /// The highest sequence number pruning has deleted (0 when nothing was ever pruned).
    /// A follower whose last applied change is below it has missed changes for good and
    /// must reload everything.
    async fn changes_pruned_through(&self) -> StoreResult<i64>;
    /// Deletes the oldest changes made before `before`: a prefix of the feed (every
    /// sequence up to the newest such change among the first `limit` or so), never the
    /// newest change of all, so `latest_change` stays right and a follower that fell
    /// behind always finds a change after a gap. Raises `changes_pruned_through` in the
    /// same transaction. On PostgreSQL one process prunes at a time: a call made while
    /// another prunes does nothing and says so (`busy`).
    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Pruned>;

    // --- the database's own facts ----------------------------------------------------------

    /// The fingerprint of the pepper this database was first used with, if recorded.
    async fn pepper_fingerprint(&self) -> StoreResult<Option<String>>;
    /// Records `fingerprint` unless one is recorded already, and returns the recorded
    /// one: when several processes race, the first claim wins and the others see it.
    async fn claim_pepper_fingerprint(&self, fingerprint: &str) -> StoreResult<String>;

    /// A signal that fires when another process may have added to the change feed, so
    /// a follower can catch up at once instead of at its next poll. `None` when the
    /// backend has no such signal (SQLite: polling only). It may also fire without a
    /// new change (after the backend reconnects, since announcements made while it was
    /// away are lost); a follower should always poll as well, as the floor.
    ///
    /// A fired signal stores one permit (`Notify::notify_one`), so a follower that was
    /// busy catching up when it fired still wakes once; meant for one follower per store.
    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// The connection pool now: open connections and how many of them are idle.
    fn pool_state(&self) -> Option<(u32, usize)> {
        None
    }
}

/// What one [`Store::prune_changes`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Changes deleted by this call.
    pub deleted: u64,
    /// `changes_pruned_through` after the call.
    pub through: i64,
    /// Another process was pruning (PostgreSQL): this call deleted nothing.
    pub busy: bool,
}

/// The `meta` keys (see migration 0004).
pub(crate) mod meta {
    pub const PEPPER_FINGERPRINT: &str = "pepper_fingerprint";
    pub const CHANGES_PRUNED_THROUGH: &str = "changes_pruned_through";
}

/// Which audit rows `GET /v1/audit` asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows older than this id (the previous page's last row).
    pub before: Option<i64>,
    pub limit: u32,
}

/// One stored audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub entry: AuditEntry,
}

/// Opens (creating, for SQLite, and migrating) the database at `url`: `sqlite:…`,
/// or `postgres://…` / `postgresql://…` (see the PostgreSQL backend's URL parameters).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    Ok(open_migrated(url).await?.0)
}

/// [`open`], also telling which migrations it applied.
pub async fn open_migrated(url: &str) -> StoreResult<(Arc<dyn Store>, Migrated)> {
    if url.starts_with("sqlite:") {
        let (store, migrated) = SqliteStore::open_migrated(url).await?;
        Ok((Arc::new(store), migrated))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (store, migrated) = PostgresStore::open_migrated(url).await?;
        Ok((Arc::new(store), migrated))
    } else {
        Err(StoreError::Backend(
            format!("unsupported database URL scheme in `{}`", redact_url(url)).into(),
        ))
    }
}

/// What opening a database did to its schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The migrations applied now, oldest first: `(version, description)`.
    pub applied: Vec<(i64, String)>,
    /// The schema's version afterwards (its newest migration).
    pub version: i64,
}

/// Runs `migrator` on `connection`, noting which migrations were not applied before.
pub(crate) async fn run_migrations<C>(
    migrator: &sqlx::migrate::Migrator,
    connection: &mut C,
) -> Result<Migrated, sqlx::migrate::MigrateError>
where
    C: sqlx::migrate::Migrate,
{
    connection.ensure_migrations_table().await?;
    let before: std::collections::HashSet<i64> = connection
        .list_applied_migrations()
        .await?
        .iter()
        .map(|migration| migration.version)
        .collect();
    migrator.run_direct(connection).await?;
    let up = || {
        migrator
            .iter()
            .filter(|migration| !migration.migration_type.is_down_migration())
    };
    Ok(Migrated {
        applied: up()
            .filter(|migration| !before.contains(&migration.version))
            .map(|migration| (migration.version, migration.description.to_string()))
            .collect(),
        version: up().map(|migration| migration.version).max().unwrap_or(0),
    })
}

/// The file a `sqlite:` URL names; `None` for other URLs and in-memory databases.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") || url.contains("mode=memory") || url.contains(":memory:") {
        return None;
    }
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// The URL of the default SQLite database under `data_dir`.
pub fn sqlite_url_in(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("tessera.db").display())
}

/// `url` with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/tessera"),
            "postgres://app:***@db:5432/tessera"
        );
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://./data/x.db"),
            Some(std::path::PathBuf::from("./data/x.db"))
        );
        assert_eq!(
            sqlite_path(&sqlite_url_in(Path::new("/srv/tessera"))),
            Some(std::path::PathBuf::from("/srv/tessera/tessera.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://db/tessera"), None);
    }
}
