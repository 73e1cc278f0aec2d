//! The console's static files, compiled into the binary and served under URLs that
//! carry a hash of their content, so browsers may cache them for a year and a new
//! release is fetched at once.
//!
//! A handful of files do not need an embedding crate: `include_bytes!` puts them in the
//! binary and the hash is computed once, on first use (rust-embed 8.13 would add
//! second major versions of sha2 and its digest stack to the build). GraphiQL's files
//! (`assets/graphiql/`, see its README) are stored gzipped and sent as they are, with
//! `Content-Encoding: gzip`: 1 MB in the binary instead of 4.

use std::sync::OnceLock;

use crate::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Stored gzipped: sent with `Content-Encoding: gzip`.
    gzipped: bool,
}

const ASSETS: [Asset; 8] = [
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/app.css"),
        gzipped: false,
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/app.js"),
        gzipped: false,
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../assets/icon.svg"),
        gzipped: false,
    },
    Asset {
        name: "graphiql.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
        gzipped: true,
    },
    Asset {
        name: "graphiql.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
        gzipped: true,
    },
    Asset {
        name: "react.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
        gzipped: true,
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
        gzipped: true,
    },
    Asset {
        name: "graphiql-start.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/graphiql-start.js"),
        gzipped: false,
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
/// A gzipped file goes only to a client that accepts gzip (every browser does); any
/// other is told 406 rather than sent bytes it cannot read.
pub async fn serve(Path((hash, name)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let found = ASSETS
        .iter()
        .zip(hashes())
        .find(|(asset, current)| asset.name == name && **current == hash);
    let Some((asset, _)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if asset.gzipped && !accepts_gzip(&headers) {
        return (
            StatusCode::NOT_ACCEPTABLE,
            [(header::VARY, HeaderValue::from_static("accept-encoding"))],
            "this file is served gzip-encoded only: send Accept-Encoding: gzip",
        )
            .into_response();
    }
    let mut response = (
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
        .into_response();
    if asset.gzipped {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// Whether `Accept-Encoding` accepts gzip: `gzip` (or `x-gzip`) listed without `q=0`,
/// or `*` without `q=0` when gzip is not itself refused (an explicit refusal wins).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|parameter| {
            let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            key.trim().eq_ignore_ascii_case("q")
                && value.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
        });
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(!refused);
        } else if name == "*" {
            any = Some(!refused);
        }
    }
    gzip.or(any).unwrap_or(false)
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

    #[test]
    fn gzip_is_accepted_only_when_the_client_says_so() {
        use axum::http::{HeaderMap, HeaderValue, header};
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            super::accepts_gzip(&headers)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("br, deflate"));
        assert!(!with("gzip;q=0"));
        assert!(!with("gzip;Q=0"));
        assert!(!with("gzip;q=0, *"), "an explicit refusal wins over *");
        assert!(with("x-gzip"));
        assert!(!with("*;q=0"));
        assert!(!super::accepts_gzip(&HeaderMap::new()));
    }
}
