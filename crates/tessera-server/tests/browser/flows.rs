//! The flows of issue "Admin panel in the browser": a token's whole life, what a viewer
//! may do, and the Japanese console.

use serde_json::json;

use crate::driver::{Browser, Options, chromedriver};
use crate::harness::{PASSWORD, TestServer};

/// Signs in through the login page and lands on `next`.
pub(crate) async fn sign_in(browser: &Browser, email: &str) {
    browser.goto("/admin").await;
    assert!(
        browser.path().await.starts_with("/admin/login"),
        "an anonymous visit goes to sign-in, not {}",
        browser.path().await
    );
    browser.fill("#email", email).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit].primary").await;
    browser.find("h1").await;
}

/// The id in a `/admin/tokens/<id>` path.
fn token_id(path: &str) -> String {
    path.trim_start_matches("/admin/tokens/")
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_token_lives_its_whole_life_in_the_console() {
    let Some(chromedriver) = chromedriver("a_token_lives_its_whole_life_in_the_console") else {
        return;
    };
    let server = TestServer::start().await;
    let code = server
        .setup_code
        .clone()
        .expect("a fresh server arms a setup code");
    let browser = Browser::start(&chromedriver, &server.base, Options::default()).await;

    // First start: the setup code, then the first administrator, signed in at once.
    browser.goto("/").await;
    browser.find("#setup_code").await;
    assert_eq!(browser.path().await, "/admin/setup");
    browser.fill("#setup_code", "AAAA-BBBB-CCCC-DDDD").await;
    browser.fill("#email", "first@example.com").await;
    browser.fill("#name", "First Admin").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit].primary").await;
    browser.find("#setup-code-error").await;
    assert_eq!(
        browser.value("#email").await,
        "first@example.com",
        "what was typed stays"
    );
    browser.fill("#setup_code", &code.to_lowercase()).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit].primary").await;
    browser.wait_for_text("h1", "API tokens").await;
    assert!(
        browser.body().await.contains("First Admin"),
        "signed in as the new admin"
    );
    browser.goto("/admin/setup").await;
    assert!(
        browser.path().await.starts_with("/admin/tokens"),
        "the setup page is gone once an admin exists"
    );
    let admin = server.login("first@example.com").await;

    // Describe the protected API: a resource with its actions, and a project.
    browser
        .click("nav.sidebar a[href='/admin/resources']")
        .await;
    browser.fill("#resource-name", "article").await;
    browser.fill("#resource-description", "Blog articles").await;
    browser.fill("#resource-read", "find, findOne").await;
    browser
        .fill("#resource-write", "create, update, delete")
        .await;
    browser.click("#create-resource").await;
    browser
        .wait_for_text("section[data-resource=article]", "article")
        .await;
    assert_eq!(
        browser.value("#write-article").await,
        "create, update, delete"
    );
    browser.goto("/admin/projects").await;
    browser.fill("#project-slug", "shop").await;
    browser.fill("#project-name", "Shop").await;
    browser
        .click("form[action='/admin/projects'] button[type=submit]")
        .await;
    browser.wait_for_text("tr[data-project=shop]", "Shop").await;

    // A personal token from the profile: shown once, acts as its owner.
    browser.click("a.me").await;
    browser.fill("#personal-name", "laptop").await;
    browser.click("#create-personal").await;
    let personal = browser.value("#secret-value").await;
    assert!(personal.starts_with("tsrp_"), "{personal}");
    assert_eq!(browser.path().await, "/admin/profile");
    let me = server
        .bearer(&personal, reqwest::Method::GET, "/v1/auth/me", None)
        .await;
    me.expect(200);
    browser.client.refresh().await.unwrap();
    browser
        .wait_for_text("tr[data-token=laptop]", "laptop")
        .await;
    assert!(!browser.client.source().await.unwrap().contains(&personal));

    // Sign out; a visit without a session goes to sign-in, then to the page asked for.
    browser.click("nav.sidebar form button").await;
    browser.find("#email").await;
    browser.goto("/admin/tokens?status=active").await;
    let login = browser.path().await;
    assert!(login.starts_with("/admin/login?next="), "{login}");
    browser.fill("#email", &admin.email).await;
    browser.fill("#password", "wrong password!").await;
    browser.click("button[type=submit].primary").await;
    browser
        .wait_for_text("#login-error", "Wrong email or password")
        .await;
    assert_eq!(
        browser.value("#email").await,
        admin.email,
        "the email is kept"
    );
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit].primary").await;
    browser.find("h1").await;
    assert_eq!(browser.path().await, "/admin/tokens?status=active");

    // The empty state explains tokens and offers the primary action.
    browser.goto("/admin/tokens").await;
    browser.wait_for_text(".empty", "API token").await;
    browser.click("#create-token").await;

    // A custom token from the matrix; a missing name comes back with what was typed.
    browser.find("#name").await;
    browser.fill("#description", "Deploys the blog").await;
    browser.click("#type-custom").await;
    browser.click("input[data-select-resource=article]").await;
    browser
        .click("input[name=permissions][value='article.delete']")
        .await;
    browser.click("#duration-90d").await;
    browser.select("#project", "shop").await;
    browser.resize(1440, 1500).await;
    browser.screenshot("create-form").await;
    browser.resize(1440, 1000).await;
    browser.click("#save").await;
    browser.wait_for_text("#name-error", "").await;
    assert!(browser.exists("#name-error").await, "the name is required");
    assert_eq!(browser.value("#description").await, "Deploys the blog");
    assert!(
        browser
            .find("input[value='article.create']")
            .await
            .is_selected()
            .await
            .unwrap()
    );
    assert!(
        !browser
            .find("input[value='article.delete']")
            .await
            .is_selected()
            .await
            .unwrap()
    );
    browser.fill("#name", "CI deploy").await;
    browser.click("#save").await;

    // The secret, once, with a copy button and the warning.
    let secret = browser.value("#secret-value").await;
    assert!(secret.starts_with("tsr_") && secret.len() == 50, "{secret}");
    browser
        .wait_for_text(".secret", "will not be shown again")
        .await;
    browser.click("[data-copy]").await;
    browser.wait_for_text("[data-copy]", "Copied").await;
    browser.screenshot("secret-banner").await;
    let path = browser.path().await;
    assert!(
        path.starts_with("/admin/tokens/") && !path.contains(&secret),
        "the page took the token's own URL: {path}"
    );
    let id = token_id(&path);
    assert_eq!(
        server
            .code(&secret, Some("article.create"), Some("shop"))
            .await,
        "valid"
    );
    assert_eq!(
        server
            .code(&secret, Some("article.delete"), Some("shop"))
            .await,
        "forbidden"
    );

    // Reload and back never show it again.
    browser.client.refresh().await.unwrap();
    browser.find("h1").await;
    assert!(!browser.exists("#secret-value").await);
    assert!(!browser.client.source().await.unwrap().contains(&secret));
    browser.client.back().await.unwrap();
    browser.find("h1").await;
    assert!(!browser.client.source().await.unwrap().contains(&secret));

    // More tokens to filter: one disabled, one read-only.
    let (other_id, _) = admin.token("dashboard reader").await;
    admin
        .post(&format!("/v1/tokens/{other_id}/disable"), json!({}))
        .await
        .expect(200);
    admin.token("nightly export").await;

    browser.goto("/admin/tokens").await;
    assert_eq!(browser.count("tbody tr").await, 3);
    browser.fill("#q", "deploy").await;
    browser.click(".filters button[type=submit]").await;
    browser.wait_for_text("#token-count", "1").await;
    assert!(
        browser.path().await.contains("q=deploy"),
        "filters are kept in the URL"
    );
    assert_eq!(browser.count("tbody tr").await, 1);
    browser.select("#status", "disabled").await;
    browser.wait_for_text("#no-match", "No token").await;
    browser.click("#clear-filters").await;
    browser.find("#token-count").await;
    assert_eq!(browser.path().await, "/admin/tokens");
    assert_eq!(browser.count("tbody tr").await, 3);
    browser.select("#status", "disabled").await;
    browser.wait_for_text("tbody", "dashboard reader").await;
    assert_eq!(browser.count("tbody tr").await, 1);
    browser.select("#created", "older-than-30-days").await;
    browser.wait_for_text("#no-match", "No token").await;
    browser
        .goto("/admin/tokens?created=last-7-days&sort=name")
        .await;
    let names = browser
        .script("return [...document.querySelectorAll('tbody tr')].map(r => r.dataset.token)")
        .await;
    assert_eq!(
        names,
        json!(["CI deploy", "dashboard reader", "nightly export"])
    );
    browser.screenshot("tokens-light").await;

    // Edit and save: the page says so, and only what changed is written.
    browser.goto(&format!("/admin/tokens/{id}")).await;
    browser
        .fill("#description", "Deploys the blog and the shop")
        .await;
    browser.click("#save").await;
    browser.wait_for_text("#notice", "Saved").await;
    let saved = admin.get(&format!("/v1/tokens/{id}")).await;
    assert_eq!(saved.body["description"], "Deploys the blog and the shop");
    assert_eq!(saved.body["permissions"].as_array().map(Vec::len), Some(4));
    assert_eq!(saved.body["project"], "shop");

    // Usage shows up in the chart.
    for _ in 0..3 {
        server
            .code(&secret, Some("article.find"), Some("shop"))
            .await;
    }
    server
        .code(&secret, Some("article.delete"), Some("shop"))
        .await;
    server.app.flush_usage().await.unwrap();

    // Regenerate behind its dialog: the old secret stops, the new one works.
    browser.goto(&format!("/admin/tokens/{id}")).await;
    // Two checks above, three finds and one refused delete here.
    browser
        .wait_for_text("#usage-summary", "4 allowed and 2 denied")
        .await;
    browser.resize(1440, 2200).await;
    browser.screenshot("token-light").await;
    browser.resize(1440, 1000).await;
    browser.click("#regenerate").await;
    browser
        .wait_for_text("#regenerate-dialog", "Regenerate")
        .await;
    let focused = browser
        .script("return document.activeElement.textContent.trim()")
        .await;
    assert_eq!(focused, json!("Cancel"), "Cancel is focused first");
    // Keyboard only: Tab stays inside the modal dialog, Escape closes it.
    let active = browser.client.active_element().await.unwrap();
    active
        .send_keys(&fantoccini::key::Key::Tab.to_string())
        .await
        .unwrap();
    let inside = browser
        .script(
            "return document.getElementById('regenerate-dialog').contains(document.activeElement)",
        )
        .await;
    assert_eq!(inside, json!(true), "focus stays in the dialog");
    let active = browser.client.active_element().await.unwrap();
    active
        .send_keys(&fantoccini::key::Key::Escape.to_string())
        .await
        .unwrap();
    let open = browser
        .script("return document.getElementById('regenerate-dialog').open")
        .await;
    assert_eq!(open, json!(false), "Escape closes the dialog");
    assert_eq!(
        server.code(&secret, None, Some("shop")).await,
        "valid",
        "nothing happened"
    );
    browser.click("#regenerate").await;
    browser.click("#confirm-regenerate").await;
    let regenerated = browser.value("#secret-value").await;
    assert_ne!(regenerated, secret);
    assert_eq!(server.code(&secret, None, Some("shop")).await, "not_found");
    assert_eq!(
        server
            .code(&regenerated, Some("article.find"), Some("shop"))
            .await,
        "valid"
    );

    // Duplicate, from the page: a new token with its own secret.
    browser.goto(&format!("/admin/tokens/{id}")).await;
    browser.click("#duplicate").await;
    let duplicate = browser.value("#secret-value").await;
    assert_ne!(duplicate, regenerated);
    assert!(browser.text("h1").await.contains("CI deploy (copy)"));
    assert_eq!(
        server
            .code(&duplicate, Some("article.create"), Some("shop"))
            .await,
        "valid"
    );

    // Disable, enable, from the table's menu.
    browser.goto("/admin/tokens?q=deploy&sort=name").await;
    browser.click("tr[data-token='CI deploy'] summary").await;
    browser
        .click("tr[data-token='CI deploy'] [data-action=disable]")
        .await;
    browser
        .wait_for_text("tr[data-token='CI deploy']", "Disabled")
        .await;
    assert!(
        browser.path().await.contains("q=deploy"),
        "back to the same view"
    );
    assert_eq!(
        server.code(&regenerated, None, Some("shop")).await,
        "disabled"
    );
    browser.click("tr[data-token='CI deploy'] summary").await;
    browser
        .click("tr[data-token='CI deploy'] [data-action=enable]")
        .await;
    browser
        .wait_for_text("tr[data-token='CI deploy']", "Active")
        .await;
    assert_eq!(server.code(&regenerated, None, Some("shop")).await, "valid");

    // Delete, confirmed in a dialog that names the token. The open menu is whole on
    // screen, not clipped by the table's frame.
    browser.click("tr[data-token='CI deploy'] summary").await;
    // Looked at until it holds (up to 5 s): right after the click the page may still be
    // settling (the enable's reload, its notice); a clipped menu never holds.
    let mut visible = json!(false);
    for _ in 0..50 {
        visible = browser
            .script(
                "const item = document.querySelector(\"tr[data-token='CI deploy'] [data-action=delete]\");
                 if (!item) return false;
                 const box = item.getBoundingClientRect();
                 return document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2) === item",
            )
            .await;
        if visible == json!(true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        visible,
        json!(true),
        "the menu's last item can be seen and clicked"
    );
    browser
        .click("tr[data-token='CI deploy'] [data-action=delete]")
        .await;
    browser.wait_for_text("#delete-dialog", "CI deploy").await;
    browser.click("#confirm-delete").await;
    browser.wait_for_text(".alert", "deleted").await;
    assert_eq!(
        server.code(&regenerated, None, Some("shop")).await,
        "not_found"
    );
    assert!(!browser.exists("tr[data-token='CI deploy']").await);

    // Narrow screens keep the table usable.
    browser.resize(360, 780).await;
    browser.goto("/admin/tokens").await;
    browser.find("table").await;
    browser.screenshot("tokens-mobile").await;
    let overflow = browser
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    let wide = browser
        .script(
            "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !e.closest('.table-wrap')).map(e => e.tagName + '.' + e.className).slice(0, 8)",
        )
        .await;
    assert_eq!(
        overflow,
        json!(true),
        "the page itself never scrolls sideways: {wide}"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_sees_a_read_only_console_and_forged_posts_are_refused() {
    let Some(chromedriver) =
        chromedriver("a_viewer_sees_a_read_only_console_and_forged_posts_are_refused")
    else {
        return;
    };
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    let (id, secret) = admin.token("read me").await;
    let viewer = server.create_admin("viewer").await;
    let browser = Browser::start(&chromedriver, &server.base, Options::default()).await;
    sign_in(&browser, &viewer).await;
    browser.wait_for_text("tbody", "read me").await;
    assert!(!browser.exists("#create-token").await, "no create button");
    assert!(!browser.exists("details.menu").await, "no per-token menu");
    for hidden in ["Users", "Roles", "Audit log"] {
        assert!(
            !browser.text("nav.sidebar").await.contains(hidden),
            "{hidden} is not offered to a viewer"
        );
    }
    browser.goto(&format!("/admin/tokens/{id}")).await;
    browser.find("h1").await;
    for control in ["#regenerate", "#duplicate", "#disable", "#delete", "#save"] {
        assert!(!browser.exists(control).await, "{control} is not offered");
    }
    let disabled = browser
        .script("return document.querySelector('fieldset.plain').disabled")
        .await;
    assert_eq!(disabled, json!(true), "the form is read-only");

    // A forged post with the viewer's own session and CSRF token is refused all the same.
    let csrf = browser.value("input[name=csrf]").await;
    let cookie = browser
        .client
        .get_named_cookie("tessera_session")
        .await
        .expect("session cookie");
    let http = reqwest::Client::new();
    for action in ["delete", "disable", "regenerate", "duplicate"] {
        let response = http
            .post(server.url(&format!("/admin/tokens/{id}/{action}")))
            .header("cookie", format!("tessera_session={}", cookie.value()))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{action}");
    }
    // And without the CSRF token, even an admin's session cannot post.
    let response = http
        .post(server.url(&format!("/admin/tokens/{id}/delete")))
        .header("cookie", format!("tessera_session={}", admin.session))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // From another site, even with the right token.
    let response = http
        .post(server.url(&format!("/admin/tokens/{id}/delete")))
        .header("cookie", format!("tessera_session={}", cookie.value()))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        server.code(&secret, None, None).await,
        "valid",
        "nothing changed"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_console_speaks_japanese_and_remembers_the_choice() {
    let Some(chromedriver) = chromedriver("the_console_speaks_japanese_and_remembers_the_choice")
    else {
        return;
    };
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    admin.token("本番サーバー").await;
    let browser = Browser::start(
        &chromedriver,
        &server.base,
        Options {
            dark: false,
            language: "ja-JP",
        },
    )
    .await;
    browser.goto("/admin/login").await;
    browser.wait_for_text("h1", "サインイン").await;
    browser.fill("#email", &admin.email).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit].primary").await;
    browser.wait_for_text("h1", "APIトークン").await;
    assert!(
        browser
            .text("#create-token")
            .await
            .contains("新しいAPIトークンを作成")
    );
    assert!(browser.body().await.contains("最終使用日"));
    browser.screenshot("tokens-ja").await;
    browser.click("#create-token").await;
    browser.wait_for_text("h1", "新しいAPIトークンを作成").await;
    assert!(browser.body().await.contains("トークンの期間"));
    browser.fill("#name", "日本語のトークン").await;
    browser.click("#save").await;
    browser
        .wait_for_text(".secret", "このトークンは再表示されません")
        .await;

    // Switching to English is remembered across pages.
    browser.click(".langs a[lang=en]").await;
    browser.wait_for_text("h1", "日本語のトークン").await;
    browser.goto("/admin/tokens").await;
    browser.wait_for_text("h1", "API tokens").await;
    browser.click(".langs a[lang=ja]").await;
    browser.wait_for_text("h1", "APIトークン").await;
    browser.close().await;
}

#[tokio::test]
async fn the_console_has_a_dark_theme() {
    let Some(chromedriver) = chromedriver("the_console_has_a_dark_theme") else {
        return;
    };
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.article_resource().await;
    let (id, secret) = admin.token("dashboard reader").await;
    admin.token("nightly export").await;
    for _ in 0..5 {
        server.code(&secret, Some("article.find"), None).await;
    }
    server.code(&secret, Some("article.create"), None).await;
    server.app.flush_usage().await.unwrap();
    let browser = Browser::start(
        &chromedriver,
        &server.base,
        Options {
            dark: true,
            language: "en-US",
        },
    )
    .await;
    sign_in(&browser, &admin.email).await;
    let dark = browser
        .script("return matchMedia('(prefers-color-scheme: dark)').matches")
        .await;
    assert_eq!(dark, json!(true), "the browser prefers dark");
    let background = browser
        .script("return getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(
        background,
        json!("rgb(15, 18, 24)"),
        "the dark palette applies"
    );
    browser.screenshot("tokens-dark").await;
    browser.goto(&format!("/admin/tokens/{id}")).await;
    browser
        .wait_for_text("#usage-summary", "5 allowed and 1 denied")
        .await;
    browser.resize(1440, 2200).await;
    browser.screenshot("token-dark").await;
    browser.close().await;
}

#[tokio::test]
async fn people_roles_and_the_audit_log_are_managed_in_the_console() {
    let Some(chromedriver) =
        chromedriver("people_roles_and_the_audit_log_are_managed_in_the_console")
    else {
        return;
    };
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.token("audited token").await;
    let browser = Browser::start(&chromedriver, &server.base, Options::default()).await;
    sign_in(&browser, &admin.email).await;

    // Invite a user with a role; they can sign in with the password given.
    browser.click("nav.sidebar a[href='/admin/users']").await;
    browser
        .fill("#invite-email", "new.colleague@example.com")
        .await;
    browser.fill("#invite-name", "New Colleague").await;
    browser.select("#invite-role", "token-manager").await;
    browser.fill("#invite-password", PASSWORD).await;
    browser.click("#invite button[type=submit]").await;
    browser.wait_for_text("main", "New Colleague").await;
    server.login("new.colleague@example.com").await;
    browser.screenshot("users").await;

    // A role with permission checkboxes.
    browser.click("nav.sidebar a[href='/admin/roles']").await;
    browser.fill("#role-name", "auditor").await;
    browser
        .click("#new-role input[name=permissions][value='audit.read']")
        .await;
    browser.click("#new-role button[type=submit]").await;
    browser.wait_for_text("main", "auditor").await;
    let roles = admin.get("/v1/roles").await;
    let auditor = roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "auditor");
    assert_eq!(auditor.unwrap()["permissions"], json!(["audit.read"]));
    browser.screenshot("roles").await;

    // The audit log, filtered by action and kept in the URL.
    browser.click("nav.sidebar a[href='/admin/audit']").await;
    browser.fill("#action", "token.create").await;
    browser.click("form[role=search] button[type=submit]").await;
    browser.wait_for_text("main", "audited token").await;
    assert!(browser.path().await.contains("action=token.create"));
    assert!(!browser.body().await.contains("user.create"));
    browser.screenshot("audit").await;

    // Every page stays within a 360 px screen (tables scroll inside their frame).
    browser.resize(360, 780).await;
    for page in [
        "/admin/users",
        "/admin/roles",
        "/admin/audit",
        "/admin/resources",
        "/admin/projects",
        "/admin/profile",
        "/admin/tokens/new",
    ] {
        browser.goto(page).await;
        browser.find("h1").await;
        let fits = browser
            .script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")
            .await;
        assert_eq!(fits, json!(true), "{page} scrolls sideways at 360 px");
        let unlabelled = browser
            .script(
                "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, summary')]
                   .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label')
                     && !c.getAttribute('aria-labelledby') && !c.textContent.trim())
                   .map(c => c.outerHTML.slice(0, 120))",
            )
            .await;
        assert_eq!(unlabelled, json!([]), "{page}: controls without a label");
    }
    browser.close().await;
}
