//! Tokens: writes, reads, the filtered and sorted list, usage.

use chrono::NaiveDate;
use tessera_core::{AuditEntry, ChangeKind, TokenId, TokenRecord, UserId};

use super::{Backend, Expect, Sql, SqlStore, Value, finish, insert_audits};
use crate::rows::{
    INDEX_COLUMNS, TOKEN_COLUMNS, TokenRow, count, day_text, json_text, millis, parse_day,
};
use crate::{IndexRecord, StoreError, StoreResult, UsageDelta, UsageRow};

/// The columns an edit may change, in [`bind_editable`] order. Identity, creation and
/// usage columns never change through an edit.
const EDITABLE_COLUMNS: [&str; 19] = [
    "name",
    "name_key",
    "description",
    "token_type",
    "permissions",
    "project",
    "status",
    "lifespan",
    "expires_at",
    "api_version",
    "hint",
    "digest",
    "grace_digest",
    "grace_until",
    "updated_at",
    "rate_limit_requests",
    "rate_limit_seconds",
    "external_id",
    "metadata",
];

/// The values of `token`'s [`EDITABLE_COLUMNS`], in order.
fn editable_values(token: &TokenRecord) -> StoreResult<Vec<Value>> {
    Ok(vec![
        (&token.name).into(),
        tessera_core::validate::name_key(&token.name).into(),
        (&token.description).into(),
        token.token_type.as_str().into(),
        json_text(&token.permissions)?.into(),
        (&token.project).into(),
        token.status.as_str().into(),
        token.lifespan.as_str().into(),
        token.expires_at.map(millis).into(),
        (&token.api_version).into(),
        (&token.hint).into(),
        token.digest.as_bytes().to_vec().into(),
        token.grace.map(|g| g.digest.as_bytes().to_vec()).into(),
        token.grace.map(|g| millis(g.until)).into(),
        millis(token.updated_at).into(),
        token.rate_limit.map(|r| i64::from(r.requests)).into(),
        token.rate_limit.map(|r| i64::from(r.per_seconds)).into(),
        (&token.external_id).into(),
        json_text(&token.metadata)?.into(),
    ])
}

pub(super) fn records(rows: Vec<TokenRow>) -> StoreResult<Vec<TokenRecord>> {
    rows.into_iter().map(TokenRow::into_record).collect()
}

/// The columns an insert writes: every one but `revision` (which starts at its
/// default), in [`insert_values`] order.
const INSERT_LEADING_COLUMNS: [&str; 6] = [
    "id",
    "kind",
    "owner_id",
    "created_at",
    "created_by",
    "last_used_at",
];

/// `tokens (…)`: the table and the columns an insert writes.
fn insert_into() -> String {
    let columns: Vec<&str> = INSERT_LEADING_COLUMNS
        .iter()
        .chain(EDITABLE_COLUMNS.iter())
        .copied()
        .collect();
    format!("tokens ({})", columns.join(", "))
}

/// The values an insert of `token` writes.
fn insert_values(token: &TokenRecord) -> StoreResult<Vec<Value>> {
    let mut values: Vec<Value> = vec![
        token.id.to_string().into(),
        token.kind.as_str().into(),
        token.owner_id.map(|owner| owner.to_string()).into(),
        millis(token.created_at).into(),
        (&token.created_by).into(),
        token.last_used_at.map(millis).into(),
    ];
    values.extend(editable_values(token)?);
    Ok(values)
}

pub(super) async fn insert<B: Backend>(
    store: &SqlStore<B>,
    token: &TokenRecord,
    audit: &AuditEntry,
) -> StoreResult<()> {
    insert_batch(store, &[(token, audit)]).await
}

pub(super) async fn insert_many<B: Backend>(
    store: &SqlStore<B>,
    tokens: &[(TokenRecord, AuditEntry)],
) -> StoreResult<()> {
    let batch: Vec<(&TokenRecord, &AuditEntry)> =
        tokens.iter().map(|(token, audit)| (token, audit)).collect();
    insert_batch(store, &batch).await
}

/// Inserts tokens in one transaction, in multi-row statements (tokens, then audit
/// rows), the one way tokens are created. The change-feed rows go in last, in the
/// order of the batch, under the same lock as every other write's (see
/// [`super::finish`]).
async fn insert_batch<B: Backend>(
    store: &SqlStore<B>,
    tokens: &[(&TokenRecord, &AuditEntry)],
) -> StoreResult<()> {
    let Some((_, last_audit)) = tokens.last() else {
        return Ok(());
    };
    let columns = INSERT_LEADING_COLUMNS.len() + EDITABLE_COLUMNS.len();
    let rows = tokens
        .iter()
        .map(|(token, _)| insert_values(token))
        .collect::<StoreResult<Vec<_>>>()?;
    let mut transaction = B::begin(&store.pool).await?;
    B::insert_token_rows(&mut transaction, &insert_into(), columns, rows).await?;
    let audits: Vec<&AuditEntry> = tokens.iter().map(|(_, audit)| *audit).collect();
    insert_audits::<B>(&mut transaction, &audits).await?;
    let ids: Vec<String> = tokens
        .iter()
        .map(|(token, _)| token.id.to_string())
        .collect();
    let changes: Vec<(ChangeKind, &str)> = ids
        .iter()
        .map(|id| (ChangeKind::Token, id.as_str()))
        .collect();
    super::finish_changes(transaction, last_audit, &changes).await
}

