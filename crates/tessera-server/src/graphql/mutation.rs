//! The mutations: each a `POST`, `PATCH` or `DELETE` of a REST route, through the same
//! application call. A secret is in the answer of `createToken`, `regenerateToken`,
//! `duplicateToken`, `createPersonalToken` and `regeneratePersonalToken` only.

use async_graphql::{Context, ID, Object, Result};
use tessera_api_types::graphql::UpdateTokenInput;
use tessera_api_types::{
    CreatePersonalTokenRequest, CreateTokenRequest, CreateUserRequest, CreatedPersonalToken,
    CreatedToken, DuplicateRequest, ProjectRequest, ProjectView, RegenerateRequest,
    ResourceRequest, ResourceUpdate, ResourceView, RoleRequest, RoleUpdate, RoleView, TokenView,
    UpdateUserRequest, UpgradeVersionRequest, UserView,
};
use tessera_core::TokenStatus;

use super::{MUTATION_COST, OrGraphqlError, context};

/// Changes. A deletion answers `true`.
#[derive(Debug, Default)]
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Creates an API token; the secret is in this answer only (`tokens.create`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        input: CreateTokenRequest,
    ) -> Result<CreatedToken> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .create(request.principal()?, input)
            .await
            .or_graphql_error()
    }

    /// Edits a token: absent fields stay, `null` clears a nullable one (`tokens.update`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn update_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateTokenInput,
    ) -> Result<TokenView> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .update(request.principal()?, &id, input.into())
            .await
            .or_graphql_error()
    }

    /// Deletes a token; it stops verifying within a second (`tokens.delete`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn delete_token(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .delete(request.principal()?, &id)
            .await
            .or_graphql_error()?;
        Ok(true)
    }

    /// A new secret for a token, in this answer only; the old one may keep working
    /// for a grace period of up to a day (`tokens.regenerate`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn regenerate_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: Option<RegenerateRequest>,
    ) -> Result<CreatedToken> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .regenerate(request.principal()?, &id, input.unwrap_or_default())
            .await
            .or_graphql_error()
    }

    /// A new token with a copy of this one's settings (`tokens.create` and `tokens.read`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn duplicate_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: Option<String>,
    ) -> Result<CreatedToken> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .duplicate(request.principal()?, &id, DuplicateRequest { name })
            .await
            .or_graphql_error()
    }

    /// Stops a token verifying until it is enabled again (`tokens.update`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn disable_token(&self, ctx: &Context<'_>, id: ID) -> Result<TokenView> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .set_status(request.principal()?, &id, TokenStatus::Disabled)
            .await
            .or_graphql_error()
    }

    /// Lets a disabled token verify again (`tokens.update`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn enable_token(&self, ctx: &Context<'_>, id: ID) -> Result<TokenView> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .set_status(request.principal()?, &id, TokenStatus::Active)
            .await
            .or_graphql_error()
    }

    /// Moves a token to an API version, the newest when none is named (`tokens.update`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn upgrade_token_version(
        &self,
        ctx: &Context<'_>,
        id: ID,
        api_version: Option<String>,
    ) -> Result<TokenView> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .upgrade_version(
                request.principal()?,
                &id,
                UpgradeVersionRequest { api_version },
            )
            .await
            .or_graphql_error()
    }

    /// Adds a resource to the catalog (`resources.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn create_resource(
        &self,
        ctx: &Context<'_>,
        input: ResourceRequest,
    ) -> Result<ResourceView> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .create_resource(request.principal()?, input)
            .await
            .or_graphql_error()
    }

    /// Replaces a resource's description and/or actions (`resources.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn update_resource(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: ResourceUpdate,
    ) -> Result<ResourceView> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .update_resource(request.principal()?, &name, input)
            .await
            .or_graphql_error()
    }

    /// Removes a resource (`resources.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn delete_resource(&self, ctx: &Context<'_>, name: String) -> Result<bool> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .delete_resource(request.principal()?, &name)
            .await
            .or_graphql_error()?;
        Ok(true)
    }

    /// Adds a project (`projects.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn create_project(
        &self,
        ctx: &Context<'_>,
        input: ProjectRequest,
    ) -> Result<ProjectView> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .create_project(request.principal()?, input)
            .await
            .or_graphql_error()
    }

    /// Removes a project no token belongs to (`projects.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn delete_project(&self, ctx: &Context<'_>, slug: String) -> Result<bool> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .delete_project(request.principal()?, &slug)
            .await
            .or_graphql_error()?;
        Ok(true)
    }

    /// Adds an admin user (`users.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserRequest) -> Result<UserView> {
        let request = context(ctx)?;
        request
            .app
            .users()
            .create(request.principal()?, input)
            .await
            .or_graphql_error()
    }

    /// Edits an admin user (`users.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateUserRequest,
    ) -> Result<UserView> {
        let request = context(ctx)?;
        request
            .app
            .users()
            .update(request.principal()?, &id, input)
            .await
            .or_graphql_error()
    }

    /// Removes an admin user and their personal tokens (`users.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let request = context(ctx)?;
        request
            .app
            .users()
            .delete(request.principal()?, &id)
            .await
            .or_graphql_error()?;
        Ok(true)
    }

    /// Revokes one of a user's personal tokens (`users.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn revoke_user_token(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        token_id: ID,
    ) -> Result<bool> {
        let request = context(ctx)?;
        request
            .app
            .personal_tokens()
            .revoke_of_user(request.principal()?, &user_id, &token_id)
            .await
            .or_graphql_error()?;
        Ok(true)
    }

    /// Adds a role (`roles.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn create_role(&self, ctx: &Context<'_>, input: RoleRequest) -> Result<RoleView> {
        let request = context(ctx)?;
        request
            .app
            .roles()
            .create(request.principal()?, input)
            .await
            .or_graphql_error()
    }

    /// Edits a role's description and/or permissions (`roles.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn update_role(&self, ctx: &Context<'_>, id: ID, input: RoleUpdate) -> Result<RoleView> {
        let request = context(ctx)?;
        request
            .app
            .roles()
            .update(request.principal()?, &id, input)
            .await
            .or_graphql_error()
    }

    /// Removes a role no user has (`roles.manage`).
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn delete_role(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let request = context(ctx)?;
        request
            .app
            .roles()
            .delete(request.principal()?, &id)
            .await
            .or_graphql_error()?;
        Ok(true)
    }

    /// Creates a personal token for the signed-in user; the secret is in this answer only.
    /// From a console session only, as `POST /v1/me/tokens`.
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn create_personal_token(
        &self,
        ctx: &Context<'_>,
        input: CreatePersonalTokenRequest,
    ) -> Result<CreatedPersonalToken> {
        let request = context(ctx)?;
        request
            .app
            .personal_tokens()
            .create_mine(request.principal()?, input)
            .await
            .or_graphql_error()
    }

    /// Deletes one of the signed-in user's personal tokens.
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn delete_personal_token(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let request = context(ctx)?;
        request
            .app
            .personal_tokens()
            .delete_mine(request.principal()?, &id)
            .await
            .or_graphql_error()?;
        Ok(true)
    }

    /// A new secret for one of the signed-in user's personal tokens, in this answer only.
    #[graphql(complexity = "MUTATION_COST + child_complexity")]
    async fn regenerate_personal_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: Option<RegenerateRequest>,
    ) -> Result<CreatedPersonalToken> {
        let request = context(ctx)?;
        request
            .app
            .personal_tokens()
            .regenerate_mine(request.principal()?, &id, input.unwrap_or_default())
            .await
            .or_graphql_error()
    }
}
