//! Projects and the resource catalog: what the protected API offers, which custom
//! tokens are granted from, and the projects tokens can be bound to.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use tessera_api_types::{
    ActionView, ProjectRequest, ProjectView, ResourceRequest, ResourceUpdate, ResourceView,
};
use tessera_app::AppError;
use tessera_core::ActionKind;

use crate::AppState;
use crate::extract::Path;
use crate::ui::console::{Console, ConsoleForm, FormData, UiResult};
use crate::ui::page::{DoneQuery, Layout, Time, notice, render_with};

/// A refusal shown on the page it came from (a bad field, a conflict), rather than
/// on an error page: the page stays usable and what was typed is kept.
fn refusal(error: AppError) -> Result<(StatusCode, Vec<String>), AppError> {
    match error {
        AppError::Validation(errors) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            errors
                .0
                .iter()
                .map(|(field, message)| format!("{field}: {message}"))
                .collect(),
        )),
        AppError::Conflict(message) => Ok((StatusCode::CONFLICT, vec![message])),
        other => Err(other),
    }
}

#[derive(Debug, Clone)]
struct ProjectRow {
    slug: String,
    name: String,
    created: Time,
}

#[derive(Debug, Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    layout: Layout,
    projects: Vec<ProjectRow>,
    slug: String,
    name: String,
    errors: Vec<String>,
    notice: Option<String>,
}

async fn projects_page(
    state: &AppState,
    console: &Console,
    typed: (&str, &str),
    errors: Vec<String>,
    done: &str,
) -> UiResult<ProjectsPage> {
    let projects: Vec<ProjectView> = state
        .app
        .catalog()
        .list_projects(&console.principal)
        .await
        .map_err(console.fail())?;
    Ok(ProjectsPage {
        layout: Layout::console(console, "projects", "projects.title"),
        projects: projects
            .iter()
            .map(|project| ProjectRow {
                slug: project.slug.clone(),
                name: project.name.clone(),
                created: Time::new(project.created_at),
            })
            .collect(),
        slug: typed.0.to_owned(),
        name: typed.1.to_owned(),
        errors,
        notice: notice(console.lang, "catalog", done),
    })
}

/// `GET /admin/projects`.
pub async fn projects(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<DoneQuery>,
) -> UiResult {
    let page = projects_page(&state, &console, ("", ""), Vec::new(), &query.done).await?;
    Ok(render_with(StatusCode::OK, &page))
}

/// `POST /admin/projects`.
pub async fn create_project(State(state): State<AppState>, posted: ConsoleForm) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let request = ProjectRequest {
        slug: form.text("slug").trim().to_owned(),
        name: form.text("name").trim().to_owned(),
    };
    let typed = (request.slug.clone(), request.name.clone());
    match state
        .app
        .catalog()
        .create_project(&console.principal, request)
        .await
    {
        Ok(_) => Ok(Redirect::to("/admin/projects?done=created").into_response()),
        Err(error) => {
            let (status, errors) = refusal(error).map_err(console.fail())?;
            let page = projects_page(&state, &console, (&typed.0, &typed.1), errors, "").await?;
            Ok(render_with(status, &page))
        }
    }
}

/// `POST /admin/projects/{slug}/delete`.
pub async fn delete_project(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let console = posted.console;
    match state
        .app
        .catalog()
        .delete_project(&console.principal, &slug)
        .await
    {
        Ok(()) => Ok(Redirect::to("/admin/projects?done=deleted").into_response()),
        Err(error) => {
            let (status, errors) = refusal(error).map_err(console.fail())?;
            let page = projects_page(&state, &console, ("", ""), errors, "").await?;
            Ok(render_with(status, &page))
        }
    }
}

/// A resource as its form shows it: actions as comma-separated names per kind.
#[derive(Debug, Clone, Default)]
struct ResourceForm {
    name: String,
    description: String,
    read: String,
    write: String,
}

