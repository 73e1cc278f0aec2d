//! `GET /v1/audit`: every change and login, newest first, with who, when, from where
//! and what changed; filters and cursor pagination.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Admin, PASSWORD, Resp, TestServer};

/// Every entry, newest first, through pagination with `limit` per page; checks that
/// pages neither overlap nor skip.
async fn walk(admin: &Admin, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/audit?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = admin.get(&path).await;
        page.expect(200);
        let batch = page.body["items"].as_array().expect("items").clone();
        assert!(batch.len() <= limit, "{path}: {} items", batch.len());
        pages += 1;
        assert!(pages < 1000, "pagination does not end");
        items.extend(batch.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(batch.len(), limit, "only a full page has a next one");
                cursor = Some(next.to_owned());
            }
            None => break,
        }
    }
    let ids: Vec<i64> = items
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no entry twice: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    items
}

fn at(entry: &Value) -> DateTime<Utc> {
    let text = entry["at"].as_str().expect("at");
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|_| panic!("`at` is RFC 3339: {text}"))
        .with_timezone(&Utc)
}

/// The single entry with `action` and `target`.
#[track_caller]
fn find<'a>(items: &'a [Value], action: &str, target: &str) -> &'a Value {
    let found: Vec<&Value> = items
        .iter()
        .filter(|i| i["action"] == action && i["target"] == target)
        .collect();
    assert_eq!(found.len(), 1, "one {action} of {target} in {items:#?}");
    found[0]
}

#[track_caller]
fn from_to(changes: &Value, field: &str) -> (Value, Value) {
    let change = &changes[field];
    assert!(change.is_object(), "`{field}` changed: {changes}");
    (change["from"].clone(), change["to"].clone())
}

/// A server with one of each kind of change, made over HTTP by a signed-in admin.
struct Story {
    server: TestServer,
    root: Admin,
    token_id: String,
    /// The secret of the token the story created (and deleted).
    secret: String,
    user_id: String,
    started: DateTime<Utc>,
    /// The actions, oldest first, and their targets.
    expected: Vec<(String, String)>,
}

async fn story() -> Story {
    let server = TestServer::start().await;
    let started = Utc::now();
    let email = server.create_admin("super-admin").await;
    // A failed and a successful login.
    server
        .anon(
            Method::POST,
            "/v1/auth/login",
            Some(json!({"email": email, "password": "not the password"})),
        )
        .await
        .expect_error(401, "unauthenticated");
    let root = server.login(&email).await;
    // Logins name the account by id, like every other user event.
    let user = format!("user:{}", root.id);
    let created = root
        .create_token(json!({"name": "ci", "type": "read-only", "lifespan": "7d"}))
        .await;
    let token_id = created.id();
    let secret = created.secret();
    root.patch(
        &format!("/v1/tokens/{token_id}"),
        json!({"description": "deploys"}),
    )
    .await
    .expect(200);
    root.delete(&format!("/v1/tokens/{token_id}"))
        .await
        .expect(204);
    let ada = root
        .post(
            "/v1/users",
            json!({"email": "ada@example.com", "role": "viewer", "password": "ada's password!"}),
        )
        .await;
    ada.expect(201);
    let user_id = ada.id();
    root.patch(
        &format!("/v1/users/{user_id}"),
        json!({"name": "Ada", "role": "token-manager"}),
    )
    .await
    .expect(200);
    root.post(
        "/v1/roles",
        json!({"name": "auditor", "permissions": ["audit.read"]}),
    )
    .await
    .expect(201);
    root.article_resource().await;
    root.post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    let expected = [
        ("auth.login_failed", user.clone()),
        ("auth.login", user.clone()),
        ("token.create", format!("token:{token_id}")),
        ("token.update", format!("token:{token_id}")),
        ("token.delete", format!("token:{token_id}")),
        ("user.create", format!("user:{user_id}")),
        ("user.update", format!("user:{user_id}")),
        ("role.create", "role:auditor".to_owned()),
        ("resource.create", "resource:article".to_owned()),
        ("project.create", "project:shop".to_owned()),
    ]
    .into_iter()
    .map(|(a, t)| (a.to_owned(), t))
    .collect();
    Story {
        server,
        root,
        token_id,
        secret,
        user_id,
        started,
        expected,
    }
}

