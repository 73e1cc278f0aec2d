//! The resource catalog, projects and API versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::{Action, ActionKind, Resource};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject, async_graphql::InputObject),
    graphql(name = "Action", input_name = "ActionInput")
)]
pub struct ActionView {
    pub name: String,
    pub kind: ActionKind,
}

/// A resource as shown: its actions and the permissions they define.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "Resource")
)]
pub struct ResourceView {
    pub name: String,
    pub description: String,
    pub actions: Vec<ActionView>,
}

impl From<&Resource> for ResourceView {
    fn from(resource: &Resource) -> Self {
        Self {
            name: resource.name.clone(),
            description: resource.description.clone(),
            actions: resource
                .actions
                .iter()
                .map(|a| ActionView {
                    name: a.name.clone(),
                    kind: a.kind,
                })
                .collect(),
        }
    }
}

/// `POST /v1/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "CreateResourceInput")
)]
pub struct ResourceRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub actions: Vec<ActionView>,
}

impl ResourceRequest {
    pub fn into_resource(self) -> Resource {
        Resource {
            name: self.name,
            description: self.description.unwrap_or_default(),
            actions: self
                .actions
                .into_iter()
                .map(|a| Action {
                    name: a.name,
                    kind: a.kind,
                })
                .collect(),
        }
    }
}

/// `PATCH /v1/resources/{name}`: replaces the description and/or the action list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "UpdateResourceInput")
)]
pub struct ResourceUpdate {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub actions: Option<Vec<ActionView>>,
}

/// `POST /v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::InputObject),
    graphql(name = "CreateProjectInput")
)]
pub struct ProjectRequest {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "Project")
)]
pub struct ProjectView {
    pub slug: String,
    pub name: String,
    #[serde(serialize_with = "crate::token::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/api-versions`: the configured versions, oldest first, and the newest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject),
    graphql(name = "ApiVersions")
)]
pub struct ApiVersionsView {
    pub versions: Vec<String>,
    pub newest: String,
}
