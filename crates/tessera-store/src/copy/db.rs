//! The two ends of a copy: a pool and a transaction of either backend, and what the
//! copy asks of them. Which backend an end is is known only at run time (a copy pairs
//! any two): each operation matches on it once and runs the store's generic [`Run`]
//! primitives, wording errors with what it was doing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions as _, Pool, Postgres, Sqlite};

use super::tables::{
    MIGRATIONS_TABLE, SERIAL_COLUMNS, TABLES, Table, insert_query, is_derived, page_query,
    replaced_in_target,
};
use crate::sql::{Backend, Kind, RowOf as _, Run as _, Sql, Value};
use crate::{StoreError, StoreResult, redact_url};

/// A connection pool of either backend.
#[derive(Debug)]
pub(super) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction of either backend.
pub(super) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Which end of the copy, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
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
    pub(super) async fn connect(url: &str, end: End) -> StoreResult<Self> {
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

    pub(super) fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub(super) async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// Rows in `table` (fresh, outside any snapshot); `filter` is an SQL condition
    /// valid on both backends.
    pub(super) async fn count(&self, table: &str, filter: Option<&str>) -> StoreResult<u64> {
        let sql = match filter {
            Some(filter) => format!("SELECT COUNT(*) FROM {table} WHERE {filter}"),
            None => format!("SELECT COUNT(*) FROM {table}"),
        };
        let context = format!("cannot count the rows of {table}");
        let counted = match self {
            Self::Sqlite(pool) => count_pooled(pool, sql).await,
            Self::Postgres(pool) => count_pooled(pool, sql).await,
        };
        counted.map_err(failed(context))
    }

    /// The tables of the database (less the migrator's own and derived ones).
    pub(super) async fn table_names(&self) -> StoreResult<BTreeSet<String>> {
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
            .filter(|name| name != MIGRATIONS_TABLE && !is_derived(name))
            .collect())
    }

    /// The columns of `table`.
    pub(super) async fn column_names(&self, table: &str) -> StoreResult<BTreeSet<String>> {
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
    pub(super) async fn check_schema(&self, end: End) -> StoreResult<()> {
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
    pub(super) async fn same_as(&self, other: &Self) -> StoreResult<bool> {
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
    pub(super) async fn contents(&self) -> StoreResult<Vec<(&'static str, u64)>> {
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
    pub(super) async fn clear(&self) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut deleted = 0;
        for table in TABLES.iter().rev() {
            let sql = format!("DELETE FROM {}", table.name);
            let context = format!("cannot empty the target's {}", table.name);
            deleted += tx.execute(&sql, &context).await?;
        }
        tx.commit("cannot empty the target").await?;
        Ok(deleted)
    }

    /// A write transaction (SQLite: `BEGIN IMMEDIATE`, taking the write lock at once).
    pub(super) async fn begin_write(&self) -> StoreResult<Tx> {
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
    pub(super) async fn begin_snapshot(&self) -> StoreResult<Tx> {
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
    pub(super) async fn advance_sequences(&self) -> StoreResult<()> {
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

/// `SELECT COUNT(*) …`'s answer.
async fn count_in<B: Backend>(
    connection: &mut B::Connection,
    sql: String,
) -> Result<u64, sqlx::Error> {
    let rows = values_in::<B>(connection, Sql::new(sql), &[Kind::Integer]).await?;
    match rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(Some(count))) => u64::try_from(*count)
            .map_err(|_| sqlx::Error::Protocol(format!("a count of {count} rows"))),
        _ => Err(sqlx::Error::RowNotFound),
    }
}

async fn count_pooled<B: Backend>(pool: &Pool<B>, sql: String) -> Result<u64, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    count_in::<B>(&mut connection, sql).await
}

/// The rows `sql` answers, each column read as `kinds` says.
async fn values_in<B: Backend>(
    connection: &mut B::Connection,
    sql: Sql,
    kinds: &[Kind],
) -> Result<Vec<Vec<Value>>, sqlx::Error> {
    connection.rows(sql, 0, |row| row.values(kinds)).await
}

impl Tx {
    pub(super) async fn commit(self, context: &str) -> StoreResult<()> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
        .map_err(failed(context))
    }

    pub(super) async fn count(&mut self, table: &str) -> StoreResult<u64> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let counted = match self {
            Self::Sqlite(tx) => count_in::<Sqlite>(tx, sql).await,
            Self::Postgres(tx) => count_in::<Postgres>(tx, sql).await,
        };
        counted.map_err(failed(format!("cannot count the source's {table}")))
    }

    /// The next page of `table` after the key `after` (a row's leading key values), in
    /// key order.
    pub(super) async fn page(
        &mut self,
        table: &Table,
        after: Option<&[Value]>,
        limit: usize,
    ) -> StoreResult<Vec<Vec<Value>>> {
        let (sql, kinds) = (page_query(table, after, limit), table.kinds());
        let page = match self {
            Self::Sqlite(tx) => values_in::<Sqlite>(tx, sql, &kinds).await,
            Self::Postgres(tx) => values_in::<Postgres>(tx, sql, &kinds).await,
        };
        page.map_err(failed(format!("cannot read the source's {}", table.name)))
    }

    /// Writes `rows` into `table` with one `INSERT`.
    pub(super) async fn insert(&mut self, table: &Table, rows: Vec<Vec<Value>>) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.run(
            insert_query(table, rows),
            &format!("cannot write the target's {}", table.name),
        )
        .await
        .map(drop)
    }

    /// Indexes the copied token names for the name search, in the transaction that
    /// copies them: SQLite's FTS5 table is not copied (see [`is_derived`]) but rebuilt
    /// from `tokens` in one pass, so a copy never commits tokens the search cannot find
    /// (and a later delete never removes from the index a row it never held). Nothing
    /// to do on PostgreSQL, whose trigram index followed the inserts.
    pub(super) async fn index_token_names(&mut self) -> StoreResult<()> {
        if let Self::Sqlite(_) = self {
            self.execute(
                "INSERT INTO token_names (token_names) VALUES ('rebuild')",
                "cannot index the copied token names",
            )
            .await?;
        }
        Ok(())
    }

    /// Runs a statement without parameters; the rows it changed.
    pub(super) async fn execute(&mut self, sql: &str, context: &str) -> StoreResult<u64> {
        self.run(Sql::new(sql), context).await
    }

    async fn run(&mut self, sql: Sql, context: &str) -> StoreResult<u64> {
        match self {
            Self::Sqlite(tx) => tx.run(sql).await,
            Self::Postgres(tx) => tx.run(sql).await,
        }
        .map_err(failed(context))
    }
}
