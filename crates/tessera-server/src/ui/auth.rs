//! Signing in and out, the first-run registration, and the language switch.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tessera_app::AppError;
use tessera_app::auth::{Password, SessionSecret};
use tessera_core::validate::FieldErrors;

use crate::AppState;
use crate::extract::Path;
use crate::extract::{ClientAddress, SESSION_COOKIE, cookie_in};
use crate::rest::auth::session_cookie;
use crate::ui::console::{ConsoleForm, Posted, UiError, UiResult, safe_next, sign_in_url};
use crate::ui::i18n::{LANG_COOKIE, Lang};
use crate::ui::page::{Layout, render_with};

#[derive(Debug, Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// `/admin/login?next=<safe next>` from a sign-in URL whose `next` may be anything.
fn login_url(url: &str) -> String {
    let inner = url
        .split_once('?')
        .map(|(_, query)| query)
        .and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "next")
                .map(|(_, value)| value.into_owned())
        });
    crate::ui::console::sign_in_url(&safe_next(inner.as_deref()))
}

/// A page that loads `url` again from this site (see `login_page`).
#[derive(Debug, Template)]
#[template(path = "bounce.html")]
struct BouncePage {
    layout: Layout,
    url: String,
}

#[derive(Debug, Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    email: String,
    error: Option<String>,
}

/// "Too many attempts, try again in N seconds", for the sign-in and first-run pages.
fn throttled(lang: Lang, retry_after: std::time::Duration) -> String {
    lang.tf(
        "login.throttled",
        "seconds",
        &crate::error::retry_seconds(retry_after).to_string(),
    )
}

/// Answers with a new session cookie and goes to `next`.
fn signed_in(state: &AppState, secret: &SessionSecret, next: &str) -> Response {
    let max_age = state.app.settings().session_lifetime.as_secs();
    let mut response = Redirect::to(next).into_response();
    if let Some(cookie) = session_cookie(state, &secret.0, max_age) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether the request carries a session that still signs someone in.
async fn has_session(state: &AppState, headers: &HeaderMap) -> bool {
    match cookie_in(headers, SESSION_COOKIE) {
        Some(value) => state
            .app
            .auth()
            .authenticate_session(&SessionSecret(value.to_owned()), None)
            .await
            .is_ok(),
        None => false,
    }
}

/// `GET /admin/login`.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<NextParam>,
) -> UiResult {
    let lang = Lang::from_headers(&headers);
    let next = safe_next(params.next.as_deref());
    if state
        .app
        .auth()
        .needs_first_admin()
        .await
        .map_err(UiError::app(lang))?
    {
        return Ok(Redirect::to("/admin/setup").into_response());
    }
    if has_session(&state, &headers).await {
        return Ok(Redirect::to(&next).into_response());
    }
    // Arriving from another site (a link in a mail or a chat), the browser withholds
    // the SameSite=Strict session cookie: load this page once more from here, which
    // sends it, instead of asking a signed-in admin to sign in again.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site == "cross-site" || site == "same-site")
    {
        let page = BouncePage {
            layout: Layout::bare(lang, "login.title", "/admin/login"),
            url: sign_in_url(&next),
        };
        return Ok(render_with(StatusCode::OK, &page));
    }
    let page = LoginPage {
        layout: Layout::bare(lang, "login.title", &login_url(&sign_in_url(&next))),
        next,
        email: String::new(),
        error: None,
    };
    Ok(render_with(StatusCode::OK, &page))
}

/// `POST /admin/login`.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    Posted(form): Posted,
) -> UiResult {
    let lang = Lang::from_headers(&headers);
    let next = safe_next(form.get("next"));
    let email = form.text("email");
    let password = Password(form.text("password"));
    let (status, message) = match state.app.auth().login(&email, &password, client).await {
        Ok((secret, _)) => return Ok(signed_in(&state, &secret, &next)),
        Err(AppError::Unauthenticated) => (StatusCode::UNAUTHORIZED, lang.t("login.failed")),
        Err(AppError::RateLimited { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            throttled(lang, retry_after).into(),
        ),
        Err(error) => return Err(UiError::App { error, lang }),
    };
    let page = LoginPage {
        layout: Layout::bare(lang, "login.title", "/admin/login"),
        next,
        email,
        error: Some(message.into_owned()),
    };
    Ok(render_with(status, &page))
}

#[derive(Debug, Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    email: String,
    name: String,
    errors: FieldErrors,
    error: Option<String>,
}

