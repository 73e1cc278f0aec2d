//! Tokens: writes and the change feed rows they leave, names, listing and search, batches, and what the verify index loads.

use crate::*;

pub(crate) async fn check_token_round_trip_and_every_write_feeds_the_change_log(
    store: Arc<dyn Store>,
) {
    assert_eq!(store.latest_change().await.unwrap(), 0);
    let mut record = token("ci", t0(), 1);
    record.rate_limit = Some(tessera_core::RateLimit {
        requests: 5,
        per_seconds: 60,
    });
    record.expires_at = Some(t0() + Duration::days(7));
    record.lifespan = Lifespan::Days7;
    record.external_id = Some("cus_42".into());
    record.metadata = serde_json::json!({"plan": "pro", "seats": [1, 2], "nested": {"ok": true}})
        .as_object()
        .cloned()
        .unwrap();
    store
        .insert_token(&record, &audit("token.create"))
        .await
        .unwrap();
    assert_eq!(
        store.get_token(record.id).await.unwrap(),
        Some(record.clone())
    );

    let mut edited = record.clone();
    edited.name = "ci-2".into();
    edited.status = TokenStatus::Disabled;
    edited.permissions = vec!["article.find".into()];
    edited.token_type = TokenType::Custom;
    edited.external_id = None;
    edited.metadata.insert("plan".into(), "team".into());
    store
        .update_token(&edited, &audit("token.update"))
        .await
        .unwrap();
    let stored = store.get_token(record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.revision,
        edited.revision + 1,
        "an edit moves the revision on"
    );
    assert_eq!(
        stored,
        TokenRecord {
            revision: stored.revision,
            ..edited.clone()
        }
    );
    // An edit made from the old revision is refused: it would undo the one above.
    let mut late = record.clone();
    late.status = TokenStatus::Active;
    let refused = store.update_token(&late, &audit("token.update")).await;
    assert!(matches!(refused, Err(StoreError::Stale)), "{refused:?}");
    assert_eq!(
        store.get_token(record.id).await.unwrap().unwrap().status,
        TokenStatus::Disabled
    );

    store
        .delete_token(record.id, &audit("token.delete"))
        .await
        .unwrap();
    assert_eq!(store.get_token(record.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_token(record.id, &audit("x")).await,
        Err(StoreError::NotFound)
    ));

    let changes = store.changes_after(0, 100).await.unwrap();
    assert_eq!(
        changes.len(),
        3,
        "insert, update, delete each add one change"
    );
    assert!(changes.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert!(
        changes
            .iter()
            .all(|c| c.kind == ChangeKind::Token && c.key == record.id.to_string())
    );
    assert_eq!(
        store
            .changes_after(changes[1].sequence, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(crate) async fn check_api_token_names_are_unique_case_insensitively(store: Arc<dyn Store>) {
    store
        .insert_token(&token("Deploy", t0(), 1), &audit("a"))
        .await
        .unwrap();
    let clash = store
        .insert_token(&token("deploy", t0(), 2), &audit("a"))
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "{clash:?}"
    );
    assert!(store.api_token_name_taken("deploy").await.unwrap());
    assert!(!store.api_token_name_taken("other").await.unwrap());
    // A failed write leaves no change behind.
    assert_eq!(store.changes_after(0, 10).await.unwrap().len(), 1);
}

pub(crate) async fn check_listing_filters_sorts_and_pages(store: Arc<dyn Store>) {
    let now = t0() + Duration::days(60);
    let mut names = Vec::new();
    for index in 0..7u8 {
        let mut record = token(
            &format!("Token {index}"),
            t0() + Duration::days(i64::from(index) * 10),
            index + 1,
        );
        if index == 2 {
            record.status = TokenStatus::Disabled;
        }
        if index == 3 {
            record.expires_at = Some(now - Duration::days(1));
        }
        if index == 4 {
            record.token_type = TokenType::FullAccess;
            record.name = "100%_match".into();
        }
        if index == 5 || index == 6 {
            record.external_id = Some(format!("cus_{}", index / 6));
        }
        names.push(record.name.clone());
        store.insert_token(&record, &audit("a")).await.unwrap();
    }
    let all = store.list_tokens(&query(now)).await.unwrap();
    assert_eq!(all.total, 7);
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "default -created_at"
    );

    let mut q = query(now);
    q.status = Some(StatusFilter::Active);
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 5);
    q.status = Some(StatusFilter::Disabled);
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);
    q.status = Some(StatusFilter::Expired);
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);

    let mut q = query(now);
    q.external_id = Some("cus_1".into());
    let found = store.list_tokens(&q).await.unwrap();
    assert_eq!(found.total, 1, "external_id is an exact match");
    assert_eq!(found.items[0].name, "Token 6");
    q.external_id = Some("CUS_0".into());
    assert_eq!(
        store.list_tokens(&q).await.unwrap().total,
        0,
        "external ids are compared exactly, case included"
    );

    let mut q = query(now);
    q.name_contains = Some("0%_".into());
    let found = store.list_tokens(&q).await.unwrap();
    assert_eq!(
        found
            .items
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["100%_match"],
        "LIKE wildcards are literal"
    );

    let mut q = query(now);
    q.token_type = Some(TokenType::FullAccess);
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);

    let mut q = query(now);
    q.created_after = Some(t0() + Duration::days(30));
    q.created_before = Some(t0() + Duration::days(50));
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 2);

    for (field, descending) in [
        (SortField::Name, false),
        (SortField::Name, true),
        (SortField::CreatedAt, false),
        (SortField::LastUsedAt, true),
    ] {
        let mut q = query(now);
        q.sort = TokenSort { field, descending };
        q.limit = 3;
        let mut seen = Vec::new();
        loop {
            let page = store.list_tokens(&q).await.unwrap();
            assert_eq!(page.total, 7);
            seen.extend(page.items.iter().map(|t| t.name.clone()));
            match page.next {
                Some(cursor) => q.after = Some(cursor),
                None => break,
            }
        }
        let mut expected = names.clone();
        expected.sort();
        let mut sorted_seen = seen.clone();
        sorted_seen.sort();
        assert_eq!(sorted_seen, expected, "{field:?}: every token exactly once");
        if field == SortField::Name {
            let mut by_key = seen.clone();
            by_key.sort_by_key(|n| n.to_lowercase());
            if descending {
                by_key.reverse();
            }
            assert_eq!(seen, by_key, "name order, descending={descending}");
        }
    }
}

