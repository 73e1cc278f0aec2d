//! An axum service protected by Tessera.
//!
//! ```sh
//! # In Tessera: a resource `article` (find: read, create: write), a role `verifier`
//! # with `tokens.read` and `tokens.update`, an admin with that role, and a full
//! # personal token of theirs for the verifier (a read-only one of a `viewer` also
//! # works, without usage reports of cache hits).
//! export TESSERA_URL=http://127.0.0.1:8080
//! export TESSERA_CREDENTIAL=tsrp_…   # the personal token
//! cargo run -p tessera-verifier --example axum
//! curl -H "Authorization: Bearer tsr_…" http://127.0.0.1:3000/articles/1
//! ```

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use tessera_verifier::{RouteRules, RouteRulesExt, TesseraLayer, VerifiedToken, Verifier};

/// Which permission each route needs: forward-auth's rule syntax.
const RULES: &str = r#"
default = "deny"

[[rules]]
methods = ["GET", "HEAD"]
path = "/articles/**"
permission = "article.find"

[[rules]]
methods = ["POST"]
path = "/articles"
permission = "article.create"
"#;

async fn show(Extension(token): Extension<Arc<VerifiedToken>>) -> Json<Value> {
    // The layer put the verified token here: use it to scope the answer.
    Json(json!({
        "article": 1,
        "read_by": token.name,
        "customer": token.external_id,
        "plan": token.metadata.get("plan"),
    }))
}

async fn create(Extension(token): Extension<Arc<VerifiedToken>>) -> Json<Value> {
    Json(json!({"created_by": token.id}))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let url = std::env::var("TESSERA_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let credential = std::env::var("TESSERA_CREDENTIAL")?;
    let verifier = Verifier::builder(&url, &credential)
        .on_state_change(|state| tracing::info!(?state, "Tessera subscription"))
        .build()?;
    let rules = RouteRules::from_toml(RULES)?;
    let app = Router::new()
        .route("/articles/{id}", get(show))
        .route("/articles", post(create))
        .layer(TesseraLayer::with_rules(verifier, rules));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app).await?;
    Ok(())
}
