//! Copying a whole database into another, of either backend (`tessera db copy`).
//!
//! This is the one place that works on both backends at once, at the SQL level. The
//! two schemas match column for column (times are BIGINT milliseconds everywhere), so
//! every table is read with an explicit column list and written with the same list;
//! only booleans differ (SQLite INTEGER 0/1, PostgreSQL BOOLEAN), and sqlx converts
//! them when a value is decoded as `bool` and bound as `bool`.
//!
//! How a copy goes:
//!
//! 1. Both ends are opened through [`crate::open`], which creates and migrates them.
//! 2. The copy refuses when source and target are the same database, and when either
//!    holds a table or column this module does not know (a migration added one and
//!    [`TABLES`] was not updated), so nothing is silently left behind.
//! 3. A target that holds anything (users, tokens, resources, projects, audit rows,
//!    custom roles, …; the seeded built-in roles and `meta` do not count) is refused with
//!    [`StoreError::Conflict`], unless [`CopyOptions::force`]: then everything in it is
//!    deleted first, in one transaction, children first.
//! 4. The source is read in one snapshot (a read transaction; `REPEATABLE READ` on
//!    PostgreSQL), table by table in foreign-key order, in keyset pages of
//!    [`CopyOptions::batch_size`] rows; each page is one multi-row `INSERT`, and each
//!    table one target transaction. Nothing but one page is ever in memory.
//! 5. Ids, digests, audit ids and change sequence numbers are kept. On PostgreSQL the
//!    `BIGSERIAL` sequences of `audit` and `changes` are then moved past the copied
//!    rows (SQLite's `AUTOINCREMENT` follows explicit ids by itself).
//! 6. Every table is counted again in both databases (fresh reads, not the snapshot),
//!    so a source written to during the copy shows as a mismatch in the report.
//!
//! Row contents never appear in progress events, errors or logs: digests, password
//! hashes and audit details stay in the databases.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{
    ColumnIndex, ConnectOptions as _, Database, Decode, Encode, Postgres, QueryBuilder, Row,
    Sqlite, Type,
};

use crate::sql::Value;
use crate::{StoreError, StoreResult, redact_url};

/// Rows per `INSERT` (and per page read from the source) unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// The largest batch accepted: keeps the widest table (`tokens`, 24 columns) well under
/// both backends' bind-parameter limits (SQLite 32766, PostgreSQL 65535).
const MAX_BATCH_SIZE: usize = 1000;

/// How a copy behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Delete everything in a non-empty target first, instead of refusing.
    pub force: bool,
    /// Rows per `INSERT` and per page read (1 to 1000).
    pub batch_size: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            force: false,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// What a copy is doing, for a progress display. Carries names and counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyProgress {
    /// `force`: the target's previous contents were deleted (`rows` in all tables,
    /// the seeded built-in roles included).
    TargetCleared { rows: u64 },
    /// A table's copy begins; `total` rows are in the source snapshot.
    TableStarted { table: &'static str, total: u64 },
    /// `done` of `total` rows of `table` are written (after every batch).
    Rows {
        table: &'static str,
        done: u64,
        total: u64,
    },
    /// A table is copied and committed.
    TableFinished { table: &'static str, rows: u64 },
    /// Counting every table in both databases.
    Checking,
}

/// One table's counts after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows copied (the source snapshot's count).
    pub copied: u64,
    /// Rows in the source when the copy had finished.
    pub source: u64,
    /// Rows in the target when the copy had finished.
    pub target: u64,
}

impl TableCount {
    /// Whether source and target hold the same number of rows, and the copy took all
    /// of them (a source written to during the copy fails this).
    pub fn matches(&self) -> bool {
        self.source == self.target && self.copied == self.source
    }
}

/// The outcome of [`copy_database`]. Check [`CopyReport::mismatches`]: a copy whose
/// counts differ returns `Ok` with the tables named there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// `"sqlite"` or `"postgres"`.
    pub source_backend: &'static str,
    pub target_backend: &'static str,
    /// Every table, in copy order.
    pub tables: Vec<TableCount>,
}

impl CopyReport {
    /// The tables whose counts differ.
    pub fn mismatches(&self) -> Vec<&TableCount> {
        self.tables
            .iter()
            .filter(|count| !count.matches())
            .collect()
    }

    /// Rows copied, all tables together.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|count| count.copied).sum()
    }
}