#[tokio::test]
async fn every_change_and_login_is_recorded_newest_first_with_a_diff() {
    let Story {
        server,
        root,
        token_id,
        secret,
        user_id,
        started,
        expected,
    } = story().await;
    let response = root.get("/v1/audit?limit=500").await;
    response.expect(200);
    assert_eq!(response.body["next_cursor"], Value::Null);
    let items = response.body["items"].as_array().expect("items").clone();

    // The story's entries, newest first, in the order they happened.
    let recorded: Vec<(String, String)> = items
        .iter()
        .filter(|i| i["actor"] != "cli:test")
        .map(|i| {
            (
                i["action"].as_str().expect("action").to_owned(),
                i["target"].as_str().expect("target").to_owned(),
            )
        })
        .collect();
    let mut newest_first = expected.clone();
    newest_first.reverse();
    assert_eq!(recorded, newest_first);
    // The bootstrap admin made by the test's operator comes first of all.
    let oldest = items.last().expect("entries");
    assert_eq!(oldest["action"], "user.create");
    assert_eq!(oldest["actor"], "cli:test");
    assert_eq!(oldest["client_address"], Value::Null);

    let now = Utc::now();
    let mut previous: Option<DateTime<Utc>> = None;
    for item in &items {
        let when = at(item);
        assert!(
            when >= started - chrono::Duration::seconds(1) && when <= now,
            "{item}"
        );
        if let Some(previous) = previous {
            assert!(when <= previous, "newest first by time too");
        }
        previous = Some(when);
        assert!(item["id"].is_i64(), "{item}");
        assert!(item["changes"].is_object(), "{item}");
        if item["actor"] != "cli:test" {
            assert_eq!(item["client_address"], "127.0.0.1", "{item}");
        }
    }
    let actor = format!("user:{}", root.email);
    for item in items.iter().filter(|i| i["actor"] != "cli:test") {
        let expected_actor = if item["action"] == "auth.login_failed" {
            "anonymous"
        } else {
            actor.as_str()
        };
        assert_eq!(item["actor"], expected_actor, "{item}");
    }

    // The diffs.
    let token = format!("token:{token_id}");
    let created = &find(&items, "token.create", &token)["changes"];
    assert_eq!(from_to(created, "name"), (Value::Null, json!("ci")));
    assert_eq!(from_to(created, "type"), (Value::Null, json!("read-only")));
    assert_eq!(from_to(created, "lifespan"), (Value::Null, json!("7d")));
    assert!(created.get("token").is_none() && created.get("digest").is_none());
    assert_eq!(
        find(&items, "token.update", &token)["changes"],
        json!({"description": {"from": "", "to": "deploys"}})
    );
    let deleted = &find(&items, "token.delete", &token)["changes"];
    assert_eq!(from_to(deleted, "name"), (json!("ci"), Value::Null));
    assert_eq!(
        from_to(deleted, "description"),
        (json!("deploys"), Value::Null)
    );
    let user = format!("user:{user_id}");
    let made = &find(&items, "user.create", &user)["changes"];
    assert_eq!(
        from_to(made, "email"),
        (Value::Null, json!("ada@example.com"))
    );
    assert_eq!(from_to(made, "role"), (Value::Null, json!("viewer")));
    assert!(made.get("password").is_none(), "{made}");
    let edited = &find(&items, "user.update", &user)["changes"];
    assert_eq!(
        from_to(edited, "name"),
        (json!("ada@example.com"), json!("Ada"))
    );
    assert_eq!(
        from_to(edited, "role"),
        (json!("viewer"), json!("token-manager"))
    );
    assert!(edited.get("email").is_none(), "only what changed: {edited}");
    let role = &find(&items, "role.create", "role:auditor")["changes"];
    assert_eq!(
        from_to(role, "permissions"),
        (Value::Null, json!(["audit.read"]))
    );
    let resource = &find(&items, "resource.create", "resource:article")["changes"];
    assert_eq!(from_to(resource, "name"), (Value::Null, json!("article")));
    let project = &find(&items, "project.create", "project:shop")["changes"];
    assert_eq!(from_to(project, "slug"), (Value::Null, json!("shop")));
    assert_eq!(from_to(project, "name"), (Value::Null, json!("Shop")));
    for action in ["auth.login", "auth.login_failed"] {
        let login = find(&items, action, &format!("user:{}", root.id));
        assert_eq!(login["client_address"], "127.0.0.1");
    }

    // Nothing secret in the whole log.
    for needle in [
        PASSWORD,
        "not the password",
        "ada's password!",
        "$argon2",
        &secret,
        &secret[4..44],
    ] {
        assert!(
            !response.text.contains(needle),
            "{needle:?} in the audit log"
        );
    }
    drop(server);
}

