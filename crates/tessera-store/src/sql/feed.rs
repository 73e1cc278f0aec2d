//! The audit log, the change feed, and the `meta` facts.

use chrono::{DateTime, Utc};
use tessera_core::{AuditEntry, Change, ChangeKind};

use super::{Backend, Lock, Sql, SqlStore, fetch_one, insert_audit};
use crate::rows::{AuditRecord, corrupt, millis};
use crate::{AuditQuery, AuditRow, Pruned, StoreResult, meta};

pub(super) async fn list_audit<B: Backend>(
    store: &SqlStore<B>,
    query: &AuditQuery,
) -> StoreResult<Vec<AuditRow>> {
    let mut sql = Sql::new(
        "SELECT id, at, actor, action, target, client_address, changes FROM audit WHERE 1 = 1",
    );
    if let Some(actor) = &query.actor {
        sql.push(" AND actor = ").push_bind(actor);
    }
    if let Some(action) = &query.action {
        sql.push(" AND action = ").push_bind(action);
    }
    if let Some(target) = &query.target {
        sql.push(" AND target = ").push_bind(target);
    }
    if let Some(since) = query.since {
        sql.push(" AND at >= ").push_bind(millis(since));
    }
    if let Some(until) = query.until {
        sql.push(" AND at < ").push_bind(millis(until));
    }
    if let Some(before) = query.before {
        sql.push(" AND id < ").push_bind(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(query.limit));
    store.all(sql, AuditRecord::into_row).await
}

pub(super) async fn record_audit<B: Backend>(
    store: &SqlStore<B>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let mut connection = B::acquire(&store.pool).await?;
    B::execute(&mut connection, insert_audit(audit)).await?;
    Ok(())
}

pub(super) async fn latest_change<B: Backend>(store: &SqlStore<B>) -> StoreResult<i64> {
    let mut connection = B::acquire(&store.pool).await?;
    let sql = Sql::new("SELECT MAX(sequence) FROM changes");
    let (latest,): (Option<i64>,) = fetch_one::<B, _>(&mut connection, sql).await?;
    Ok(latest.unwrap_or(0))
}

pub(super) async fn changes_after<B: Backend>(
    store: &SqlStore<B>,
    sequence: i64,
    limit: u32,
) -> StoreResult<Vec<Change>> {
    let sql = Sql::new(
        "SELECT sequence, kind, key FROM changes WHERE sequence > $1 ORDER BY sequence LIMIT $2",
    )
    .bind(sequence)
    .bind(i64::from(limit));
    let change = |(sequence, kind, key): (i64, String, String)| {
        let kind = ChangeKind::parse(&kind).ok_or_else(|| corrupt("change kind"))?;
        Ok(Change {
            sequence,
            kind,
            key,
        })
    };
    store.all(sql, change).await
}

async fn meta_value<B: Backend>(
    connection: &mut B::Connection,
    key: &str,
) -> StoreResult<Option<String>> {
    let sql = Sql::new("SELECT value FROM meta WHERE key = $1").bind(key);
    let found: Option<(String,)> = B::fetch_optional(connection, sql).await?;
    Ok(found.map(|(value,)| value))
}

async fn read_pruned_through<B: Backend>(connection: &mut B::Connection) -> StoreResult<i64> {
    match meta_value::<B>(connection, meta::CHANGES_PRUNED_THROUGH).await? {
        Some(value) => value.parse().map_err(|_| corrupt("changes_pruned_through")),
        None => Ok(0),
    }
}

pub(super) async fn pruned_through<B: Backend>(store: &SqlStore<B>) -> StoreResult<i64> {
    let mut connection = B::acquire(&store.pool).await?;
    read_pruned_through::<B>(&mut connection).await
}

/// One pruner at a time: SQLite's `BEGIN IMMEDIATE` takes the write lock at once, and
/// the newest change read below stays the newest until the commit. PostgreSQL's
/// transaction tries an advisory lock, and a node that does not get it leaves the work
/// to the one that did (`busy`). Two pruners would be safe all the same (each deletes
/// a prefix and only ever raises the recorded boundary); the lock spares the database
/// the duplicate work. Writers are not held up: they only append to the feed, past the
/// newest change, which is never deleted.
pub(super) async fn prune<B: Backend>(
    store: &SqlStore<B>,
    before: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Pruned> {
    let mut transaction = B::begin(&store.pool).await?;
    if !B::try_lock(&mut transaction, Lock::Prune).await? {
        let through = read_pruned_through::<B>(&mut transaction).await?;
        return Ok(Pruned {
            deleted: 0,
            through,
            busy: true,
        });
    }
    let sql = Sql::new(
        "SELECT MAX(sequence) FROM (SELECT sequence FROM changes \
         WHERE at < $1 AND sequence < (SELECT MAX(sequence) FROM changes) \
         ORDER BY sequence LIMIT $2) AS oldest",
    )
    .bind(millis(before))
    .bind(i64::from(limit));
    let (boundary,): (Option<i64>,) = fetch_one::<B, _>(&mut transaction, sql).await?;
    let mut deleted = 0;
    if let Some(boundary) = boundary {
        let sql = Sql::new("DELETE FROM changes WHERE sequence <= $1").bind(boundary);
        deleted = B::execute(&mut transaction, sql).await?;
        // Raises the recorded boundary, never lowers it.
        let raise = Sql::new(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = CASE \
             WHEN CAST(meta.value AS BIGINT) < CAST(excluded.value AS BIGINT) \
             THEN excluded.value ELSE meta.value END",
        )
        .bind(meta::CHANGES_PRUNED_THROUGH)
        .bind(boundary.to_string());
        B::execute(&mut transaction, raise).await?;
    }
    let through = read_pruned_through::<B>(&mut transaction).await?;
    B::commit(transaction).await?;
    Ok(Pruned {
        deleted,
        through,
        busy: false,
    })
}

pub(super) async fn pepper_fingerprint<B: Backend>(
    store: &SqlStore<B>,
) -> StoreResult<Option<String>> {
    let mut connection = B::acquire(&store.pool).await?;
    meta_value::<B>(&mut connection, meta::PEPPER_FINGERPRINT).await
}

/// Racing claims: on PostgreSQL `ON CONFLICT DO NOTHING` waits for a concurrent insert
/// of the key to commit, so the loser's statement completes and its SELECT (a new
/// snapshot under READ COMMITTED) reads the winner's row; on SQLite the claims take
/// turns.
pub(super) async fn claim_pepper_fingerprint<B: Backend>(
    store: &SqlStore<B>,
    fingerprint: &str,
) -> StoreResult<String> {
    let mut transaction = B::begin(&store.pool).await?;
    let claim =
        Sql::new("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(meta::PEPPER_FINGERPRINT)
            .bind(fingerprint);
    B::execute(&mut transaction, claim).await?;
    let recorded = meta_value::<B>(&mut transaction, meta::PEPPER_FINGERPRINT)
        .await?
        .ok_or_else(|| corrupt("the pepper fingerprint just claimed is missing"))?;
    B::commit(transaction).await?;
    Ok(recorded)
}
