//! `GET /v1/tokens`: filters, sorting, cursor pagination and parameter validation.

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::harness::{Admin, TestServer, eventually};

/// The names of one listing, in order.
async fn names(admin: &Admin, query: &str) -> Vec<String> {
    let page = admin.get(&format!("/v1/tokens?{query}")).await;
    page.expect(200);
    assert_eq!(
        page.body["total"].as_u64(),
        Some(page.body["items"].as_array().expect("items").len() as u64),
        "total counts every match ({query})"
    );
    page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().expect("name").to_owned())
        .collect()
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

fn set(list: &[&str]) -> Vec<String> {
    sorted(list.iter().map(|s| (*s).to_owned()).collect())
}

/// Walks every page of `query` with `limit`, answering the ids in order.
async fn walk(admin: &Admin, query: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    for _ in 0..100 {
        let mut url = format!("/v1/tokens?{query}&limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = admin.get(&url).await;
        page.expect(200);
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= limit as usize);
        let page_total = page.body["total"].as_u64().expect("total");
        assert_eq!(
            *total.get_or_insert(page_total),
            page_total,
            "total is stable"
        );
        ids.extend(
            items
                .iter()
                .map(|item| item["id"].as_str().expect("id").to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(
                    items.len(),
                    limit as usize,
                    "only full pages have a next page"
                );
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(ids.len() as u64, page_total, "the walk saw every match");
                return ids;
            }
        }
    }
    panic!("pagination of {query} did not end");
}

struct Fixture {
    server: TestServer,
    admin: Admin,
    ids: Vec<String>,
}

/// Six tokens: one expired, one disabled, two bound to `shop`, two used.
async fn fixture() -> Fixture {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin
        .post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    let soon = (Utc::now() + Duration::seconds(2)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let bodies = [
        json!({"name": "Gamma", "type": "read-only", "expires_at": soon}),
        json!({"name": "Alpha Service", "type": "read-only", "lifespan": "30d"}),
        json!({"name": "alpha-batch", "type": "full-access", "lifespan": "7d", "project": "shop"}),
        json!({"name": "Beta", "type": "custom", "permissions": ["article.find"], "lifespan": "unlimited"}),
        json!({"name": "delta_1", "type": "read-only", "lifespan": "90d"}),
        json!({"name": "Epsilon", "type": "full-access", "lifespan": "30d", "project": "shop"}),
    ];
    let mut ids = Vec::new();
    let mut secrets = Vec::new();
    for body in bodies {
        let created = admin.create_token(body).await;
        ids.push(created.id());
        secrets.push(created.secret());
    }
    admin
        .post(&format!("/v1/tokens/{}/disable", ids[3]), json!({}))
        .await
        .expect(200);
    assert_eq!(server.code(&secrets[1], None, None).await, "valid");
    assert_eq!(server.code(&secrets[5], None, Some("shop")).await, "valid");
    server.app.flush_usage().await.expect("flush");
    let gamma = format!("/v1/tokens/{}", ids[0]);
    let admin_ref = &admin;
    eventually("Gamma to expire", StdDuration::from_secs(15), || {
        let gamma = gamma.clone();
        async move { (admin_ref.get(&gamma).await.body["expired"] == true).then_some(()) }
    })
    .await;
    Fixture { server, admin, ids }
}

#[tokio::test]
async fn filters_narrow_the_listing() {
    let Fixture { server, admin, ids } = fixture().await;
    let all = set(&[
        "Gamma",
        "Alpha Service",
        "alpha-batch",
        "Beta",
        "delta_1",
        "Epsilon",
    ]);
    assert_eq!(sorted(names(&admin, "").await), all);

    // q: case-insensitive substring, with LIKE wildcards taken literally.
    assert_eq!(
        sorted(names(&admin, "q=ALPHA").await),
        set(&["Alpha Service", "alpha-batch"])
    );
    assert_eq!(
        sorted(names(&admin, "q=ph").await),
        set(&["Alpha Service", "alpha-batch"])
    );
    assert_eq!(names(&admin, "q=a_").await, ["delta_1"]);
    assert!(names(&admin, "q=%25").await.is_empty());
    assert!(names(&admin, "q=zzz").await.is_empty());
    assert_eq!(
        sorted(names(&admin, "q=").await),
        all,
        "an empty q filters nothing"
    );

    // status: expired is derived, disabled is switched off, active is neither.
    let gamma = admin.get(&format!("/v1/tokens/{}", ids[0])).await;
    assert_eq!(gamma.body["expired"], true);
    assert_eq!(gamma.body["status"], "active");
    assert_eq!(names(&admin, "status=expired").await, ["Gamma"]);
    assert_eq!(names(&admin, "status=disabled").await, ["Beta"]);
    assert_eq!(
        sorted(names(&admin, "status=active").await),
        set(&["Alpha Service", "alpha-batch", "delta_1", "Epsilon"])
    );

    // type and project.
    assert_eq!(
        sorted(names(&admin, "type=full-access").await),
        set(&["alpha-batch", "Epsilon"])
    );
    assert_eq!(names(&admin, "type=custom").await, ["Beta"]);
    assert_eq!(
        sorted(names(&admin, "type=read-only").await),
        set(&["Gamma", "Alpha Service", "delta_1"])
    );
    assert_eq!(
        sorted(names(&admin, "project=shop").await),
        set(&["alpha-batch", "Epsilon"])
    );
    assert!(names(&admin, "project=elsewhere").await.is_empty());

    // created windows.
    assert_eq!(sorted(names(&admin, "created=last-7-days").await), all);
    assert_eq!(sorted(names(&admin, "created=last-30-days").await), all);
    assert!(names(&admin, "created=older-than-30-days").await.is_empty());
    let at = |offset: Duration| (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true);
    assert_eq!(
        sorted(
            names(
                &admin,
                &format!("created_after={}", at(-Duration::hours(1)))
            )
            .await
        ),
        all
    );
    assert!(
        names(&admin, &format!("created_after={}", at(Duration::hours(1))))
            .await
            .is_empty()
    );
    assert_eq!(
        sorted(
            names(
                &admin,
                &format!("created_before={}", at(Duration::hours(1)))
            )
            .await
        ),
        all
    );
    assert!(
        names(
            &admin,
            &format!("created_before={}", at(-Duration::hours(1)))
        )
        .await
        .is_empty()
    );
    // Filters combine.
    assert_eq!(
        names(
            &admin,
            "q=alpha&project=shop&type=full-access&status=active"
        )
        .await,
        ["alpha-batch"]
    );
    assert!(names(&admin, "q=beta&status=active").await.is_empty());
    assert!(
        names(
            &admin,
            &format!(
                "created=last-7-days&created_after={}",
                at(Duration::hours(1))
            )
        )
        .await
        .is_empty()
    );
    drop(server);
}

#[tokio::test]
async fn sorting_orders_by_name_creation_and_last_use() {
    let Fixture { server, admin, ids } = fixture().await;
    // Case-insensitive ("alpha service" < "alpha-batch" as ' ' < '-'); a byte order
    // would put every capitalised name first.
    let expected = [
        "Alpha Service",
        "alpha-batch",
        "Beta",
        "delta_1",
        "Epsilon",
        "Gamma",
    ];
    assert_eq!(names(&admin, "sort=name").await, expected);
    let mut reversed = expected;
    reversed.reverse();
    assert_eq!(names(&admin, "sort=-name").await, reversed);

    let page = admin.get("/v1/tokens?sort=created_at").await;
    let created: Vec<String> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["created_at"].as_str().expect("created_at").to_owned())
        .collect();
    let mut ascending = created.clone();
    ascending.sort();
    assert_eq!(created, ascending);
    let newest_first = admin.get("/v1/tokens").await;
    let default_order: Vec<String> = newest_first.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["created_at"].as_str().expect("created_at").to_owned())
        .collect();
    let mut descending = ascending.clone();
    descending.reverse();
    assert_eq!(default_order, descending, "default sort is -created_at");

    // Used tokens first under -last_used_at; never-used ones last.
    let used = names(&admin, "sort=-last_used_at").await;
    assert_eq!(
        sorted(used[..2].to_vec()),
        set(&["Alpha Service", "Epsilon"])
    );
    let unused_first = names(&admin, "sort=last_used_at").await;
    assert_eq!(
        sorted(unused_first[4..].to_vec()),
        set(&["Alpha Service", "Epsilon"])
    );
    assert_eq!(ids.len(), 6);
    drop(server);
}

