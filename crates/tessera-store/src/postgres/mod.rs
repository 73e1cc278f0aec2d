//! The PostgreSQL backend, for a cluster of stateless nodes sharing one database.
//! Migrations live in `migrations/postgres/`, with the same version numbers as SQLite's.
//!
//! What differs from SQLite (the rest is [`crate::sql`]): errors, READ COMMITTED write
//! transactions, and what a cluster needs made explicit: change-feed rows become
//! visible in sequence order (an advisory lock, see [`crate::sql::finish`]), user
//! writes lock the rows their checks read (`FOR UPDATE`, `FOR SHARE`), and usage
//! flushes from several nodes lock token rows in one order and write with array binds
//! (see `record_usage`). Writes also `NOTIFY`, so other nodes wake at once
//! ([`listener`]).

mod connect;
mod listener;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::Connection as _;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};
use tessera_core::TokenId;

use self::listener::{CHANNEL, ChangeListener};
use crate::rows::{day_text, millis};
use crate::sql::{Backend, Driver, Lock, Sql, SqlStore};
use crate::{StoreError, StoreResult, UsageDelta};

/// The sqlx options of `url`, without Tessera's own parameters (see [`connect`]).
pub(crate) fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    Ok(connect::ConnectSettings::from_url(url)?.options)
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The transaction-level advisory lock that orders change-feed inserts ("tessera" + 1
/// in ASCII; sqlx's migration lock is derived from the database name, so they differ).
const CHANGE_FEED_LOCK: i64 = 0x7465_7373_6572_6101;
/// The transaction-level advisory lock one pruner of the change feed holds at a time;
/// first-run registrations take it too (they are rare, and brief).
const CHANGE_FEED_PRUNE_LOCK: i64 = 0x7465_7373_6572_6102;

fn lock_key(lock: Lock) -> i64 {
    match lock {
        Lock::ChangeFeed => CHANGE_FEED_LOCK,
        Lock::Prune | Lock::FirstUser => CHANGE_FEED_PRUNE_LOCK,
    }
}

/// Connections per node; management writes are short and verification never queries.
const POOL_SIZE: u32 = 10;

/// Tessera's store on a PostgreSQL database shared by any number of nodes.
pub(crate) type PostgresStore = SqlStore<Postgres>;

/// What the PostgreSQL store keeps besides its pool.
#[derive(Debug)]
pub(crate) struct PgExtra {
    listener: Arc<ChangeListener>,
    /// How long a call may take before it is abandoned ([`crate::deadline`]).
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

impl SqlStore<Postgres> {
    /// Connects to the database at `url` and migrates it. The database must exist;
    /// tables go into the connection's current schema. Any failure to connect (the
    /// server is down, refuses us, or the database is missing) is `Unavailable`, told
    /// once with the address and what to do; a malformed URL is `Backend`. The URL's
    /// own parameters are described in [`connect`].
    pub(crate) async fn open_migrated(url: &str) -> StoreResult<(Self, crate::Migrated)> {
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
            .map_err(|error| match error {
                sqlx::migrate::MigrateError::Execute(error) => Postgres::classify(error),
                other => StoreError::Backend(Box::new(other)),
            })?;
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
            .map_err(Postgres::classify)?;
        let listener = Arc::new(ChangeListener::new(&pool.connect_options(), schema));
        let store = Self {
            pool,
            extra: PgExtra {
                listener,
                call_deadline: settings.call_deadline(),
            },
        };
        Ok((store, migrated))
    }

    /// How long a call may take before it is abandoned (`None`: no statement timeout,
    /// so no deadline either).
    #[cfg(test)]
    pub(crate) fn call_deadline(&self) -> Option<Duration> {
        self.extra.call_deadline
    }
}

/// One token's usage in a flush: its days' counts and its newest use.
#[derive(Default)]
struct TokenUsage {
    days: BTreeMap<NaiveDate, (i64, i64)>,
    last_used_at: Option<i64>,
}

/// Merges a batch by token (in id order) and day, so each row is written once.
/// `N` in an `EXPLAIN` line's `rows=N`.
fn estimated_rows(line: &str) -> Option<u64> {
    let (_, after) = line.split_once(" rows=")?;
    let digits = after.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

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

impl Driver for Postgres {
    /// `ON DELETE RESTRICT` fails as a foreign-key violation (23503) too; 23001
    /// (restrict_violation) is mapped as well in case a server raises it.
    fn is_restrict(error: &dyn DatabaseError) -> bool {
        error.code().as_deref() == Some("23001")
    }

    fn is_transient(error: &dyn DatabaseError) -> bool {
        error.code().as_deref().is_some_and(is_transient)
    }

    /// A protocol error is a connection that broke mid-conversation (e.g. cut while it
    /// asked for TLS): the next one may well work.
    fn is_unreachable(error: &sqlx::Error) -> bool {
        matches!(
            error,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        )
    }
}

impl Backend for Postgres {
    type Extra = PgExtra;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_SHARE: &'static str = " FOR SHARE";
    /// Under PostgreSQL's limit of 65,535 parameters: 400 token rows a statement.
    const MAX_BINDS: usize = 10_000;

    /// READ COMMITTED, the server default.
    async fn begin(pool: &Pool<Self>) -> StoreResult<Transaction<'static, Self>> {
        pool.begin().await.map_err(Self::classify)
    }

    async fn lock(connection: &mut PgConnection, lock: Lock) -> StoreResult<()> {
        let sql = Sql::new("SELECT pg_advisory_xact_lock($1)").bind(lock_key(lock));
        Self::execute(connection, sql).await.map(drop)
    }

    async fn try_lock(connection: &mut PgConnection, lock: Lock) -> StoreResult<bool> {
        let sql = Sql::new("SELECT pg_try_advisory_xact_lock($1)").bind(lock_key(lock));
        let (locked,): (bool,) = crate::sql::fetch_one::<Self, _>(connection, sql).await?;
        Ok(locked)
    }

    /// Samples the table (about a second at a million tokens).
    async fn refresh_statistics(connection: &mut PgConnection) -> StoreResult<()> {
        Self::execute(connection, Sql::new("ANALYZE tokens"))
            .await
            .map(drop)
    }

    /// The planner's estimate of the rows whose name contains `key`, from `EXPLAIN`'s
    /// first line (`… (cost=… rows=N width=…)`). PostgreSQL makes it by testing the
    /// pattern against the values of `name_key` that `ANALYZE` sampled (never under
    /// 0.01% of the table), without reading the index: "few" means few sampled names
    /// matched. With statistics far out of date a common word can look rare; the page
    /// then sorts every match, slower but the same rows. An estimate that cannot be
    /// read (never, with `EXPLAIN`'s text format) leaves the list to the planner, which
    /// finds the same rows.
    async fn name_candidates(
        connection: &mut PgConnection,
        key: &str,
        _limit: u64,
    ) -> StoreResult<Option<u64>> {
        let sql = Sql::new("EXPLAIN SELECT 1 FROM tokens WHERE name_key LIKE $1 ESCAPE '\\'")
            .bind(crate::sql::like_pattern(key));
        let plan: Vec<(String,)> = Self::fetch_all(connection, sql).await?;
        Ok(plan.first().and_then(|(line,)| estimated_rows(line)))
    }

    /// Sorting by `expression + 0` (or `|| ''`) keeps the planner from walking the
    /// sort's index and testing the `LIKE` on every row, which it prefers when it
    /// thinks the matches are spread evenly (a word in ten thousand names created long
    /// ago, newest first: 0.4 s, against 8 ms from the trigram index).
    fn candidates_first_order(expression: &'static str, numeric: bool) -> Cow<'static, str> {
        if numeric {
            format!("({expression} + 0)").into()
        } else {
            format!("({expression} || '')").into()
        }
    }

    async fn announce(connection: &mut PgConnection) -> StoreResult<()> {
        let sql = Sql::new("SELECT pg_notify($1, current_schema())").bind(CHANNEL);
        Self::execute(connection, sql).await.map(drop)
    }

    /// Several nodes flush at once, so this (1) merges the batch per token and day,
    /// (2) locks the batch's token rows in id order — the same order on every node, so
    /// two flushes cannot deadlock, and a token locked here cannot be deleted before
    /// this commits — and skips tokens deleted meanwhile, (3) adds the counts with one
    /// upsert, and (4) moves `last_used_at` forward only.
    async fn record_usage(connection: &mut PgConnection, batch: &[UsageDelta]) -> StoreResult<()> {
        let merged = merge_usage(batch);
        let ids: Vec<String> = merged.keys().map(ToString::to_string).collect();
        let alive: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM tokens WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await
        .map_err(Self::classify)?;
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
            .execute(&mut *connection)
            .await
            .map_err(Self::classify)?;
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
            .execute(&mut *connection)
            .await
            .map_err(Self::classify)?;
        }
        Ok(())
    }

    fn call_deadline(extra: &PgExtra) -> Option<Duration> {
        extra.call_deadline
    }

    fn change_signal(extra: &PgExtra) -> Option<Arc<tokio::sync::Notify>> {
        extra.listener.signal()
    }
}
