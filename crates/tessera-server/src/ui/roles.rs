//! Roles: what each role of the console may do, as a grid of the admin permissions.
//! Built-in roles that cannot change are shown read-only; the others are saved one
//! at a time; new roles are created below the list, and roles of one's own deleted.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use tessera_api_types::{RoleRequest, RoleUpdate, RoleView};
use tessera_app::AppError;
use tessera_core::AdminPermission;
use tessera_core::validate::FieldErrors;

use crate::AppState;
use crate::extract::Path;
use crate::ui::console::{Console, ConsoleForm, FormData, UiResult};
use crate::ui::page::{DoneQuery, Layout, notice, render, render_with};

/// One box of a role's permission grid.
#[derive(Debug)]
struct PermissionBox {
    /// `tokens.read`: the form value.
    value: &'static str,
    /// The message key of its label.
    key: String,
    checked: bool,
}

/// The grid of every admin permission, `granted` ticked.
fn grid(granted: &BTreeSet<String>) -> Vec<PermissionBox> {
    AdminPermission::ALL
        .into_iter()
        .map(|permission| PermissionBox {
            value: permission.as_str(),
            key: format!("roles.perm.{}", permission.as_str()),
            checked: granted.contains(permission.as_str()),
        })
        .collect()
}

/// The permissions ticked in a posted form (unknown values are ignored).
fn ticked(form: &FormData) -> Vec<AdminPermission> {
    let values: BTreeSet<String> = form.all("permissions").into_iter().collect();
    AdminPermission::ALL
        .into_iter()
        .filter(|permission| values.contains(permission.as_str()))
        .collect()
}

/// A role as its card shows it (with what was typed, when a save came back).
#[derive(Debug)]
struct RoleCard {
    id: String,
    name: String,
    description: String,
    builtin: bool,
    editable: bool,
    grid: Vec<PermissionBox>,
    error: Option<String>,
}

impl RoleCard {
    fn new(role: &RoleView) -> Self {
        let granted = role
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        Self {
            id: role.id.clone(),
            name: role.name.clone(),
            description: role.description.clone(),
            builtin: role.builtin,
            editable: role.editable,
            grid: grid(&granted),
            error: None,
        }
    }
}

/// The create form as typed.
#[derive(Debug, Default)]
struct NewRoleForm {
    name: String,
    description: String,
    grid: Vec<PermissionBox>,
}

impl NewRoleForm {
    fn blank() -> Self {
        Self {
            grid: grid(&BTreeSet::new()),
            ..Self::default()
        }
    }

    fn from_post(form: &FormData) -> Self {
        Self {
            name: form.text("name").trim().to_owned(),
            description: form.text("description"),
            grid: grid(&form.all("permissions").into_iter().collect()),
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "roles.html")]
struct RolesPage {
    layout: Layout,
    roles: Vec<RoleCard>,
    form: NewRoleForm,
    errors: FieldErrors,
    notice: Option<String>,
}

impl RolesPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }

    fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.roles.iter().any(|role| role.error.is_some())
    }
}

async fn roles_page(
    state: &AppState,
    console: &Console,
    form: NewRoleForm,
    errors: FieldErrors,
) -> UiResult<RolesPage> {
    let roles = state
        .app
        .roles()
        .list(&console.principal)
        .await
        .map_err(console.fail())?;
    Ok(RolesPage {
        layout: Layout::console(console, "roles", "roles.title"),
        roles: roles.iter().map(RoleCard::new).collect(),
        form,
        errors,
        notice: None,
    })
}

/// `GET /admin/roles`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<DoneQuery>,
) -> UiResult {
    let mut page = roles_page(
        &state,
        &console,
        NewRoleForm::blank(),
        FieldErrors::default(),
    )
    .await?;
    page.notice = notice(console.lang, "roles", &query.done);
    Ok(render(&page))
}

/// `POST /admin/roles`: creates a role.
pub async fn create(State(state): State<AppState>, posted: ConsoleForm) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let typed = NewRoleForm::from_post(&form);
    let request = RoleRequest {
        name: typed.name.clone(),
        description: Some(typed.description.clone()).filter(|d| !d.trim().is_empty()),
        permissions: ticked(&form),
    };
    let errors = match state.app.roles().create(&console.principal, request).await {
        Ok(_) => return Ok(Redirect::to("/admin/roles?done=created").into_response()),
        Err(AppError::Validation(errors)) => errors.0,
        Err(AppError::Conflict(message)) => FieldErrors::single("name", message),
        Err(error) => return Err(console.fail()(error)),
    };
    let page = roles_page(&state, &console, typed, errors).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// `POST /admin/roles/{id}`: saves a role's description and permissions.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let update = RoleUpdate {
        description: Some(form.text("description")),
        permissions: Some(ticked(&form)),
    };
    let errors = match state
        .app
        .roles()
        .update(&console.principal, &id, update)
        .await
    {
        Ok(_) => return Ok(Redirect::to("/admin/roles?done=saved").into_response()),
        Err(AppError::Validation(errors)) => errors.0,
        Err(error) => return Err(console.fail()(error)),
    };
    let mut page = roles_page(
        &state,
        &console,
        NewRoleForm::blank(),
        FieldErrors::default(),
    )
    .await?;
    if let Some(card) = page.roles.iter_mut().find(|card| card.id == id) {
        card.description = form.text("description");
        card.grid = grid(&form.all("permissions").into_iter().collect());
        card.error = Some(errors.to_string());
    }
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// `POST /admin/roles/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let console = posted.console;
    state
        .app
        .roles()
        .delete(&console.principal, &id)
        .await
        .map_err(console.fail())?;
    Ok(Redirect::to("/admin/roles?done=deleted").into_response())
}
