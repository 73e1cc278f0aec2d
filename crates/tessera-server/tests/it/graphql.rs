//! `POST /graphql`: the same data as REST for the same calls, secrets only in the
//! mutations that reveal them, the SPEC error codes in `extensions.code`, verify without a
//! credential, the depth and complexity limits, and GraphiQL from embedded files.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Admin, Resp, TestServer};

/// A GraphQL request as a signed-in admin (cookie + CSRF header).
pub async fn as_admin(admin: &Admin, query: &str, variables: Value) -> Resp {
    let response = admin
        .post(
            "/graphql",
            json!({ "query": query, "variables": variables }),
        )
        .await;
    response.expect(200);
    response
}

/// A GraphQL request with `Authorization: Bearer <token>` only.
pub async fn as_bearer(server: &TestServer, token: &str, query: &str, variables: Value) -> Resp {
    let response = server
        .bearer(
            token,
            Method::POST,
            "/graphql",
            Some(json!({ "query": query, "variables": variables })),
        )
        .await;
    response.expect(200);
    response
}

/// The `extensions.code` of each error.
pub fn codes(response: &Resp) -> Vec<String> {
    response.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_call_without_a_credential_is_unauthenticated_and_verify_needs_none() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let (_, secret) = root.token("verified over graphql").await;
    // No credential at all: every management field is refused, verify answers.
    let anonymous = server
        .anon(
            Method::POST,
            "/graphql",
            Some(json!({"query": "query($t: String!) { tokens { total } verifyToken(token: $t) { valid token { name type } } }", "variables": {"t": secret}})),
        )
        .await;
    anonymous.expect(200);
    assert_eq!(codes(&anonymous), ["unauthenticated"], "{}", anonymous.text);
    assert_eq!(anonymous.body["data"]["verifyToken"]["valid"], true);
    assert_eq!(
        anonymous.body["data"]["verifyToken"]["token"],
        json!({"name": "verified over graphql", "type": "READ_ONLY"})
    );
    // An API token is never a management credential.
    let api = as_bearer(&server, &secret, "query { me { email } }", json!({})).await;
    assert_eq!(codes(&api), ["unauthenticated"], "{}", api.text);
    // A session cookie without the CSRF header: refused, as for REST.
    let no_csrf = root
        .raw(
            Method::POST,
            "/graphql",
            &[],
            Some(br#"{"query": "mutation { createProject(input: {slug: \"x\", name: \"x\"}) { slug } }"}"#.to_vec()),
        )
        .await;
    no_csrf.expect(200);
    assert_eq!(codes(&no_csrf), ["forbidden"], "{}", no_csrf.text);
    root.get("/v1/projects").await.expect(200);
    assert_eq!(root.get("/v1/projects").await.body, json!([]));
    // verifyToken's refusals carry the verify codes.
    let refused = as_admin(
        &root,
        r#"query { verifyToken(token: "tsr_notatoken") { valid code } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        refused.body["data"]["verifyToken"],
        json!({"valid": false, "code": "MALFORMED"})
    );
}

/// `snake_case` → `camelCase`.
fn camel(key: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether REST's `rest` and GraphQL's `graphql` say the same: the same JSON once keys
/// are camelCased, enum values written as GraphQL enums (`read-only` ↔ `READ_ONLY`,
/// `7d` ↔ `DAYS_7`) and times compared as instants.
fn same(rest: &Value, graphql: &Value, at: &str) {
    match (rest, graphql) {
        (Value::Object(rest), Value::Object(graphql)) => {
            for (key, value) in rest {
                if key == "next_cursor" {
                    // A cursor carries the time it was made; both sides must have one or
                    // neither (and the test below follows REST's with GraphQL).
                    assert_eq!(
                        value.is_null(),
                        graphql["nextCursor"].is_null(),
                        "{at}.next_cursor"
                    );
                    continue;
                }
                let twin = graphql
                    .get(&camel(key))
                    .unwrap_or_else(|| panic!("{at}.{key} is missing from GraphQL"));
                if matches!(key.as_str(), "metadata" | "changes") {
                    // Free-form JSON (the `JSON` scalar): exactly the same document.
                    assert_eq!(value, twin, "{at}.{key}");
                    continue;
                }
                same(value, twin, &format!("{at}.{key}"));
            }
            assert_eq!(rest.len(), graphql.len(), "{at}: the same fields");
        }
        (Value::Array(rest), Value::Array(graphql)) => {
            assert_eq!(rest.len(), graphql.len(), "{at}: the same length");
            for (i, (r, g)) in rest.iter().zip(graphql).enumerate() {
                same(r, g, &format!("{at}[{i}]"));
            }
        }
        (Value::String(r), Value::String(g)) if r != g => {
            // Only the enum-valued fields are written differently (`read-only` ↔
            // `READ_ONLY`, `7d` ↔ `DAYS_7`, `tokens.read` ↔ `TOKENS_READ`); only times
            // may differ in format.
            let field = at
                .rsplit('.')
                .next()
                .unwrap_or(at)
                .split('[')
                .next()
                .unwrap_or(at);
            let enum_form = |text: &str| match text.strip_suffix('d') {
                Some(days) if days.chars().all(|c| c.is_ascii_digit()) => format!("DAYS_{days}"),
                _ => text.to_uppercase().replace(['-', '.'], "_"),
            };
            let is_enum = matches!(
                field,
                "type" | "status" | "kind" | "lifespan" | "access" | "code"
            ) || (field == "permissions" && !at.contains("items"));
            let instant = |text: &str| chrono::DateTime::parse_from_rfc3339(text).ok();
            let same_instant = matches!((instant(r), instant(g)), (Some(a), Some(b))
                if a.timestamp_millis() == b.timestamp_millis());
            assert!(
                same_instant || (is_enum && enum_form(r) == *g),
                "{at}: REST says {r:?}, GraphQL {g:?}"
            );
        }
        _ => assert_eq!(rest, graphql, "{at}"),
    }
}

const TOKEN_FIELDS: &str = "id kind name description type permissions project ownerId status \
    expired lifespan expiresAt apiVersion hint createdAt createdBy updatedAt lastUsedAt \
    rateLimit { requests perSeconds } externalId metadata";

#[tokio::test]
async fn graphql_and_rest_answer_the_same_data() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.article_resource().await;
    root.post("/v1/projects", json!({"slug": "shop", "name": "Shop"}))
        .await
        .expect(201);
    for n in 0..3 {
        root.create_token(json!({
            "name": format!("same data {n}"),
            "type": "custom",
            "permissions": ["article.find"],
            "lifespan": "30d",
            "project": "shop",
            "external_id": format!("acct_{n}"),
            "metadata": {"plan": "pro", "seats": n},
            "rate_limit": {"requests": 10, "per_seconds": 60},
        }))
        .await;
    }
    let (disabled, _) = root.token("same data disabled").await;
    root.post(&format!("/v1/tokens/{disabled}/disable"), json!({}))
        .await
        .expect(200);

    // A page of the list, with a filter, a sort and the cursor.
    let rest = root
        .get("/v1/tokens?q=same&sort=name&limit=2&status=active")
        .await;
    rest.expect(200);
    let graphql = as_admin(
        &root,
        &format!(
            "query {{ tokens(q: \"same\", sort: \"name\", limit: 2, status: \"active\") {{ total totalExact nextCursor items {{ {TOKEN_FIELDS} }} }} }}"
        ),
        json!({}),
    )
    .await;
    assert!(codes(&graphql).is_empty(), "{}", graphql.text);
    same(&rest.body, &graphql.body["data"]["tokens"], "tokens");
    assert_eq!(rest.body["total"], 3);
    assert_eq!(rest.body["total_exact"], true);
    // The next page through the cursor.
    let cursor = rest.body["next_cursor"].as_str().expect("a next page");
    let rest_next = root
        .get(&format!(
            "/v1/tokens?q=same&sort=name&limit=2&status=active&cursor={cursor}"
        ))
        .await;
    let graphql_next = as_admin(
        &root,
        &format!(
            "query($c: String!) {{ tokens(q: \"same\", sort: \"name\", limit: 2, status: \"active\", cursor: $c) {{ total totalExact nextCursor items {{ {TOKEN_FIELDS} }} }} }}"
        ),
        json!({ "c": cursor }),
    )
    .await;
    same(
        &rest_next.body,
        &graphql_next.body["data"]["tokens"],
        "tokens page 2",
    );
    // One token, the catalog, projects, versions, users, roles, the audit log, me.
    let shown = as_admin(
        &root,
        &format!("query($id: ID!) {{ token(id: $id) {{ {TOKEN_FIELDS} }} }}"),
        json!({ "id": disabled }),
    )
    .await;
    same(
        &root.get(&format!("/v1/tokens/{disabled}")).await.body,
        &shown.body["data"]["token"],
        "token",
    );
    let everything = as_admin(
        &root,
        "query { resources { name description actions { name kind } } \
         projects { slug name createdAt } apiVersions { versions newest } \
         users { id email name role permissions active createdAt } \
         roles { id name description permissions builtin editable } \
         audit(limit: 5) { nextCursor items { id at actor action target clientAddress changes } } \
         me { id email name role permissions active createdAt } }",
        json!({}),
    )
    .await;
    assert!(codes(&everything).is_empty(), "{}", everything.text);
    let data = &everything.body["data"];
    same(
        &root.get("/v1/resources").await.body,
        &data["resources"],
        "resources",
    );
    same(
        &root.get("/v1/projects").await.body,
        &data["projects"],
        "projects",
    );
    same(
        &root.get("/v1/api-versions").await.body,
        &data["apiVersions"],
        "apiVersions",
    );
    same(&root.get("/v1/users").await.body, &data["users"], "users");
    same(&root.get("/v1/roles").await.body, &data["roles"], "roles");
    same(
        &root.get("/v1/audit?limit=5").await.body,
        &data["audit"],
        "audit",
    );
    same(&root.get("/v1/auth/me").await.body, &data["me"], "me");
}

#[tokio::test]
async fn secrets_appear_only_in_the_mutations_that_reveal_them_and_work() {
    let server = TestServer::start().await;
    let root = server.admin("token-manager").await;
    let created = as_admin(
        &root,
        "mutation { createToken(input: {name: \"gql made\", type: FULL_ACCESS, lifespan: DAYS_30, externalId: \"acct_9\", metadata: {plan: \"pro\"}}) { id token externalId metadata } }",
        json!({}),
    )
    .await;
    assert!(codes(&created).is_empty(), "{}", created.text);
    let id = created.body["data"]["createToken"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let secret = created.body["data"]["createToken"]["token"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_eq!(
        created.body["data"]["createToken"]["metadata"],
        json!({"plan": "pro"})
    );
    assert_eq!(server.code(&secret, None, None).await, "valid");
    // No read answers the secret: the Token type has no field for it.
    let read = as_admin(
        &root,
        "query($id: ID!) { token(id: $id) { token } }",
        json!({ "id": id }),
    )
    .await;
    assert!(
        read.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown field \"token\"")),
        "{}",
        read.text
    );
    assert!(!read.text.contains(&secret));
    let listed = as_admin(
        &root,
        &format!("query {{ tokens {{ items {{ {TOKEN_FIELDS} }} }} }}"),
        json!({}),
    )
    .await;
    assert!(!listed.text.contains(&secret), "the list never shows it");
    // Regenerating reveals the new one, once; the old one stops at once.
    let regenerated = as_admin(
        &root,
        "mutation($id: ID!) { regenerateToken(id: $id) { token } }",
        json!({ "id": id }),
    )
    .await;
    let new_secret = regenerated.body["data"]["regenerateToken"]["token"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(server.code(&new_secret, None, None).await, "valid");
    assert_eq!(server.code(&secret, None, None).await, "not_found");
    // Editing through GraphQL: null clears, absent keeps.
    let edited = as_admin(
        &root,
        "mutation($id: ID!) { updateToken(id: $id, input: {externalId: null, description: \"kept?\"}) { externalId description metadata } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        edited.body["data"]["updateToken"],
        json!({"externalId": null, "description": "kept?", "metadata": {"plan": "pro"}})
    );
}

#[tokio::test]
async fn invalid_input_names_the_field_with_the_spec_code_and_never_echoes_a_secret() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let invalid = as_admin(
        &root,
        "mutation { createToken(input: {name: \"\", type: READ_ONLY}) { id } }",
        json!({}),
    )
    .await;
    let error = &invalid.body["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "validation_failed",
        "{}",
        invalid.text
    );
    assert!(
        error["extensions"]["details"]["name"].is_string(),
        "{}",
        invalid.text
    );
    assert!(
        error["extensions"]["details"]["lifespan"].is_string(),
        "{}",
        invalid.text
    );
    // A bad list parameter: named, as the REST query parameter is.
    let bad_sort = as_admin(
        &root,
        "query { tokens(sort: \"size\") { total } }",
        json!({}),
    )
    .await;
    assert!(
        bad_sort.body["errors"][0]["extensions"]["details"]["sort"].is_string(),
        "{}",
        bad_sort.text
    );
    // A secret pasted where an enum belongs is not repeated back.
    let (_, secret) = root.token("pasted").await;
    let pasted = as_admin(
        &root,
        &format!("query {{ tokens(status: \"{secret}\") {{ total }} }}"),
        json!({}),
    )
    .await;
    assert!(!codes(&pasted).is_empty());
    let errors = pasted.body["errors"].to_string();
    assert!(!errors.contains(&secret), "{errors}");
    // A token is a valid GraphQL name, so it parses as an enum value; the parser's
    // "does not contain the value …" must not carry it back.
    let in_enum = as_admin(
        &root,
        &format!("mutation {{ createToken(input: {{name: \"x\", type: {secret}}}) {{ id }} }}"),
        json!({}),
    )
    .await;
    assert!(
        in_enum.body["errors"][0]["message"].is_string(),
        "{}",
        in_enum.text
    );
    assert!(!in_enum.text.contains(&secret), "{}", in_enum.text);
    // Not JSON at all: the REST error body, 400.
    root.raw(
        Method::POST,
        "/graphql",
        &[("X-CSRF-Token", root.csrf.as_str())],
        Some(b"{not json".to_vec()),
    )
    .await
    .expect_error(400, "bad_request");
}

#[tokio::test]
async fn deep_and_costly_queries_are_refused() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    // Introspection (GraphiQL's) fits the limits.
    // (GraphiQL's introspection query follows `ofType` seven levels down.)
    let mut type_ref = String::from("name kind");
    for _ in 0..7 {
        type_ref = format!("name kind ofType {{ {type_ref} }}");
    }
    let introspection = as_admin(
        &root,
        &format!(
            "query {{ __schema {{ types {{ name fields {{ name args {{ name type {{ {type_ref} }} }} type {{ {type_ref} }} }} }} }} }}"
        ),
        json!({}),
    )
    .await;
    assert!(codes(&introspection).is_empty(), "{}", introspection.text);
    assert!(
        introspection.body["errors"].is_null(),
        "{}",
        introspection.text
    );
    // Nesting past the depth limit.
    let mut deep = String::from("name");
    for _ in 0..20 {
        deep = format!("ofType {{ {deep} }}");
    }
    let too_deep = as_admin(
        &root,
        &format!("query {{ __schema {{ types {{ {deep} }} }} }}"),
        json!({}),
    )
    .await;
    assert!(
        too_deep.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested too deep")),
        "{}",
        too_deep.text
    );
    // The same page asked for through two thousand aliases.
    let aliases: String = (0..2_000)
        .map(|i| format!("a{i}: tokens {{ total }} "))
        .collect();
    let costly = as_admin(&root, &format!("query {{ {aliases} }}"), json!({})).await;
    assert!(
        costly.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too complex")),
        "{}",
        costly.text
    );
}