impl ResourceForm {
    fn of(resource: &ResourceView) -> Self {
        let names = |kind| {
            resource
                .actions
                .iter()
                .filter(|action| action.kind == kind)
                .map(|action| action.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Self {
            name: resource.name.clone(),
            description: resource.description.clone(),
            read: names(ActionKind::Read),
            write: names(ActionKind::Write),
        }
    }

    fn from_post(form: &FormData) -> Self {
        Self {
            name: form.text("name").trim().to_owned(),
            description: form.text("description").trim().to_owned(),
            read: form.text("read"),
            write: form.text("write"),
        }
    }

    /// The actions typed: read ones, then write ones; names split on commas or spaces.
    fn actions(&self) -> Vec<ActionView> {
        let split = |text: &str, kind: ActionKind| {
            text.split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| ActionView {
                    name: name.to_owned(),
                    kind,
                })
                .collect::<Vec<_>>()
        };
        let mut actions = split(&self.read, ActionKind::Read);
        actions.extend(split(&self.write, ActionKind::Write));
        actions
    }
}

#[derive(Debug, Template)]
#[template(path = "resources.html")]
struct ResourcesPage {
    layout: Layout,
    resources: Vec<ResourceForm>,
    new: ResourceForm,
    /// Which form the errors belong to: a resource's name, or empty for the new one.
    failed: Option<String>,
    errors: Vec<String>,
    notice: Option<String>,
}

impl ResourcesPage {
    fn failed_here(&self, name: &str) -> bool {
        self.failed.as_deref() == Some(name)
    }
}

async fn resources_page(
    state: &AppState,
    console: &Console,
    new: ResourceForm,
    failed: Option<(String, Vec<String>)>,
    done: &str,
) -> UiResult<ResourcesPage> {
    let resources = state
        .app
        .catalog()
        .list_resources(&console.principal)
        .await
        .map_err(console.fail())?;
    let (failed, errors) = failed.map_or((None, Vec::new()), |(at, errors)| (Some(at), errors));
    Ok(ResourcesPage {
        layout: Layout::console(console, "resources", "resources.title"),
        resources: resources.iter().map(ResourceForm::of).collect(),
        new,
        failed,
        errors,
        notice: notice(console.lang, "catalog", done),
    })
}

/// `GET /admin/resources`.
pub async fn resources(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<DoneQuery>,
) -> UiResult {
    let page = resources_page(&state, &console, ResourceForm::default(), None, &query.done).await?;
    Ok(render_with(StatusCode::OK, &page))
}

/// `POST /admin/resources`.
pub async fn create_resource(State(state): State<AppState>, posted: ConsoleForm) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let typed = ResourceForm::from_post(&form);
    let request = ResourceRequest {
        name: typed.name.clone(),
        description: Some(typed.description.clone()),
        actions: typed.actions(),
    };
    match state
        .app
        .catalog()
        .create_resource(&console.principal, request)
        .await
    {
        Ok(_) => Ok(Redirect::to("/admin/resources?done=created").into_response()),
        Err(error) => {
            let (status, errors) = refusal(error).map_err(console.fail())?;
            let page =
                resources_page(&state, &console, typed, Some((String::new(), errors)), "").await?;
            Ok(render_with(status, &page))
        }
    }
}

/// `POST /admin/resources/{name}`: replaces the description and the actions.
pub async fn update_resource(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let typed = ResourceForm::from_post(&form);
    let update = ResourceUpdate {
        description: Some(typed.description.clone()),
        actions: Some(typed.actions()),
    };
    match state
        .app
        .catalog()
        .update_resource(&console.principal, &name, update)
        .await
    {
        Ok(_) => Ok(Redirect::to("/admin/resources?done=saved").into_response()),
        Err(error) => {
            let (status, errors) = refusal(error).map_err(console.fail())?;
            let mut page = resources_page(
                &state,
                &console,
                ResourceForm::default(),
                Some((name.clone(), errors)),
                "",
            )
            .await?;
            // The card that failed shows what was typed, not what is stored.
            if let Some(card) = page.resources.iter_mut().find(|card| card.name == name) {
                *card = ResourceForm { name, ..typed };
            }
            Ok(render_with(status, &page))
        }
    }
}

/// `POST /admin/resources/{name}/delete`.
pub async fn delete_resource(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let console = posted.console;
    state
        .app
        .catalog()
        .delete_resource(&console.principal, &name)
        .await
        .map_err(console.fail())?;
    Ok(Redirect::to("/admin/resources?done=deleted").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_read_then_write_split_on_commas_and_spaces() {
        let form = ResourceForm::from_post(&FormData::parse(
            b"name=article&read=find%2C+findOne&write=create+update%2C%2Cdelete",
        ));
        let actions: Vec<(String, ActionKind)> = form
            .actions()
            .into_iter()
            .map(|action| (action.name, action.kind))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("find".into(), ActionKind::Read),
                ("findOne".into(), ActionKind::Read),
                ("create".into(), ActionKind::Write),
                ("update".into(), ActionKind::Write),
                ("delete".into(), ActionKind::Write),
            ]
        );
        let shown = ResourceForm::of(&ResourceView {
            name: "article".into(),
            description: String::new(),
            actions: form.actions(),
        });
        assert_eq!(shown.read, "find, findOne");
        assert_eq!(shown.write, "create, update, delete");
    }
}
