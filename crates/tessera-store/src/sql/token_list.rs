//! The token list: one page of the tokens a query matches, and how many match.
//!
//! Every filter is one SQL text for both backends. What differs is where a name search
//! starts: from the rows a substring index says may match (SQLite must be told to read
//! its FTS5 index; PostgreSQL's planner reads its trigram index by itself, unless it
//! would rather walk the sort's index), or by walking the sort order. Which is faster
//! depends on how many candidates there are and where they sit in the sort order;
//! [`plan`] decides (see ARCHITECTURE.md, "Search and filters at scale").

use super::{Backend, Sql, SqlStore, fetch_one};
use crate::rows::{TOKEN_COLUMNS, count, limit_past, millis};
use crate::{Cursor, SortField, SortKey, StatusFilter, StoreResult, TokenPage, TokenQuery};

/// The numbers [`plan`] decides by.
#[derive(Debug, Clone, Copy)]
struct Thresholds {
    /// A name search reads its index's candidates first when there are at most this
    /// many (each costs about half a microsecond to read, filter and sort).
    few_candidates: u64,
    /// How many rows, in sort order, a name search with more candidates reads before
    /// it settles for sorting every candidate.
    window: u64,
}

/// At a million tokens on SQLite: 10,000 candidates take about 5 ms; 20,000 rows in
/// sort order about 10 ms.
const THRESHOLDS: Thresholds = Thresholds {
    few_candidates: 10_000,
    window: 20_000,
};

/// Where a query reads its rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `tokens`, every filter in the WHERE clause: the planner picks an index.
    Tokens,
    /// `tokens`, narrowed to a name search's candidates: the planner may still start
    /// from another filter's index when that one is more selective.
    CandidatesAmong,
    /// A name search's candidates first, then their rows (the name is the only filter).
    CandidatesFirst,
}

/// How [`list`] reads a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    page: Source,
    /// Try the first [`Thresholds::window`] rows in sort order before `page` (see
    /// [`window_end`]): a word in many names has a page of matches near the start of
    /// the sort order, unless its names were all created long ago (or sort late).
    window_first: bool,
    count: Source,
}

/// Whether the name search is the query's only filter besides the token kind.
fn only_the_name_filters(query: &TokenQuery) -> bool {
    query.owner.is_none()
        && query.created_after.is_none()
        && query.created_before.is_none()
        && query.status.is_none()
        && query.token_type.is_none()
        && query.project.is_none()
        && query.external_id.is_none()
}

async fn plan<B: Backend>(
    connection: &mut B::Connection,
    query: &TokenQuery,
    thresholds: Thresholds,
) -> StoreResult<Plan> {
    let tokens = Plan {
        page: Source::Tokens,
        window_first: false,
        count: Source::Tokens,
    };
    // A key of one or two characters has no trigram for either index: its `LIKE` scans.
    let Some(key) = query
        .name_contains
        .as_ref()
        .filter(|key| key.chars().count() >= 3)
    else {
        return Ok(tokens);
    };
    let few_candidates = thresholds.few_candidates;
    let Some(candidates) = B::name_candidates(connection, key, few_candidates).await? else {
        return Ok(tokens);
    };
    let few = candidates <= few_candidates;
    Ok(if only_the_name_filters(query) {
        // The count stops after `count_limit` matches, reading candidates in index order.
        Plan {
            page: Source::CandidatesFirst,
            window_first: !few && query.sort.field != SortField::LastUsedAt,
            count: Source::CandidatesFirst,
        }
    } else if few {
        Plan {
            page: Source::CandidatesAmong,
            window_first: false,
            count: Source::CandidatesAmong,
        }
    } else {
        tokens
    })
}

