//! The console's languages: English and Japanese, chosen by the `tessera_lang` cookie
//! (set by the switch in the sidebar), else by `Accept-Language`, else English. Every
//! user-facing string comes from the message catalogues in `locales/` through
//! rust-i18n; templates ask for keys, never for text.

use std::borrow::Cow;

use axum::http::HeaderMap;

use crate::extract::cookie_in;

/// The cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "tessera_lang";

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ja];

    /// The BCP 47 tag (also the catalogue's name and the `lang` attribute).
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ja => "ja",
        }
    }

    /// The language's own name, as the switch shows it.
    pub fn native_name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Ja => "日本語",
        }
    }

    pub fn parse(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        Self::ALL
            .into_iter()
            .find(|lang| primary.eq_ignore_ascii_case(lang.code()))
    }

    /// The cookie's choice, else the best `Accept-Language` match, else English.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        if let Some(lang) = cookie_in(headers, LANG_COOKIE).and_then(Self::parse) {
            return lang;
        }
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .and_then(best_accepted)
            .unwrap_or(Self::En)
    }

    /// The message under `key`.
    pub fn t<'a>(self, key: &'a str) -> Cow<'a, str> {
        rust_i18n::t!(key, locale = self.code())
    }

    /// The message under `key` with `%{name}` replaced by `value`.
    pub fn tf(self, key: &str, name: &str, value: &str) -> String {
        self.t(key).replace(&format!("%{{{name}}}"), value)
    }
}

/// The supported language the client prefers most (`ja,en;q=0.8` → Japanese).
fn best_accepted(header: &str) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.trim().split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let quality = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if let Some(lang) = Lang::parse(tag)
            && quality > 0.0
            && best.is_none_or(|(q, _)| quality > q)
        {
            best = Some((quality, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn accept_language_picks_the_preferred_supported_language() {
        assert_eq!(best_accepted("ja,en;q=0.8"), Some(Lang::Ja));
        assert_eq!(best_accepted("ja-JP"), Some(Lang::Ja));
        assert_eq!(best_accepted("fr, en-GB;q=0.7, ja;q=0.9"), Some(Lang::Ja));
        assert_eq!(best_accepted("en-US,en;q=0.9,ja;q=0.1"), Some(Lang::En));
        assert_eq!(best_accepted("ja;q=0, en;q=0.5"), Some(Lang::En));
        assert_eq!(best_accepted("fr, de"), None);
    }

    #[test]
    fn the_cookie_wins_over_accept_language() {
        let mut headers = HeaderMap::new();
        headers.insert("accept-language", "ja".parse().unwrap());
        assert_eq!(Lang::from_headers(&headers), Lang::Ja);
        headers.insert("cookie", "a=b; tessera_lang=en".parse().unwrap());
        assert_eq!(Lang::from_headers(&headers), Lang::En);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
    }

    fn catalogue_keys(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| line.split_once(':').map(|(key, _)| key.trim().to_owned()))
            .filter(|key| !key.starts_with('_'))
            .collect()
    }

    /// Both catalogues hold the same keys, and every key the templates and handlers
    /// ask for exists, so no page shows a raw key in either language.
    #[test]
    fn catalogues_match_each_other_and_cover_every_key_in_use() {
        let en = catalogue_keys(include_str!("../../locales/en.yml"));
        let ja = catalogue_keys(include_str!("../../locales/ja.yml"));
        assert_eq!(
            en.symmetric_difference(&ja).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "keys present in only one catalogue"
        );
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut sources = Vec::new();
        for dir in ["templates", "src/ui"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                sources.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
            }
        }
        let mut missing = BTreeSet::new();
        for source in &sources {
            for marker in [".t(\"", ".tf(\""] {
                for piece in source.split(marker).skip(1) {
                    let key = piece.split('"').next().unwrap_or_default();
                    if !en.contains(key) {
                        missing.insert(key.to_owned());
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys used but not catalogued: {missing:?}"
        );
        // rust-i18n answers a missing key with the key itself.
        let unknown = ["no", "such", "key"].join(".");
        assert_eq!(Lang::Ja.t(&unknown), unknown);
        for lang in Lang::ALL {
            for key in &en {
                let text = lang.t(key);
                assert!(
                    text != key.as_str() && !text.is_empty(),
                    "{key} in {lang:?}"
                );
            }
        }
        assert_ne!(Lang::Ja.t("nav.tokens"), Lang::En.t("nav.tokens"));
    }
}