#[tokio::test]
async fn graphiql_is_served_from_embedded_files() {
    let server = TestServer::start().await;
    let page = server.anon(Method::GET, "/graphql", None).await;
    page.expect(200);
    assert!(page.text.contains("id=\"graphiql\""), "{}", page.text);
    let policy = page.header("content-security-policy").expect("a policy");
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(!policy.contains("script-src 'self' 'unsafe"), "{policy}");
    // Every script and stylesheet is this server's own, and served.
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for part in page.text.split(attribute).skip(1) {
            let url = part.split('"').next().unwrap_or_default();
            assert!(url.starts_with('/'), "loads nothing from elsewhere: {url}");
            urls.push(url.to_owned());
        }
    }
    assert!(
        urls.iter().any(|u| u.ends_with("/graphiql.min.js")),
        "{urls:?}"
    );
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    for url in urls {
        let response = client
            .get(server.url(&url))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .expect("asset");
        assert_eq!(response.status(), 200, "{url}");
        if url.contains("graphiql.min") || url.contains("react") {
            assert_eq!(
                response.headers()["content-encoding"],
                "gzip",
                "{url} is sent gzipped"
            );
            let bytes = response.bytes().await.expect("body");
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{url} is gzip");
        }
    }
    // The console's own pages keep the console's stricter policy.
    let console = server.anon(Method::GET, "/admin/login", None).await;
    assert_eq!(
        console.header("content-security-policy"),
        Some(tessera_server::CONTENT_SECURITY_POLICY)
    );
}

