//! The store, written once for both databases.
//!
//! Every statement is one SQL text with `$1, $2, …` placeholders ([`Sql`]), and every
//! value it binds is a [`Value`]; the schemas match column for column, so the same
//! text and the same binds run on SQLite and on PostgreSQL. [`SqlStore`] implements
//! [`crate::Store`] once, generic over a [`Backend`]: the small trait each database
//! implements for what truly differs (error classification, how a write transaction
//! starts, advisory locks and `NOTIFY`, row locks, the usage flush's array binds).
//!
//! Why a trait of our own over sqlx's generic API, rather than generic functions over
//! `sqlx::Database` with `Encode`/`Decode`/`Executor` bounds: Rust does not carry a
//! trait's `where` clauses about other types (`String: Encode<'q, Self>`,
//! `&mut Self::Connection: Executor`) to the places that use the trait, so every
//! generic function would have to repeat a dozen bounds. Here they are written once,
//! on the blanket implementation of [`Run`] (running one statement), and reach every
//! `B: Backend` through an associated-type bound (`Database<Connection: Run<Self>>`),
//! which Rust does carry; the store code sees only [`Backend`] and types of its own.

mod catalog;
mod feed;
mod store;
mod token_list;
pub(crate) use token_list::like_pattern;
mod tokens;
mod users;

use std::borrow::Cow;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures_util::TryStreamExt as _;
use sqlx::error::DatabaseError;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments as _, Database, Encode, FromRow, Pool, Transaction, Type};
use tessera_core::{AuditEntry, ChangeKind};

use crate::rows::millis;
use crate::{StoreError, StoreResult, UsageDelta};

/// Tessera's store on one database; `B` says which.
#[derive(Debug)]
pub(crate) struct SqlStore<B: Backend> {
    pub(crate) pool: Pool<B>,
    pub(crate) extra: B::Extra,
}

/// A row type both backends decode (the `FromRow` derives are generic over the row).
pub(crate) trait Decode:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Decode for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The advisory locks a write may take (PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds
/// the whole database's write lock already, so there they are no-ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Orders change-feed inserts: see [`finish`].
    ChangeFeed,
    /// One pruner of the change feed at a time.
    Prune,
    /// Serializes first-run registrations (two at once must not both see no users).
    FirstUser,
}

/// What a driver answers its own way: which errors mean what.
pub(crate) trait Driver: Database<Row: RowOf, QueryResult: Changed> {
    /// `ON DELETE RESTRICT` refused the write, where the driver does not call it a
    /// foreign-key violation.
    fn is_restrict(error: &dyn DatabaseError) -> bool;
    /// The database says to try again later.
    fn is_transient(error: &dyn DatabaseError) -> bool;
    /// The connection is gone, or could not be had.
    fn is_unreachable(error: &sqlx::Error) -> bool;

    /// The text to send for a statement written with `$N` placeholders.
    fn statement_text(text: String) -> String {
        text
    }

    /// Turns a driver error into a store error.
    fn classify(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                what: "a record with that name already exists".into(),
            },
            sqlx::Error::Database(db)
                if db.is_foreign_key_violation() || Self::is_restrict(db.as_ref()) =>
            {
                StoreError::Conflict {
                    what: "the record is referenced elsewhere, or references a missing record"
                        .into(),
                }
            }
            sqlx::Error::Database(db) if Self::is_transient(db.as_ref()) => {
                StoreError::Unavailable(Box::new(error))
            }
            _ if Self::is_unreachable(&error) => StoreError::Unavailable(Box::new(error)),
            _ => StoreError::Backend(Box::new(error)),
        }
    }
}

/// A driver's row, decoded as any [`Decode`] type, or column by column as values.
pub(crate) trait RowOf: sqlx::Row {
    fn decode<R: Decode>(&self) -> Result<R, sqlx::Error>;

    /// The row's columns, each read as `kinds` says.
    fn values(&self, kinds: &[Kind]) -> Result<Vec<Value>, sqlx::Error>;
}

impl RowOf for SqliteRow {
    fn decode<R: Decode>(&self) -> Result<R, sqlx::Error> {
        R::from_row(self)
    }