/// Under READ COMMITTED (PostgreSQL) a concurrent edit of the same row makes this wait,
/// then re-check the revision against the committed row: the later edit finds it
/// moved on (Stale).
pub(super) async fn update<B: Backend>(
    store: &SqlStore<B>,
    token: &TokenRecord,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let id = token.id.to_string();
    let set: Vec<String> = EDITABLE_COLUMNS
        .iter()
        .enumerate()
        .map(|(index, column)| format!("{column} = ${}", index + 1))
        .collect();
    let sql = Sql::new(format!(
        "UPDATE tokens SET {}, revision = revision + 1 WHERE id = ${} AND revision = ${}",
        set.join(", "),
        EDITABLE_COLUMNS.len() + 1,
        EDITABLE_COLUMNS.len() + 2
    ));
    let sql = editable_values(token)?
        .into_iter()
        .fold(sql, Sql::bind)
        .bind(&id)
        .bind(token.revision);
    let mut transaction = B::begin(&store.pool).await?;
    if B::execute(&mut transaction, sql).await? == 0 {
        let exists: Option<(String,)> = B::fetch_optional(
            &mut transaction,
            Sql::new("SELECT id FROM tokens WHERE id = $1").bind(&id),
        )
        .await?;
        return Err(if exists.is_some() {
            StoreError::Stale
        } else {
            StoreError::NotFound
        });
    }
    finish(transaction, audit, &[(ChangeKind::Token, &id)]).await
}

pub(super) async fn delete<B: Backend>(
    store: &SqlStore<B>,
    id: TokenId,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let key = id.to_string();
    let sql = Sql::new("DELETE FROM tokens WHERE id = $1").bind(&key);
    let change = [(ChangeKind::Token, key.as_str())];
    store.write(sql, Expect::OneRow, audit, &change).await
}

pub(super) async fn get<B: Backend>(
    store: &SqlStore<B>,
    id: TokenId,
) -> StoreResult<Option<TokenRecord>> {
    let sql =
        Sql::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1")).bind(id.to_string());
    store.optional(sql, TokenRow::into_record).await
}

pub(super) async fn get_many<B: Backend>(
    store: &SqlStore<B>,
    ids: &[TokenId],
) -> StoreResult<Vec<TokenRecord>> {
    let mut found = Vec::with_capacity(ids.len());
    let mut connection = B::acquire(&store.pool).await?;
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id IN ("));
        for (index, id) in chunk.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push_bind(id.to_string());
        }
        sql.push(")");
        found.extend(records(B::fetch_all(&mut connection, sql).await?)?);
    }
    Ok(found)
}

pub(super) async fn after<B: Backend>(
    store: &SqlStore<B>,
    after: Option<TokenId>,
    limit: u32,
) -> StoreResult<Vec<TokenRecord>> {
    let mut sql = Sql::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens"));
    if let Some(after) = after {
        sql.push(" WHERE id > ").push_bind(after.to_string());
    }
    sql.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
    store.all(sql, TokenRow::into_record).await
}

/// [`crate::Store::index_records_after`]: only the columns the verify index keeps.
pub(super) async fn index_after<B: Backend>(
    store: &SqlStore<B>,
    after: Option<TokenId>,
    limit: u32,
) -> StoreResult<Vec<IndexRecord>> {
    let mut sql = Sql::new(format!("SELECT {INDEX_COLUMNS} FROM tokens"));
    if let Some(after) = after {
        sql.push(" WHERE id > ").push_bind(after.to_string());
    }
    sql.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
    let expected = usize::try_from(limit).unwrap_or(0);
    let mut connection = B::acquire(&store.pool).await?;
    B::index_page(&mut connection, sql, expected).await
}

pub(super) async fn of_owner<B: Backend>(
    store: &SqlStore<B>,
    owner: UserId,
) -> StoreResult<Vec<TokenRecord>> {
    let sql = Sql::new(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE owner_id = $1"
    ))
    .bind(owner.to_string());
    store.all(sql, TokenRow::into_record).await
}

pub(super) async fn name_taken<B: Backend>(
    store: &SqlStore<B>,
    name_key: &str,
) -> StoreResult<bool> {
    let sql = Sql::new("SELECT id FROM tokens WHERE kind = 'api' AND name_key = $1").bind(name_key);
    let found = store.optional(sql, |(id,): (String,)| Ok(id)).await?;
    Ok(found.is_some())
}

pub(super) async fn record_usage<B: Backend>(
    store: &SqlStore<B>,
    batch: &[UsageDelta],
) -> StoreResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut transaction = B::begin(&store.pool).await?;
    B::record_usage(&mut transaction, batch).await?;
    B::commit(transaction).await
}

pub(super) async fn usage<B: Backend>(
    store: &SqlStore<B>,
    id: TokenId,
    since: NaiveDate,
) -> StoreResult<Vec<UsageRow>> {
    let sql = Sql::new(
        "SELECT day, allowed, denied FROM usage_daily \
         WHERE token_id = $1 AND day >= $2 ORDER BY day",
    )
    .bind(id.to_string())
    .bind(day_text(since));
    let usage = |(day, allowed, denied): (String, i64, i64)| {
        Ok(UsageRow {
            day: parse_day(&day)?,
            allowed: count(allowed)?,
            denied: count(denied)?,
        })
    };
    store.all(sql, usage).await
}
