//! Every management route against every built-in role, no session, and an API token
//! as Bearer. Routes that need an existing object get a real one, created fresh for
//! each request, so a refusal is about permission and not a 404.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use tessera_api_types::{CreateTokenRequest, ProjectRequest, ResourceRequest};
use tessera_app::Principal;
use tessera_core::ApiVersions;

use crate::harness::{Admin, Resp, TestServer, default_settings};

/// What a route requires of the signed-in admin.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// Any signed-in admin.
    SignedIn,
    Permission(&'static str),
    /// Any one of these. Catalog reads need `tokens.read` (token forms show the
    /// catalog) or the matching manage permission; every built-in role qualifies.
    AnyOf(&'static [&'static str]),
}

/// The object a route's path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Nothing,
    /// A fresh API token (`{id}`).
    Token,
    /// A fresh API token on an older API version (`{id}`), so an upgrade can succeed.
    OldToken,
    /// A fresh resource (`{name}`).
    Resource,
    /// A fresh project with no token bound (`{slug}`).
    Project,
}

struct Route {
    method: Method,
    path: &'static str,
    need: Need,
    target: Target,
    /// The body, given a number unique to this request.
    body: fn(usize) -> Option<Value>,
    /// The status an admin allowed to call the route gets.
    ok: u16,
    /// The request ends the session it is sent with.
    ends_session: bool,
}

fn none(_: usize) -> Option<Value> {
    None
}

fn empty(_: usize) -> Option<Value> {
    Some(json!({}))
}

fn routes() -> Vec<Route> {
    use Need::{AnyOf, Permission, SignedIn};
    use Target::{Nothing, OldToken, Project, Resource, Token};
    let route = |method: Method,
                 path: &'static str,
                 need: Need,
                 target: Target,
                 body: fn(usize) -> Option<Value>,
                 ok: u16| Route {
        method,
        path,
        need,
        target,
        body,
        ok,
        ends_session: false,
    };
    vec![
        // Tokens.
        route(
            Method::GET,
            "/v1/tokens",
            Permission("tokens.read"),
            Nothing,
            none,
            200,
        ),
        route(
            Method::POST,
            "/v1/tokens",
            Permission("tokens.create"),
            Nothing,
            |n| {
                Some(json!({"name": format!("created {n}"), "type": "read-only", "lifespan": "7d"}))
            },
            201,
        ),
        route(
            Method::GET,
            "/v1/tokens/{id}",
            Permission("tokens.read"),
            Token,
            none,
            200,
        ),
        route(
            Method::PATCH,
            "/v1/tokens/{id}",
            Permission("tokens.update"),
            Token,
            |n| Some(json!({"description": format!("edited {n}")})),
            200,
        ),
        route(
            Method::DELETE,
            "/v1/tokens/{id}",
            Permission("tokens.delete"),
            Token,
            none,
            204,
        ),
        route(
            Method::POST,
            "/v1/tokens/{id}/regenerate",
            Permission("tokens.regenerate"),
            Token,
            empty,
            200,
        ),
        route(
            Method::POST,
            "/v1/tokens/{id}/duplicate",
            Permission("tokens.create"),
            Token,
            empty,
            201,
        ),
        route(
            Method::POST,
            "/v1/tokens/{id}/disable",
            Permission("tokens.update"),
            Token,
            empty,
            200,
        ),
        route(
            Method::POST,
            "/v1/tokens/{id}/enable",
            Permission("tokens.update"),
            Token,
            empty,
            200,
        ),
        route(
            Method::POST,
            "/v1/tokens/{id}/upgrade-version",
            Permission("tokens.update"),
            OldToken,
            empty,
            200,
        ),
        route(
            Method::GET,
            "/v1/tokens/{id}/usage",
            Permission("tokens.read"),
            Token,
            none,
            200,
        ),
        // Resources.
        route(
            Method::GET,
            "/v1/resources",
            AnyOf(&["tokens.read", "resources.manage"]),
            Nothing,
            none,
            200,
        ),
        route(
            Method::POST,
            "/v1/resources",
            Permission("resources.manage"),
            Nothing,
            |n| {
                Some(
                    json!({"name": format!("made{n}"), "actions": [{"name": "find", "kind": "read"}]}),
                )
            },
            201,
        ),
        route(
            Method::PATCH,
            "/v1/resources/{name}",
            Permission("resources.manage"),
            Resource,
            |n| Some(json!({"description": format!("edited {n}")})),
            200,
        ),
        route(
            Method::DELETE,
            "/v1/resources/{name}",
            Permission("resources.manage"),
            Resource,
            none,
            204,
        ),
        // Projects.
        route(
            Method::GET,
            "/v1/projects",
            AnyOf(&["tokens.read", "projects.manage"]),
            Nothing,
            none,
            200,
        ),
        route(
            Method::POST,
            "/v1/projects",
            Permission("projects.manage"),
            Nothing,
            |n| Some(json!({"slug": format!("made-{n}"), "name": format!("Made {n}")})),
            201,
        ),
        route(
            Method::DELETE,
            "/v1/projects/{slug}",
            Permission("projects.manage"),
            Project,
            none,
            204,
        ),
        // API versions and the session itself.
        route(
            Method::GET,
            "/v1/api-versions",
            Permission("tokens.read"),
            Nothing,
            none,
            200,
        ),
        route(Method::GET, "/v1/auth/me", SignedIn, Nothing, none, 200),
        Route {
            ends_session: true,
            ..route(
                Method::POST,
                "/v1/auth/logout",
                SignedIn,
                Nothing,
                empty,
                204,
            )
        },
    ]
}