/// How a column is read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    /// INTEGER 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Boolean,
    Blob,
}

/// A table and the columns copied, the primary key first.
#[derive(Debug)]
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// How many leading columns make the primary key (the keyset for paging).
    key_len: usize,
}

use Kind::{Blob, Boolean, Integer, Text};

/// Every table, in an order that respects foreign keys: a table comes after the
/// tables it references (sessions and tokens after users, tokens after projects,
/// usage after tokens). Deletion goes the other way round.
const TABLES: &[Table] = &[
    Table {
        name: "roles",
        columns: &[
            ("name", Text),
            ("description", Text),
            ("permissions", Text),
            ("builtin", Boolean),
            ("created_at", Integer),
            ("updated_at", Integer),
        ],
        key_len: 1,
    },
    Table {
        name: "users",
        columns: &[
            ("id", Text),
            ("email", Text),
            ("email_key", Text),
            ("name", Text),
            ("role", Text),
            ("password_hash", Text),
            ("active", Boolean),
            ("created_at", Integer),
            ("updated_at", Integer),
        ],
        key_len: 1,
    },
    Table {
        name: "sessions",
        columns: &[
            ("digest", Blob),
            ("user_id", Text),
            ("created_at", Integer),
            ("expires_at", Integer),
        ],
        key_len: 1,
    },
    Table {
        name: "projects",
        columns: &[("slug", Text), ("name", Text), ("created_at", Integer)],
        key_len: 1,
    },
    Table {
        name: "resources",
        columns: &[
            ("name", Text),
            ("description", Text),
            ("actions", Text),
            ("created_at", Integer),
            ("updated_at", Integer),
        ],
        key_len: 1,
    },
    Table {
        name: "tokens",
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("name", Text),
            ("name_key", Text),
            ("description", Text),
            ("token_type", Text),
            ("permissions", Text),
            ("project", Text),
            ("owner_id", Text),
            ("status", Text),
            ("lifespan", Text),
            ("expires_at", Integer),
            ("api_version", Text),
            ("hint", Text),
            ("digest", Blob),
            ("grace_digest", Blob),
            ("grace_until", Integer),
            ("created_at", Integer),
            ("created_by", Text),
            ("updated_at", Integer),
            ("last_used_at", Integer),
            ("rate_limit_requests", Integer),
            ("rate_limit_seconds", Integer),
            ("revision", Integer),
            ("external_id", Text),
            ("metadata", Text),
        ],
        key_len: 1,
    },
    Table {
        name: "usage_daily",
        columns: &[
            ("token_id", Text),
            ("day", Text),
            ("allowed", Integer),
            ("denied", Integer),
        ],
        key_len: 2,
    },
    Table {
        name: "audit",
        columns: &[
            ("id", Integer),
            ("at", Integer),
            ("actor", Text),
            ("action", Text),
            ("target", Text),
            ("client_address", Text),
            ("changes", Text),
        ],
        key_len: 1,
    },
    Table {
        name: "changes",
        columns: &[
            ("sequence", Integer),
            ("kind", Text),
            ("key", Text),
            ("at", Integer),
        ],
        key_len: 1,
    },
    Table {
        name: "meta",
        columns: &[("key", Text), ("value", Text)],
        key_len: 1,
    },
];

/// Tables whose rows in the target give way to the source's, and do not make the
/// target count as holding data: the seeded built-in roles, and `meta` (the pepper
/// fingerprint a `migrate` of the target recorded, say; the copied digests need the
/// source's pepper, so its fingerprint is the one that holds).
fn replaced_in_target(table: &str) -> Option<&'static str> {
    match table {
        // `NOT builtin` reads an INTEGER 0/1 (SQLite) and a BOOLEAN alike.
        "roles" => Some("NOT builtin"),
        "meta" => Some("1 = 0"),
        _ => None,
    }
}

/// PostgreSQL tables whose ids come from a `BIGSERIAL`: (table, column).
const SERIAL_COLUMNS: &[(&str, &str)] = &[("audit", "id"), ("changes", "sequence")];

/// The migrator's own bookkeeping, which each end keeps for itself.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// A connection pool of either backend.
#[derive(Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction of either backend.
enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Which end of the copy, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Source,
    Target,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
        }
    }
}

