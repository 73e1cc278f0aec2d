//! Every management route against every built-in role, a read-only personal token of a
//! super-admin and a full personal token of a viewer (each as `Authorization: Bearer`,
//! no cookie, no CSRF), no session, and an API token as Bearer. Routes that need an
//! existing object get a real one, created fresh for each request, so a refusal is
//! about permission and not a 404.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use tessera_api_types::{
    CreatePersonalTokenRequest, CreateTokenRequest, CreateUserRequest, ProjectRequest,
    ResourceRequest, RoleRequest,
};
use tessera_app::{Principal, Via};
use tessera_core::{AdminPermission, ApiVersions, Lifespan, PersonalAccess, UserId};

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
    /// A fresh viewer without a password (`{id}`).
    User,
    /// A fresh viewer and one personal token of theirs (`{id}`, `{token_id}`).
    UserToken,
    /// A fresh custom role (`{id}`).
    Role,
    /// A fresh personal token of the caller (`{id}`).
    MyToken,
}

/// How to read, as the super-admin, the state a refused call must leave untouched.
#[derive(Debug, Clone)]
enum Snapshot {
    /// `GET path` answers it.
    Get(String),
    /// The item with this `id` in the list `GET path` answers.
    Item(String, String),
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
    /// Refused (403) to any personal token whatever its owner may do: personal tokens
    /// are managed from a session only.
    session_only: bool,
}

fn none(_: usize) -> Option<Value> {
    None
}

fn empty(_: usize) -> Option<Value> {
    Some(json!({}))
}