/// Nesting 30,000 lists deep (anonymous, in a 64 KB body) is refused by the parser's
/// stack limit, the answer does not echo the query back, and the server stays up.
#[tokio::test]
async fn deeply_nested_values_are_refused_without_an_echo() {
    let server = TestServer::start().await;
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let query = format!("{{ verifyToken(token: \"x\", permission: {nested}) {{ valid }} }}");
    let response = server
        .anon(Method::POST, "/graphql", Some(json!({ "query": query })))
        .await;
    response.expect(200);
    let message = response.body["errors"][0]["message"]
        .as_str()
        .expect("an error");
    assert!(message.starts_with("syntax error at line 1"), "{message}");
    assert!(
        !message.contains("[[[["),
        "the query is not repeated: {message}"
    );
    server.anon(Method::GET, "/healthz", None).await.expect(200);
}

/// A syntax error names the place and what was expected, never the line: a password
/// typed into a mutation with a typo must not come back in the error.
#[tokio::test]
async fn syntax_errors_do_not_repeat_the_query() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let response = as_admin(
        &root,
        "mutation { createUser(input: {email: \"a@example.com\", role: \"viewer\", password: \"hunter2 correct horse\"} { id } }",
        json!({}),
    )
    .await;
    let message = response.body["errors"][0]["message"]
        .as_str()
        .expect("an error");
    assert!(
        message.starts_with("syntax error at line 1, column"),
        "{message}"
    );
    assert!(!response.text.contains("hunter2"), "{}", response.text);
}