/// Turns a sqlx error into a store error that says what was being done. sqlx's
/// messages name tables and constraints, never the values involved.
fn failed(context: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| {
        let message = format!("{context}: {error}");
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(message.into()),
            _ => StoreError::Backend(message.into()),
        }
    }
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file a SQLite URL names.
fn sqlite_file(url: &str) -> StoreResult<PathBuf> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| StoreError::Backend(Box::new(error)))?;
    Ok(options.get_filename().to_path_buf())
}

/// Creates the target's SQLite file empty and readable by its owner only, unless it
/// exists (it will hold digests and password hashes; SQLite would use the umask).
fn create_private_file(path: &Path) -> StoreResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::Backend(
            format!(
                "cannot create the target database {}: {error}",
                path.display()
            )
            .into(),
        )),
    }
}

impl Db {
    /// Opens `url` through [`crate::open`] (creating and migrating it), then connects a
    /// pool of its own for the copy's SQL.
    async fn connect(url: &str, end: End) -> StoreResult<Self> {
        let shown = redact_url(url);
        if is_sqlite(url) {
            let file = sqlite_file(url)?;
            if file.as_os_str() == ":memory:" || url.contains("mode=memory") {
                return Err(StoreError::Backend(
                    format!("the {} {shown} is an in-memory database", end.as_str()).into(),
                ));
            }
            match end {
                // Opening would create an empty database: copying nothing is a mistake.
                End::Source if !file.exists() => {
                    return Err(StoreError::NotFound);
                }
                End::Target => create_private_file(&file)?,
                End::Source => {}
            }
        } else if !is_postgres(url) {
            return Err(StoreError::Backend(
                format!("unsupported database URL scheme in `{shown}`").into(),
            ));
        }
        // Creates the schema and applies every migration; dropped at once.
        drop(crate::open(url).await?);
        if is_sqlite(url) {
            let options = crate::sqlite::connect_options(url)?
                // Statements carry hundreds of placeholders; never their values, but
                // a slow batch would still fill the log.
                .disable_statement_logging();
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(failed(format!("cannot open the {} {shown}", end.as_str())))?;
            Ok(Self::Sqlite(pool))
        } else {
            let options = crate::postgres::connect_options(url)?
                .application_name("tessera db copy")
                .disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .map_err(failed(format!("cannot open the {} {shown}", end.as_str())))?;
            Ok(Self::Postgres(pool))
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// Rows in `table` (fresh, outside any snapshot); `filter` is an SQL condition
    /// valid on both backends.
    async fn count(&self, table: &str, filter: Option<&str>) -> StoreResult<u64> {
        let sql = match filter {
            Some(filter) => format!("SELECT COUNT(*) FROM {table} WHERE {filter}"),
            None => format!("SELECT COUNT(*) FROM {table}"),
        };
        let context = format!("cannot count the rows of {table}");
        let count: i64 = match self {
            Self::Sqlite(pool) => sqlx::query_scalar(&sql)
                .fetch_one(pool)
                .await
                .map_err(failed(context))?,
            Self::Postgres(pool) => sqlx::query_scalar(&sql)
                .fetch_one(pool)
                .await
                .map_err(failed(context))?,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The tables of the database (less the migrator's own).
    async fn table_names(&self) -> StoreResult<BTreeSet<String>> {
        let context = "cannot list the tables";
        let names: Vec<String> = match self {
            Self::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            )
            .fetch_all(pool)
            .await
            .map_err(failed(context))?,
            Self::Postgres(pool) => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(pool)
            .await
            .map_err(failed(context))?,
        };
        Ok(names
            .into_iter()
            .filter(|name| name != MIGRATIONS_TABLE)
            .collect())
    }

    /// The columns of `table`.
    async fn column_names(&self, table: &str) -> StoreResult<BTreeSet<String>> {
        let context = format!("cannot list the columns of {table}");
        let names: Vec<String> = match self {
            Self::Sqlite(pool) => sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                .bind(table)
                .fetch_all(pool)
                .await
                .map_err(failed(context))?,
            Self::Postgres(pool) => sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_all(pool)
            .await
            .map_err(failed(context))?,
        };
        Ok(names.into_iter().collect())
    }

    /// Refuses a database with a table or column the copy would leave behind (or one
    /// it expects and does not find).
    async fn check_schema(&self, end: End) -> StoreResult<()> {
        let expected: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
        let found = self.table_names().await?;
        if found != expected {
            let unknown: Vec<&String> = found.difference(&expected).collect();
            let missing: Vec<&String> = expected.difference(&found).collect();
            return Err(StoreError::Backend(
                format!(
                    "the {} database's tables are not the ones `db copy` knows \
                     (unknown: {unknown:?}, missing: {missing:?}); this copy would be incomplete",
                    end.as_str()
                )
                .into(),
            ));
        }
        for table in TABLES {
            let expected: BTreeSet<String> =
                table.columns.iter().map(|(c, _)| (*c).to_owned()).collect();
            let found = self.column_names(table.name).await?;
            if found != expected {
                let unknown: Vec<&String> = found.difference(&expected).collect();
                let missing: Vec<&String> = expected.difference(&found).collect();
                return Err(StoreError::Backend(
                    format!(
                        "the {} database's table {} has columns `db copy` does not know \
                         (unknown: {unknown:?}, missing: {missing:?}); this copy would be incomplete",
                        end.as_str(),
                        table.name
                    )
                    .into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether `self` and `other` are one database (and, on PostgreSQL, one schema),
    /// however their URLs spell it.
    async fn same_as(&self, other: &Self) -> StoreResult<bool> {
        match (self, other) {
            (Self::Sqlite(a), Self::Sqlite(b)) => {
                let (a, b) = (sqlite_main_file(a).await?, sqlite_main_file(b).await?);
                if a.as_os_str().is_empty() || b.as_os_str().is_empty() {
                    // In-memory databases are separate per connection string.
                    return Ok(false);
                }
                let canonical = |path: PathBuf| std::fs::canonicalize(&path).unwrap_or(path);
                Ok(canonical(a) == canonical(b))
            }
            (Self::Postgres(a), Self::Postgres(b)) => same_postgres_schema(a, b).await,
            _ => Ok(false),
        }
    }

    /// What the target holds that the copy would overwrite: (table, rows) for every
    /// table with rows, where the seeded built-in roles and `meta` do not count.
    async fn contents(&self) -> StoreResult<Vec<(&'static str, u64)>> {
        let mut found = Vec::new();
        for table in TABLES {
            let filter = replaced_in_target(table.name);
            let rows = self.count(table.name, filter).await?;
            if rows > 0 {
                found.push((table.name, rows));
            }
        }
        Ok(found)
    }

    /// Deletes every row of every table in one transaction, children first. Returns
    /// how many rows went.
    async fn clear(&self) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut deleted = 0;
        for table in TABLES.iter().rev() {
            let sql = format!("DELETE FROM {}", table.name);
            let context = format!("cannot empty the target's {}", table.name);
            let affected = match &mut tx {
                Tx::Sqlite(tx) => sqlx::query(&sql)
                    .execute(&mut **tx)
                    .await
                    .map_err(failed(context))?
                    .rows_affected(),
                Tx::Postgres(tx) => sqlx::query(&sql)
                    .execute(&mut **tx)
                    .await
                    .map_err(failed(context))?
                    .rows_affected(),
            };
            deleted += affected;
        }
        tx.commit("cannot empty the target").await?;
        Ok(deleted)
    }

    /// A write transaction (SQLite: `BEGIN IMMEDIATE`, taking the write lock at once).
    async fn begin_write(&self) -> StoreResult<Tx> {
        let context = "cannot start a transaction on the target";
        Ok(match self {
            Self::Sqlite(pool) => Tx::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(failed(context))?,
            ),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await.map_err(failed(context))?),
        })
    }

    /// A read transaction whose reads all see one snapshot of the database.
    async fn begin_snapshot(&self) -> StoreResult<Tx> {
        let context = "cannot start a read transaction on the source";
        Ok(match self {
            // A deferred transaction: its first read fixes the snapshot (WAL).
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin().await.map_err(failed(context))?),
            Self::Postgres(pool) => Tx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await
                    .map_err(failed(context))?,
            ),
        })
    }

    /// Moves PostgreSQL's `BIGSERIAL` sequences past the copied ids, so new audit rows
    /// and changes do not collide with them. Nothing to do on SQLite.
    async fn advance_sequences(&self) -> StoreResult<()> {
        let Self::Postgres(pool) = self else {
            return Ok(());
        };
        for (table, column) in SERIAL_COLUMNS {
            // `is_called = false`: the next value handed out is exactly max + 1 (or 1).
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                 COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            );
            sqlx::query(&sql)
                .execute(pool)
                .await
                .map_err(failed(format!("cannot advance the sequence of {table}")))?;
        }
        Ok(())
    }
}

/// The file of a SQLite pool's main database (empty for an in-memory one).
async fn sqlite_main_file(pool: &SqlitePool) -> StoreResult<PathBuf> {
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(pool)
            .await
            .map_err(failed("cannot read the SQLite file name"))?;
    Ok(PathBuf::from(file))
}

/// Whether two PostgreSQL pools reach one database and work in one schema. Advisory
/// locks are per database: a session-level lock taken through `a` is free through `b`
/// exactly when `b` is another database (whatever host name or port reached it).
async fn same_postgres_schema(a: &PgPool, b: &PgPool) -> StoreResult<bool> {
    let context = "cannot compare the source and target databases";
    let schema_a: String = sqlx::query_scalar("SELECT COALESCE(current_schema(), '')")
        .fetch_one(a)
        .await
        .map_err(failed(context))?;
    let schema_b: String = sqlx::query_scalar("SELECT COALESCE(current_schema(), '')")
        .fetch_one(b)
        .await
        .map_err(failed(context))?;
    if schema_a != schema_b {
        return Ok(false);
    }
    let key = random_key();
    let mut holder = a.acquire().await.map_err(failed(context))?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut *holder)
        .await
        .map_err(failed(context))?;
    let mut probe = b.acquire().await.map_err(failed(context))?;
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut *probe)
        .await
        .map_err(failed(context))?;
    if free {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *probe)
            .await
            .map_err(failed(context))?;
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *holder)
        .await
        .map_err(failed(context))?;
    Ok(!free)
}

