//! Personal tokens: a user's own tokens (`tsrp_…`) that act as that user against
//! Tessera's management API, with the user's *current* permissions (read-only: only
//! the reading ones). Not editable after creation; revocable by the owner and by
//! admins with `users.manage`. They stop at once when the owner is deactivated or
//! removed (the verify index follows user changes).

use tessera_api_types::{
    CreatePersonalTokenRequest, CreatedPersonalToken, PersonalTokenView, RegenerateRequest,
    TokenView,
};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{
    AdminPermission, PersonalAccess, TokenKind, TokenRecord, TokenSettings, UserId,
};

use crate::audit;
use crate::error::{AppError, AppResult};
use crate::principal::Principal;
use crate::tokens::{TokenScope, Tokens};
use crate::users::Users;

fn personal_view(record: &TokenRecord, now: chrono::DateTime<chrono::Utc>) -> PersonalTokenView {
    PersonalTokenView {
        record: TokenView::new(record, now),
        access: PersonalAccess::of_token_type(record.token_type),
    }
}

/// Personal tokens: the token operations of [`Tokens`], scoped to one owner, and the
/// user lookups that decide whose tokens an admin may see or revoke.
#[derive(Debug, Clone)]
pub struct PersonalTokens {
    tokens: Tokens,
    users: Users,
}

impl PersonalTokens {
    pub(crate) fn new(tokens: Tokens, users: Users) -> Self {
        Self { tokens, users }
    }

    async fn personal_tokens_of(&self, owner: UserId) -> AppResult<Vec<PersonalTokenView>> {
        let now = self.tokens.cx.now();
        let mut tokens: Vec<TokenRecord> = self
            .tokens
            .cx
            .store
            .tokens_of_owner(owner)
            .await?
            .into_iter()
            .filter(|t| t.kind == TokenKind::Personal)
            .collect();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created_at));
        Ok(tokens.iter().map(|t| personal_view(t, now)).collect())
    }

    pub async fn list_mine(&self, principal: &Principal) -> AppResult<Vec<PersonalTokenView>> {
        self.personal_tokens_of(principal.own_user()?).await
    }

    pub async fn create_mine(
        &self,
        principal: &Principal,
        request: CreatePersonalTokenRequest,
    ) -> AppResult<CreatedPersonalToken> {
        principal.require_session()?;
        let owner = principal.own_user()?;
        let now = self.tokens.cx.now();
        let mut errors = FieldErrors::default();
        errors.collect(validate::display_name("name", &request.name));
        let description = request.description.unwrap_or_default();
        errors.collect(validate::description(&description));
        let expiry = errors.collect(tessera_core::lifecycle::resolve_expiry(
            request.lifespan,
            request.expires_at,
            now,
        ));
        errors.into_result()?;
        let Some((lifespan, expires_at)) = expiry else {
            return Err(AppError::Internal(
                "validation passed without an expiry".into(),
            ));
        };
        let settings = TokenSettings::personal(
            owner,
            request.name,
            description,
            request.access,
            (lifespan, expires_at),
            self.tokens.newest_api_version(),
        );
        let (record, secret) = self.tokens.issue(settings, principal, now);
        let view = personal_view(&record, now);
        let changes = audit::diff(None, Some(&audit::snapshot(&view)?));
        let entry = audit::entry(
            principal,
            now,
            "personal_token.create",
            format!("token:{}", record.id),
            changes,
        );
        self.tokens.insert_issued(&record, &entry).await?;
        Ok(CreatedPersonalToken {
            record: view,
            token: secret.expose().to_owned(),
        })
    }

    pub async fn delete_mine(&self, principal: &Principal, id: &str) -> AppResult<()> {
        principal.require_session()?;
        self.tokens
            .delete_token_in(principal, id, TokenScope::PersonalOf(principal.own_user()?))
            .await
    }

    pub async fn regenerate_mine(
        &self,
        principal: &Principal,
        id: &str,
        request: RegenerateRequest,
    ) -> AppResult<CreatedPersonalToken> {
        principal.require_session()?;
        let scope = TokenScope::PersonalOf(principal.own_user()?);
        let (after, secret) = self
            .tokens
            .regenerate_in(principal, id, scope, "personal_token.regenerate", request)
            .await?;
        Ok(CreatedPersonalToken {
            record: personal_view(&after, after.updated_at),
            token: secret.expose().to_owned(),
        })
    }

    /// Another user's personal tokens (`users.manage`).
    pub async fn list_of_user(
        &self,
        principal: &Principal,
        user_id: &str,
    ) -> AppResult<Vec<PersonalTokenView>> {
        principal.require(AdminPermission::UsersManage)?;
        let user = self.users.get(user_id).await?;
        self.personal_tokens_of(user.id).await
    }

    /// Revokes another user's personal token (`users.manage`).
    pub async fn revoke_of_user(
        &self,
        principal: &Principal,
        user_id: &str,
        token_id: &str,
    ) -> AppResult<()> {
        principal.require(AdminPermission::UsersManage)?;
        let owner = self.users.get(user_id).await?;
        // As for every other action on a user: not on one whose role holds more.
        self.users
            .ensure_within_reach(principal, &owner.role)
            .await?;
        self.tokens
            .delete_token_in(principal, token_id, TokenScope::PersonalOf(owner.id))
            .await
    }
}
