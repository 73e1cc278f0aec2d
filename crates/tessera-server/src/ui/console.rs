//! Who is using the console: the signed-in admin behind the session cookie, their
//! language and CSRF token; the form posts they send, checked for CSRF and origin
//! before any handler runs; and the one conversion of failures into pages.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use tessera_api_types::UserView;
use tessera_app::auth::SessionSecret;
use tessera_app::{AppError, Principal};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ClientAddress, SESSION_COOKIE, cookie};
use crate::ui::i18n::Lang;
use crate::ui::page::{ErrorPage, render};

/// A failure on its way to becoming a page.
#[derive(Debug)]
pub enum UiError {
    /// No valid session: back to the sign-in page, then to `next`.
    SignIn { next: String },
    /// Anything the application refused, shown as an error page in `lang`.
    App { error: AppError, lang: Lang },
}

pub type UiResult<T = Response> = Result<T, UiError>;

impl UiError {
    pub fn app(lang: Lang) -> impl FnOnce(AppError) -> Self {
        move |error| Self::App { error, lang }
    }
}

/// The sign-in URL that comes back to `next` (a console path) afterwards.
pub fn sign_in_url(next: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/admin/login?next={encoded}")
}

/// `next` if it is a path of the console, else the console's home: never a redirect
/// to another site (`//evil.example`, `https://…`, `/admin\\…`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with("/admin")
                && !path.starts_with("/admin/login")
                && !path.contains("//")
                && !path.contains('\\')
                && path.is_ascii()
                && !path.chars().any(|c| c.is_ascii_control()) =>
        {
            path.to_owned()
        }
        _ => "/admin/tokens".to_owned(),
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { next } => Redirect::to(&sign_in_url(&next)).into_response(),
            Self::App {
                error: AppError::Unauthenticated,
                ..
            } => Redirect::to("/admin/login").into_response(),
            Self::App { error, lang } => {
                // The same mapping as the JSON API: one place decides status and message.
                let api = ApiError::from(error);
                let status = api.status();
                let page = ErrorPage::new(lang, status, api.message());
                let mut response = (status, render(&page)).into_response();
                if let Some(wait) = api.retry_after()
                    && let Ok(value) =
                        HeaderValue::from_str(&crate::error::retry_seconds(wait).to_string())
                {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
        }
    }
}

/// The signed-in admin using the console.
#[derive(Debug, Clone)]
pub struct Console {
    pub principal: Principal,
    pub session: SessionSecret,
    pub lang: Lang,
    /// The session's CSRF token, which every form carries.
    pub csrf: String,
    pub me: UserView,
    /// This page's path and query, for the language switch to come back to.
    pub here: String,
    /// Whether this request is a form post (its answer then takes its section's URL).
    pub posted: bool,
}

/// The section page a console path belongs to (`/admin/tokens/…/disable` →
/// `/admin/tokens`).
pub fn section_of(path: &str) -> String {
    let section = path
        .strip_prefix("/admin/")
        .and_then(|rest| rest.split('/').next())
        .filter(|section| !section.is_empty())
        .unwrap_or("tokens");
    safe_next(Some(&format!("/admin/{section}")))
}

impl Console {
    /// Maps an application failure to a page in this console's language.
    pub fn fail(&self) -> impl FnOnce(AppError) -> UiError {
        UiError::app(self.lang)
    }
}

fn path_and_query(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

impl FromRequestParts<AppState> for Console {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let lang = Lang::from_headers(&parts.headers);
        let here = path_and_query(parts);
        // A form post cannot be replayed after signing in; come back to its page.
        let posted = parts.method != axum::http::Method::GET;
        // A form post cannot be replayed after signing in: come back to its section.
        let next = if posted {
            section_of(parts.uri.path())
        } else {
            here.clone()
        };
        let Some(value) = cookie(parts, SESSION_COOKIE) else {
            return Err(UiError::SignIn { next });
        };
        let session = SessionSecret(value.to_owned());
        let ClientAddress(client) = ClientAddress::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientAddress(None));
        let principal = match state
            .app
            .auth()
            .authenticate_session(&session, client)
            .await
        {
            Ok(principal) => principal,
            Err(AppError::Unauthenticated) => return Err(UiError::SignIn { next }),
            Err(error) => return Err(UiError::App { error, lang }),
        };
        let me = state
            .app
            .auth()
            .me(&principal)
            .await
            .map_err(|error| match error {
                AppError::Unauthenticated => UiError::SignIn { next: next.clone() },
                error => UiError::App { error, lang },
            })?;
        Ok(Self {
            csrf: state.app.auth().csrf_token(&session),
            principal,
            session,
            lang,
            me,
            here,
            posted,
        })
    }
}

