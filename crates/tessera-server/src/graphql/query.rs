//! The queries: each the `GET` of a REST route, through the same application call.

use async_graphql::{Context, ID, Object, Result};
use tessera_api_types::graphql::VerifyResult;
use tessera_api_types::{
    ApiVersionsView, AuditPage, AuditParams, PersonalTokenView, ProjectView, ResourceView,
    RoleView, TokenListParams, TokenPage, TokenView, UsageParams, UsageView, UserView,
};
use tessera_app::VerifyQuery;

use super::{LIST_COST, OrGraphqlError, READ_COST, context};

/// Reads.
#[derive(Debug, Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// API tokens, filtered, sorted and paged as `GET /v1/tokens` (`tokens.read`). The
    /// arguments take the same values as its query parameters.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A part of the name, in any case and width.")] q: Option<String>,
        #[graphql(desc = "`last-7-days`, `last-30-days` or `older-than-30-days`.")] created: Option<
            String,
        >,
        #[graphql(desc = "Created at or after this RFC 3339 time.")] created_after: Option<String>,
        #[graphql(desc = "Created before this RFC 3339 time.")] created_before: Option<String>,
        #[graphql(desc = "`active`, `disabled` or `expired`.")] status: Option<String>,
        #[graphql(name = "type", desc = "`read-only`, `full-access` or `custom`.")]
        token_type: Option<String>,
        #[graphql(desc = "A project's slug.")] project: Option<String>,
        #[graphql(desc = "The exact external id.")] external_id: Option<String>,
        #[graphql(
            desc = "`created_at`, `name` or `last_used_at`, `-` first for descending (default `-created_at`)."
        )]
        sort: Option<String>,
        #[graphql(desc = "1 to 200 (default 50).")] limit: Option<i32>,
        #[graphql(desc = "The previous page's `nextCursor`.")] cursor: Option<String>,
    ) -> Result<TokenPage> {
        let request = context(ctx)?;
        // Who asks comes first, as in REST: an anonymous caller learns nothing of the
        // arguments' syntax.
        let principal = request.principal()?;
        let filter = TokenListParams {
            q,
            created,
            created_after,
            created_before,
            status,
            token_type,
            project,
            external_id,
            sort,
            limit: limit.map(|limit| limit.to_string()),
            cursor,
        }
        .parse()
        .or_graphql_error()?;
        request
            .app
            .tokens()
            .list(principal, filter)
            .await
            .or_graphql_error()
    }

    /// One API token, never its secret (`tokens.read`).
    #[graphql(complexity = "READ_COST + child_complexity")]
    async fn token(&self, ctx: &Context<'_>, id: ID) -> Result<TokenView> {
        let request = context(ctx)?;
        request
            .app
            .tokens()
            .get(request.principal()?, &id)
            .await
            .or_graphql_error()
    }

    /// A token's allowed and denied verifications per day (`tokens.read`).
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn token_usage(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "1 to 366 days, ending today (default 30).")] days: Option<i32>,
    ) -> Result<UsageView> {
        let request = context(ctx)?;
        let principal = request.principal()?;
        let days = UsageParams {
            days: days.map(|days| days.to_string()),
        }
        .parse()
        .or_graphql_error()?;
        request
            .app
            .tokens()
            .usage(principal, &id, days)
            .await
            .or_graphql_error()
    }

    /// The resource catalog custom tokens are scoped against (`tokens.read` or
    /// `resources.manage`).
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn resources(&self, ctx: &Context<'_>) -> Result<Vec<ResourceView>> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .list_resources(request.principal()?)
            .await
            .or_graphql_error()
    }

    /// The projects tokens may belong to (`tokens.read` or `projects.manage`).
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn projects(&self, ctx: &Context<'_>) -> Result<Vec<ProjectView>> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .list_projects(request.principal()?)
            .await
            .or_graphql_error()
    }

    /// The configured API versions, oldest first, and the newest (`tokens.read`).
    #[graphql(complexity = "READ_COST + child_complexity")]
    async fn api_versions(&self, ctx: &Context<'_>) -> Result<ApiVersionsView> {
        let request = context(ctx)?;
        request
            .app
            .catalog()
            .api_versions(request.principal()?)
            .or_graphql_error()
    }

    /// Admin users (`users.manage`).
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn users(&self, ctx: &Context<'_>) -> Result<Vec<UserView>> {
        let request = context(ctx)?;
        request
            .app
            .users()
            .list(request.principal()?)
            .await
            .or_graphql_error()
    }

    /// A user's personal tokens (`users.manage`).
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn user_tokens(&self, ctx: &Context<'_>, user_id: ID) -> Result<Vec<PersonalTokenView>> {
        let request = context(ctx)?;
        request
            .app
            .personal_tokens()
            .list_of_user(request.principal()?, &user_id)
            .await
            .or_graphql_error()
    }

    /// Admin roles and their permissions (`roles.manage` or `users.manage`).
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn roles(&self, ctx: &Context<'_>) -> Result<Vec<RoleView>> {
        let request = context(ctx)?;
        request
            .app
            .roles()
            .list(request.principal()?)
            .await
            .or_graphql_error()
    }

    /// The audit log, newest first, as `GET /v1/audit` (`audit.read`).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn audit(
        &self,
        ctx: &Context<'_>,
        actor: Option<String>,
        action: Option<String>,
        target: Option<String>,
        #[graphql(desc = "At or after this RFC 3339 time.")] since: Option<String>,
        #[graphql(desc = "Before this RFC 3339 time.")] until: Option<String>,
        #[graphql(desc = "1 to 200 (default 50).")] limit: Option<i32>,
        #[graphql(desc = "The previous page's `nextCursor`.")] cursor: Option<String>,
    ) -> Result<AuditPage> {
        let request = context(ctx)?;
        let principal = request.principal()?;
        let filter = AuditParams {
            actor,
            action,
            target,
            since,
            until,
            limit: limit.map(|limit| limit.to_string()),
            cursor,
        }
        .parse()
        .or_graphql_error()?;
        request
            .app
            .audit()
            .list(principal, filter)
            .await
            .or_graphql_error()
    }

    /// The signed-in user.
    #[graphql(complexity = "READ_COST + child_complexity")]
    async fn me(&self, ctx: &Context<'_>) -> Result<UserView> {
        let request = context(ctx)?;
        request
            .app
            .auth()
            .me(request.principal()?)
            .await
            .or_graphql_error()
    }

    /// The signed-in user's personal tokens.
    #[graphql(complexity = "LIST_COST + child_complexity")]
    async fn my_tokens(&self, ctx: &Context<'_>) -> Result<Vec<PersonalTokenView>> {
        let request = context(ctx)?;
        request
            .app
            .personal_tokens()
            .list_mine(request.principal()?)
            .await
            .or_graphql_error()
    }

    /// Whether `token` may do `permission` (in `project`), as `POST /v1/verify`: no
    /// credential needed, answered from memory, `valid` or a `code`.
    async fn verify_token(
        &self,
        ctx: &Context<'_>,
        token: String,
        permission: Option<String>,
        project: Option<String>,
    ) -> Result<VerifyResult> {
        let request = context(ctx)?;
        let query = VerifyQuery {
            token: &token,
            permission: permission.as_deref(),
            project: project.as_deref(),
        };
        let verdict = request
            .app
            .verify(query, request.client)
            .or_graphql_error()?;
        let retry_after = match &verdict {
            tessera_app::Verdict::Invalid {
                retry_after: Some(wait),
                ..
            } => Some(crate::error::retry_seconds(*wait)),
            _ => None,
        };
        Ok(VerifyResult {
            retry_after_seconds: retry_after,
            ..verdict.into_response().into()
        })
    }
}
