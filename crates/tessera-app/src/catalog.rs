//! The resource catalog, projects and API versions.

use tessera_api_types::{
    ApiVersionsView, ProjectRequest, ProjectView, ResourceRequest, ResourceUpdate, ResourceView,
};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{Action, AdminPermission, Project, Resource};

use crate::audit;
use crate::context::Context;
use crate::error::{AppError, AppResult, not_found};
use crate::principal::Principal;

fn resource_json(resource: &Resource) -> AppResult<serde_json::Value> {
    audit::snapshot(&ResourceView::from(resource))
}

fn project_view(project: &Project) -> ProjectView {
    ProjectView {
        slug: project.slug.clone(),
        name: project.name.clone(),
        created_at: project.created_at,
    }
}

/// Who may read the resource catalog: whoever reads tokens (token forms need it) or
/// manages resources.
pub const RESOURCE_READERS: [AdminPermission; 2] = [
    AdminPermission::TokensRead,
    AdminPermission::ResourcesManage,
];
/// Who may read the projects: whoever reads tokens or manages projects.
pub const PROJECT_READERS: [AdminPermission; 2] =
    [AdminPermission::TokensRead, AdminPermission::ProjectsManage];

/// The resource catalog, projects and API versions (named so beside core's
/// [`tessera_core::Catalog`], the checked catalog it manages).
#[derive(Debug, Clone)]
pub struct CatalogService {
    cx: Context,
    api_versions: tessera_core::ApiVersions,
}

impl CatalogService {
    pub(crate) fn new(cx: Context, api_versions: tessera_core::ApiVersions) -> Self {
        Self { cx, api_versions }
    }

    /// Readable by [`RESOURCE_READERS`].
    pub async fn list_resources(&self, principal: &Principal) -> AppResult<Vec<ResourceView>> {
        principal.require_any(&RESOURCE_READERS)?;
        Ok(self
            .cx
            .store
            .list_resources()
            .await?
            .iter()
            .map(ResourceView::from)
            .collect())
    }

    pub async fn create_resource(
        &self,
        principal: &Principal,
        request: ResourceRequest,
    ) -> AppResult<ResourceView> {
        principal.require(AdminPermission::ResourcesManage)?;
        let resource = request.into_resource();
        resource.validate()?;
        let now = self.cx.now();
        let changes = audit::diff(None, Some(&resource_json(&resource)?));
        let entry = audit::entry(
            principal,
            now,
            "resource.create",
            format!("resource:{}", resource.name),
            changes,
        );
        self.cx
            .store
            .insert_resource(&resource, now, &entry)
            .await
            .map_err(|error| match error {
                tessera_store::StoreError::Conflict { .. } => AppError::Conflict(format!(
                    "a resource named `{}` already exists",
                    resource.name
                )),
                other => other.into(),
            })?;
        self.cx.apply_own_write().await;
        Ok(ResourceView::from(&resource))
    }

    /// A resource by name. A missing one is answered without echoing the name: a
    /// secret pasted where a name belongs must not come back in an error.
    async fn resource(&self, name: &str) -> AppResult<Resource> {
        self.cx
            .store
            .list_resources()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| AppError::NotFound("resource".into()))
    }

    /// Replaces a resource's description and/or actions. Removing an action revokes it
    /// from every token at once; custom tokens keep the stale entry, which grants nothing.
    pub async fn update_resource(
        &self,
        principal: &Principal,
        name: &str,
        update: ResourceUpdate,
    ) -> AppResult<ResourceView> {
        principal.require(AdminPermission::ResourcesManage)?;
        let before = self.resource(name).await?;
        let mut after = before.clone();
        if let Some(description) = update.description {
            after.description = description;
        }
        if let Some(actions) = update.actions {
            after.actions = actions
                .into_iter()
                .map(|a| Action {
                    name: a.name,
                    kind: a.kind,
                })
                .collect();
        }
        after.validate()?;
        let now = self.cx.now();
        let changes = audit::diff(
            Some(&resource_json(&before)?),
            Some(&resource_json(&after)?),
        );
        let entry = audit::entry(
            principal,
            now,
            "resource.update",
            format!("resource:{name}"),
            changes,
        );
        self.cx
            .store
            .update_resource(&after, now, &entry)
            .await
            .map_err(not_found("resource"))?;
        self.cx.apply_own_write().await;
        Ok(ResourceView::from(&after))
    }

    pub async fn delete_resource(&self, principal: &Principal, name: &str) -> AppResult<()> {
        principal.require(AdminPermission::ResourcesManage)?;
        let before = self.resource(name).await?;
        let now = self.cx.now();
        let changes = audit::diff(Some(&resource_json(&before)?), None);
        let entry = audit::entry(
            principal,
            now,
            "resource.delete",
            format!("resource:{name}"),
            changes,
        );
        self.cx
            .store
            .delete_resource(name, &entry)
            .await
            .map_err(not_found("resource"))?;
        self.cx.apply_own_write().await;
        Ok(())
    }

    /// Readable by [`PROJECT_READERS`].
    pub async fn list_projects(&self, principal: &Principal) -> AppResult<Vec<ProjectView>> {
        principal.require_any(&PROJECT_READERS)?;
        Ok(self
            .cx
            .store
            .list_projects()
            .await?
            .iter()
            .map(project_view)
            .collect())
    }

    pub async fn create_project(
        &self,
        principal: &Principal,
        request: ProjectRequest,
    ) -> AppResult<ProjectView> {
        principal.require(AdminPermission::ProjectsManage)?;
        let mut errors = FieldErrors::default();
        errors.collect(validate::project_slug(&request.slug));
        errors.collect(validate::display_name("name", &request.name));
        errors.into_result()?;
        let now = self.cx.now();
        let project = Project {
            slug: request.slug,
            name: request.name,
            created_at: now,
        };
        let view = project_view(&project);
        let changes = audit::diff(None, Some(&audit::snapshot(&view)?));
        let entry = audit::entry(
            principal,
            now,
            "project.create",
            format!("project:{}", project.slug),
            changes,
        );
        self.cx
            .store
            .insert_project(&project, &entry)
            .await
            .map_err(|error| match error {
                tessera_store::StoreError::Conflict { .. } => {
                    AppError::Conflict(format!("a project `{}` already exists", project.slug))
                }
                other => other.into(),
            })?;
        Ok(view)
    }

    /// Deletes a project; refused (409) while any token is bound to it.
    pub async fn delete_project(&self, principal: &Principal, slug: &str) -> AppResult<()> {
        principal.require(AdminPermission::ProjectsManage)?;
        let before = self
            .cx
            .store
            .list_projects()
            .await?
            .into_iter()
            .find(|p| p.slug == slug)
            .ok_or_else(|| AppError::NotFound("project".into()))?;
        let now = self.cx.now();
        let before_json = audit::snapshot(&project_view(&before))?;
        let entry = audit::entry(
            principal,
            now,
            "project.delete",
            format!("project:{slug}"),
            audit::diff(Some(&before_json), None),
        );
        self.cx
            .store
            .delete_project(slug, &entry)
            .await
            .map_err(not_found("project"))?;
        Ok(())
    }

    /// The configured API versions; readable by whoever reads tokens.
    pub fn api_versions(&self, principal: &Principal) -> AppResult<ApiVersionsView> {
        principal.require(AdminPermission::TokensRead)?;
        Ok(ApiVersionsView {
            versions: self.api_versions.all().to_vec(),
            newest: self.api_versions.newest().to_owned(),
        })
    }
}