/// The built-in roles and what they hold.
fn roles() -> Vec<(&'static str, BTreeSet<&'static str>)> {
    let all = [
        "tokens.read",
        "tokens.create",
        "tokens.update",
        "tokens.regenerate",
        "tokens.delete",
        "resources.manage",
        "projects.manage",
        "users.manage",
        "roles.manage",
        "audit.read",
    ];
    vec![
        ("super-admin", all.into_iter().collect()),
        (
            "token-manager",
            [
                "tokens.read",
                "tokens.create",
                "tokens.update",
                "tokens.regenerate",
                "tokens.delete",
                "audit.read",
            ]
            .into_iter()
            .collect(),
        ),
        ("viewer", ["tokens.read"].into_iter().collect()),
    ]
}

/// Makes the objects routes act on, directly through the application.
struct Fixtures<'a> {
    server: &'a TestServer,
    counter: AtomicUsize,
    old_tokens: std::sync::Mutex<Vec<String>>,
}

impl Fixtures<'_> {
    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Creates the route's target and answers the concrete path, and for a token
    /// target the token's own path.
    async fn path(&self, route: &Route) -> (String, Option<String>) {
        let operator = Principal::operator("fixtures");
        let n = self.next();
        let app = &self.server.app;
        match route.target {
            Target::Nothing => (route.path.to_owned(), None),
            Target::Token => {
                let created = app
                    .create_token(
                        &operator,
                        CreateTokenRequest {
                            name: format!("fixture {n}"),
                            token_type: Some(tessera_core::TokenType::ReadOnly),
                            lifespan: Some(tessera_core::Lifespan::Days30),
                            ..CreateTokenRequest::default()
                        },
                    )
                    .await
                    .expect("token fixture");
                let id = created.record.id.to_string();
                (
                    route.path.replace("{id}", &id),
                    Some(format!("/v1/tokens/{id}")),
                )
            }
            Target::OldToken => {
                let id = self
                    .old_tokens
                    .lock()
                    .expect("lock")
                    .pop()
                    .expect("enough v1 tokens");
                (
                    route.path.replace("{id}", &id),
                    Some(format!("/v1/tokens/{id}")),
                )
            }
            Target::Resource => {
                let name = format!("fixture{n}");
                app.create_resource(
                    &operator,
                    ResourceRequest {
                        name: name.clone(),
                        description: None,
                        actions: vec![tessera_api_types::ActionView {
                            name: "find".into(),
                            kind: tessera_core::ActionKind::Read,
                        }],
                    },
                )
                .await
                .expect("resource fixture");
                (route.path.replace("{name}", &name), None)
            }
            Target::Project => {
                let slug = format!("fixture-{n}");
                app.create_project(
                    &operator,
                    ProjectRequest {
                        slug: slug.clone(),
                        name: format!("Fixture {n}"),
                    },
                )
                .await
                .expect("project fixture");
                (route.path.replace("{slug}", &slug), None)
            }
        }
    }
}

