//! Personal tokens: a user's own tokens (`tsrp_…`) that act as that user against
//! Tessera's management API, with the user's *current* permissions (read-only: only
//! the reading ones). Not editable after creation; revocable by the owner and by
//! admins with `users.manage`. They stop at once when the owner is deactivated or
//! removed (the verify index follows user changes).

use std::net::IpAddr;

use tessera_api_types::{
    CreatePersonalTokenRequest, CreatedPersonalToken, PersonalTokenView, RegenerateRequest,
    TokenView,
};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{
    AdminPermission, PersonalAccess, TokenKind, TokenRecord, TokenSettings, TokenType, UserId,
};

use crate::error::{AppError, AppResult};
use crate::principal::Principal;
use crate::tokens::TokenScope;
use crate::{Tessera, VerifyQuery, audit};

/// The access a personal token's type stands for.
fn access_of_type(token_type: TokenType) -> PersonalAccess {
    match token_type {
        TokenType::ReadOnly => PersonalAccess::ReadOnly,
        TokenType::FullAccess | TokenType::Custom => PersonalAccess::Full,
    }
}

fn personal_view(record: &TokenRecord, now: chrono::DateTime<chrono::Utc>) -> PersonalTokenView {
    PersonalTokenView {
        record: TokenView::new(record, now),
        access: access_of_type(record.token_type),
    }
}

impl Tessera {
    async fn personal_tokens_of(&self, owner: UserId) -> AppResult<Vec<PersonalTokenView>> {
        let now = self.clock.now();
        let mut tokens: Vec<TokenRecord> = self
            .store
            .tokens_of_owner(owner)
            .await?
            .into_iter()
            .filter(|t| t.kind == TokenKind::Personal)
            .collect();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created_at));
        Ok(tokens.iter().map(|t| personal_view(t, now)).collect())
    }

    pub async fn list_my_tokens(&self, principal: &Principal) -> AppResult<Vec<PersonalTokenView>> {
        self.personal_tokens_of(principal.own_user()?).await
    }

    pub async fn create_my_token(
        &self,
        principal: &Principal,
        request: CreatePersonalTokenRequest,
    ) -> AppResult<CreatedPersonalToken> {
        principal.require_session()?;
        let owner = principal.own_user()?;
        let now = self.clock.now();
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
        let settings = TokenSettings {
            kind: TokenKind::Personal,
            name: request.name,
            description,
            token_type: match request.access {
                PersonalAccess::Full => TokenType::FullAccess,
                PersonalAccess::ReadOnly => TokenType::ReadOnly,
            },
            permissions: Vec::new(),
            project: None,
            owner_id: Some(owner),
            lifespan,
            expires_at,
            api_version: self.settings.api_versions.newest().to_owned(),
            rate_limit: None,
            external_id: None,
            metadata: tessera_core::TokenMetadata::new(),
        };
        let (record, secret) = self.issue(settings, principal, now);
        let view = personal_view(&record, now);
        let changes = audit::diff(None, Some(&audit::snapshot(&view)?));
        let entry = audit::entry(
            principal,
            now,
            "personal_token.create",
            format!("token:{}", record.id),
            changes,
        );
        self.store.insert_token(&record, &entry).await?;
        self.apply_own_write().await;
        Ok(CreatedPersonalToken {
            record: view,
            token: secret.expose().to_owned(),
        })
    }

    pub async fn delete_my_token(&self, principal: &Principal, id: &str) -> AppResult<()> {
        principal.require_session()?;
        self.delete_token_in(principal, id, TokenScope::PersonalOf(principal.own_user()?))
            .await
    }

    pub async fn regenerate_my_token(
        &self,
        principal: &Principal,
        id: &str,
        request: RegenerateRequest,
    ) -> AppResult<CreatedPersonalToken> {
        principal.require_session()?;
        let scope = TokenScope::PersonalOf(principal.own_user()?);
        let (after, secret) = self
            .regenerate_in(principal, id, scope, "personal_token.regenerate", request)
            .await?;
        Ok(CreatedPersonalToken {
            record: personal_view(&after, after.updated_at),
            token: secret.expose().to_owned(),
        })
    }

    /// Another user's personal tokens (`users.manage`).
    pub async fn list_user_tokens(
        &self,
        principal: &Principal,
        user_id: &str,
    ) -> AppResult<Vec<PersonalTokenView>> {
        principal.require(AdminPermission::UsersManage)?;
        let user = self.user(user_id).await?;
        self.personal_tokens_of(user.id).await
    }

    /// Revokes another user's personal token (`users.manage`).
    pub async fn revoke_user_token(
        &self,
        principal: &Principal,
        user_id: &str,
        token_id: &str,
    ) -> AppResult<()> {
        principal.require(AdminPermission::UsersManage)?;
        let owner = self.user(user_id).await?;
        // As for every other action on a user: not on one whose role holds more.
        self.ensure_within_reach(principal, &owner.role).await?;
        self.delete_token_in(principal, token_id, TokenScope::PersonalOf(owner.id))
            .await
    }

    /// The principal a `Bearer` token stands for on management routes. Only personal
    /// tokens qualify; the owner must be active, and the token acts with the owner's
    /// role as it is now (restricted to reading for read-only tokens).
    pub async fn authenticate_bearer(
        &self,
        token: &str,
        client: Option<IpAddr>,
    ) -> AppResult<Principal> {
        // Only a personal token's prefix gets as far as the index: an API token sent
        // here is refused without counting as a use of it.
        match self.settings.token_format.parse(token) {
            Ok(parsed) if parsed.kind == TokenKind::Personal => {}
            _ => return Err(AppError::Unauthenticated),
        }
        self.check_freshness()?;
        let query = VerifyQuery {
            token,
            permission: None,
            project: None,
        };
        let accepted = self
            .verifier
            .accept_personal(query, client, self.clock.now())
            .map_err(|(code, retry_after)| match (code, retry_after) {
                (tessera_api_types::VerifyCode::RateLimited, Some(retry_after)) => {
                    AppError::RateLimited { retry_after }
                }
                _ => AppError::Unauthenticated,
            })?;
        let (TokenKind::Personal, Some(owner)) = (accepted.kind, accepted.owner_id) else {
            return Err(AppError::Unauthenticated);
        };
        let user = self
            .store
            .get_user(owner)
            .await?
            .filter(|user| user.active)
            .ok_or(AppError::Unauthenticated)?;
        let granted = self.role_grants(&user.role).await?;
        Ok(Principal::personal_token(
            &user,
            access_of_type(accepted.token_type),
            granted,
            client.map(|address| address.to_string()),
        ))
    }
}