    fn values(&self, kinds: &[Kind]) -> Result<Vec<Value>, sqlx::Error> {
        values(self, kinds)
    }
}

impl RowOf for PgRow {
    fn decode<R: Decode>(&self) -> Result<R, sqlx::Error> {
        R::from_row(self)
    }

    fn values(&self, kinds: &[Kind]) -> Result<Vec<Value>, sqlx::Error> {
        values(self, kinds)
    }
}

/// What a column holds, to read it as a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Integer,
    /// INTEGER 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Boolean,
    Blob,
}

/// Reads the columns of `row` as `kinds` says.
fn values<'r, R>(row: &'r R, kinds: &[Kind]) -> Result<Vec<Value>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<String>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<bool>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
{
    kinds
        .iter()
        .enumerate()
        .map(|(index, kind)| {
            Ok(match kind {
                Kind::Text => Value::Text(row.try_get(index)?),
                Kind::Integer => Value::Integer(row.try_get(index)?),
                Kind::Boolean => Value::Boolean(row.try_get(index)?),
                Kind::Blob => Value::Blob(row.try_get(index)?),
            })
        })
        .collect()
}

/// A driver's statement result: how many rows it changed.
pub(crate) trait Changed {
    fn changed(&self) -> u64;
}

impl Changed for sqlx::sqlite::SqliteQueryResult {
    fn changed(&self) -> u64 {
        self.rows_affected()
    }
}

impl Changed for sqlx::postgres::PgQueryResult {
    fn changed(&self) -> u64 {
        self.rows_affected()
    }
}

/// Runs a [`Sql`] on a connection. Written once, over sqlx's generic API: the sqlx
/// bounds live on this one implementation, and reach the store code as a bound on
/// [`Backend`]'s connection type, which Rust carries to every `B: Backend`.
pub(crate) trait Run<DB: Database>: Send {
    /// Runs `sql`; the number of rows it changed.
    fn run(&mut self, sql: Sql) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// The rows `sql` answers, each read by `each` as it arrives, into a vector made for
    /// `expected` rows: no vector of the driver's rows is held, and a page of thousands
    /// (the verify index's load) is not copied again and again as it grows.
    fn rows<T: Send>(
        &mut self,
        sql: Sql,
        expected: usize,
        each: impl FnMut(&DB::Row) -> Result<T, sqlx::Error> + Send,
    ) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send;

    /// The row `sql` answers, if any.
    fn row(
        &mut self,
        sql: Sql,
    ) -> impl Future<Output = Result<Option<DB::Row>, sqlx::Error>> + Send;
}

impl<DB, C> Run<DB> for C
where
    DB: Driver,
    C: Send,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    async fn run(&mut self, sql: Sql) -> Result<u64, sqlx::Error> {
        let (text, arguments) = sql.into_parts::<DB>()?;
        let done = sqlx::query_with::<DB, _>(&text, arguments)
            .execute(self)
            .await?;
        Ok(done.changed())
    }

    async fn rows<T: Send>(
        &mut self,
        sql: Sql,
        expected: usize,
        mut each: impl FnMut(&DB::Row) -> Result<T, sqlx::Error> + Send,
    ) -> Result<Vec<T>, sqlx::Error> {
        let (text, arguments) = sql.into_parts::<DB>()?;
        let mut stream = sqlx::query_with::<DB, _>(&text, arguments).fetch(self);
        let mut read = Vec::with_capacity(expected);
        while let Some(row) = stream.try_next().await? {
            read.push(each(&row)?);
        }
        Ok(read)
    }

    async fn row(&mut self, sql: Sql) -> Result<Option<DB::Row>, sqlx::Error> {
        let (text, arguments) = sql.into_parts::<DB>()?;
        sqlx::query_with::<DB, _>(&text, arguments)
            .fetch_optional(self)
            .await
    }
}

/// What differs between the databases. Everything else is in this module, once.
pub(crate) trait Backend: Driver + Database<Connection: Run<Self>> {
    /// What the store keeps besides its pool (PostgreSQL: the change listener).
    type Extra: Send + Sync + Debug;

