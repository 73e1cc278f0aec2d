//! What every page shares: the layout (title, sidebar, language switch, CSRF token,
//! asset URLs), view helpers for times and statuses, rendering, and the error page.

use std::borrow::Cow;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use tessera_api_types::{TokenView, UserView};
use tessera_app::catalog::{PROJECT_READERS, RESOURCE_READERS};
use tessera_core::{AdminPermission, TokenStatus};

use crate::ui::assets;
use crate::ui::console::Console;
use crate::ui::i18n::Lang;

/// The sidebar: which sections the signed-in admin's role may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nav {
    pub tokens: bool,
    pub projects: bool,
    pub resources: bool,
    pub users: bool,
    pub roles: bool,
    pub audit: bool,
}

impl Nav {
    fn of(console: &Console) -> Self {
        let has = |permission| console.principal.has(permission);
        Self {
            tokens: has(AdminPermission::TokensRead),
            projects: console.principal.has_any(&PROJECT_READERS),
            resources: console.principal.has_any(&RESOURCE_READERS),
            users: has(AdminPermission::UsersManage),
            roles: has(AdminPermission::RolesManage),
            audit: has(AdminPermission::AuditRead),
        }
    }
}

/// The frame around every page.
#[derive(Debug, Clone)]
pub struct Layout {
    pub lang: Lang,
    pub title: String,
    pub csrf: String,
    pub user: Option<UserView>,
    pub nav: Nav,
    /// The sidebar entry to highlight.
    pub section: &'static str,
    /// This page's path and query (the language switch comes back to it).
    pub here: String,
    pub css: String,
    pub js: String,
    pub icon: String,
    /// Replaces this page's URL in the browser's history (after a form post that
    /// answered with a page, so reload and back never post again or show a secret).
    pub replace_url: Option<String>,
}

impl Layout {
    /// A page of the signed-in console, titled by the message `title_key`.
    pub fn console(console: &Console, section: &'static str, title_key: &str) -> Self {
        // A page that answers a form post takes its section's URL (the post's own URL
        // may have no page behind it).
        let replace_url = console
            .posted
            .then(|| crate::ui::console::section_of(&format!("/admin/{section}")));
        Self {
            lang: console.lang,
            title: console.lang.t(title_key).into_owned(),
            csrf: console.csrf.clone(),
            user: Some(console.me.clone()),
            nav: Nav::of(console),
            section,
            here: replace_url.clone().unwrap_or_else(|| console.here.clone()),
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            icon: assets::url("icon.svg"),
            replace_url,
        }
    }

    /// A page outside the console (sign-in, first run, errors).
    pub fn bare(lang: Lang, title_key: &str, here: &str) -> Self {
        Self {
            lang,
            title: lang.t(title_key).into_owned(),
            csrf: String::new(),
            user: None,
            nav: Nav::default(),
            section: "",
            here: here.to_owned(),
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            icon: assets::url("icon.svg"),
            replace_url: None,
        }
    }

    pub fn with_replace_url(mut self, url: String) -> Self {
        self.here.clone_from(&url);
        self.replace_url = Some(url);
        self
    }

    pub fn t<'a>(&self, key: &'a str) -> Cow<'a, str> {
        self.lang.t(key)
    }

    pub fn tf(&self, key: &str, name: &str, value: &str) -> String {
        self.lang.tf(key, name, value)
    }

    /// The link that switches the console to `lang` and comes back here.
    pub fn lang_url(&self, lang: Lang) -> String {
        let next: String = form_urlencoded::byte_serialize(self.here.as_bytes()).collect();
        format!("/admin/lang/{}?next={next}", lang.code())
    }

    /// The language switch: each language with the link to it.
    pub fn languages(&self) -> Vec<LanguageLink> {
        Lang::ALL
            .into_iter()
            .map(|lang| LanguageLink {
                code: lang.code(),
                name: lang.native_name(),
                url: self.lang_url(lang),
                current: lang == self.lang,
            })
            .collect()
    }

    pub fn has(&self, permission: &str) -> bool {
        self.user.as_ref().is_some_and(|user| {
            user.permissions
                .iter()
                .any(|held| held.as_str() == permission)
        })
    }
}