/// Appends the row source and the WHERE clause shared by the page query and the count.
fn push_filters<B: Backend>(sql: &mut Sql, query: &TokenQuery, source: Source) {
    match (&query.name_contains, source) {
        (Some(key), Source::CandidatesFirst) => B::push_candidates_first(sql, key),
        _ => {
            sql.push("tokens");
        }
    }
    let now = millis(query.now);
    sql.push(" WHERE kind = ").push_bind(query.kind.as_str());
    if let Some(owner) = query.owner {
        sql.push(" AND owner_id = ").push_bind(owner.to_string());
    }
    if let Some(text) = &query.name_contains {
        sql.push(" AND ");
        push_name_like(sql, text);
        if source == Source::CandidatesAmong {
            B::push_candidates_among(sql, text);
        }
    }
    if let Some(after) = query.created_after {
        sql.push(" AND created_at >= ").push_bind(millis(after));
    }
    if let Some(before) = query.created_before {
        sql.push(" AND created_at < ").push_bind(millis(before));
    }
    match query.status {
        Some(StatusFilter::Active) => {
            sql.push(" AND status = 'active' AND (expires_at IS NULL OR expires_at > ")
                .push_bind(now)
                .push(")");
        }
        Some(StatusFilter::Disabled) => {
            sql.push(" AND status = 'disabled'");
        }
        Some(StatusFilter::Expired) => {
            sql.push(" AND expires_at <= ").push_bind(now);
        }
        None => {}
    }
    if let Some(token_type) = query.token_type {
        sql.push(" AND token_type = ")
            .push_bind(token_type.as_str());
    }
    if let Some(project) = &query.project {
        sql.push(" AND project = ").push_bind(project);
    }
    if let Some(external_id) = &query.external_id {
        sql.push(" AND external_id = ").push_bind(external_id);
    }
}

/// `name_key LIKE '%text%'`, with `text`'s own `%`, `_` and `\` matched literally.
fn push_name_like(sql: &mut Sql, text: &str) {
    // PostgreSQL's `standard_conforming_strings` (on by default) keeps '\' one
    // backslash, as SQLite does.
    sql.push("name_key LIKE ")
        .push_bind(like_pattern(text))
        .push(" ESCAPE '\\'");
}

/// The `LIKE … ESCAPE '\'` pattern of names containing `text`.
pub(crate) fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The sort expression. On PostgreSQL `name_key` and `id` are `COLLATE "C"` columns,
/// so names and ids order by bytes, as in SQLite, whatever the database's locale.
fn sort_expression(field: SortField) -> &'static str {
    match field {
        SortField::CreatedAt => "created_at",
        SortField::Name => "name_key",
        SortField::LastUsedAt => "COALESCE(last_used_at, -1)",
    }
}

fn push_sort_key(sql: &mut Sql, key: &SortKey) {
    match key {
        SortKey::Number(value) => sql.push_bind(*value),
        SortKey::Text(value) => sql.push_bind(value),
    };
}

/// ` AND <after the cursor> ORDER BY <sort> LIMIT `.
fn push_cursor_and_order<B: Backend>(sql: &mut Sql, query: &TokenQuery, source: Source) {
    let key = sort_expression(query.sort.field);
    let (compare, order) = if query.sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(cursor) = &query.after {
        sql.push(&format!(" AND ({key} {compare} "));
        push_sort_key(sql, &cursor.key);
        sql.push(&format!(" OR ({key} = "));
        push_sort_key(sql, &cursor.key);
        sql.push(&format!(" AND id {compare} "))
            .push_bind(cursor.id.to_string())
            .push("))");
    }
    let sorted_by = match source {
        Source::CandidatesFirst => {
            B::candidates_first_order(key, query.sort.field != SortField::Name)
        }
        Source::Tokens | Source::CandidatesAmong => key.into(),
    };
    sql.push(&format!(" ORDER BY {sorted_by} {order}, id {order} LIMIT "));
}

/// The page: one row past the query's limit, so a next page is known to exist; with
/// `window_end`, only among the rows up to that sort key.
fn page_sql<B: Backend>(query: &TokenQuery, source: Source, window_end: Option<&SortKey>) -> Sql {
    let mut page = Sql::new(format!("SELECT {TOKEN_COLUMNS} FROM "));
    push_filters::<B>(&mut page, query, source);
    if let Some(end) = window_end {
        let key = sort_expression(query.sort.field);
        let up_to = if query.sort.descending { ">=" } else { "<=" };
        page.push(&format!(" AND {key} {up_to} "));
        push_sort_key(&mut page, end);
    }
    push_cursor_and_order::<B>(&mut page, query, source);
    page.push_bind(i64::from(query.limit) + 1);
    page
}