    /// Appended to a `SELECT` that must lock the rows it reads until the transaction
    /// ends (`FOR UPDATE`; empty on SQLite, whose writer holds the database).
    const FOR_UPDATE: &'static str;
    /// As [`Backend::FOR_UPDATE`], for a lock that only keeps the rows from changing.
    const FOR_SHARE: &'static str;
    /// The most values a multi-row insert binds in one statement ([`insert_rows`]).
    const MAX_BINDS: usize;

    /// Starts a write transaction. Dropping it uncommitted rolls it back.
    fn begin(
        pool: &Pool<Self>,
    ) -> impl Future<Output = StoreResult<Transaction<'static, Self>>> + Send;

    fn commit(
        transaction: Transaction<'static, Self>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        async { transaction.commit().await.map_err(Self::classify) }
    }

    /// A connection from the pool, for reads and single statements.
    fn acquire(
        pool: &Pool<Self>,
    ) -> impl Future<Output = StoreResult<sqlx::pool::PoolConnection<Self>>> + Send {
        let acquired = pool.acquire();
        async { acquired.await.map_err(Self::classify) }
    }

    /// Runs `sql`; the number of rows it changed.
    fn execute(
        connection: &mut Self::Connection,
        sql: Sql,
    ) -> impl Future<Output = StoreResult<u64>> + Send {
        async { connection.run(sql).await.map_err(Self::classify) }
    }

    fn fetch_all<R: Decode>(
        connection: &mut Self::Connection,
        sql: Sql,
    ) -> impl Future<Output = StoreResult<Vec<R>>> + Send {
        Self::fetch_expected(connection, sql, 0)
    }

    /// [`Backend::fetch_all`] of a query expected to answer about `expected` rows.
    fn fetch_expected<R: Decode>(
        connection: &mut Self::Connection,
        sql: Sql,
        expected: usize,
    ) -> impl Future<Output = StoreResult<Vec<R>>> + Send {
        async move {
            connection
                .rows(sql, expected, RowOf::decode)
                .await
                .map_err(Self::classify)
        }
    }

    fn fetch_optional<R: Decode>(
        connection: &mut Self::Connection,
        sql: Sql,
    ) -> impl Future<Output = StoreResult<Option<R>>> + Send {
        async {
            let row = connection.row(sql).await.map_err(Self::classify)?;
            let decoded = row.as_ref().map(RowOf::decode).transpose();
            decoded.map_err(Self::classify)
        }
    }

