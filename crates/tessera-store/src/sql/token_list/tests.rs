//! Every way [`plan`] can read a query finds the same pages and counts: small thresholds
//! make a handful of tokens take each path.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use tessera_core::{AuditEntry, TokenDigest, TokenKind, TokenRecord, TokenStatus};
use tessera_test_support::api_token;

use super::*;
use sqlx::Sqlite;

use crate::sql::SqlStore;
use crate::{Store as _, TokenSort};

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000, 0)
        .single()
        .unwrap_or_default()
}

/// Six old tokens whose names hold "match" (two of them disabled), then ten newer
/// ones whose names do not: the newest-first page of "match" lies past the newest rows.
/// Pairs share a creation time (as an import's batch does), so ties straddle a window's
/// end and a page's; some have been used.
fn tokens() -> Vec<TokenRecord> {
    let mut tokens = Vec::new();
    for n in 0..6_u8 {
        let mut token = api_token(
            &format!("old match {n}"),
            t0() + Duration::seconds(i64::from(n / 2)),
            TokenDigest::from_bytes([n; 32]),
        );
        if n % 3 == 1 {
            token.status = TokenStatus::Disabled;
        }
        if n % 2 == 0 {
            token.last_used_at = Some(t0() + Duration::seconds(1_000 - i64::from(n)));
        }
        tokens.push(token);
    }
    for n in 0..10_u8 {
        let mut token = api_token(
            &format!("new other {n}"),
            t0() + Duration::seconds(100 + i64::from(n / 2)),
            TokenDigest::from_bytes([100 + n; 32]),
        );
        if n % 3 == 0 {
            token.last_used_at = Some(t0() + Duration::seconds(2_000 + i64::from(n)));
        }
        tokens.push(token);
    }
    tokens
}

async fn fill<B: Backend>(store: &SqlStore<B>, tokens: &[TokenRecord]) {
    let batch: Vec<(TokenRecord, AuditEntry)> = tokens
        .iter()
        .map(|token| {
            let audit = AuditEntry {
                at: token.created_at,
                actor: "test".into(),
                action: "token.create".into(),
                target: token.id.to_string(),
                client_address: None,
                changes: serde_json::Value::Null,
            };
            (token.clone(), audit)
        })
        .collect();
    store.insert_tokens(&batch).await.unwrap();
}

/// Every page of `query`, read with `thresholds`: the names in order, and the count
/// (`total`, `total_exact`) each page gave.
async fn read_all<B: Backend>(
    store: &SqlStore<B>,
    query: &TokenQuery,
    thresholds: Thresholds,
) -> (Vec<String>, Vec<(u64, bool)>) {
    let mut query = query.clone();
    let (mut names, mut counts) = (Vec::new(), Vec::new());
    loop {
        let page = list_with(store, &query, thresholds).await.unwrap();
        names.extend(page.items.iter().map(|token| token.name.clone()));
        counts.push((page.total, page.total_exact));
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => return (names, counts),
        }
    }
}

/// What `query` should find among `tokens`, in its order.
fn expected(tokens: &[TokenRecord], query: &TokenQuery) -> Vec<String> {
    let mut found: Vec<&TokenRecord> = tokens
        .iter()
        .filter(|token| {
            query
                .name_contains
                .as_ref()
                .is_none_or(|key| token.name.contains(key.as_str()))
                && query.status.is_none_or(|status| match status {
                    StatusFilter::Disabled => token.status == TokenStatus::Disabled,
                    StatusFilter::Active => token.status == TokenStatus::Active,
                    StatusFilter::Expired => false,
                })
        })
        .collect();
    match query.sort.field {
        SortField::Name => found.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id))),
        SortField::CreatedAt => found.sort_by_key(|token| (token.created_at, token.id)),
        SortField::LastUsedAt => found.sort_by_key(|token| {
            let used = token.last_used_at.map_or(-1, |at| at.timestamp_millis());
            (used, token.id)
        }),
    }
    if query.sort.descending {
        found.reverse();
    }
    found.into_iter().map(|token| token.name.clone()).collect()
}