/// A server whose first `count` tokens were made on v1, restarted with v1..v3.
async fn server_with_old_tokens(count: usize) -> (TestServer, Vec<String>) {
    let old = TestServer::start_with(tessera_app::Settings {
        api_versions: ApiVersions::new(vec!["v1".into()]).expect("versions"),
        ..default_settings()
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..count {
        let created = old
            .app
            .create_token(
                &Principal::operator("fixtures"),
                CreateTokenRequest {
                    name: format!("old {n}"),
                    token_type: Some(tessera_core::TokenType::ReadOnly),
                    lifespan: Some(tessera_core::Lifespan::Days30),
                    ..CreateTokenRequest::default()
                },
            )
            .await
            .expect("old token");
        ids.push(created.record.id.to_string());
    }
    let dir = old.stop().await;
    (TestServer::start_in(dir, default_settings()).await, ids)
}

async fn send_as(admin: &Admin, route: &Route, path: &str, n: usize) -> Resp {
    admin
        .send(route.method.clone(), path, (route.body)(n))
        .await
}

#[tokio::test]
async fn every_management_route_enforces_its_permission() {
    let table = routes();
    let old_needed = 5 * table
        .iter()
        .filter(|r| r.target == Target::OldToken)
        .count();
    let (server, old_tokens) = server_with_old_tokens(old_needed).await;
    let fixtures = Fixtures {
        server: &server,
        counter: AtomicUsize::new(0),
        old_tokens: std::sync::Mutex::new(old_tokens),
    };
    let root = server.admin("super-admin").await;
    let (_, api_token) = root.token("bearer token").await;
    assert_eq!(server.code(&api_token, None, None).await, "valid");

    let mut signed_in = Vec::new();
    for (role, permissions) in roles() {
        let email = server.create_admin(role).await;
        let admin = server.login(&email).await;
        // The role's permissions as the API reports them.
        let me = admin.get("/v1/auth/me").await;
        let reported: BTreeSet<String> =
            serde_json::from_value(me.body["permissions"].clone()).expect("permissions");
        let expected: BTreeSet<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
        assert_eq!(reported, expected, "permissions of {role}");
        signed_in.push((role, permissions, email, admin));
    }

    let mut checked = 0;
    for route in &table {
        let label = format!("{} {}", route.method, route.path);
        for (role, permissions, email, admin) in &signed_in {
            let allowed = match route.need {
                Need::SignedIn => true,
                Need::Permission(permission) => permissions.contains(permission),
                Need::AnyOf(any) => any.iter().any(|p| permissions.contains(p)),
            };
            let (path, token_path) = fixtures.path(route).await;
            let fresh;
            let caller = if route.ends_session {
                fresh = server.login(email).await;
                &fresh
            } else {
                admin
            };
            let before = match &token_path {
                Some(token_path) => Some((token_path, root.get(token_path).await)),
                None => None,
            };
            let n = fixtures.next();
            let response = send_as(caller, route, &path, n).await;
            if allowed {
                assert_eq!(
                    response.status, route.ok,
                    "{role} may call {label} ({path}): {}",
                    response.text
                );
            } else {
                assert_eq!(
                    response.status, 403,
                    "{role} lacks the permission for {label} ({path}): {}",
                    response.text
                );
                response.expect_error(403, "forbidden");
                if let Some((token_path, before)) = before {
                    before.expect(200);
                    let after = root.get(token_path).await;
                    assert_eq!(after.status, 200, "{label}: a refused call changes nothing");
                    assert_eq!(
                        after.body, before.body,
                        "{label}: a refused call changes nothing"
                    );
                }
            }
            checked += 1;
        }

        // No session at all.
        let (path, _) = fixtures.path(route).await;
        let n = fixtures.next();
        let anonymous = server
            .anon(route.method.clone(), &path, (route.body)(n))
            .await;
        assert_eq!(
            anonymous.status, 401,
            "no session on {label}: {}",
            anonymous.text
        );
        anonymous.expect_error(401, "unauthenticated");

        // A valid API token as Bearer.
        let mut request = reqwest::Client::new()
            .request(route.method.clone(), server.url(&path))
            .header("Authorization", format!("Bearer {api_token}"));
        if let Some(body) = (route.body)(n) {
            request = request.json(&body);
        }
        let bearer = Resp::read(request.send().await.expect("request")).await;
        assert_eq!(bearer.status, 401, "API token on {label}: {}", bearer.text);
        bearer.expect_error(401, "unauthenticated");
        assert!(!bearer.text.contains(&api_token));
        checked += 2;
    }
    assert_eq!(checked, table.len() * 5);
    // Every session but the ones logout ended still works.
    for (role, _, _, admin) in &signed_in {
        admin.get("/v1/auth/me").await.expect(200);
        assert!(!role.is_empty());
    }
}