impl SetupPage {
    fn error_of(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

/// `GET /admin/setup`: the first-run registration, while no administrator exists.
pub async fn setup_page(State(state): State<AppState>, headers: HeaderMap) -> UiResult {
    let lang = Lang::from_headers(&headers);
    if !state
        .app
        .auth()
        .needs_first_admin()
        .await
        .map_err(UiError::app(lang))?
    {
        return Ok(Redirect::to("/admin/login").into_response());
    }
    let page = SetupPage {
        layout: Layout::bare(lang, "setup.title", "/admin/setup"),
        email: String::new(),
        name: String::new(),
        errors: FieldErrors::default(),
        error: None,
    };
    Ok(render_with(StatusCode::OK, &page))
}

/// `POST /admin/setup`: registers the first administrator with the setup code that
/// `tessera serve` printed, and signs them in.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    Posted(form): Posted,
) -> UiResult {
    let lang = Lang::from_headers(&headers);
    let email = form.text("email").trim().to_owned();
    let name = form.text("name").trim().to_owned();
    let result = state
        .app
        .auth()
        .register_first(
            &form.text("setup_code"),
            email.clone(),
            Some(name.clone()).filter(|n| !n.is_empty()),
            Password(form.text("password")),
            client,
        )
        .await;
    let (status, errors, error) = match result {
        Ok((secret, _)) => return Ok(signed_in(&state, &secret, "/admin/tokens")),
        Err(AppError::Validation(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors.0, None),
        Err(AppError::Conflict(_)) => return Ok(Redirect::to("/admin/login").into_response()),
        Err(AppError::RateLimited { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            FieldErrors::default(),
            Some(throttled(lang, retry_after)),
        ),
        Err(error) => return Err(UiError::App { error, lang }),
    };
    let page = SetupPage {
        layout: Layout::bare(lang, "setup.title", "/admin/setup"),
        email,
        name,
        errors,
        error,
    };
    Ok(render_with(status, &page))
}

/// `POST /admin/logout`: ends the session and forgets the cookie.
pub async fn logout(State(state): State<AppState>, posted: ConsoleForm) -> UiResult {
    let console = posted.console;
    state
        .app
        .auth()
        .logout(&console.principal, &console.session)
        .await
        .map_err(console.fail())?;
    let mut response = Redirect::to("/admin/login").into_response();
    if let Some(cookie) = session_cookie(&state, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `GET /admin/lang/{code}?next=…`: remembers the language for a year and goes back.
pub async fn switch_language(
    Path(code): Path<String>,
    Query(params): Query<NextParam>,
) -> Response {
    // Unlike a sign-in's `next`, the switch may come back to the sign-in page itself,
    // keeping where that sign-in leads.
    let next = match params.next.as_deref() {
        Some("/admin/login") => "/admin/login".to_owned(),
        Some(login) if login.starts_with("/admin/login?next=") => login_url(login),
        other => safe_next(other),
    };
    let mut response = Redirect::to(&next).into_response();
    if let Some(lang) = Lang::parse(&code)
        && let Ok(cookie) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/admin; Max-Age=31536000; SameSite=Lax",
            lang.code()
        ))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_url_keeps_only_a_safe_next() {
        assert_eq!(
            login_url("/admin/login?next=%2Fadmin%2Faudit"),
            "/admin/login?next=%2Fadmin%2Faudit"
        );
        assert_eq!(
            login_url("/admin/login?next=https%3A%2F%2Fevil.example"),
            "/admin/login?next=%2Fadmin%2Ftokens"
        );
    }
}