async fn planned(store: &SqlStore<Sqlite>, query: &TokenQuery, thresholds: Thresholds) -> Plan {
    let mut connection = Sqlite::acquire(&store.pool).await.unwrap();
    plan::<Sqlite>(&mut connection, query, thresholds)
        .await
        .unwrap()
}

fn few() -> Thresholds {
    Thresholds {
        few_candidates: 100,
        window: 100,
    }
}

fn window_misses() -> Thresholds {
    Thresholds {
        few_candidates: 2,
        window: 4,
    }
}

fn name_only() -> TokenQuery {
    TokenQuery {
        name_contains: Some("match".into()),
        ..TokenQuery::every(TokenKind::Api, t0())
    }
}

fn disabled() -> TokenQuery {
    TokenQuery {
        status: Some(StatusFilter::Disabled),
        ..name_only()
    }
}

fn short() -> TokenQuery {
    TokenQuery {
        name_contains: Some("ma".into()),
        ..TokenQuery::every(TokenKind::Api, t0())
    }
}

/// Every plan, sort and page size finds what the query should, and counts it.
async fn check_every_plan_finds_the_same_pages_and_counts<B: Backend>(store: &SqlStore<B>) {
    let tokens = tokens();
    fill(store, &tokens).await;
    // The ten newest rows and two matches: a page of two needs a third.
    let window_partly = Thresholds {
        few_candidates: 2,
        window: 12,
    };
    let window_holds = Thresholds {
        few_candidates: 2,
        window: 100,
    };
    let sorts = [SortField::CreatedAt, SortField::Name, SortField::LastUsedAt]
        .into_iter()
        .flat_map(|field| [true, false].map(|descending| TokenSort { field, descending }));
    for sort in sorts {
        for query in [name_only(), disabled(), short()] {
            for (limit, count_limit) in [(2, 10_000), (50, 10_000), (2, 3), (50, 1)] {
                let query = TokenQuery {
                    sort,
                    limit,
                    count_limit,
                    ..query.clone()
                };
                let wanted = expected(&tokens, &query);
                assert!(!wanted.is_empty());
                let count = wanted.len() as u64;
                let counted = (count.min(count_limit), count <= count_limit);
                for thresholds in [few(), window_misses(), window_partly, window_holds] {
                    let context = format!("{query:?} {thresholds:?}");
                    let (names, counts) = read_all(store, &query, thresholds).await;
                    assert_eq!(names, wanted, "{context}");
                    assert!(counts.iter().all(|&each| each == counted), "{context}");
                }
            }
        }
    }
}

#[tokio::test]
async fn on_sqlite_each_plan_is_taken_where_it_should_be_and_every_plan_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("list.db").display());
    let (store, _) = SqlStore::<Sqlite>::open_migrated(&url).await.unwrap();
    check_every_plan_finds_the_same_pages_and_counts(&store).await;

    let first = |window_first| Plan {
        page: Source::CandidatesFirst,
        window_first,
        count: Source::CandidatesFirst,
    };
    assert_eq!(planned(&store, &name_only(), few()).await, first(false));
    assert_eq!(
        planned(&store, &name_only(), window_misses()).await,
        first(true)
    );
    let among = Plan {
        page: Source::CandidatesAmong,
        window_first: false,
        count: Source::CandidatesAmong,
    };
    assert_eq!(planned(&store, &disabled(), few()).await, among);
    let scan = Plan {
        page: Source::Tokens,
        window_first: false,
        count: Source::Tokens,
    };
    assert_eq!(planned(&store, &disabled(), window_misses()).await, scan);
    assert_eq!(planned(&store, &short(), few()).await, scan);
}

/// PostgreSQL's plan follows its planner's estimates, so only the answers are checked.
#[tokio::test]
async fn on_postgresql_every_plan_agrees() {
    let Some(schema) = tessera_test_support::PgSchema::for_tests(
        "the token list's plans on PostgreSQL",
        "tessera_list",
    )
    .await
    else {
        return;
    };
    let (store, _) = SqlStore::<sqlx::Postgres>::open_migrated(&schema.url())
        .await
        .unwrap();
    check_every_plan_finds_the_same_pages_and_counts(&store).await;
    store.pool.close().await;
}