    /// Takes `lock` until the transaction ends.
    fn lock(
        connection: &mut Self::Connection,
        lock: Lock,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Takes `lock` until the transaction ends if it is free; whether it was.
    fn try_lock(
        connection: &mut Self::Connection,
        lock: Lock,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Tells other processes, when the transaction commits, that the feed grew.
    fn announce(connection: &mut Self::Connection) -> impl Future<Output = StoreResult<()>> + Send;

    /// Adds a usage batch inside `connection`'s transaction (tokens deleted meanwhile
    /// are skipped; `last_used_at` only moves forward).
    fn record_usage(
        connection: &mut Self::Connection,
        batch: &[UsageDelta],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// How long a call may take before it is abandoned ([`crate::deadline`]).
    fn call_deadline(_extra: &Self::Extra) -> Option<std::time::Duration> {
        None
    }

    /// See [`crate::Store::change_signal`].
    fn change_signal(_extra: &Self::Extra) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// Inserts token rows ([`insert_rows`]) and makes their names searchable where the
    /// database does not by itself: SQLite indexes a batch's names in one statement
    /// (migration 0006); PostgreSQL's trigram index follows the table.
    fn insert_token_rows(
        connection: &mut Self::Connection,
        into: &str,
        columns: usize,
        rows: Vec<Vec<Value>>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        insert_rows::<Self>(connection, into, columns, rows)
    }

    /// The verify index's page that `page` (`SELECT {INDEX_COLUMNS} … LIMIT n`)
    /// selects, about `expected` rows.
    fn index_page(
        connection: &mut Self::Connection,
        page: Sql,
        expected: usize,
    ) -> impl Future<Output = StoreResult<Vec<crate::IndexRecord>>> + Send {
        async move {
            let rows: Vec<crate::rows::IndexRow> =
                Self::fetch_expected(connection, page, expected).await?;
            rows.into_iter()
                .map(crate::rows::IndexRow::into_record)
                .collect()
        }
    }

    /// See [`crate::Store::refresh_statistics`].
    fn refresh_statistics(
        connection: &mut Self::Connection,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// How many rows a substring index says may contain `key`: counted up to one past
    /// `limit` (SQLite's FTS5 index, which the token list must be told to read:
    /// [`Backend::push_candidates_first`], [`Backend::push_candidates_among`]), or the
    /// planner's estimate (PostgreSQL, whose planner reads its trigram index for the
    /// list's `LIKE` by itself); `None` where there is no such index. Asked only for
    /// keys of three characters or more (shorter ones have no trigram). The list
    /// chooses how to read a name search by it; every way finds the same rows.
    fn name_candidates(
        _connection: &mut Self::Connection,
        _key: &str,
        _limit: u64,
    ) -> impl Future<Output = StoreResult<Option<u64>>> + Send {
        async { Ok(None) }
    }

    /// The token list's row source that reads `key`'s candidates first, then their
    /// `tokens` rows, with `tokens`' columns unqualified (only after
    /// [`Backend::name_candidates`] answered). The list's `LIKE` still decides.
    fn push_candidates_first(sql: &mut Sql, _key: &str) {
        sql.push("tokens");
    }

    /// Narrows the token list, already filtered by `name_key LIKE '%key%'`, to `key`'s
    /// candidates (only after [`Backend::name_candidates`] answered).
    fn push_candidates_among(_sql: &mut Sql, _key: &str) {}

    /// What a page read from its candidates first orders by: the sort `expression`
    /// itself, or (where the planner would rather walk the sort's index and test every
    /// row, PostgreSQL) an equal expression no index serves. `numeric`: the expression
    /// is a number, else text.
    fn candidates_first_order(expression: &'static str, _numeric: bool) -> Cow<'static, str> {
        expression.into()
    }
}

/// One column value to bind, typed so that a NULL binds with its column's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(Option<String>),
    Integer(Option<i64>),
    Boolean(Option<bool>),
    Blob(Option<Vec<u8>>),
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}
impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}
impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(Some(value.clone()))
    }
}
impl From<Option<String>> for Value {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}
impl From<&Option<String>> for Value {
    fn from(value: &Option<String>) -> Self {
        Self::Text(value.clone())
    }
}
impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Integer(Some(value))
    }
}
impl From<Option<i64>> for Value {
    fn from(value: Option<i64>) -> Self {
        Self::Integer(value)
    }
}
impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Boolean(Some(value))
    }
}
impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Self::Blob(Some(value))
    }
}
impl From<Option<Vec<u8>>> for Value {
    fn from(value: Option<Vec<u8>>) -> Self {
        Self::Blob(value)
    }
}

/// A statement and its binds: one text for both backends, with `$1, $2, …`.
///
/// PostgreSQL numbers parameters by their digits. SQLite numbers a named parameter
/// (`$1` is one) by where it first appears; sqlx's SQLite driver reads the digits of a
/// `$N` name and binds the N-th value (a test in this module pins that), so the two
/// agree. As a second guard, every text is checked (in debug builds) to introduce its
/// placeholders in ascending order, where the two numberings coincide whatever a
/// driver does; [`Sql::push_bind`] writes them that way by construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        debug_assert!(
            placeholders_ascend(&text),
            "placeholders out of order: {text}"
        );
        Self {
            text,
            values: Vec::new(),
        }
    }

    /// `before` + this statement + `after` (text without placeholders): this statement
    /// as a subquery.
    pub(crate) fn wrapped(self, before: &str, after: &str) -> Self {
        debug_assert!(!before.contains('$') && !after.contains('$'));
        Self {
            text: format!("{before}{}{after}", self.text),
            values: self.values,
        }
    }

    /// Binds the next placeholder of the text.
    pub(crate) fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Appends text (without placeholders).
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        debug_assert!(!text.contains('$'), "use push_bind for placeholders");
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder, bound to `value`.
    pub(crate) fn push_bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.values.len().to_string());
        self
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The text (as the driver wants it sent) and the driver's arguments.
    pub(crate) fn into_parts<'q, DB>(self) -> Result<(String, DB::Arguments<'q>), sqlx::Error>
    where
        DB: Driver,
        Option<String>: Encode<'q, DB> + Type<DB>,
        Option<i64>: Encode<'q, DB> + Type<DB>,
        Option<bool>: Encode<'q, DB> + Type<DB>,
        Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
    {
        let arguments = arguments::<DB>(self.values).map_err(sqlx::Error::Encode)?;
        Ok((DB::statement_text(self.text), arguments))
    }
}