/// Many database-backed fields in one request are refused by their cost, before any
/// runs: one request cannot start hundreds of list queries at once.
#[tokio::test]
async fn many_database_fields_in_one_request_are_refused() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let aliases: String = (0..50)
        .map(|i| format!("a{i}: tokens(limit: 200) {{ items {{ id }} }} "))
        .collect();
    let costly = as_admin(&root, &format!("query {{ {aliases} }}"), json!({})).await;
    assert!(
        costly.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too complex")),
        "{}",
        costly.text
    );
    let mutations: String = (0..20)
        .map(|i| format!("m{i}: createProject(input: {{slug: \"p{i}\", name: \"p\"}}) {{ slug }} "))
        .collect();
    let refused = as_admin(&root, &format!("mutation {{ {mutations} }}"), json!({})).await;
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too complex")),
        "{}",
        refused.text
    );
    assert_eq!(root.get("/v1/projects").await.body, json!([]), "none ran");
    // A screen's worth of lists still fits.
    let screen = as_admin(
        &root,
        "query { tokens { total } audit { items { id } } users { id } roles { id } resources { name } projects { slug } me { email } apiVersions { newest } }",
        json!({}),
    )
    .await;
    assert!(codes(&screen).is_empty(), "{}", screen.text);
}

/// Who asks is checked before the arguments' syntax, as in REST.
#[tokio::test]
async fn an_anonymous_caller_is_unauthenticated_before_any_validation() {
    let server = TestServer::start().await;
    let anonymous = server
        .anon(
            Method::POST,
            "/graphql",
            Some(json!({"query": "{ tokens(sort: \"size\") { total } audit(since: \"x\") { nextCursor } }"})),
        )
        .await;
    assert_eq!(
        codes(&anonymous),
        ["unauthenticated", "unauthenticated"],
        "{}",
        anonymous.text
    );
}