/// A key no other session is likely to use: std's per-process random hash keys, mixed
/// with the time and the process id.
fn random_key() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(elapsed.as_nanos());
    }
    i64::from_ne_bytes(hasher.finish().to_ne_bytes())
}

impl Tx {
    async fn commit(self, context: &str) -> StoreResult<()> {
        match self {
            Self::Sqlite(tx) => tx.commit().await.map_err(failed(context)),
            Self::Postgres(tx) => tx.commit().await.map_err(failed(context)),
        }
    }

    async fn count(&mut self, table: &str) -> StoreResult<u64> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let context = format!("cannot count the source's {table}");
        let count: i64 = match self {
            Self::Sqlite(tx) => sqlx::query_scalar(&sql)
                .fetch_one(&mut **tx)
                .await
                .map_err(failed(context))?,
            Self::Postgres(tx) => sqlx::query_scalar(&sql)
                .fetch_one(&mut **tx)
                .await
                .map_err(failed(context))?,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The next page of `table` after the key `after` (a row's leading key values), in
    /// key order.
    async fn page(
        &mut self,
        table: &Table,
        after: Option<&[Value]>,
        limit: usize,
    ) -> StoreResult<Vec<Vec<Value>>> {
        let context = format!("cannot read the source's {}", table.name);
        match self {
            Self::Sqlite(tx) => {
                let mut query = page_query::<Sqlite>(table, after, limit);
                let rows = query
                    .build()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(failed(&context))?;
                rows.iter()
                    .map(|row| decode(row, table))
                    .collect::<Result<_, _>>()
                    .map_err(failed(&context))
            }
            Self::Postgres(tx) => {
                let mut query = page_query::<Postgres>(table, after, limit);
                let rows = query
                    .build()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(failed(&context))?;
                rows.iter()
                    .map(|row| decode(row, table))
                    .collect::<Result<_, _>>()
                    .map_err(failed(&context))
            }
        }
    }

    /// Writes `rows` into `table` with one `INSERT`.
    async fn insert(&mut self, table: &Table, rows: Vec<Vec<Value>>) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let context = format!("cannot write the target's {}", table.name);
        match self {
            Self::Sqlite(tx) => {
                insert_query::<Sqlite>(table, rows)
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(failed(context))?;
            }
            Self::Postgres(tx) => {
                insert_query::<Postgres>(table, rows)
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(failed(context))?;
            }
        }
        Ok(())
    }

    /// Runs a statement without parameters.
    async fn execute(&mut self, sql: &str, context: &str) -> StoreResult<()> {
        match self {
            Self::Sqlite(tx) => sqlx::query(sql)
                .execute(&mut **tx)
                .await
                .map(drop)
                .map_err(failed(context)),
            Self::Postgres(tx) => sqlx::query(sql)
                .execute(&mut **tx)
                .await
                .map(drop)
                .map_err(failed(context)),
        }
    }
}

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds one value with its column's type (a NULL too).
fn push_value<'a, DB>(builder: &mut QueryBuilder<'a, DB>, value: Value)
where
    DB: Database,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<bool>: Encode<'a, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'a, DB> + Type<DB>,
{
    match value {
        Value::Text(value) => builder.push_bind(value),
        Value::Integer(value) => builder.push_bind(value),
        Value::Boolean(value) => builder.push_bind(value),
        Value::Blob(value) => builder.push_bind(value),
    };
}