/// `text` with its placeholders as anonymous `?`, when they are `$1`, `$2`, … each once
/// and in that order (as [`Sql::push_bind`] writes them), and no `$` is inside a quoted
/// literal or identifier, or the text has no comment; else `None`.
pub(crate) fn anonymous_placeholders(text: &str) -> Option<String> {
    if text.contains("--") || text.contains("/*") {
        return None;
    }
    let mut quote = None;
    for character in text.chars() {
        match (quote, character) {
            (None, '\'' | '"') => quote = Some(character),
            (Some(open), _) if character == open => quote = None,
            (Some(_), '$') => return None,
            _ => {}
        }
    }
    let mut anonymous = String::with_capacity(text.len());
    let mut next = 1_usize;
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        anonymous.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            anonymous.push('$');
        } else if after[..digits].parse::<usize>().ok()? == next {
            anonymous.push('?');
            next += 1;
        } else {
            return None;
        }
        rest = &after[digits..];
    }
    anonymous.push_str(rest);
    Some(anonymous)
}

/// Whether each placeholder number first appears right after the highest seen so far.
fn placeholders_ascend(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut highest = 0_usize;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' {
            let digits: String = text[index + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(number) = digits.parse::<usize>() {
                if number > highest + 1 {
                    return false;
                }
                highest = highest.max(number);
            }
            index += digits.len();
        }
        index += 1;
    }
    true
}

/// The driver's arguments for `values`, each bound with its own type.
pub(crate) fn arguments<'q, DB>(
    values: Vec<Value>,
) -> Result<DB::Arguments<'q>, sqlx::error::BoxDynError>
where
    DB: Database,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    let mut arguments = DB::Arguments::default();
    for value in values {
        match value {
            Value::Text(value) => arguments.add(value)?,
            Value::Integer(value) => arguments.add(value)?,
            Value::Boolean(value) => arguments.add(value)?,
            Value::Blob(value) => arguments.add(value)?,
        }
    }
    Ok(arguments)
}

/// The one row `sql` answers (an aggregate, say).
pub(crate) async fn fetch_one<B: Backend, R: Decode>(
    connection: &mut B::Connection,
    sql: Sql,
) -> StoreResult<R> {
    B::fetch_optional(connection, sql)
        .await?
        .ok_or_else(|| crate::rows::corrupt("a query that answers one row answered none"))
}

/// Keeps `Conflict` but says `what` instead of the generic message.
pub(crate) fn conflict(what: String) -> impl FnOnce(StoreError) -> StoreError {
    move |error| match error {
        StoreError::Conflict { .. } => StoreError::Conflict { what },
        other => other,
    }
}

/// `Err(NotFound)` when a statement meant to change one row changed none.
pub(crate) fn one_row(changed: u64) -> StoreResult<()> {
    if changed == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// The audit table's columns, in [`audit_values`] order.
const AUDIT_INTO: &str = "audit (at, actor, action, target, client_address, changes)";

/// The values of `audit`'s row.
fn audit_values(audit: &AuditEntry) -> Vec<Value> {
    vec![
        millis(audit.at).into(),
        (&audit.actor).into(),
        (&audit.action).into(),
        (&audit.target).into(),
        (&audit.client_address).into(),
        audit.changes.to_string().into(),
    ]
}

pub(crate) fn insert_audit(audit: &AuditEntry) -> Sql {
    let mut sql = Sql::new(format!("INSERT INTO {AUDIT_INTO} VALUES ("));
    push_row(&mut sql, audit_values(audit));
    sql.push(")");
    sql
}

/// Appends `values` as placeholders separated by commas.
pub(crate) fn push_row(sql: &mut Sql, values: Vec<Value>) {
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        sql.push_bind(value);
    }
}

