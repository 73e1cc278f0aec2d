//! The resource catalog and projects.

use chrono::{DateTime, Utc};
use tessera_core::{AuditEntry, ChangeKind, Project, Resource};

use super::{Backend, Sql, SqlStore, conflict, finish, one_row};
use crate::StoreResult;
use crate::rows::{ProjectRow, ResourceRow, json_text, millis};

pub(super) async fn list_resources<B: Backend>(store: &SqlStore<B>) -> StoreResult<Vec<Resource>> {
    let sql = Sql::new("SELECT name, description, actions FROM resources ORDER BY name");
    let mut connection = B::acquire(&store.pool).await?;
    B::fetch_all::<ResourceRow>(&mut connection, sql)
        .await?
        .into_iter()
        .map(ResourceRow::into_resource)
        .collect()
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
    let mut transaction = B::begin(&store.pool).await?;
    B::execute(&mut transaction, sql).await?;
    finish(transaction, audit, &[(ChangeKind::Catalog, &resource.name)]).await
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
    let mut transaction = B::begin(&store.pool).await?;
    one_row(B::execute(&mut transaction, sql).await?)?;
    finish(transaction, audit, &[(ChangeKind::Catalog, &resource.name)]).await
}

pub(super) async fn delete_resource<B: Backend>(
    store: &SqlStore<B>,
    name: &str,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new("DELETE FROM resources WHERE name = $1").bind(name);
    let mut transaction = B::begin(&store.pool).await?;
    one_row(B::execute(&mut transaction, sql).await?)?;
    finish(transaction, audit, &[(ChangeKind::Catalog, name)]).await
}

pub(super) async fn list_projects<B: Backend>(store: &SqlStore<B>) -> StoreResult<Vec<Project>> {
    let sql = Sql::new("SELECT slug, name, created_at FROM projects ORDER BY slug");
    let mut connection = B::acquire(&store.pool).await?;
    B::fetch_all::<ProjectRow>(&mut connection, sql)
        .await?
        .into_iter()
        .map(ProjectRow::into_project)
        .collect()
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
    let mut transaction = B::begin(&store.pool).await?;
    B::execute(&mut transaction, sql).await?;
    finish(transaction, audit, &[(ChangeKind::Project, &project.slug)]).await
}

/// `Conflict` while a token is bound to the project (`ON DELETE RESTRICT`).
pub(super) async fn delete_project<B: Backend>(
    store: &SqlStore<B>,
    slug: &str,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let sql = Sql::new("DELETE FROM projects WHERE slug = $1").bind(slug);
    let mut transaction = B::begin(&store.pool).await?;
    let deleted = B::execute(&mut transaction, sql)
        .await
        .map_err(conflict(format!("tokens are bound to project `{slug}`")))?;
    one_row(deleted)?;
    finish(transaction, audit, &[(ChangeKind::Project, slug)]).await
}