/// `SELECT <columns> FROM t [WHERE (key) > (after)] ORDER BY key LIMIT n`. Row-value
/// comparison works on both backends (SQLite since 3.15).
fn page_query<'a, DB>(table: &Table, after: Option<&[Value]>, limit: usize) -> QueryBuilder<'a, DB>
where
    DB: Database,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<bool>: Encode<'a, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'a, DB> + Type<DB>,
{
    let key: Vec<&str> = table.columns[..table.key_len]
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let key = key.join(", ");
    let mut builder =
        QueryBuilder::new(format!("SELECT {} FROM {}", column_list(table), table.name));
    if let Some(after) = after {
        builder.push(format!(" WHERE ({key}) > ("));
        for (index, value) in after.iter().enumerate() {
            if index > 0 {
                builder.push(", ");
            }
            push_value(&mut builder, value.clone());
        }
        builder.push(")");
    }
    builder.push(format!(
        " ORDER BY {key} LIMIT {}",
        i64::try_from(limit).unwrap_or(i64::MAX)
    ));
    builder
}

/// `INSERT INTO t (<columns>) VALUES (…), (…), …`.
fn insert_query<'a, DB>(table: &Table, rows: Vec<Vec<Value>>) -> QueryBuilder<'a, DB>
where
    DB: Database,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<bool>: Encode<'a, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'a, DB> + Type<DB>,
{
    let mut builder = QueryBuilder::new(format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        column_list(table)
    ));
    for (row_index, row) in rows.into_iter().enumerate() {
        builder.push(if row_index == 0 { "(" } else { ", (" });
        for (index, value) in row.into_iter().enumerate() {
            if index > 0 {
                builder.push(", ");
            }
            push_value(&mut builder, value);
        }
        builder.push(")");
    }
    builder
}