#[tokio::test]
async fn cursor_pagination_walks_every_page_once() {
    let Fixture { server, admin, ids } = fixture().await;
    let everyone: HashSet<String> = ids.iter().cloned().collect();
    for sort in [
        "-created_at",
        "created_at",
        "name",
        "-name",
        "last_used_at",
        "-last_used_at",
    ] {
        let single = admin
            .get(&format!("/v1/tokens?sort={sort}&limit=200"))
            .await;
        let expected: Vec<String> = single.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(single.body["next_cursor"], Value::Null);
        for limit in [1, 2, 4, 6, 7] {
            let walked = walk(&admin, &format!("sort={sort}"), limit).await;
            assert_eq!(
                walked, expected,
                "sort={sort} limit={limit}: same order as one page"
            );
            let unique: HashSet<String> = walked.iter().cloned().collect();
            assert_eq!(unique.len(), walked.len(), "no duplicates");
            assert_eq!(unique, everyone, "no gaps");
        }
    }
    // Pagination within a filter.
    let alphas = walk(&admin, "q=alpha", 1).await;
    assert_eq!(alphas.len(), 2);
    // The default page size is 50: six tokens fit in one page.
    let page = admin.get("/v1/tokens").await;
    assert_eq!(page.body["items"].as_array().expect("items").len(), 6);
    assert_eq!(page.body["next_cursor"], Value::Null);
    assert_eq!(page.body["total"], 6);

    // A cursor belongs to its sort.
    let first = admin.get("/v1/tokens?sort=name&limit=2").await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    admin
        .get(&format!(
            "/v1/tokens?sort=-created_at&limit=2&cursor={cursor}"
        ))
        .await
        .expect_invalid("cursor");
    admin
        .get("/v1/tokens?cursor=garbage")
        .await
        .expect_invalid("cursor");
    drop(server);
}

#[tokio::test]
async fn bad_list_parameters_are_named() {
    let server = TestServer::start().await;
    let admin = server.admin("viewer").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("sort=size", "sort"),
        ("sort=-size", "sort"),
        ("sort=--name", "sort"),
        ("status=x", "status"),
        ("status=Active", "status"),
        ("type=admin", "type"),
        ("created=yesterday", "created"),
        ("created_after=monday", "created_after"),
        ("created_before=2026-13-01", "created_before"),
        ("unknown=1", "unknown"),
        ("page=2", "page"),
    ] {
        let response = admin.get(&format!("/v1/tokens?{query}")).await;
        assert_eq!(response.status, 422, "{query}: {}", response.text);
        response.expect_invalid(field);
    }
    // Several at once.
    admin
        .get("/v1/tokens?limit=0&sort=size&status=x")
        .await
        .expect_invalid("limit")
        .expect_invalid("sort")
        .expect_invalid("status");
    for ok in [
        "limit=1",
        "limit=200",
        "sort=last_used_at",
        "sort=-name",
        "status=active",
    ] {
        admin.get(&format!("/v1/tokens?{ok}")).await.expect(200);
    }
}
