//! The console's static files, compiled into the binary and served under URLs that
//! carry a hash of their content, so browsers may cache them for a year and a new
//! release is fetched at once.
//!
//! Three small files do not need an embedding crate: `include_bytes!` puts them in the
//! binary and the hash is computed once, on first use (rust-embed 8.13 would add
//! second major versions of sha2 and its digest stack to the build).

use std::sync::OnceLock;

use crate::extract::Path;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// The `--name: #rrggbb` colours of the first `:root { … }` after `from`.
    fn palette(css: &str, from: &str) -> BTreeMap<String, [f64; 3]> {
        let start = css.find(from).unwrap();
        let block = &css[start..];
        let block = &block[block.find(":root {").unwrap() + ":root {".len()..];
        let block = &block[..block.find('}').unwrap()];
        block
            .split(';')
            .filter_map(|declaration| {
                let (name, value) = declaration.split_once(':')?;
                let hex = value.trim().strip_prefix('#')?;
                let channel = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
                Some((
                    name.trim().trim_start_matches("--").to_owned(),
                    [channel(0)?, channel(2)?, channel(4)?].map(f64::from),
                ))
            })
            .collect()
    }

    fn luminance(rgb: [f64; 3]) -> f64 {
        let linear = rgb.map(|c| {
            let c = c / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        });
        0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    }

    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    /// Every text colour the console puts on a background reaches WCAG AA (4.5:1), in
    /// both themes.
    #[test]
    fn both_themes_meet_wcag_aa_contrast() {
        let css = include_str!("../../assets/app.css");
        let white = [255.0; 3];
        for (theme, from) in [("light", ":root {"), ("dark", "prefers-color-scheme: dark")] {
            let colours = palette(css, from);
            let colour = |name: &str| {
                *colours
                    .get(name)
                    .unwrap_or_else(|| panic!("{theme}: no --{name} in {colours:?}"))
            };
            let pairs = [
                ("text", "bg"),
                ("text", "surface"),
                ("muted", "bg"),
                ("muted", "surface"),
                ("accent", "surface"),
                ("accent", "bg"),
                ("accent", "accent-soft"),
                ("accent-text", "accent"),
                ("ok", "ok-bg"),
                ("warn", "warn-bg"),
                ("bad", "bad-bg"),
                ("bad", "surface"),
                ("grey", "grey-bg"),
                ("text", "ok-bg"),
            ];
            for (text, background) in pairs {
                let ratio = contrast(colour(text), colour(background));
                assert!(
                    ratio >= 4.5,
                    "{theme}: {text} on {background} is {ratio:.2}:1"
                );
            }
            // The destructive button: white text on red (light), near-black on red (dark).
            let on_bad = if theme == "light" {
                white
            } else {
                [26.0, 11.0, 10.0]
            };
            let ratio = contrast(on_bad, colour("bad"));
            assert!(ratio >= 4.5, "{theme}: danger button is {ratio:.2}:1");
        }
    }
}
