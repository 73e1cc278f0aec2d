//! The resource catalog and projects.

use chrono::{DateTime, Utc};
use tessera_core::{AuditEntry, ChangeKind, Project, Resource};

use super::{Backend, Expect, Sql, SqlStore, conflict};
use crate::StoreResult;
use crate::rows::{ProjectRow, ResourceRow, json_text, millis};

pub(super) async fn list_resources<B: Backend>(store: &SqlStore<B>) -> StoreResult<Vec<Resource>> {
    let sql = Sql::new("SELECT name, description, actions FROM resources ORDER BY name");
    store.all(sql, ResourceRow::into_resource).await
}

pub(super) async fn insert_resource<B: Backend>(
    store: &SqlStore<B>,
    resource: &Resource,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new(
        "INSERT INTO resources (name, description, actions, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&resource.name)
    .bind(&resource.description)
    .bind(json_text(&resource.actions)?)
    .bind(millis(now));
    let change = [(ChangeKind::Catalog, resource.name.as_str())];
    store.write(sql, Expect::Any, audit, &change).await
}

pub(super) async fn update_resource<B: Backend>(
    store: &SqlStore<B>,
    resource: &Resource,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new(
        "UPDATE resources SET description = $1, actions = $2, updated_at = $3 WHERE name = $4",
    )
    .bind(&resource.description)
    .bind(json_text(&resource.actions)?)
    .bind(millis(now))
    .bind(&resource.name);
    let change = [(ChangeKind::Catalog, resource.name.as_str())];
    store.write(sql, Expect::OneRow, audit, &change).await
}

pub(super) async fn delete_resource<B: Backend>(
    store: &SqlStore<B>,
    name: &str,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new("DELETE FROM resources WHERE name = $1").bind(name);
    let change = [(ChangeKind::Catalog, name)];
    store.write(sql, Expect::OneRow, audit, &change).await
}

pub(super) async fn list_projects<B: Backend>(store: &SqlStore<B>) -> StoreResult<Vec<Project>> {
    let sql = Sql::new("SELECT slug, name, created_at FROM projects ORDER BY slug");
    store.all(sql, ProjectRow::into_project).await
}

pub(super) async fn insert_project<B: Backend>(
    store: &SqlStore<B>,
    project: &Project,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new("INSERT INTO projects (slug, name, created_at) VALUES ($1, $2, $3)")
        .bind(&project.slug)
        .bind(&project.name)
        .bind(millis(project.created_at));
    let change = [(ChangeKind::Project, project.slug.as_str())];
    store.write(sql, Expect::Any, audit, &change).await
}

/// `Conflict` while a token is bound to the project (`ON DELETE RESTRICT`).
pub(super) async fn delete_project<B: Backend>(
    store: &SqlStore<B>,
    slug: &str,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new("DELETE FROM projects WHERE slug = $1").bind(slug);
    let change = [(ChangeKind::Project, slug)];
    store
        .write(sql, Expect::OneRow, audit, &change)
        .await
        .map_err(conflict(format!("tokens are bound to project `{slug}`")))
}
