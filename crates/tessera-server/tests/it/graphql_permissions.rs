//! `POST /graphql` mirrors REST's permission table: every query and mutation against
//! the built-in roles and a read-only personal token, each on a fresh object, so that a
//! refusal is about permission and not a missing object.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::graphql::{as_admin, as_bearer, codes};
use crate::harness::{Admin, Resp, TestServer};
use crate::permissions::personal_token_of;

/// What an operation acts on, made fresh by the super-admin for each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Nothing,
    Token,
    Resource,
    Project,
    User,
    UserToken,
    Role,
    MyToken,
}

struct Operation {
    /// The document; `$id`, `$name`, `$n`… are filled from the target.
    document: &'static str,
    /// Any one of these permissions allows it; empty: any signed-in admin.
    needs: &'static [&'static str],
    target: Target,
    /// Refused to personal tokens whatever their owner may do (managing personal
    /// tokens is for a console session, as in REST).
    session_only: bool,
    /// An allowed caller may still get this answer (not a permission error): upgrading
    /// a token already on the newest version.
    allowed_error: Option<&'static str>,
}

fn operations() -> Vec<Operation> {
    let op = |document, needs, target| Operation {
        document,
        needs,
        target,
        session_only: false,
        allowed_error: None,
    };
    vec![
        op(
            "query { tokens { total items { id } } }",
            &["tokens.read"],
            Target::Nothing,
        ),
        op(
            "query($id: ID!) { token(id: $id) { id } }",
            &["tokens.read"],
            Target::Token,
        ),
        op(
            "query($id: ID!) { tokenUsage(id: $id) { days { date } } }",
            &["tokens.read"],
            Target::Token,
        ),
        op(
            "query { resources { name } }",
            &["tokens.read", "resources.manage"],
            Target::Nothing,
        ),
        op(
            "query { projects { slug } }",
            &["tokens.read", "projects.manage"],
            Target::Nothing,
        ),
        op(
            "query { apiVersions { newest } }",
            &["tokens.read"],
            Target::Nothing,
        ),
        op("query { users { id } }", &["users.manage"], Target::Nothing),
        op(
            "query($id: ID!) { userTokens(userId: $id) { id } }",
            &["users.manage"],
            Target::User,
        ),
        op(
            "query { roles { id } }",
            &["roles.manage", "users.manage"],
            Target::Nothing,
        ),
        op(
            "query { audit { items { id } } }",
            &["audit.read"],
            Target::Nothing,
        ),
        op("query { me { email } }", &[], Target::Nothing),
        op("query { myTokens { id } }", &[], Target::Nothing),
        op(
            r#"mutation($n: String!) { createToken(input: {name: $n, type: READ_ONLY, lifespan: DAYS_7}) { id token } }"#,
            &["tokens.create"],
            Target::Nothing,
        ),
        op(
            r#"mutation($id: ID!, $n: String!) { updateToken(id: $id, input: {description: $n}) { id } }"#,
            &["tokens.update"],
            Target::Token,
        ),
        op(
            "mutation($id: ID!) { deleteToken(id: $id) }",
            &["tokens.delete"],
            Target::Token,
        ),
        op(
            "mutation($id: ID!) { regenerateToken(id: $id) { token } }",
            &["tokens.regenerate"],
            Target::Token,
        ),
        op(
            "mutation($id: ID!) { duplicateToken(id: $id) { token } }",
            &["tokens.create"],
            Target::Token,
        ),
        op(
            "mutation($id: ID!) { disableToken(id: $id) { status } }",
            &["tokens.update"],
            Target::Token,
        ),
        op(
            "mutation($id: ID!) { enableToken(id: $id) { status } }",
            &["tokens.update"],
            Target::Token,
        ),
        Operation {
            allowed_error: Some("validation_failed"),
            ..op(
                "mutation($id: ID!) { upgradeTokenVersion(id: $id) { apiVersion } }",
                &["tokens.update"],
                Target::Token,
            )
        },
        op(
            r#"mutation($n: String!) { createResource(input: {name: $n, actions: [{name: "find", kind: READ}]}) { name } }"#,
            &["resources.manage"],
            Target::Nothing,
        ),
        op(
            r#"mutation($name: String!) { updateResource(name: $name, input: {description: "edited"}) { name } }"#,
            &["resources.manage"],
            Target::Resource,
        ),
        op(
            "mutation($name: String!) { deleteResource(name: $name) }",
            &["resources.manage"],
            Target::Resource,
        ),
        op(
            r#"mutation($n: String!) { createProject(input: {slug: $n, name: $n}) { slug } }"#,
            &["projects.manage"],
            Target::Nothing,
        ),
        op(
            "mutation($name: String!) { deleteProject(slug: $name) }",
            &["projects.manage"],
            Target::Project,
        ),
        op(
            r#"mutation($email: String!) { createUser(input: {email: $email, role: "viewer"}) { id } }"#,
            &["users.manage"],
            Target::Nothing,
        ),
        op(
            r#"mutation($id: ID!) { updateUser(id: $id, input: {name: "Edited"}) { id } }"#,
            &["users.manage"],
            Target::User,
        ),
        op(
            "mutation($id: ID!) { deleteUser(id: $id) }",
            &["users.manage"],
            Target::User,
        ),
        op(
            "mutation($id: ID!, $token: ID!) { revokeUserToken(userId: $id, tokenId: $token) }",
            &["users.manage"],
            Target::UserToken,
        ),
        op(
            r#"mutation($n: String!) { createRole(input: {name: $n, permissions: [TOKENS_READ]}) { id } }"#,
            &["roles.manage"],
            Target::Nothing,
        ),
        op(
            r#"mutation($name: ID!) { updateRole(id: $name, input: {description: "edited"}) { id } }"#,
            &["roles.manage"],
            Target::Role,
        ),
        op(
            "mutation($name: ID!) { deleteRole(id: $name) }",
            &["roles.manage"],
            Target::Role,
        ),
        Operation {
            session_only: true,
            ..op(
                r#"mutation($n: String!) { createPersonalToken(input: {name: $n, access: READ_ONLY, lifespan: DAYS_7}) { token } }"#,
                &[],
                Target::Nothing,
            )
        },
        Operation {
            session_only: true,
            ..op(
                "mutation($id: ID!) { deletePersonalToken(id: $id) }",
                &[],
                Target::MyToken,
            )
        },
        Operation {
            session_only: true,
            ..op(
                "mutation($id: ID!) { regeneratePersonalToken(id: $id) { token } }",
                &[],
                Target::MyToken,
            )
        },
    ]
}