/// Reads a row of `table` (selected with [`column_list`]) as values.
fn decode<'r, R>(row: &'r R, table: &Table) -> Result<Vec<Value>, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
    Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    table
        .columns
        .iter()
        .enumerate()
        .map(|(index, (_, kind))| {
            Ok(match kind {
                Kind::Text => Value::Text(row.try_get(index)?),
                Kind::Integer => Value::Integer(row.try_get(index)?),
                Kind::Boolean => Value::Boolean(row.try_get(index)?),
                Kind::Blob => Value::Blob(row.try_get(index)?),
            })
        })
        .collect()
}

/// Copies every table of the database at `from` into the database at `to` (either
/// backend each), as described in the [module documentation](self). `progress` hears
/// what happens, names and counts only.
///
/// Errors: [`StoreError::Conflict`] when the target is not empty (and not
/// `options.force`) or is the source itself; [`StoreError::NotFound`] when `from` is a
/// SQLite file that does not exist; otherwise what opening, reading or writing met.
/// A copy that fails part way leaves the tables committed so far in the target; run it
/// again with `force`.
pub async fn copy_database(
    from: &str,
    to: &str,
    options: CopyOptions,
    progress: &mut dyn FnMut(CopyProgress),
) -> StoreResult<CopyReport> {
    if from == to {
        return Err(StoreError::Conflict {
            what: "the source and the target are the same database".into(),
        });
    }
    let batch_size = options.batch_size.clamp(1, MAX_BATCH_SIZE);
    let source = Db::connect(from, End::Source).await?;
    let target = match Db::connect(to, End::Target).await {
        Ok(target) => target,
        Err(error) => {
            source.close().await;
            return Err(error);
        }
    };
    let result = copy_between(&source, &target, options.force, batch_size, progress).await;
    source.close().await;
    target.close().await;
    result
}

