//! The console's static files, compiled into the binary and served under URLs that
//! carry a hash of their content, so browsers may cache them for a year and a new
//! release is fetched at once.
//!
//! Three small files do not need an embedding crate: `include_bytes!` puts them in the
//! binary and the hash is computed once, on first use (rust-embed 8.13 would add
//! second major versions of sha2 and its digest stack to the build).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../assets/icon.svg"),
    },
];

/// Where the assets are served from.
pub const PREFIX: &str = "/admin/assets";

/// The first 16 hex digits of each asset's SHA-256, in `ASSETS` order.
fn hashes() -> &'static [String] {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                Sha256::digest(asset.body)
                    .iter()
                    .take(8)
                    .map(|byte| format!("{byte:02x}"))
                    .collect()
            })
            .collect()
    })
}

/// The versioned URL of the asset called `name` (`/admin/assets/<hash>/app.css`).
pub fn url(name: &str) -> String {
    let hash = ASSETS
        .iter()
        .position(|asset| asset.name == name)
        .map_or("missing", |index| hashes()[index].as_str());
    format!("{PREFIX}/{hash}/{name}")
}

/// `GET /admin/assets/{hash}/{name}`: the file, cacheable for a year, when the hash
/// is its current one; 404 otherwise (an old page asking for an old file).
pub async fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    let found = ASSETS
        .iter()
        .zip(hashes())
        .find(|(asset, current)| asset.name == name && **current == hash);
    let Some((asset, _)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
