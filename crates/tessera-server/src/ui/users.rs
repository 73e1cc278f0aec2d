//! Users: the administrators who sign in to the console. The table with each user's
//! role, state and per-user actions (change role, deactivate / reactivate, reset the
//! password, delete), and the form that invites a new one.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use tessera_api_types::{CreateUserRequest, RoleView, UpdateUserRequest, UserView};
use tessera_app::AppError;
use tessera_core::validate::FieldErrors;

use crate::AppState;
use crate::extract::Path;
use crate::ui::console::{Console, ConsoleForm, FormData, UiResult, non_blank};
use crate::ui::page::{DoneQuery, Layout, Time, notice, render, render_with};

/// What a redirect tells the page (`?done=invited`).
/// One row of the table.
#[derive(Debug)]
struct UserRow {
    id: String,
    /// The name, or the email when the user has none.
    label: String,
    name: String,
    email: String,
    role: String,
    active: bool,
    created: Time,
    /// The signed-in admin's own row.
    me: bool,
}

impl UserRow {
    fn new(user: &UserView, me: &UserView) -> Self {
        Self {
            id: user.id.to_string(),
            label: if user.name.trim().is_empty() {
                user.email.clone()
            } else {
                user.name.clone()
            },
            name: user.name.clone(),
            email: user.email.clone(),
            role: user.role.clone(),
            active: user.active,
            created: Time::new(user.created_at),
            me: user.id == me.id,
        }
    }
}

/// The invite form's fields as typed (never the password).
#[derive(Debug, Clone, Default)]
struct InviteForm {
    email: String,
    name: String,
    role: String,
}

impl InviteForm {
    fn from_post(form: &FormData) -> Self {
        Self {
            email: form.text("email").trim().to_owned(),
            name: form.text("name").trim().to_owned(),
            role: form.text("role"),
        }
    }
}

/// A per-user action that came back with an error: which row, and why.
#[derive(Debug)]
struct RowError {
    id: String,
    message: String,
}

#[derive(Debug, Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    rows: Vec<UserRow>,
    roles: Vec<RoleView>,
    form: InviteForm,
    errors: FieldErrors,
    row_error: Option<RowError>,
    notice: Option<String>,
}

impl UsersPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }

    fn row_error(&self, id: &str) -> Option<&str> {
        self.row_error
            .as_ref()
            .filter(|error| error.id == id)
            .map(|error| error.message.as_str())
    }
}

/// Builds the page around the invite form `form`.
async fn users_page(
    state: &AppState,
    console: &Console,
    form: InviteForm,
    errors: FieldErrors,
) -> UiResult<UsersPage> {
    let users = state
        .app
        .users()
        .list(&console.principal)
        .await
        .map_err(console.fail())?;
    let roles = state
        .app
        .roles()
        .list(&console.principal)
        .await
        .map_err(console.fail())?;
    Ok(UsersPage {
        layout: Layout::console(console, "users", "users.title"),
        rows: users
            .iter()
            .map(|user| UserRow::new(user, &console.me))
            .collect(),
        roles,
        form,
        errors,
        row_error: None,
        notice: None,
    })
}

/// `GET /admin/users`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<DoneQuery>,
) -> UiResult {
    let mut page = users_page(
        &state,
        &console,
        InviteForm::default(),
        FieldErrors::default(),
    )
    .await?;
    page.notice = notice(console.lang, "users", &query.done);
    Ok(render(&page))
}

/// `POST /admin/users`: invites a user.
pub async fn create(State(state): State<AppState>, posted: ConsoleForm) -> UiResult {
    let ConsoleForm {
        console,
        form: posted,
    } = posted;
    let form = InviteForm::from_post(&posted);
    let request = CreateUserRequest {
        email: form.email.clone(),
        name: non_blank(&form.name),
        role: form.role.clone(),
        password: posted
            .get("password")
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    };
    let errors = match state.app.users().create(&console.principal, request).await {
        Ok(_) => return Ok(Redirect::to("/admin/users?done=invited").into_response()),
        Err(AppError::Validation(errors)) => errors.0,
        Err(AppError::Conflict(message)) => FieldErrors::single("email", message),
        Err(error) => return Err(console.fail()(error)),
    };
    let page = users_page(&state, &console, form, errors).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// `POST /admin/users/{id}`: one change, named by the `op` field.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let (request, done) = match form.get("op").unwrap_or_default() {
        "role" => (
            UpdateUserRequest {
                role: Some(form.text("role")),
                ..UpdateUserRequest::default()
            },
            "role",
        ),
        "active" => {
            let active = match form.get("active") {
                Some("true") => true,
                Some("false") => false,
                _ => {
                    return Err(console.fail()(AppError::field(
                        "active",
                        "must be true or false",
                    )));
                }
            };
            (
                UpdateUserRequest {
                    active: Some(active),
                    ..UpdateUserRequest::default()
                },
                if active { "reactivated" } else { "deactivated" },
            )
        }
        "password" => (
            UpdateUserRequest {
                password: Some(form.text("password")),
                ..UpdateUserRequest::default()
            },
            "password",
        ),
        other => {
            return Err(console.fail()(AppError::BadRequest(format!(
                "unknown user change `{other}`"
            ))));
        }
    };
    let message = match state
        .app
        .users()
        .update(&console.principal, &id, request)
        .await
    {
        Ok(_) => return Ok(Redirect::to(&format!("/admin/users?done={done}")).into_response()),
        Err(AppError::Validation(errors)) => errors
            .0
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect::<Vec<_>>()
            .join("; "),
        Err(error) => return Err(console.fail()(error)),
    };
    let mut page = users_page(
        &state,
        &console,
        InviteForm::default(),
        FieldErrors::default(),
    )
    .await?;
    page.row_error = Some(RowError { id, message });
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// `POST /admin/users/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let console = posted.console;
    state
        .app
        .users()
        .delete(&console.principal, &id)
        .await
        .map_err(console.fail())?;
    Ok(Redirect::to("/admin/users?done=deleted").into_response())
}