/// A rate-limited token says when to come back, as REST's `Retry-After` does.
#[tokio::test]
async fn verify_token_says_when_a_rate_limited_token_may_retry() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let created = root
        .create_token(json!({"name": "limited", "type": "read-only", "lifespan": "7d", "rate_limit": {"requests": 1, "per_seconds": 60}}))
        .await;
    let secret = created.secret();
    let query = "query($t: String!) { verifyToken(token: $t) { valid code retryAfterSeconds } }";
    let first = as_admin(&root, query, json!({ "t": secret })).await;
    assert_eq!(
        first.body["data"]["verifyToken"],
        json!({"valid": true, "code": null, "retryAfterSeconds": null})
    );
    let second = as_admin(&root, query, json!({ "t": secret })).await;
    let answer = &second.body["data"]["verifyToken"];
    assert_eq!(answer["code"], "RATE_LIMITED", "{}", second.text);
    let wait = answer["retryAfterSeconds"].as_u64().expect("a wait");
    assert!((1..=60).contains(&wait), "{wait}");
}

/// Cookie sessions need the right CSRF token for every POST, queries included, and a
/// body a cross-site form could send is refused outright.
#[tokio::test]
async fn a_cookie_session_needs_its_csrf_token_for_every_request() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let query = br#"{"query": "{ me { email } }"}"#.to_vec();
    let without = root
        .raw(Method::POST, "/graphql", &[], Some(query.clone()))
        .await;
    assert_eq!(codes(&without), ["forbidden"], "{}", without.text);
    let wrong = root
        .raw(
            Method::POST,
            "/graphql",
            &[("X-CSRF-Token", "not-the-token")],
            Some(query.clone()),
        )
        .await;
    assert_eq!(codes(&wrong), ["forbidden"], "{}", wrong.text);
    let right = root
        .raw(
            Method::POST,
            "/graphql",
            &[("X-CSRF-Token", root.csrf.as_str())],
            Some(query),
        )
        .await;
    assert!(codes(&right).is_empty(), "{}", right.text);
    assert_eq!(right.body["data"]["me"]["email"], root.email.as_str());
    // text/plain (what a cross-site form may post without a preflight): 400.
    let response = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("Content-Type", "text/plain")
        .header("Cookie", format!("tessera_session={}", root.session))
        .body(r#"{"query": "mutation { createProject(input: {slug: \"x\", name: \"x\"}) { slug } }"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    assert_eq!(root.get("/v1/projects").await.body, json!([]));
}

/// `duplicateToken` needs `tokens.read` as well as `tokens.create` (it reads the
/// original): a role with only `tokens.create` is refused.
#[tokio::test]
async fn duplicating_needs_read_as_well_as_create() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.post(
        "/v1/roles",
        json!({"name": "creator", "permissions": ["tokens.create"]}),
    )
    .await
    .expect(201);
    let creator = server.admin("creator").await;
    let (id, _) = root.token("original").await;
    let refused = as_admin(
        &creator,
        "mutation($id: ID!) { duplicateToken(id: $id) { token } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(codes(&refused), ["forbidden"], "{}", refused.text);
    let created = as_admin(
        &creator,
        "mutation { createToken(input: {name: \"mine\", type: READ_ONLY, lifespan: DAYS_7}) { id } }",
        json!({}),
    )
    .await;
    assert!(codes(&created).is_empty(), "{}", created.text);
}