/// Inserts `rows` (each the values of `into`'s `columns` columns) with multi-row
/// `INSERT … VALUES (…), (…)` statements of up to [`Backend::MAX_BINDS`] values: one
/// round trip to the database for many rows instead of one each.
pub(crate) async fn insert_rows<B: Backend>(
    connection: &mut B::Connection,
    into: &str,
    columns: usize,
    rows: Vec<Vec<Value>>,
) -> StoreResult<()> {
    let per_statement = (B::MAX_BINDS / columns.max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut sql = Sql::new(format!("INSERT INTO {into} VALUES "));
        for (index, row) in rows.by_ref().take(per_statement).enumerate() {
            if row.len() != columns {
                return Err(crate::rows::corrupt("a row to insert has the wrong width"));
            }
            sql.push(if index > 0 { ", (" } else { "(" });
            push_row(&mut sql, row);
            sql.push(")");
        }
        B::execute(connection, sql).await?;
    }
    Ok(())
}

/// Inserts the audit rows of a batch ([`insert_rows`]).
pub(crate) async fn insert_audits<B: Backend>(
    connection: &mut B::Connection,
    audits: &[&AuditEntry],
) -> StoreResult<()> {
    let rows = audits.iter().map(|audit| audit_values(audit)).collect();
    insert_rows::<B>(connection, AUDIT_INTO, 6, rows).await
}

/// Appends the audit row and one change-feed row per change to `transaction`, and
/// commits it. The one way a write reaches the feed, on both backends.
///
/// On PostgreSQL the feed rows are inserted under an advisory lock held until the
/// commit. Why: a `BIGSERIAL` value is taken when the row is inserted, but becomes
/// visible when its transaction commits, and transactions commit in any order.
/// Without the lock, writer A could take sequence 7, writer B take 8 and commit first;
/// a follower reading `sequence > 6` sees 8, moves its position to 8, and never sees 7
/// when A commits a moment later: a change skipped for good. With the lock, taking a
/// sequence number and committing happen inside one critical section
/// (`pg_advisory_xact_lock` is released only after the commit is visible), so every
/// snapshot sees a prefix of the feed and `sequence > last_seen` is safe. The lock is
/// taken as late as possible (after every row lock of the write) so that only the
/// insert and the commit are serialized, and no lock is ever awaited while holding it,
/// so it cannot take part in a deadlock. (It also needs the sequence's default
/// `CACHE 1`: see the migration.) Sequence numbers can still have gaps, from
/// transactions that roll back after the insert; followers do not mind. On SQLite the
/// writer holds the database from `BEGIN IMMEDIATE` to the commit, which orders the
/// feed by itself.
pub(crate) async fn finish<B: Backend>(
    mut transaction: Transaction<'static, B>,
    audit: &AuditEntry,
    changes: &[(ChangeKind, &str)],
) -> StoreResult<()> {
    B::execute(&mut transaction, insert_audit(audit)).await?;
    finish_changes(transaction, audit, changes).await
}

/// [`finish`] once the audit rows are written: the change-feed rows (dated `audit.at`)
/// and the commit.
pub(crate) async fn finish_changes<B: Backend>(
    mut transaction: Transaction<'static, B>,
    audit: &AuditEntry,
    changes: &[(ChangeKind, &str)],
) -> StoreResult<()> {
    if !changes.is_empty() {
        // Delivered at commit, and only if the transaction commits.
        B::announce(&mut transaction).await?;
        B::lock(&mut transaction, Lock::ChangeFeed).await?;
        let at = millis(audit.at);
        let rows = changes
            .iter()
            .map(|(kind, key)| vec![kind.as_str().into(), (*key).into(), at.into()])
            .collect();
        insert_rows::<B>(&mut transaction, "changes (kind, key, at)", 3, rows).await?;
    }
    B::commit(transaction).await
}