/// `text` trimmed, or `None` when nothing is left (an empty filter or field).
pub fn non_blank(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// A form body as posted: every name/value pair in order (checkbox groups repeat a
/// name, which serde's form decoders do not keep). `Debug` shows the names only: a
/// form may hold a password or a setup code.
#[derive(Clone, Default)]
pub struct FormData(Vec<(String, String)>);

impl std::fmt::Debug for FormData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl FormData {
    pub fn parse(bytes: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(bytes)
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of `name`, or empty.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }
}

/// Whether a form post comes from this site. Browsers send `Sec-Fetch-Site`, which
/// decides; older ones only `Origin`, compared with `Host` (under this site's
/// `Referrer-Policy: no-referrer` browsers send `Origin: null`, which says nothing).
/// The session's CSRF token and `SameSite=Strict` stand behind this check.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = value("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (value("origin"), value("host")) {
        (None | Some("null"), _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

fn forbidden(lang: Lang, message: &str) -> UiError {
    UiError::App {
        error: AppError::Forbidden(message.to_owned()),
        lang,
    }
}

/// A form body, from this site, read within the body limit.
#[derive(Debug)]
pub struct Posted(pub FormData);

async fn read_form(request: Request, state: &AppState, lang: Lang) -> Result<FormData, UiError> {
    if !same_origin(request.headers()) {
        return Err(forbidden(lang, "cross-site form posts are refused"));
    }
    let bytes = crate::extract::body_within(request, state)
        .await
        .map_err(|()| UiError::App {
            error: AppError::BadRequest("the form did not arrive in time; send it again".into()),
            lang,
        })?
        .map_err(|rejection| UiError::App {
            error: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::BadRequest("the form is too large".into())
            } else {
                AppError::BadRequest(rejection.body_text())
            },
            lang,
        })?;
    Ok(FormData::parse(&bytes))
}

impl FromRequest<AppState> for Posted {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = Lang::from_headers(request.headers());
        read_form(request, state, lang).await.map(Self)
    }
}

/// A signed-in admin's form post whose `csrf` field matches their session.
#[derive(Debug)]
pub struct ConsoleForm {
    pub console: Console,
    pub form: FormData,
}

impl FromRequest<AppState> for ConsoleForm {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let console = Console::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let form = read_form(request, state, console.lang).await?;
        let presented = form.get("csrf").unwrap_or_default();
        if !state.app.auth().csrf_matches(&console.session, presented) {
            return Err(forbidden(
                console.lang,
                "this form has expired or did not come from the console; reload the page",
            ));
        }
        Ok(Self { console, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(safe_next(Some("/admin/tokens?q=a")), "/admin/tokens?q=a");
        assert_eq!(safe_next(Some("/admin/users")), "/admin/users");
        for bad in [
            None,
            Some("https://evil.example/admin"),
            Some("//evil.example"),
            Some("/admin//evil.example"),
            Some("/admin\\evil"),
            Some("/v1/tokens"),
            Some("/admin/login?next=/admin"),
            Some("/admin/é"),
        ] {
            assert_eq!(safe_next(bad), "/admin/tokens", "{bad:?}");
        }
    }

    #[test]
    fn cross_site_posts_are_recognized() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-site"),
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }

    #[test]
    fn a_post_comes_back_to_its_section() {
        assert_eq!(section_of("/admin/tokens/abc/disable"), "/admin/tokens");
        assert_eq!(section_of("/admin/users/abc"), "/admin/users");
        assert_eq!(section_of("/admin"), "/admin/tokens");
        assert_eq!(section_of("/admin/login"), "/admin/tokens");
    }

    #[test]
    fn forms_never_print_their_values() {
        let form = FormData::parse(b"email=a%40b.c&password=hunter2hunter2");
        let shown = format!("{form:?}");
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn forms_keep_repeated_names() {
        let form = FormData::parse(b"name=a+b&p=x.y&p=x.z&empty=");
        assert_eq!(form.get("name"), Some("a b"));
        assert_eq!(form.all("p"), vec!["x.y", "x.z"]);
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(form.get("missing"), None);
    }
}
