//! The SQLite backend: WAL journal, foreign keys, a busy timeout, `synchronous=FULL` so
//! an acknowledged write survives a crash. Migrations live in `migrations/sqlite/`.
//!
//! What differs from PostgreSQL (the rest is [`crate::sql`]): errors, and a write
//! transaction starts with `BEGIN IMMEDIATE`, which takes the database's write lock up
//! front. One writer at a time orders the change feed and serializes registrations and
//! pruning by itself, so the advisory locks and row locks are no-ops here.

use std::str::FromStr;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Pool, Sqlite, SqliteConnection, Transaction};

use crate::rows::{INDEX_COLUMNS, IndexRow, corrupt, day_text, millis};
use crate::sql::{Backend, Driver, Lock, Sql, SqlStore, Value, fetch_one, insert_rows};
use crate::{IndexRecord, StoreError, StoreResult, UsageDelta};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Tessera's store on an embedded SQLite database.
pub(crate) type SqliteStore = SqlStore<Sqlite>;

/// The settings every connection to a Tessera SQLite file gets (the store's and
/// `db copy`'s).
pub(crate) fn connect_options(url: &str) -> StoreResult<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(<Sqlite as Driver>::classify)?
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // Rows a query's worker thread may read ahead of the task that receives them
        // (sqlx's default is 50): `db copy` reads pages of thousands of rows. (The
        // verify index reads each page as one row: `Backend::index_page`.)
        .row_buffer_size(1_024))
}

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) and migrates the database at `url`.
    pub(crate) async fn open_migrated(url: &str) -> StoreResult<(Self, crate::Migrated)> {
        let options = connect_options(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool: SqlitePool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(Sqlite::classify)?;
        let mut connection = pool.acquire().await.map_err(Sqlite::classify)?;
        let migrated = crate::run_migrations(&MIGRATOR, &mut *connection)
            .await
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        // Table statistics for the planner, gathered where they are missing or the
        // table grew or shrank tenfold since (SQLite 3.46's `optimize` flag 0x10000:
        // check every table, as at the start of a process). Without them, a million
        // tokens' list walks the creation-order index for a filter that matches few
        // rows (external id, disabled: ~1 s) and finds the name search's candidates
        // last (~300 ms); with them, both take milliseconds. A full ANALYZE of a
        // million tokens takes about 3 s, and only when the counts moved that far.
        Sqlite::refresh_statistics(&mut connection).await?;
        drop(connection);
        Ok((Self { pool, extra: () }, migrated))
    }
}

impl Driver for Sqlite {
    /// Anonymous `?` where the statement allows it. sqlx asks SQLite the name of each
    /// numbered placeholder as it binds, and SQLite finds a name by walking the list
    /// of them: quadratic in the placeholders of a statement, and a tenth of a bulk
    /// import's time went there. Anonymous ones have no names to look up.
    fn statement_text(text: String) -> String {
        crate::sql::anonymous_placeholders(&text).unwrap_or(text)
    }

    /// `ON DELETE RESTRICT` fails as SQLITE_CONSTRAINT_TRIGGER (1811), which sqlx does
    /// not classify as a foreign-key violation.
    fn is_restrict(error: &dyn DatabaseError) -> bool {
        error.message().contains("FOREIGN KEY constraint failed")
    }

    /// Locked past the busy timeout.
    fn is_transient(error: &dyn DatabaseError) -> bool {
        error.message().contains("database is locked")
    }

    fn is_unreachable(error: &sqlx::Error) -> bool {
        matches!(
            error,
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        )
    }
}

