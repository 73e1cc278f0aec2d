//! The admin console over plain HTTP: redirects, sign-in and first run, security
//! headers on every page, no inline script or style, cacheable assets, and the page
//! that reveals a secret.

use reqwest::Method;
use reqwest::redirect::Policy;

use crate::harness::{PASSWORD, Resp, TestServer};

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, server: &TestServer, path: &str, cookie: &str) -> Resp {
    let mut request = client.get(server.url(path));
    if !cookie.is_empty() {
        request = request.header("cookie", cookie);
    }
    Resp::read(request.send().await.unwrap()).await
}

async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> Resp {
    let mut request = client.post(server.url(path)).form(form);
    if !cookie.is_empty() {
        request = request.header("cookie", cookie);
    }
    Resp::read(request.send().await.unwrap()).await
}

/// The secret a page shows in its banner.
#[track_caller]
fn secret_on(page: &Resp) -> String {
    page.text
        .split("id=\"secret-value\"")
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no secret on the page: {}", page.text))
        .to_owned()
}

fn location(resp: &Resp) -> &str {
    resp.header("location").unwrap_or_default()
}

#[tokio::test]
async fn anonymous_visits_go_to_first_run_then_to_sign_in() {
    let server = TestServer::start().await;
    let client = browser();
    let root = get(&client, &server, "/", "").await;
    assert_eq!((root.status, location(&root)), (303, "/admin"));
    let admin = get(&client, &server, "/admin", "").await;
    assert_eq!(location(&admin), "/admin/tokens");
    let tokens = get(&client, &server, "/admin/tokens?status=active", "").await;
    assert_eq!(tokens.status, 303);
    assert_eq!(
        location(&tokens),
        "/admin/login?next=%2Fadmin%2Ftokens%3Fstatus%3Dactive"
    );
    // No administrator yet: sign-in sends to the first-run page.
    let login = get(&client, &server, "/admin/login", "").await;
    assert_eq!(location(&login), "/admin/setup");
    let setup = get(&client, &server, "/admin/setup", "").await;
    setup.expect(200);
    assert!(setup.text.contains("name=\"setup_code\""));
    let wrong = post(
        &client,
        &server,
        "/admin/setup",
        "",
        &[
            ("setup_code", "AAAA-BBBB-CCCC-DDDD"),
            ("email", "first@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    wrong.expect(422);
    assert!(
        wrong.text.contains("first@example.com"),
        "what was typed stays"
    );
    let blank = post(
        &client,
        &server,
        "/admin/setup",
        "",
        &[
            ("setup_code", ""),
            ("email", "first@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    blank.expect(422);
    assert!(
        blank.text.contains("enter the setup code"),
        "{}",
        blank.text
    );
    assert!(!wrong.text.contains(PASSWORD), "never the password");
    let registered = post(
        &client,
        &server,
        "/admin/setup",
        "",
        &[
            ("setup_code", server.armed_code()),
            ("email", "first@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(
        (registered.status, location(&registered)),
        (303, "/admin/tokens")
    );
    let cookie = registered
        .header("set-cookie")
        .unwrap()
        .to_ascii_lowercase();
    assert!(cookie.contains("httponly") && cookie.contains("samesite=strict"));
    // Once an admin exists, first run is over.
    let again = get(&client, &server, "/admin/setup", "").await;
    assert_eq!(location(&again), "/admin/login");
    let login = get(&client, &server, "/admin/login", "").await;
    login.expect(200);
}

#[tokio::test]
async fn sign_in_returns_to_the_page_asked_for_and_refuses_open_redirects() {
    let server = TestServer::start().await;
    let email = server.create_admin("super-admin").await;
    let client = browser();
    let signed = post(
        &client,
        &server,
        "/admin/login",
        "",
        &[
            ("email", &email),
            ("password", PASSWORD),
            ("next", "/admin/audit?action=x"),
        ],
    )
    .await;
    assert_eq!(location(&signed), "/admin/audit?action=x");
    for evil in [
        "https://evil.example/",
        "//evil.example/admin",
        "/admin\\\\evil.example",
    ] {
        let signed = post(
            &client,
            &server,
            "/admin/login",
            "",
            &[("email", &email), ("password", PASSWORD), ("next", evil)],
        )
        .await;
        assert_eq!(location(&signed), "/admin/tokens", "{evil}");
    }
    // A wrong password keeps the email and says so, never which part was wrong.
    let failed = post(
        &client,
        &server,
        "/admin/login",
        "",
        &[("email", &email), ("password", "not the password")],
    )
    .await;
    failed.expect(401);
    assert!(failed.text.contains("Wrong email or password") && failed.text.contains(&email));
    // A session that no longer exists is sent back to sign in.
    let stale = get(&client, &server, "/admin/users", "tessera_session=gone").await;
    assert_eq!(location(&stale), "/admin/login?next=%2Fadmin%2Fusers");
    // Repeated failures are throttled, on the page.
    let mut last = failed;
    for _ in 0..6 {
        last = post(
            &client,
            &server,
            "/admin/login",
            "",
            &[("email", &email), ("password", "not the password")],
        )
        .await;
    }
    last.expect(429);
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_inline_code() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let (id, _) = admin.token("header check").await;
    let client = browser();
    let cookie = format!("tessera_session={}", admin.session);
    let pages = [
        "/admin/tokens".to_owned(),
        "/admin/tokens/new".to_owned(),
        format!("/admin/tokens/{id}"),
        "/admin/resources".to_owned(),
        "/admin/projects".to_owned(),
        "/admin/users".to_owned(),
        "/admin/roles".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/profile".to_owned(),
    ];
    let mut assets = std::collections::BTreeSet::new();
    for page in &pages {
        let resp = get(&client, &server, page, &cookie).await;
        resp.expect(200);
        let csp = resp.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(resp.header("x-frame-options"), Some("DENY"));
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let html = resp.text.to_ascii_lowercase();
        assert!(!html.contains("<script>"), "{page} has an inline script");
        assert!(!html.contains(" style="), "{page} has an inline style");
        assert!(!html.contains("<style"), "{page} has a style element");
        assert!(
            !html.contains(" onclick=") && !html.contains(" onsubmit="),
            "{page}"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page} loads from elsewhere"
        );
        for piece in resp.text.split("\"/admin/assets/").skip(1) {
            assets.insert(format!(
                "/admin/assets/{}",
                piece.split('"').next().unwrap()
            ));
        }
        // Every form that posts carries the CSRF token.
        let forms = html.matches("method=\"post\"").count();
        let csrf = html.matches("name=\"csrf\"").count();
        assert!(csrf >= forms, "{page}: {forms} forms, {csrf} CSRF fields");
    }
    assert_eq!(assets.len(), 3, "{assets:?}");
    for asset in &assets {
        let resp = get(&client, &server, asset, "").await;
        resp.expect(200);
        assert_eq!(
            resp.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let stale = asset.replacen("/admin/assets/", "/admin/assets/0000", 1);
        get(&client, &server, &stale, "").await.expect(404);
    }
}

#[tokio::test]
async fn the_secret_is_on_the_one_page_that_created_it() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let client = browser();
    let cookie = format!("tessera_session={}", admin.session);
    let created = post(
        &client,
        &server,
        "/admin/tokens",
        &cookie,
        &[
            ("csrf", &admin.csrf),
            ("name", "shown once"),
            ("type", "read-only"),
            ("duration", "7d"),
        ],
    )
    .await;
    created.expect(200);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    assert!(created.header("location").is_none() && created.header("set-cookie").is_none());
    let secret = secret_on(&created);
    assert_eq!(server.code(&secret, None, None).await, "valid");
    let id = created
        .text
        .split("data-replace-url=\"/admin/tokens/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page replaces its URL with the token's")
        .to_owned();
    let later = get(&client, &server, &format!("/admin/tokens/{id}"), &cookie).await;
    later.expect(200);
    assert!(!later.text.contains(&secret) && !later.text.contains("secret-value"));
    let list = get(&client, &server, "/admin/tokens", &cookie).await;
    assert!(!list.text.contains(&secret));
    // A bad form comes back with its errors, the typed values, and no token.
    let invalid = post(
        &client,
        &server,
        "/admin/tokens",
        &cookie,
        &[
            ("csrf", &admin.csrf),
            ("name", ""),
            ("description", "typed <b>text</b>"),
            ("type", "custom"),
            ("duration", "7d"),
            ("rate_requests", "many"),
        ],
    )
    .await;
    invalid.expect(422);
    let kept = invalid
        .text
        .split("name=\"description\"")
        .nth(1)
        .and_then(|rest| rest.split("</textarea>").next())
        .unwrap_or_default();
    assert!(
        kept.contains("typed &#60;b&#62;text&#60;/b&#62;")
            || kept.contains("typed &lt;b&gt;text&lt;/b&gt;"),
        "kept, escaped: {kept}"
    );
    assert!(invalid.text.contains("id=\"rate-requests-error\""));
    let listed = admin.get("/v1/tokens").await;
    assert_eq!(listed.body["total"], 1);
}

#[tokio::test]
async fn the_console_follows_the_language_asked_for() {
    let server = TestServer::start().await;
    server.create_admin("super-admin").await;
    let client = browser();
    let japanese = Resp::read(
        client
            .get(server.url("/admin/login"))
            .header("accept-language", "ja,en;q=0.5")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(japanese.text.contains("<html lang=\"ja\">") && japanese.text.contains("サインイン"));
    let switch = get(&client, &server, "/admin/lang/en?next=%2Fadmin%2Flogin", "").await;
    assert_eq!(location(&switch), "/admin/login");
    let cookie = switch.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("tessera_lang=en"), "{cookie}");
    let english = Resp::read(
        client
            .get(server.url("/admin/login"))
            .header("accept-language", "ja")
            .header("cookie", "tessera_lang=en")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(english.text.contains("<html lang=\"en\">") && english.text.contains("Sign in"));
    let away = get(
        &client,
        &server,
        "/admin/lang/ja?next=https%3A%2F%2Fevil.example",
        "",
    )
    .await;
    assert_eq!(location(&away), "/admin/tokens");
    let _ = server.anon(Method::GET, "/healthz", None).await;
}

/// A role that may create tokens but not read them still sees the secret it made: the
/// rest of the token's page (which needs `tokens.read`) is left out, never the secret.
#[tokio::test]
async fn a_new_secret_reaches_its_reader_even_when_the_rest_of_the_page_cannot() {
    let server = TestServer::start().await;
    let root = server.admin("super-admin").await;
    root.post(
        "/v1/roles",
        serde_json::json!({"name": "minter", "permissions": ["tokens.create"]}),
    )
    .await
    .expect(201);
    let minter = server.admin("minter").await;
    let client = browser();
    let created = post(
        &client,
        &server,
        "/admin/tokens",
        &format!("tessera_session={}", minter.session),
        &[
            ("csrf", &minter.csrf),
            ("name", "minted"),
            ("type", "read-only"),
            ("duration", "7d"),
        ],
    )
    .await;
    created.expect(200);
    let secret = secret_on(&created);
    assert_eq!(server.code(&secret, None, None).await, "valid");
}

/// Saving the edit page sends only what the editor changed: a rate limit set through
/// the API after the page was loaded survives a save that changed the description.
#[tokio::test]
async fn an_edit_composes_with_a_change_made_meanwhile() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let (id, _) = admin.token("shared").await;
    let client = browser();
    let cookie = format!("tessera_session={}", admin.session);
    let page = get(&client, &server, &format!("/admin/tokens/{id}"), &cookie).await;
    page.expect(200);
    // The page as loaded: every hidden `was_*` field and the visible values.
    let hidden: Vec<(String, String)> = page
        .text
        .split("<input type=\"hidden\" name=\"was_")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').next().unwrap().to_owned();
            let value = rest
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (format!("was_{name}"), value.to_owned())
        })
        .collect();
    assert!(
        hidden
            .iter()
            .any(|(name, value)| name == "was_name" && value == "shared")
    );
    admin
        .patch(
            &format!("/v1/tokens/{id}"),
            serde_json::json!({"rate_limit": {"requests": 5, "per_seconds": 60}}),
        )
        .await
        .expect(200);
    let mut form: Vec<(String, String)> = hidden.clone();
    for (field, value) in [
        ("csrf", admin.csrf.as_str()),
        ("name", "shared"),
        ("description", "now described"),
        ("duration", "keep"),
        ("type", "read-only"),
        ("project", ""),
        ("rate_requests", ""),
        ("rate_seconds", ""),
    ] {
        form.push((field.to_owned(), value.to_owned()));
    }
    for (name, value) in &hidden {
        if name == "was_expires_on" {
            form.push(("expires_on".into(), value.clone()));
        }
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let saved = post(
        &client,
        &server,
        &format!("/admin/tokens/{id}"),
        &cookie,
        &pairs,
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    let token = admin.get(&format!("/v1/tokens/{id}")).await;
    assert_eq!(token.body["description"], "now described");
    assert_eq!(
        token.body["rate_limit"],
        serde_json::json!({"requests": 5, "per_seconds": 60}),
        "the change made meanwhile stays"
    );
}

/// A form that comes back with errors is shown under its section's address, so reload
/// or the language switch land on a page rather than on the post's URL.
#[tokio::test]
async fn a_refused_form_comes_back_under_its_sections_address() {
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let client = browser();
    let cookie = format!("tessera_session={}", admin.session);
    let refused = post(
        &client,
        &server,
        "/admin/projects",
        &cookie,
        &[("csrf", &admin.csrf), ("slug", "Not A Slug"), ("name", "x")],
    )
    .await;
    refused.expect(422);
    assert!(
        refused
            .text
            .contains("data-replace-url=\"/admin/projects\"")
    );
    assert!(
        refused.text.contains("value=\"Not A Slug\""),
        "what was typed stays"
    );
    let unknown_access = post(
        &client,
        &server,
        "/admin/profile/tokens",
        &cookie,
        &[
            ("csrf", &admin.csrf),
            ("name", "laptop"),
            ("access", "root"),
            ("lifespan", "30d"),
        ],
    )
    .await;
    unknown_access.expect(422);
    assert!(
        unknown_access
            .text
            .contains("data-replace-url=\"/admin/profile\"")
    );
    let mine = admin.get("/v1/me/tokens").await;
    assert_eq!(
        mine.body.as_array().map(Vec::len),
        Some(0),
        "no token from a bad form"
    );
    let (id, _) = admin.token("graced").await;
    let bad_grace = post(
        &client,
        &server,
        &format!("/admin/tokens/{id}/regenerate"),
        &cookie,
        &[("csrf", &admin.csrf), ("grace_period_seconds", "an hour")],
    )
    .await;
    bad_grace.expect(422);
    let bad_days = get(
        &client,
        &server,
        &format!("/admin/tokens/{id}?days=abc"),
        &cookie,
    )
    .await;
    bad_days.expect(422);
}

/// A signed-in admin following a link from another site is not asked to sign in again:
/// the sign-in page reloads itself from this site, which sends the SameSite=Strict
/// session cookie.
#[tokio::test]
async fn a_link_from_another_site_reloads_sign_in_from_here() {
    let server = TestServer::start().await;
    server.create_admin("super-admin").await;
    let client = browser();
    let arrived = Resp::read(
        client
            .get(server.url("/admin/login?next=%2Fadmin%2Faudit"))
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap(),
    )
    .await;
    arrived.expect(200);
    assert!(
        arrived.text.contains(
            "http-equiv=\"refresh\" content=\"0;url=/admin/login?next=%2Fadmin%2Faudit\""
        ),
        "{}",
        arrived.text
    );
    let here = Resp::read(
        client
            .get(server.url("/admin/login?next=%2Fadmin%2Faudit"))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        here.text.contains("name=\"password\""),
        "no loop from this site"
    );
}