fn routes() -> Vec<Route> {
    use Need::{AnyOf, Permission, SignedIn};
    use Target::{MyToken, Nothing, OldToken, Project, Resource, Role, Token, User, UserToken};
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
        session_only: false,
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
        // Users.
        route(
            Method::GET,
            "/v1/users",
            Permission("users.manage"),
            Nothing,
            none,
            200,
        ),
        route(
            Method::POST,
            "/v1/users",
            Permission("users.manage"),
            Nothing,
            |n| Some(json!({"email": format!("made-{n}@example.com"), "role": "viewer"})),
            201,
        ),
        route(
            Method::PATCH,
            "/v1/users/{id}",
            Permission("users.manage"),
            User,
            |n| Some(json!({"name": format!("Edited {n}")})),
            200,
        ),
        route(
            Method::DELETE,
            "/v1/users/{id}",
            Permission("users.manage"),
            User,
            none,
            204,
        ),
        route(
            Method::GET,
            "/v1/users/{id}/tokens",
            Permission("users.manage"),
            User,
            none,
            200,
        ),
        route(
            Method::DELETE,
            "/v1/users/{id}/tokens/{token_id}",
            Permission("users.manage"),
            UserToken,
            none,
            204,
        ),
        // Roles: assigning a role needs the list, so users.manage reads it too.
        route(
            Method::GET,
            "/v1/roles",
            AnyOf(&["roles.manage", "users.manage"]),
            Nothing,
            none,
            200,
        ),
        route(
            Method::POST,
            "/v1/roles",
            Permission("roles.manage"),
            Nothing,
            |n| Some(json!({"name": format!("made-{n}"), "permissions": ["tokens.read"]})),
            201,
        ),
        route(
            Method::PATCH,
            "/v1/roles/{id}",
            Permission("roles.manage"),
            Role,
            |n| Some(json!({"description": format!("edited {n}")})),
            200,
        ),
        route(
            Method::DELETE,
            "/v1/roles/{id}",
            Permission("roles.manage"),
            Role,
            none,
            204,
        ),
        // The audit log.
        route(
            Method::GET,
            "/v1/audit",
            Permission("audit.read"),
            Nothing,
            none,
            200,
        ),
        // The change subscription of embedded verifiers.
        route(
            Method::GET,
            "/v1/changes",
            Permission("tokens.read"),
            Nothing,
            none,
            200,
        ),
        // Embedded verifiers' reports of cache hits: they move usage and
        // `last_used_at`, so a write (`tokens.update`); never a read-only token's.
        route(
            Method::POST,
            "/v1/usage-reports",
            Permission("tokens.update"),
            Nothing,
            |_| Some(json!({"tokens": []})),
            200,
        ),
        // One's own personal tokens.
        route(Method::GET, "/v1/me/tokens", SignedIn, Nothing, none, 200),
        Route {
            session_only: true,
            ..route(
                Method::POST,
                "/v1/me/tokens",
                SignedIn,
                Nothing,
                |n| {
                    Some(
                        json!({"name": format!("mine {n}"), "access": "read-only", "lifespan": "7d"}),
                    )
                },
                201,
            )
        },
        Route {
            session_only: true,
            ..route(
                Method::DELETE,
                "/v1/me/tokens/{id}",
                SignedIn,
                MyToken,
                none,
                204,
            )
        },
        Route {
            session_only: true,
            ..route(
                Method::POST,
                "/v1/me/tokens/{id}/regenerate",
                SignedIn,
                MyToken,
                empty,
                200,
            )
        },
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
pub(crate) fn roles() -> Vec<(&'static str, BTreeSet<&'static str>)> {
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

/// The route's concrete path, and how to read what it acts on.
struct Prepared {
    path: String,
    snapshot: Option<Snapshot>,
}

/// A full, 30-day personal token of the user `owner`, made through the application as
/// them; answers its id.
pub(crate) async fn personal_token_of(server: &TestServer, owner: &str, name: &str) -> String {
    server
        .app
        .personal_tokens()
        .create_mine(
            &as_user(owner),
            CreatePersonalTokenRequest {
                name: name.to_owned(),
                description: None,
                access: PersonalAccess::Full,
                lifespan: Some(Lifespan::Days30),
                expires_at: None,
            },
        )
        .await
        .expect("personal token fixture")
        .record
        .record
        .id
        .to_string()
}

/// `user` acting on their own personal tokens, as the application sees it.
pub(crate) fn as_user(user_id: &str) -> Principal {
    Principal {
        actor: format!("user:fixture-owner-{user_id}"),
        user_id: Some(UserId::parse(user_id).expect("user id")),
        permissions: AdminPermission::ALL.into_iter().collect(),
        client_address: None,
        via: Via::Operator,
    }
}

impl Fixtures<'_> {
    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    async fn user(&self, n: usize) -> String {
        self.server
            .app
            .users()
            .create(
                &Principal::operator("fixtures"),
                CreateUserRequest {
                    email: format!("fixture-{n}@example.com"),
                    name: None,
                    role: "viewer".into(),
                    password: None,
                },
            )
            .await
            .expect("user fixture")
            .id
            .to_string()
    }

    async fn personal_token(&self, owner: &str, n: usize) -> String {
        personal_token_of(self.server, owner, &format!("fixture {n}")).await
    }

    /// Creates the route's target and answers the concrete path. `me` is the id of the
    /// user the caller acts as (for `/v1/me/…`).
    async fn path(&self, route: &Route, me: &str) -> Prepared {
        let operator = Principal::operator("fixtures");
        let n = self.next();
        let app = &self.server.app;
        let (path, snapshot) = match route.target {
            Target::Nothing => (route.path.to_owned(), None),
            Target::Token => {
                let created = app
                    .tokens()
                    .create(
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
                    Some(Snapshot::Get(format!("/v1/tokens/{id}"))),
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
                    Some(Snapshot::Get(format!("/v1/tokens/{id}"))),
                )
            }
            Target::Resource => {
                let name = format!("fixture{n}");
                app.catalog()
                    .create_resource(
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
                app.catalog()
                    .create_project(
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
            Target::User => {
                let id = self.user(n).await;
                (
                    route.path.replace("{id}", &id),
                    Some(Snapshot::Item("/v1/users".into(), id)),
                )
            }
            Target::UserToken => {
                let user = self.user(n).await;
                let token = self.personal_token(&user, n).await;
                (
                    route
                        .path
                        .replace("{id}", &user)
                        .replace("{token_id}", &token),
                    Some(Snapshot::Item(format!("/v1/users/{user}/tokens"), token)),
                )
            }
            Target::Role => {
                let name = format!("fixture-role-{n}");
                app.roles()
                    .create(
                        &operator,
                        RoleRequest {
                            name: name.clone(),
                            description: None,
                            permissions: vec![AdminPermission::TokensRead],
                        },
                    )
                    .await
                    .expect("role fixture");
                (
                    route.path.replace("{id}", &name),
                    Some(Snapshot::Item("/v1/roles".into(), name)),
                )
            }
            Target::MyToken => {
                let token = self.personal_token(me, n).await;
                (
                    route.path.replace("{id}", &token),
                    Some(Snapshot::Item(format!("/v1/users/{me}/tokens"), token)),
                )
            }
        };
        Prepared { path, snapshot }
    }
}

/// What `snapshot` reads now, as the super-admin.
async fn read_snapshot(root: &Admin, snapshot: &Snapshot) -> Value {
    match snapshot {
        Snapshot::Get(path) => {
            let response = root.get(path).await;
            response.expect(200);
            response.body
        }
        Snapshot::Item(path, id) => {
            let response = root.get(path).await;
            response.expect(200);
            let item = response
                .body
                .as_array()
                .expect("a list")
                .iter()
                .find(|item| item["id"] == id.as_str())
                .cloned();
            item.unwrap_or_else(|| panic!("{id} is in {path}: {}", response.text))
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
            .tokens()
            .create(
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

/// Who calls a route in the table.
struct Caller {
    label: String,
    /// What the caller may do (for a personal token: what its owner's role grants,
    /// narrowed by its access).
    permissions: BTreeSet<&'static str>,
    /// The user `/v1/me/…` stands for.
    user_id: String,
    how: How,
}

enum How {
    /// A session cookie (and the CSRF header on unsafe requests); logout signs this
    /// email in afresh.
    Session { email: String, admin: Admin },
    /// `Authorization: Bearer <personal token>`, no cookie, no CSRF header.
    PersonalToken(String),
}

async fn send_as(
    server: &TestServer,
    caller: &Caller,
    route: &Route,
    path: &str,
    n: usize,
) -> Resp {
    match &caller.how {
        How::Session { email, admin } => {
            let fresh;
            let admin = if route.ends_session {
                fresh = server.login(email).await;
                &fresh
            } else {
                admin
            };
            admin
                .send(route.method.clone(), path, (route.body)(n))
                .await
        }
        How::PersonalToken(secret) => {
            server
                .bearer(secret, route.method.clone(), path, (route.body)(n))
                .await
        }
    }
}

#[tokio::test]
async fn every_management_route_enforces_its_permission() {
    let table = routes();
    let callers_per_route = 5;
    // One per caller, and one the anonymous and API-token requests share.
    let old_needed = (callers_per_route + 1)
        * table
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

    let mut callers = Vec::new();
    for (role, permissions) in roles() {
        let email = server.create_admin(role).await;
        let admin = server.login(&email).await;
        // The role's permissions as the API reports them.
        let me = admin.get("/v1/auth/me").await;
        let reported: BTreeSet<String> =
            serde_json::from_value(me.body["permissions"].clone()).expect("permissions");
        let expected: BTreeSet<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
        assert_eq!(reported, expected, "permissions of {role}");
        callers.push(Caller {
            label: role.to_owned(),
            permissions,
            user_id: admin.id.clone(),
            how: How::Session { email, admin },
        });
    }
    // A read-only personal token of a super-admin keeps only the reading permissions;
    // a full one of a viewer is exactly the viewer.
    let (_, read_only) = root.personal_token("read-only of root", "read-only").await;
    assert!(read_only.starts_with("tsrp_"));
    callers.push(Caller {
        label: "read-only personal token of a super-admin".into(),
        permissions: ["tokens.read", "audit.read"].into_iter().collect(),
        user_id: root.id.clone(),
        how: How::PersonalToken(read_only.clone()),
    });
    let viewer = callers
        .iter()
        .find_map(|c| match &c.how {
            How::Session { admin, .. } if c.label == "viewer" => Some(admin),
            _ => None,
        })
        .expect("the viewer");
    let (_, viewer_full) = viewer.personal_token("full of viewer", "full").await;
    let viewer_id = viewer.id.clone();
    callers.push(Caller {
        label: "full personal token of a viewer".into(),
        permissions: ["tokens.read"].into_iter().collect(),
        user_id: viewer_id,
        how: How::PersonalToken(viewer_full.clone()),
    });
    assert_eq!(callers.len(), callers_per_route);
    // The personal tokens report their narrowed permissions.
    let me = server
        .bearer(&read_only, Method::GET, "/v1/auth/me", None)
        .await;
    me.expect(200);
    assert_eq!(me.body["email"], root.email.as_str());

    let mut checked = 0;
    for route in &table {
        let label = format!("{} {}", route.method, route.path);
        for caller in &callers {
            let via_token = matches!(caller.how, How::PersonalToken(_));
            let permitted = match route.need {
                Need::SignedIn => true,
                Need::Permission(permission) => caller.permissions.contains(permission),
                Need::AnyOf(any) => any.iter().any(|p| caller.permissions.contains(p)),
            };
            let allowed = permitted && !(via_token && route.session_only);
            if caller.label.starts_with("read-only") && route.method != Method::GET {
                // Logout through a bearer token has no session to end and writes
                // nothing; every other unsafe route is a write.
                assert!(
                    !allowed || route.ends_session,
                    "the table lets a read-only token write through {label}"
                );
            }
            let prepared = fixtures.path(route, &caller.user_id).await;
            let path = &prepared.path;
            let before = match &prepared.snapshot {
                Some(snapshot) => Some(read_snapshot(&root, snapshot).await),
                None => None,
            };
            let n = fixtures.next();
            let response = send_as(&server, caller, route, path, n).await;
            let who = &caller.label;
            if allowed {
                assert_eq!(
                    response.status, route.ok,
                    "{who} may call {label} ({path}): {}",
                    response.text
                );
            } else {
                assert_eq!(
                    response.status, 403,
                    "{who} may not call {label} ({path}): {}",
                    response.text
                );
                response.expect_error(403, "forbidden");
                if let (Some(snapshot), Some(before)) = (&prepared.snapshot, before) {
                    let after = read_snapshot(&root, snapshot).await;
                    assert_eq!(after, before, "{label}: a refused call changes nothing");
                }
            }
            checked += 1;
        }

        // No session at all.
        let prepared = fixtures.path(route, &root.id).await;
        let path = &prepared.path;
        let n = fixtures.next();
        let anonymous = server
            .anon(route.method.clone(), path, (route.body)(n))
            .await;
        assert_eq!(
            anonymous.status, 401,
            "no session on {label}: {}",
            anonymous.text
        );
        anonymous.expect_error(401, "unauthenticated");

        // A valid API token as Bearer.
        let bearer = server
            .bearer(&api_token, route.method.clone(), path, (route.body)(n))
            .await;
        assert_eq!(bearer.status, 401, "API token on {label}: {}", bearer.text);
        bearer.expect_error(401, "unauthenticated");
        assert!(!bearer.text.contains(&api_token));
        checked += 2;
    }
    assert_eq!(checked, table.len() * (callers_per_route + 2));
    // Every session but the ones logout ended still works, and so do the personal
    // tokens (a bearer logout ends nothing).
    for caller in &callers {
        let me = match &caller.how {
            How::Session { admin, .. } => admin.get("/v1/auth/me").await,
            How::PersonalToken(secret) => {
                server
                    .bearer(secret, Method::GET, "/v1/auth/me", None)
                    .await
            }
        };
        assert_eq!(me.status, 200, "{} still works: {}", caller.label, me.text);
    }
    for secret in [&read_only, &viewer_full] {
        assert!(server.signs_in(secret).await);
        assert_eq!(server.code(secret, None, None).await, "not_found");
    }
}