/// Who calls.
struct Caller {
    label: String,
    permissions: BTreeSet<&'static str>,
    admin: Option<Admin>,
    personal: Option<String>,
    /// The user the caller is (for their own personal tokens).
    user_id: String,
}

impl Caller {
    async fn send(&self, server: &TestServer, query: &str, variables: Value) -> Resp {
        match (&self.admin, &self.personal) {
            (_, Some(token)) => as_bearer(server, token, query, variables).await,
            (Some(admin), None) => as_admin(admin, query, variables).await,
            (None, None) => unreachable!("a caller is a session or a personal token"),
        }
    }
}

/// Makes the operation's target as the super-admin and answers its variables.
async fn prepare(
    server: &TestServer,
    root: &Admin,
    caller: &Caller,
    target: Target,
    n: usize,
) -> Value {
    let unique = format!("gql-{n}");
    match target {
        Target::Nothing => json!({ "n": unique, "email": format!("{unique}@example.com") }),
        Target::Token => {
            let (id, _) = root.token(&unique).await;
            json!({ "id": id, "n": unique })
        }
        Target::Resource => {
            root.post(
                "/v1/resources",
                json!({"name": unique, "actions": [{"name": "find", "kind": "read"}]}),
            )
            .await
            .expect(201);
            json!({ "name": unique })
        }
        Target::Project => {
            root.post("/v1/projects", json!({"slug": unique, "name": unique}))
                .await
                .expect(201);
            json!({ "name": unique })
        }
        Target::User | Target::UserToken => {
            let user = root
                .post(
                    "/v1/users",
                    json!({"email": format!("{unique}@example.com"), "role": "viewer"}),
                )
                .await;
            user.expect(201);
            let id = user.id();
            if target == Target::User {
                return json!({ "id": id });
            }
            // A personal token of theirs, made through the application as its owner.
            let token = personal_token_of(server, &id, &unique).await;
            json!({ "id": id, "token": token })
        }
        Target::Role => {
            root.post(
                "/v1/roles",
                json!({"name": unique, "permissions": ["tokens.read"]}),
            )
            .await
            .expect(201);
            json!({ "name": unique })
        }
        Target::MyToken => {
            let id = personal_token_of(server, &caller.user_id, &unique).await;
            json!({ "id": id })
        }
    }
}

#[tokio::test]
async fn every_query_and_mutation_enforces_the_rest_permission() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    let mut callers = Vec::new();
    // The built-in roles and what they hold: the REST table's own list.
    for (label, permissions) in crate::permissions::roles() {
        let admin = server.admin(label).await;
        callers.push(Caller {
            label: label.to_owned(),
            permissions,
            user_id: admin.id.clone(),
            admin: Some(admin),
            personal: None,
        });
    }
    let (_, read_only) = root.personal_token("gql read-only", "read-only").await;
    callers.push(Caller {
        label: "read-only personal token of a super-admin".into(),
        permissions: ["tokens.read", "audit.read"].into_iter().collect(),
        user_id: root.id.clone(),
        admin: None,
        personal: Some(read_only),
    });

    let mut n = 0;
    let mut denials = 0;
    for operation in operations() {
        for caller in &callers {
            n += 1;
            let variables = prepare(&server, &root, caller, operation.target, n).await;
            let response = caller.send(&server, operation.document, variables).await;
            let allowed = (operation.needs.is_empty()
                || operation
                    .needs
                    .iter()
                    .any(|need| caller.permissions.contains(need)))
                && !(operation.session_only && caller.personal.is_some());
            let label = format!("{} as {}", operation.document, caller.label);
            let codes = codes(&response);
            if allowed {
                match operation.allowed_error {
                    Some(expected) => assert!(
                        codes.is_empty() || codes == [expected],
                        "{label}: allowed, got {}",
                        response.text
                    ),
                    None => assert!(codes.is_empty(), "{label}: allowed, got {}", response.text),
                }
                assert!(
                    response.body["data"].is_object() || !codes.is_empty(),
                    "{label}: data: {}",
                    response.text
                );
            } else {
                denials += 1;
                assert_eq!(codes, ["forbidden"], "{label}: {}", response.text);
                assert!(
                    response.body["data"].is_null(),
                    "{label}: a refused field answers no data: {}",
                    response.text
                );
            }
        }
    }
    assert!(denials > 40, "the table denies something: {denials}");
}