async fn copy_between(
    source: &Db,
    target: &Db,
    force: bool,
    batch_size: usize,
    progress: &mut dyn FnMut(CopyProgress),
) -> StoreResult<CopyReport> {
    if source.same_as(target).await? {
        return Err(StoreError::Conflict {
            what: "the source and the target are the same database".into(),
        });
    }
    source.check_schema(End::Source).await?;
    target.check_schema(End::Target).await?;

    let contents = target.contents().await?;
    if !contents.is_empty() && !force {
        let listed: Vec<String> = contents
            .iter()
            .map(|(table, rows)| format!("{table}: {rows}"))
            .collect();
        return Err(StoreError::Conflict {
            what: format!(
                "the target database is not empty ({}); copy into an empty database, \
                 or pass --force to delete everything in the target first",
                listed.join(", ")
            ),
        });
    }
    if force {
        let rows = target.clear().await?;
        progress(CopyProgress::TargetCleared { rows });
    }

    let mut snapshot = source.begin_snapshot().await?;
    let mut totals = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        totals.push(snapshot.count(table.name).await?);
    }
    let mut copied = Vec::with_capacity(TABLES.len());
    for (table, &total) in TABLES.iter().zip(&totals) {
        progress(CopyProgress::TableStarted {
            table: table.name,
            total,
        });
        let mut tx = target.begin_write().await?;
        if replaced_in_target(table.name).is_some() {
            // The target's seeded built-in roles give way to the source's (which may
            // have been edited), its `meta` to the source's; `force` has already
            // emptied the table.
            tx.execute(
                &format!("DELETE FROM {}", table.name),
                &format!("cannot replace the target's {}", table.name),
            )
            .await?;
        }
        let mut done: u64 = 0;
        let mut last_key: Option<Vec<Value>> = None;
        loop {
            let rows = snapshot
                .page(table, last_key.as_deref(), batch_size)
                .await?;
            let Some(last) = rows.last() else { break };
            last_key = Some(last[..table.key_len].to_vec());
            let count = rows.len();
            tx.insert(table, rows).await?;
            done += count as u64;
            progress(CopyProgress::Rows {
                table: table.name,
                done,
                total: total.max(done),
            });
            if count < batch_size {
                break;
            }
        }
        tx.commit(&format!("cannot commit the target's {}", table.name))
            .await?;
        progress(CopyProgress::TableFinished {
            table: table.name,
            rows: done,
        });
        copied.push(done);
    }
    snapshot.commit("cannot end the read transaction").await?;
    target.advance_sequences().await?;

    progress(CopyProgress::Checking);
    let mut tables = Vec::with_capacity(TABLES.len());
    for (table, copied) in TABLES.iter().zip(copied) {
        tables.push(TableCount {
            table: table.name,
            copied,
            source: source.count(table.name, None).await?,
            target: target.count(table.name, None).await?,
        });
    }
    Ok(CopyReport {
        source_backend: source.backend(),
        target_backend: target.backend(),
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_after_the_tables_they_reference() {
        let position = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap();
        for (child, parent) in [
            ("sessions", "users"),
            ("tokens", "users"),
            ("tokens", "projects"),
            ("usage_daily", "tokens"),
        ] {
            assert!(
                position(child) > position(parent),
                "{child} before {parent}"
            );
        }
        for table in TABLES {
            assert!(table.key_len >= 1 && table.key_len <= table.columns.len());
        }
    }

    #[test]
    fn the_widest_batch_stays_under_the_bind_limits() {
        let widest = TABLES.iter().map(|t| t.columns.len()).max().unwrap();
        assert!(widest * MAX_BATCH_SIZE < 32_766);
    }

    #[test]
    fn reports_name_mismatched_tables() {
        let report = CopyReport {
            source_backend: "sqlite",
            target_backend: "postgres",
            tables: vec![
                TableCount {
                    table: "users",
                    copied: 2,
                    source: 2,
                    target: 2,
                },
                TableCount {
                    table: "tokens",
                    copied: 5,
                    source: 6,
                    target: 5,
                },
            ],
        };
        let mismatches: Vec<&str> = report.mismatches().iter().map(|t| t.table).collect();
        assert_eq!(mismatches, vec!["tokens"]);
        assert_eq!(report.total_rows(), 7);
    }
}