/// The sort key of the `window`-th token after the cursor, counting every token the
/// query's filters but the name let through (read from the sort's index alone); `None`
/// when there are fewer. The rows up to it are a window a name search walks in a few
/// milliseconds, and stops at: the range bound is what lets the walk stop.
async fn window_end<B: Backend>(
    connection: &mut B::Connection,
    query: &TokenQuery,
    window: u64,
) -> StoreResult<Option<SortKey>> {
    let unnamed = TokenQuery {
        name_contains: None,
        ..query.clone()
    };
    let key = sort_expression(query.sort.field);
    let mut sql = Sql::new(format!("SELECT {key} FROM "));
    push_filters::<B>(&mut sql, &unnamed, Source::Tokens);
    push_cursor_and_order::<B>(&mut sql, query, Source::Tokens);
    let before_the_end = i64::try_from(window.saturating_sub(1)).unwrap_or(i64::MAX);
    sql.push_bind(1_i64)
        .push(" OFFSET ")
        .push_bind(before_the_end);
    Ok(match query.sort.field {
        SortField::Name => B::fetch_optional::<(String,)>(connection, sql)
            .await?
            .map(|(name_key,)| SortKey::Text(name_key)),
        SortField::CreatedAt | SortField::LastUsedAt => {
            B::fetch_optional::<(i64,)>(connection, sql)
                .await?
                .map(|(at,)| SortKey::Number(at))
        }
    })
}

pub(super) async fn list<B: Backend>(
    store: &SqlStore<B>,
    query: &TokenQuery,
) -> StoreResult<TokenPage> {
    list_with(store, query, THRESHOLDS).await
}

async fn list_with<B: Backend>(
    store: &SqlStore<B>,
    query: &TokenQuery,
    thresholds: Thresholds,
) -> StoreResult<TokenPage> {
    let mut connection = B::acquire(&store.pool).await?;
    let plan = plan::<B>(&mut connection, query, thresholds).await?;
    let mut rows = None;
    if plan.window_first {
        let end = window_end::<B>(&mut connection, query, thresholds.window).await?;
        let windowed = page_sql::<B>(query, Source::Tokens, end.as_ref());
        let found = B::fetch_all(&mut connection, windowed).await?;
        // Without an end, the window held every row: what it found is the page.
        if end.is_none() || found.len() > query.limit as usize {
            rows = Some(found);
        }
    }
    let rows = match rows {
        Some(rows) => rows,
        None => B::fetch_all(&mut connection, page_sql::<B>(query, plan.page, None)).await?,
    };
    let mut items = super::tokens::records(rows)?;
    let next = if items.len() > query.limit as usize {
        items.truncate(query.limit as usize);
        items.last().map(|last| Cursor {
            key: SortKey::of(last, query.sort.field),
            id: last.id,
        })
    } else {
        None
    };
    // A first page that holds every match has counted them. Otherwise count up to one
    // past the limit, so "more than the limit" needs no more rows. (A search with a few
    // matches, the usual one, so costs one index scan, not two.)
    let counted = if query.after.is_none() && next.is_none() && query.limit > 0 {
        items.len() as u64
    } else {
        let mut count_sql = Sql::new("SELECT COUNT(*) FROM (SELECT 1 FROM ");
        push_filters::<B>(&mut count_sql, query, plan.count);
        count_sql
            .push(" LIMIT ")
            .push_bind(limit_past(query.count_limit))
            .push(") AS matches");
        let (counted,): (i64,) = fetch_one::<B, _>(&mut connection, count_sql).await?;
        count(counted)?
    };
    Ok(TokenPage {
        items,
        next,
        total: counted.min(query.count_limit),
        total_exact: counted <= query.count_limit,
    })
}

#[cfg(test)]
mod tests;