#[tokio::test]
async fn filters_and_cursor_pagination() {
    let Story {
        server,
        root,
        token_id,
        user_id,
        ..
    } = story().await;
    let all = walk(&root, "", 500).await;
    assert!(all.len() >= 11, "{}", all.len());
    // Every page size walks the same entries.
    for limit in [1, 2, 3, 7] {
        let walked = walk(&root, "", limit).await;
        assert_eq!(walked, all, "pages of {limit}");
    }
    // The default page holds everything here (fewer than 50 entries).
    let default = root.get("/v1/audit").await;
    default.expect(200);
    assert_eq!(
        default.body["items"].as_array().map(Vec::len),
        Some(all.len())
    );

    let actor = format!("user:{}", root.email);
    let matching = |pick: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        all.iter().filter(|i| pick(i)).cloned().collect()
    };
    let filters: Vec<(String, Vec<Value>)> = vec![
        (
            format!("actor={actor}"),
            matching(&|i| i["actor"] == actor.as_str()),
        ),
        (
            "actor=anonymous".to_owned(),
            matching(&|i| i["actor"] == "anonymous"),
        ),
        (
            "action=token.update".to_owned(),
            matching(&|i| i["action"] == "token.update"),
        ),
        (
            format!("target=token:{token_id}"),
            matching(&|i| i["target"] == format!("token:{token_id}").as_str()),
        ),
        (
            format!("target=user:{user_id}&action=user.update"),
            matching(&|i| {
                i["target"] == format!("user:{user_id}").as_str() && i["action"] == "user.update"
            }),
        ),
        ("action=no.such.action".to_owned(), Vec::new()),
    ];
    for (query, expected) in &filters {
        let walked = walk(&root, query, 2).await;
        assert_eq!(&walked, expected, "{query}");
    }
    assert_eq!(filters[2].1.len(), 1);
    assert_eq!(filters[3].1.len(), 3, "create, update, delete of the token");

    // since (inclusive) and until (exclusive), on the time of an entry in the middle.
    let middle = &all[all.len() / 2];
    let pivot = middle["at"].as_str().expect("at").to_owned();
    let pivot_time = at(middle);
    let since = walk(&root, &format!("since={pivot}"), 3).await;
    assert_eq!(since, matching(&|i| at(i) >= pivot_time));
    assert!(since.contains(middle));
    let until = walk(&root, &format!("until={pivot}"), 3).await;
    assert_eq!(until, matching(&|i| at(i) < pivot_time));
    assert!(!until.contains(middle));
    assert_eq!(since.len() + until.len(), all.len());
    let window = walk(
        &root,
        &format!("since={pivot}&until={pivot}&action=token.create"),
        3,
    )
    .await;
    assert!(window.is_empty());
    let future =
        (Utc::now() + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(walk(&root, &format!("since={future}"), 5).await.is_empty());
    assert_eq!(walk(&root, &format!("until={future}"), 5).await, all);

    // Bad parameters are named.
    let bad: [(&str, &str); 9] = [
        ("since=yesterday", "since"),
        ("since=2026-01-31", "since"),
        ("until=soon", "until"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("colour=red", "colour"),
    ];
    for (query, field) in bad {
        let response: Resp = root.get(&format!("/v1/audit?{query}")).await;
        response.expect_invalid(field);
    }
    drop(server);
}