/// One entry of the language switch.
#[derive(Debug, Clone)]
pub struct LanguageLink {
    pub code: &'static str,
    pub name: &'static str,
    pub url: String,
    pub current: bool,
}

/// A point in time as pages show it: machine-readable for the browser (which shows
/// it relative and in the reader's locale) and a UTC fallback.
#[derive(Debug, Clone)]
pub struct Time {
    pub iso: String,
    pub text: String,
}

impl Time {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            iso: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            text: at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    pub fn maybe(at: Option<DateTime<Utc>>) -> Option<Self> {
        at.map(Self::new)
    }
}

/// A token's state as a badge: its class and message key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Badge {
    Active,
    Expiring,
    Disabled,
    Expired,
}

impl Badge {
    /// Expired beats disabled (it cannot come back by enabling); active tokens that
    /// expire within 7 days are flagged.
    pub fn of(token: &TokenView, now: DateTime<Utc>) -> Self {
        if token.expired {
            Self::Expired
        } else if token.status == TokenStatus::Disabled {
            Self::Disabled
        } else if token
            .expires_at
            .is_some_and(|at| at - now <= chrono::Duration::days(7))
        {
            Self::Expiring
        } else {
            Self::Active
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Self::Active => "badge ok",
            Self::Expiring => "badge warn",
            Self::Disabled => "badge muted",
            Self::Expired => "badge bad",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Active => "status.active",
            Self::Expiring => "status.expiring",
            Self::Disabled => "status.disabled",
            Self::Expired => "status.expired",
        }
    }
}

/// `?done=<what>`: what the action before a redirect did, for the page's notice.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: String,
}

/// The notice after an action (`?done=disabled`) in the reader's language: the
/// catalogue's `<scope>.notice.<done>`, else `notice.<done>`; `None` when neither
/// exists, so a query string cannot put words of its own on the page.
pub fn notice(lang: Lang, scope: &str, done: &str) -> Option<String> {
    if done.is_empty() || !done.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return None;
    }
    [format!("{scope}.notice.{done}"), format!("notice.{done}")]
        .into_iter()
        .find_map(|key| {
            let text = lang.t(&key);
            (text != key.as_str()).then(|| text.into_owned())
        })
}

/// A secret on its way to the one page that shows it: `Display` for the template,
/// `Debug` redacted so that no log line or debug print of a page can carry it.
#[derive(Clone)]
pub struct ShownOnce(pub String);

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShownOnce(<redacted>)")
    }
}

impl std::fmt::Display for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The secret alone, when the page it belongs on cannot be built (a lookup for the
/// rest of that page failed, or the role may not read what else it shows): the secret
/// exists now, so it must reach its reader whatever else fails.
#[derive(Debug, Template)]
#[template(path = "secret_only.html")]
pub struct SecretOnlyPage {
    pub layout: Layout,
    pub secret: Option<ShownOnce>,
    /// Where the reader goes next (the token's page, the profile).
    pub next: String,
}

/// Renders `page`, or, when building it failed, the secret alone.
pub fn secret_or_fallback<T: Template>(
    page: Result<T, crate::ui::console::UiError>,
    console: &crate::ui::console::Console,
    secret: ShownOnce,
    next: String,
) -> Response {
    match page {
        Ok(page) => render(&page),
        Err(error) => {
            tracing::warn!(?error, "showing a new secret without the rest of its page");
            let page = SecretOnlyPage {
                layout: Layout::console(console, "tokens", "secret.title")
                    .with_replace_url(next.clone()),
                secret: Some(secret),
                next,
            };
            render(&page)
        }
    }
}

/// Renders a template; a template failure is logged and answered as a bare 500.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// [`render`] with a status (a form answered 422 with its errors, say).
pub fn render_with(status: StatusCode, template: &impl Template) -> Response {
    let mut response = render(template);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

/// A failure, in the reader's language.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(lang: Lang, status: StatusCode, message: &str) -> Self {
        let key = match status.as_u16() {
            403 => "error.forbidden",
            404 => "error.not_found",
            409 => "error.conflict",
            429 => "error.rate_limited",
            503 => "error.unavailable",
            400 | 413 | 422 => "error.bad_request",
            _ => "error.internal",
        };
        Self {
            layout: Layout::bare(lang, key, "/admin"),
            heading: lang.t(key).into_owned(),
            message: message.to_owned(),
        }
    }
}