/// What a write of one statement expects it to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Whatever it changes.
    Any,
    /// At least one row, else `NotFound`.
    OneRow,
}

impl<B: Backend> SqlStore<B> {
    /// Every row `sql` answers, each converted by `convert`.
    pub(crate) async fn all<R: Decode, T>(
        &self,
        sql: Sql,
        mut convert: impl FnMut(R) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let mut connection = B::acquire(&self.pool).await?;
        let rows: Vec<R> = B::fetch_all(&mut connection, sql).await?;
        let mut converted = Vec::with_capacity(rows.len());
        for row in rows {
            converted.push(convert(row)?);
        }
        Ok(converted)
    }

    /// The row `sql` answers, if any, converted by `convert`.
    pub(crate) async fn optional<R: Decode, T>(
        &self,
        sql: Sql,
        convert: impl FnOnce(R) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let mut connection = B::acquire(&self.pool).await?;
        let row: Option<R> = B::fetch_optional(&mut connection, sql).await?;
        row.map(convert).transpose()
    }

    /// `sql` alone in a write transaction, with its audit row and `changes` ([`finish`]).
    pub(crate) async fn write(
        &self,
        sql: Sql,
        expect: Expect,
        audit: &AuditEntry,
        changes: &[(ChangeKind, &str)],
    ) -> StoreResult<()> {
        let mut transaction = B::begin(&self.pool).await?;
        let changed = B::execute(&mut transaction, sql).await?;
        if expect == Expect::OneRow {
            one_row(changed)?;
        }
        finish(transaction, audit, changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_each_once_in_order_can_be_anonymous() {
        assert_eq!(
            anonymous_placeholders("VALUES ($1, $2), ($3, 'a''b', \"c\", $4)").as_deref(),
            Some("VALUES (?, ?), (?, 'a''b', \"c\", ?)")
        );
        // A `$` in a literal, an identifier or a comment keeps the numbered text.
        assert_eq!(anonymous_placeholders("SELECT '$1', $1"), None);
        assert_eq!(
            anonymous_placeholders("SELECT \"$1\" FROM t WHERE a = $1"),
            None
        );
        assert_eq!(anonymous_placeholders("SELECT $1 -- $2"), None);
        assert_eq!(anonymous_placeholders("a = $1 AND b = $1"), None);
        assert_eq!(anonymous_placeholders("a = $2 AND b = $1"), None);
        assert_eq!(
            anonymous_placeholders("SELECT 1").as_deref(),
            Some("SELECT 1")
        );
    }

    #[test]
    fn placeholders_must_first_appear_in_order() {
        assert!(placeholders_ascend("VALUES ($1, $2, $3, $4, $4)"));
        assert!(placeholders_ascend(
            "SET a = $1, b = $2 WHERE c = $3 AND $1 = $2"
        ));
        assert!(!placeholders_ascend("x = $1 AND y = $2 AND z = $10"));
        assert!(!placeholders_ascend("SET a = $2 WHERE id = $1"));
        assert!(placeholders_ascend("SELECT 1"));
        let mut sql = Sql::new("SELECT a FROM t WHERE b = ");
        sql.push_bind(1_i64).push(" AND c = ").push_bind("x");
        assert_eq!(sql.text(), "SELECT a FROM t WHERE b = $1 AND c = $2");
    }

    /// sqlx's SQLite driver binds `$N` to the N-th value, whatever order the
    /// placeholders appear in (SQLite itself numbers them by first appearance).
    #[tokio::test]
    async fn sqlite_binds_dollar_placeholders_by_their_number() {
        use sqlx::Connection as _;
        let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let (text, bound) = Sql::new("SELECT $1 || $2")
            .bind("a")
            .bind("b")
            .into_parts::<sqlx::Sqlite>()
            .unwrap();
        let row: (String,) = sqlx::query_as_with(&text, bound)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(row.0, "ab");
        // Out of order (which `Sql::new` refuses in debug builds): still by number.
        let bound = arguments::<sqlx::Sqlite>(vec!["a".into(), "b".into()]).unwrap();
        let row: (String,) = sqlx::query_as_with("SELECT $2 || $1", bound)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(row.0, "ba");
    }
}
