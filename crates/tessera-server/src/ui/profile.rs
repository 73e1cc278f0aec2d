//! The signed-in admin's profile: their personal API tokens (tokens that act as them
//! against Tessera's own API, with full or read-only access).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use tessera_api_types::{CreatePersonalTokenRequest, PersonalTokenView, RegenerateRequest};
use tessera_app::AppError;
use tessera_core::validate::FieldErrors;
use tessera_core::{Lifespan, PersonalAccess};

use crate::AppState;
use crate::extract::Path;
use crate::ui::console::{Console, ConsoleForm, UiResult};
use crate::ui::page::{
    Badge, DoneQuery, Layout, ShownOnce, Time, notice, render_with, secret_or_fallback,
};

#[derive(Debug)]
struct PersonalRow {
    id: String,
    name: String,
    access_key: &'static str,
    created: Time,
    last_used: Option<Time>,
    expires: Option<Time>,
    badge: Badge,
}

#[derive(Debug, Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    layout: Layout,
    rows: Vec<PersonalRow>,
    secret: Option<ShownOnce>,
    notice: Option<String>,
    name: String,
    /// The access and duration chosen, kept when the form comes back.
    access: String,
    lifespan: String,
    errors: FieldErrors,
}

impl ProfilePage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

fn access_key(access: PersonalAccess) -> &'static str {
    match access {
        PersonalAccess::Full => "profile.access.full",
        PersonalAccess::ReadOnly => "profile.access.read-only",
    }
}

async fn profile_page(state: &AppState, console: &Console) -> UiResult<ProfilePage> {
    let tokens: Vec<PersonalTokenView> = state
        .app
        .personal_tokens()
        .list_mine(&console.principal)
        .await
        .map_err(console.fail())?;
    let now = state.app.now();
    Ok(ProfilePage {
        layout: Layout::console(console, "profile", "profile.title"),
        rows: tokens
            .iter()
            .map(|token| PersonalRow {
                id: token.record.id.to_string(),
                name: token.record.name.clone(),
                access_key: access_key(token.access),
                created: Time::new(token.record.created_at),
                last_used: Time::maybe(token.record.last_used_at),
                expires: Time::maybe(token.record.expires_at),
                badge: Badge::of(&token.record, now),
            })
            .collect(),
        secret: None,
        notice: None,
        name: String::new(),
        access: PersonalAccess::Full.as_str().to_owned(),
        lifespan: Lifespan::Days30.as_str().to_owned(),
        errors: FieldErrors::default(),
    })
}

/// `GET /admin/profile`.
pub async fn show(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<DoneQuery>,
) -> UiResult {
    let mut page = profile_page(&state, &console).await?;
    page.notice = notice(console.lang, "profile", &query.done);
    Ok(render_with(StatusCode::OK, &page))
}

/// The profile with a new secret, once (its URL becomes `/admin/profile`); the secret
/// alone should the rest of the page fail to build.
async fn with_secret(state: &AppState, console: &Console, secret: String) -> UiResult {
    let secret = ShownOnce(secret);
    let page = profile_page(state, console).await.map(|mut page| {
        page.layout = page
            .layout
            .clone()
            .with_replace_url("/admin/profile".into());
        page.secret = Some(secret.clone());
        page
    });
    Ok(secret_or_fallback(
        page,
        console,
        secret,
        "/admin/profile".into(),
    ))
}

/// `POST /admin/profile/tokens`.
pub async fn create(State(state): State<AppState>, posted: ConsoleForm) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let name = form.text("name").trim().to_owned();
    let access_text = form.text("access");
    let lifespan_text = form.text("lifespan");
    let mut errors = FieldErrors::default();
    // Nothing defaults: an unknown access must not become `full`.
    let access = match access_text.as_str() {
        "full" => Some(PersonalAccess::Full),
        "read-only" => Some(PersonalAccess::ReadOnly),
        _ => {
            errors.add("access", "choose full or read-only");
            None
        }
    };
    let lifespan = Lifespan::parse(&lifespan_text)
        .filter(|lifespan| *lifespan != Lifespan::Custom)
        .or_else(|| {
            errors.add("lifespan", "choose 7, 30 or 90 days or unlimited");
            None
        });
    let result = match (access, lifespan) {
        (Some(access), Some(lifespan)) if errors.is_empty() => {
            let request = CreatePersonalTokenRequest {
                name: name.clone(),
                description: None,
                access,
                lifespan: Some(lifespan),
                expires_at: None,
            };
            state
                .app
                .personal_tokens()
                .create_mine(&console.principal, request)
                .await
        }
        _ => Err(AppError::from(errors)),
    };
    match result {
        Ok(created) => with_secret(&state, &console, created.token).await,
        Err(AppError::Validation(errors)) => {
            let mut page = profile_page(&state, &console).await?;
            page.name = name;
            page.access = access_text;
            page.lifespan = lifespan_text;
            page.errors = errors.0;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(error) => Err(console.fail()(error)),
    }
}

/// `POST /admin/profile/tokens/{id}/{action}`: regenerate or revoke.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: ConsoleForm,
) -> UiResult {
    let console = posted.console;
    let app = &state.app;
    match action.as_str() {
        "regenerate" => {
            let created = app
                .personal_tokens()
                .regenerate_mine(&console.principal, &id, RegenerateRequest::default())
                .await
                .map_err(console.fail())?;
            with_secret(&state, &console, created.token).await
        }
        "delete" => {
            app.personal_tokens()
                .delete_mine(&console.principal, &id)
                .await
                .map_err(console.fail())?;
            Ok(Redirect::to("/admin/profile?done=revoked").into_response())
        }
        _ => Err(console.fail()(AppError::NotFound(format!(
            "personal token action `{action}`"
        )))),
    }
}