/// [`INDEX_COLUMNS`] as `json_array`'s arguments, in the order [`IndexRow`] reads them:
/// the digests (blobs, which JSON cannot hold) as hex, a missing grace digest as null
/// (`hex(NULL)` is '').
fn index_json_columns() -> String {
    let columns: Vec<String> = INDEX_COLUMNS
        .split(',')
        .map(str::trim)
        .map(|column| match column {
            "digest" => "hex(digest)".to_owned(),
            "grace_digest" => "iif(grace_digest IS NULL, NULL, hex(grace_digest))".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    columns.join(", ")
}

/// `key` as one FTS5 string (a phrase of its trigrams: a substring), a `"` doubled.
fn fts_phrase(key: &str) -> String {
    format!("\"{}\"", key.replace('"', "\"\""))
}

impl Backend for Sqlite {
    type Extra = ();
    const FOR_UPDATE: &'static str = "";
    const FOR_SHARE: &'static str = "";
    /// Far below SQLite's limit (32,766): sqlx binds each value by looking up its
    /// `$N` name, a lookup that is linear in the statement's parameters, so a statement's
    /// binding cost grows with the square of its size. 30,000 values spent 90% of an
    /// import there, 500 still 15%; 250 (10 token rows) keep it small, and the handful of
    /// statements a batch still makes cost little next to one per row.
    const MAX_BINDS: usize = 250;

    /// `BEGIN IMMEDIATE` takes the write lock up front, so concurrent writers wait on
    /// the busy timeout instead of failing on a lock upgrade.
    async fn begin(pool: &Pool<Self>) -> StoreResult<Transaction<'static, Self>> {
        pool.begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(Self::classify)
    }

    /// The whole page in one row: a JSON array of each token's columns, built by SQLite
    /// and read back with serde. sqlx's SQLite driver hands rows one at a time from its
    /// worker thread, copying every value and waking the reader for each: at a million
    /// tokens, most of a load went there, and into the allocator. One row a page
    /// spares all of it.
    async fn index_page(
        connection: &mut SqliteConnection,
        page: Sql,
        _expected: usize,
    ) -> StoreResult<Vec<IndexRecord>> {
        let page = page.wrapped(
            &format!(
                "SELECT json_group_array(json_array({}) ORDER BY id) FROM (",
                index_json_columns()
            ),
            ")",
        );
        let (json,): (String,) = fetch_one::<Sqlite, _>(connection, page).await?;
        let rows: Vec<IndexRow> = serde_json::from_str(&json)
            .map_err(|error| corrupt(format!("a page of the verify index: {error}")))?;
        rows.into_iter().map(IndexRow::into_record).collect()
    }

    /// `PRAGMA optimize` with flag 0x10000 (SQLite 3.46): analyzes every table never
    /// analyzed, or grown or shrunk tenfold since (see [`SqlStore::open_migrated`]).
    async fn refresh_statistics(connection: &mut SqliteConnection) -> StoreResult<()> {
        Self::execute(connection, Sql::new("PRAGMA optimize = 0x10002"))
            .await
            .map(drop)
    }

    async fn lock(_connection: &mut SqliteConnection, _lock: Lock) -> StoreResult<()> {
        Ok(())
    }

    async fn try_lock(_connection: &mut SqliteConnection, _lock: Lock) -> StoreResult<bool> {
        Ok(true)
    }

    /// One FTS5 statement for the whole batch: a statement that writes to an FTS5
    /// table flushes its terms to a new segment, so indexing row by row (as the
    /// trigger of migration 0005 did) left FTS5 merging segments of ten names.
    /// Inside the write transaction nobody else inserts, and SQLite numbers new rows
    /// after the largest rowid, so the batch is the rows past the largest before it.
    async fn insert_token_rows(
        connection: &mut SqliteConnection,
        into: &str,
        columns: usize,
        rows: Vec<Vec<Value>>,
    ) -> StoreResult<()> {
        let inserted = rows.len() as u64;
        let (before,): (i64,) = fetch_one::<Sqlite, _>(
            connection,
            Sql::new("SELECT COALESCE(MAX(rowid), 0) FROM tokens"),
        )
        .await?;
        insert_rows::<Sqlite>(connection, into, columns, rows).await?;
        let indexed = Self::execute(
            connection,
            Sql::new(
                "INSERT INTO token_names (rowid, name_key) \
                 SELECT rowid, name_key FROM tokens WHERE rowid > $1",
            )
            .bind(before),
        )
        .await?;
        if indexed != inserted {
            return Err(crate::rows::corrupt(
                "the name search did not index exactly the tokens just inserted",
            ));
        }
        Ok(())
    }

    /// The FTS5 trigram index's candidates (migration 0005), counted with a `LIMIT`:
    /// SQLite does not use that index for a `LIKE` by itself.
    async fn name_candidates(
        connection: &mut SqliteConnection,
        key: &str,
        limit: u64,
    ) -> StoreResult<Option<u64>> {
        let sql = Sql::new(
            "SELECT COUNT(*) FROM (SELECT rowid FROM token_names \
             WHERE token_names MATCH $1 LIMIT $2) AS candidates",
        )
        .bind(fts_phrase(key))
        .bind(crate::rows::limit_past(limit));
        let (candidates,): (i64,) = fetch_one::<Sqlite, _>(connection, sql).await?;
        Ok(Some(crate::rows::count(candidates)?))
    }

    /// `CROSS JOIN` keeps SQLite from walking `tokens` and probing the candidates.
    fn push_candidates_first(sql: &mut Sql, key: &str) {
        sql.push("(SELECT rowid AS candidate FROM token_names WHERE token_names MATCH ")
            .push_bind(fts_phrase(key))
            .push(") AS candidates CROSS JOIN tokens ON tokens.rowid = candidates.candidate");
    }

    fn push_candidates_among(sql: &mut Sql, key: &str) {
        sql.push(" AND tokens.rowid IN (SELECT rowid FROM token_names WHERE token_names MATCH ")
            .push_bind(fts_phrase(key))
            .push(")");
    }

    /// Nobody listens: other processes poll.
    async fn announce(_connection: &mut SqliteConnection) -> StoreResult<()> {
        Ok(())
    }

    /// One writer at a time: each delta is an upsert, skipped when the token is gone.
    async fn record_usage(
        connection: &mut SqliteConnection,
        batch: &[UsageDelta],
    ) -> StoreResult<()> {
        for delta in batch {
            let id = delta.token_id.to_string();
            let counts = Sql::new(
                "INSERT INTO usage_daily (token_id, day, allowed, denied) \
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM tokens WHERE id = $1) \
                 ON CONFLICT (token_id, day) DO UPDATE SET \
                 allowed = allowed + excluded.allowed, denied = denied + excluded.denied",
            )
            .bind(&id)
            .bind(day_text(delta.day))
            .bind(i64::try_from(delta.allowed).unwrap_or(i64::MAX))
            .bind(i64::try_from(delta.denied).unwrap_or(i64::MAX));
            Self::execute(connection, counts).await?;
            if let Some(at) = delta.last_used_at {
                let used = Sql::new(
                    "UPDATE tokens SET last_used_at = $1 \
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(millis(at))
                .bind(&id);
                Self::execute(connection, used).await?;
            }
        }
        Ok(())
    }
}