pub(crate) async fn check_index_loading_pages_through_every_token_in_id_order(
    store: Arc<dyn Store>,
) {
    for index in 0..5u8 {
        store
            .insert_token(
                &token(
                    &format!("t{index}"),
                    t0() + Duration::seconds(i64::from(index)),
                    index,
                ),
                &audit("a"),
            )
            .await
            .unwrap();
    }
    let first = store.tokens_after(None, 2).await.unwrap();
    let second = store.tokens_after(Some(first[1].id), 2).await.unwrap();
    let third = store.tokens_after(Some(second[1].id), 2).await.unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (2, 2, 1));
    let ids: Vec<TokenId> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|t| t.id)
        .collect();
    let fetched = store.get_tokens(&ids).await.unwrap();
    assert_eq!(fetched.len(), 5);
}

/// `index_records_after`: what the verify index loads, in keyset pages by id, each
/// record equal to the full record's fields (metadata as its JSON text).
pub(crate) async fn check_index_records_page_in_id_order_and_match_the_records(
    store: Arc<dyn Store>,
) {
    store
        .insert_project(
            &Project {
                slug: "shop".into(),
                name: "Shop".into(),
                created_at: t0(),
            },
            &audit("project"),
        )
        .await
        .unwrap();
    let mut inserted = Vec::new();
    for index in 0..7u8 {
        let mut record = token(
            &format!("i{index}"),
            t0() + Duration::seconds(i64::from(index)),
            index + 1,
        );
        if index % 2 == 0 {
            record.project = Some("shop".into());
            record.external_id = Some(format!("cus_{index}"));
            record.metadata = json!({"plan": "pro", "n": index, "nested": {"a": [1, 2]}})
                .as_object()
                .unwrap()
                .clone();
            record.rate_limit = Some(tessera_core::RateLimit {
                requests: 10,
                per_seconds: 60,
            });
            record.expires_at = Some(t0() + Duration::days(30));
        }
        if index == 3 {
            record.grace = Some(tessera_core::GraceDigest {
                digest: TokenDigest::from_bytes([200; 32]),
                until: t0() + Duration::hours(1),
            });
            record.status = TokenStatus::Disabled;
        }
        if index == 5 {
            // Text that JSON must escape (SQLite reads its pages as JSON).
            record.name = "say \"hi\" \\ 名前\ttab".into();
            record.external_id = Some("\u{1F600} \"x\"".into());
        }
        store.insert_token(&record, &audit("a")).await.unwrap();
        inserted.push(record.id);
    }
    inserted.sort();
    let mut loaded: Vec<IndexRecord> = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.index_records_after(after, 3).await.unwrap();
        pages += 1;
        let full = page.len() == 3;
        after = page.last().map(|record| record.id);
        loaded.extend(page);
        if !full {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        loaded.iter().map(|record| record.id).collect::<Vec<_>>(),
        inserted,
        "every token once, in id order"
    );
    let records = store.get_tokens(&inserted).await.unwrap();
    for record in &records {
        let indexed = loaded.iter().find(|r| r.id == record.id).unwrap();
        assert_eq!(indexed, &IndexRecord::from(record));
        let metadata: serde_json::Value = serde_json::from_str(&indexed.metadata).unwrap();
        assert_eq!(metadata, serde_json::Value::Object(record.metadata.clone()));
    }
    assert!(
        store
            .index_records_after(loaded.last().map(|r| r.id), 3)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn check_names_sort_in_byte_order(store: Arc<dyn Store>) {
    // In a natural-language collation these would interleave (spaces and punctuation
    // ignored, accents folded); both backends order case-folded names by bytes.
    let names = [
        "beta", "Alpha", "_under", "Zed", "émile", "a-b", "a b", "aB", "A0",
    ];
    for (seed, name) in names.iter().enumerate() {
        store
            .insert_token(&token(name, t0(), seed as u8 + 1), &audit("a"))
            .await
            .unwrap();
    }
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort_by_key(|n| tessera_core::validate::name_key(n));
    for descending in [false, true] {
        let mut q = query(t0());
        q.sort = TokenSort {
            field: SortField::Name,
            descending,
        };
        q.limit = 2;
        let mut seen = Vec::new();
        loop {
            let page = store.list_tokens(&q).await.unwrap();
            seen.extend(page.items.iter().map(|t| t.name.clone()));
            match page.next {
                Some(cursor) => q.after = Some(cursor),
                None => break,
            }
        }
        let mut wanted = expected.clone();
        if descending {
            wanted.reverse();
        }
        assert_eq!(seen, wanted, "descending={descending}");
    }
    let mut q = query(t0());
    q.name_contains = Some("a b".into());
    assert_eq!(store.list_tokens(&q).await.unwrap().total, 1);
}

/// The name filter is a substring match whatever its length (one or two characters
/// have no trigram for the search index; three or more go through it), and the index
/// follows renames and deletions.
pub(crate) async fn check_name_search_follows_renames_and_deletes(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut names = Vec::new();
    for name in ["alpha beta", "alphabet", "say \"quoted\""] {
        let token = random_token(name);
        store.insert_token(&token, &audit("a")).await.unwrap();
        names.push(token);
    }
    let total = |text: &str| {
        let mut q = query(t0());
        q.name_contains = Some(text.into());
        async move { store.list_tokens(&q).await.unwrap().total }
    };
    assert_eq!(total("p").await, 2);
    assert_eq!(total("ph").await, 2);
    assert_eq!(total("pha").await, 2);
    assert_eq!(total("alpha b").await, 1);
    assert_eq!(total("\"quo").await, 1);
    assert_eq!(total("zzz").await, 0);

    let mut renamed = names[1].clone();
    renamed.name = "omega".into();
    store.update_token(&renamed, &audit("a")).await.unwrap();
    assert_eq!(total("pha").await, 1);
    assert_eq!(total("meg").await, 1);
    store.delete_token(names[0].id, &audit("a")).await.unwrap();
    assert_eq!(total("pha").await, 0);
    assert_eq!(total("ph").await, 0);
}

/// The list counts its matches up to the query's `count_limit` and says whether that
/// was all of them; the page is the same either way, and so is the count on every page
/// (a first page that holds every match is its own count; any other is counted). With a
/// name search too: on SQLite one of three or more characters reads its index's
/// candidates, a shorter one walks the sort order, and both find the same tokens.
pub(crate) async fn check_the_count_stops_at_its_limit(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut names = Vec::new();
    for n in 0..5 {
        let token = random_token(&format!("limited {n}"));
        store.insert_token(&token, &audit("a")).await.unwrap();
        names.push(token.name);
    }
    store
        .insert_token(&random_token("another"), &audit("a"))
        .await
        .unwrap();
    names.sort();
    for search in [Some("limited"), Some("ed"), None] {
        let matching: u64 = if search.is_some() { 5 } else { 6 };
        for (limit, page_size) in [10, 6, 5, 4, 1, 0]
            .into_iter()
            .flat_map(|limit| [(limit, 50), (limit, 2)])
        {
            let mut q = query(t0());
            q.name_contains = search.map(str::to_owned);
            q.count_limit = limit;
            q.limit = page_size;
            q.sort = TokenSort {
                field: SortField::Name,
                descending: false,
            };
            let mut found = Vec::new();
            loop {
                let page = store.list_tokens(&q).await.unwrap();
                let context = format!(
                    "search {search:?}, count limit {limit}, page size {page_size}, after {}",
                    found.len()
                );
                assert_eq!(page.total, matching.min(limit), "{context}");
                assert_eq!(page.total_exact, matching <= limit, "{context}");
                found.extend(page.items.iter().map(|t| t.name.clone()));
                match page.next {
                    Some(cursor) => q.after = Some(cursor),
                    None => break,
                }
            }
            if search.is_some() {
                assert_eq!(found, names, "search {search:?}");
            } else {
                assert_eq!(found.len(), 6);
            }
        }
    }
}

pub(crate) async fn check_a_batch_of_tokens_is_inserted_whole_or_not_at_all(store: Arc<dyn Store>) {
    let batch: Vec<(TokenRecord, AuditEntry)> = (0..3)
        .map(|n| {
            (
                token(&format!("import {n}"), t0(), n),
                audit("token.create"),
            )
        })
        .collect();
    store.insert_tokens(&batch).await.unwrap();
    store.refresh_statistics().await.unwrap();
    // The batch's names are searchable (SQLite indexes them once for the batch).
    for (text, found) in [("import", 3), ("port 1", 1), ("rt 2", 1)] {
        let mut q = query(t0());
        q.name_contains = Some(text.into());
        assert_eq!(store.list_tokens(&q).await.unwrap().total, found, "{text}");
    }
    for (token, _) in &batch {
        assert_eq!(
            store.get_token(token.id).await.unwrap().as_ref(),
            Some(token)
        );
    }
    // One change-feed row per token, in the batch's order, and one audit row each.
    let changes = store.changes_after(0, 10).await.unwrap();
    let keys: Vec<String> = changes.iter().map(|change| change.key.clone()).collect();
    let ids: Vec<String> = batch
        .iter()
        .map(|(token, _)| token.id.to_string())
        .collect();
    assert_eq!(keys, ids);
    let audited = store
        .list_audit(&AuditQuery {
            actor: None,
            action: Some("token.create".into()),
            target: None,
            since: None,
            until: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), 3);

    // A name already taken (here in another case) fails the whole batch: the new tokens
    // before and after it are not inserted, and nothing reaches the change feed.
    let clashing = vec![
        (token("fresh a", t0(), 10), audit("token.create")),
        (token("IMPORT 1", t0(), 11), audit("token.create")),
        (token("fresh b", t0(), 12), audit("token.create")),
    ];
    let refused = store.insert_tokens(&clashing).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    for (token, _) in &clashing {
        assert_eq!(store.get_token(token.id).await.unwrap(), None);
    }
    assert_eq!(store.changes_after(0, 10).await.unwrap().len(), 3);
    // Two of the same name within one batch clash with each other.
    let twins = vec![
        (token("twin", t0(), 20), audit("token.create")),
        (token("Twin", t0(), 21), audit("token.create")),
    ];
    assert!(matches!(
        store.insert_tokens(&twins).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(!store.api_token_name_taken("twin").await.unwrap());
    store.insert_tokens(&[]).await.unwrap();

    // A batch larger than one statement's worth of rows (the store splits it under the
    // databases' bound-parameter limits): every token, audit row and change lands, the
    // changes still in the batch's order.
    let large: Vec<(TokenRecord, AuditEntry)> = (0..2_500)
        .map(|n| (random_token(&format!("bulk {n}")), audit("token.create")))
        .collect();
    let before = store.latest_change().await.unwrap();
    store.insert_tokens(&large).await.unwrap();
    let changes = store.changes_after(before, 5_000).await.unwrap();
    let keys: Vec<String> = changes.iter().map(|change| change.key.clone()).collect();
    let ids: Vec<String> = large
        .iter()
        .map(|(token, _)| token.id.to_string())
        .collect();
    assert_eq!(keys, ids);
    let ids: Vec<TokenId> = large.iter().map(|(token, _)| token.id).collect();
    let mut stored = store.get_tokens(&ids).await.unwrap();
    stored.sort_by_key(|token| token.id);
    let mut expected: Vec<TokenRecord> = large.into_iter().map(|(token, _)| token).collect();
    expected.sort_by_key(|token| token.id);
    assert_eq!(stored, expected);
}
