//! GraphiQL at `GET /graphql`, from the embedded files: it loads under the page's
//! content security policy, and a query run from it uses the console session.

use crate::driver::{Browser, Options, chromedriver};
use crate::flows::sign_in;
use crate::harness::TestServer;

#[tokio::test]
async fn graphiql_runs_a_query_with_the_console_session() {
    let Some(chromedriver) = chromedriver("graphiql_runs_a_query_with_the_console_session") else {
        return;
    };
    let server = TestServer::start().await;
    let admin = server.admin("super-admin").await;
    admin.token("seen from graphiql").await;
    let browser = Browser::start(&chromedriver, &server.base, Options::default()).await;
    sign_in(&browser, &admin.email).await;

    browser.goto("/graphql").await;
    // The editor is mounted: React, ReactDOM and GraphiQL ran under `script-src 'self'`.
    browser.find(".graphiql-container").await;
    browser
        .wait_for_text(".graphiql-query-editor", "tokens(limit: 10)")
        .await;
    browser.click(".graphiql-execute-button").await;
    // The default query answers with the signed-in user and the token: the session
    // cookie went with it, and the page's CSRF token let the POST through.
    browser
        .wait_for_text(".graphiql-response", "seen from graphiql")
        .await;
    let response = browser.text(".graphiql-response").await;
    assert!(response.contains(&admin.email), "{response}");
    assert!(!response.contains("\"errors\""), "{response}");
    browser.screenshot("graphiql").await;
    browser.close().await;
}
