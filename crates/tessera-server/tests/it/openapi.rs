//! `GET /openapi.json`: the API's own description, open to anyone (SDK generators and
//! docs tools fetch it without credentials), and the same document as the committed
//! `docs/openapi.json`.

use reqwest::Method;

use crate::harness::TestServer;

#[tokio::test]
async fn the_openapi_document_is_served_without_credentials_and_matches_the_committed_one() {
    let server = TestServer::start().await;
    let served = server.anon(Method::GET, "/openapi.json", None).await;
    assert_eq!(served.status, 200, "{}", served.text);
    assert_eq!(
        served.headers["content-type"], "application/json",
        "SDK generators read it as JSON"
    );
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .expect("docs/openapi.json"),
    )
    .expect("docs/openapi.json is JSON");
    assert_eq!(served.body, committed);
    assert!(
        served.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    assert!(served.body["paths"]["/v1/tokens"]["post"].is_object());
}

#[tokio::test]
async fn the_reference_page_lists_every_operation_without_scripts() {
    let server = TestServer::start().await;
    let page = server.anon(Method::GET, "/docs", None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let document = server.anon(Method::GET, "/openapi.json", None).await.body;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let heading = format!(
                "<span class=\"method\">{}</span> <code>{}</code>",
                method.to_uppercase(),
                path
            );
            assert!(page.text.contains(&heading), "{heading} missing");
        }
    }
    // The console's content security policy holds here too: no script, no inline style.
    assert!(!page.text.contains("<script"));
    assert!(!page.text.contains("style="));
    assert!(page.text.contains("<code>tokens.read</code>"));
}
