//! API token management: create, list, read, edit, regenerate, duplicate, disable,
//! enable, upgrade, delete, usage. Every call authorizes, validates with core, writes
//! through one store method (with its audit row) and updates this node's index.

use chrono::{DateTime, Duration, Utc};
use tessera_api_types::{
    CreateTokenRequest, CreatedToken, DuplicateRequest, RegenerateRequest, TokenPage, TokenView,
    UpdateTokenRequest, UpgradeVersionRequest, UsageDay, UsageView,
};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{
    AdminPermission, ApiVersions, Catalog, GraceDigest, GracePeriod, Lifespan, Pepper, Project,
    RateLimit, TokenFilter, TokenFormat, TokenId, TokenKind, TokenRecord, TokenSecret,
    TokenSettings, TokenStatus, TokenType, UsageDays, UserId,
};
use tessera_store::StoreError;

use crate::context::Context;
use crate::error::{AppError, AppResult, not_found};
use crate::principal::Principal;
use crate::token_listing::encode_cursor;
pub use crate::token_listing::token_query;
use crate::{Settings, audit};

/// How often an edit is re-applied when concurrent writers keep moving the token on.
const MAX_EDIT_ATTEMPTS: usize = 5;

/// Which tokens an operation may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenScope {
    /// Admin-managed API tokens.
    Api,
    /// The personal tokens of one user.
    PersonalOf(UserId),
}

impl TokenScope {
    fn contains(self, record: &TokenRecord) -> bool {
        match self {
            Self::Api => record.kind == TokenKind::Api,
            Self::PersonalOf(owner) => {
                record.kind == TokenKind::Personal && record.owner_id == Some(owner)
            }
        }
    }
}

/// A token id from a path. Anything that is not a UUID is answered without being
/// echoed: a secret pasted where an id belongs must not come back in an error.
fn parse_id(id: &str) -> AppResult<TokenId> {
    TokenId::parse(id).ok_or_else(|| AppError::NotFound("token (the id is not a UUID)".into()))
}

/// The answer when an API token already has `name`.
fn name_taken(name: &str) -> AppError {
    AppError::Conflict(format!("an API token named `{name}` already exists"))
}

/// Records an error on `project` unless `slug` is a valid slug of one of `projects`.
fn check_project_in(slug: &str, projects: &[Project], errors: &mut FieldErrors) {
    if validate::project_slug(slug).is_err() {
        errors.add("project", "must match [a-z0-9][a-z0-9-]{0,62}");
    } else if !projects.iter().any(|p| p.slug == slug) {
        errors.add("project", "names no project; see GET /v1/projects");
    }
}

/// The audit entry of `record`'s creation by `principal`: every field it starts with.
pub(crate) fn creation_audit(
    principal: &Principal,
    action: &str,
    record: &TokenRecord,
) -> AppResult<tessera_core::AuditEntry> {
    let changes = audit::diff(None, Some(&view_json(record, record.created_at)?));
    Ok(audit::entry(
        principal,
        record.created_at,
        action,
        format!("token:{}", record.id),
        changes,
    ))
}

fn view_json(record: &TokenRecord, now: DateTime<Utc>) -> AppResult<serde_json::Value> {
    audit::snapshot(&TokenView::new(record, now))
}

/// API tokens (and, through [`crate::personal::PersonalTokens`], the scoped operations
/// personal tokens share with them): what they need and nothing else.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub(crate) cx: Context,
    format: TokenFormat,
    pepper: Pepper,
    api_versions: ApiVersions,
}

impl Tokens {
    pub(crate) fn new(cx: Context, settings: &Settings, pepper: Pepper) -> Self {
        Self {
            cx,
            format: settings.token_format.clone(),
            pepper,
            api_versions: settings.api_versions.clone(),
        }
    }

    /// The API version a new token gets: the newest.
    pub(crate) fn newest_api_version(&self) -> String {
        self.api_versions.newest().to_owned()
    }

    async fn check_project(
        &self,
        project: Option<&str>,
        errors: &mut FieldErrors,
    ) -> AppResult<()> {
        let Some(slug) = project else { return Ok(()) };
        let projects = match validate::project_slug(slug) {
            Ok(()) => self.cx.store.list_projects().await?,
            Err(_) => Vec::new(),
        };
        check_project_in(slug, &projects, errors);
        Ok(())
    }

    /// Secrets and ids come from the thread's ChaCha generator, seeded from the
    /// operating system and reseeded by it (`rand::thread_rng`): cryptographically
    /// secure, without a system call per random byte (an import of a million tokens
    /// made tens of millions of `getrandom` calls with `OsRng`).
    fn new_secret(&self, kind: TokenKind) -> TokenSecret {
        self.format.generate(kind, &mut rand::thread_rng())
    }

    /// A new token with `settings`, issued by `principal` at `now`: a fresh id and a
    /// fresh secret, returned once.
    pub(crate) fn issue(
        &self,
        settings: TokenSettings,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> (TokenRecord, TokenSecret) {
        let secret = self.new_secret(settings.kind);
        let id = TokenId::new_at(now, &mut rand::thread_rng());
        let record = TokenRecord::issue(
            settings,
            id,
            &secret,
            &self.pepper,
            principal.actor.clone(),
            now,
        );
        (record, secret)
    }

    /// Loads an API token by id, or `NotFound`.
    async fn api_token(&self, id: &str) -> AppResult<TokenRecord> {
        self.token_in(id, TokenScope::Api).await
    }

    /// Loads a token by id within `scope`, or `NotFound` (also for a token outside it,
    /// so one user cannot learn another's token ids).
    pub(crate) async fn token_in(&self, id: &str, scope: TokenScope) -> AppResult<TokenRecord> {
        let token_id = parse_id(id)?;
        match self.cx.store.get_token(token_id).await? {
            Some(record) if scope.contains(&record) => Ok(record),
            _ => Err(AppError::NotFound(format!("token `{id}`"))),
        }
    }

    /// Reads an API token, applies `change` and saves the result with its audit row.
    /// When another writer saved the token in between (its revision moved on), the
    /// token is read again and `change` re-applied, so concurrent edits compose
    /// instead of undoing each other. A change that alters nothing writes nothing.
    pub(crate) async fn modify_token<T>(
        &self,
        principal: &Principal,
        id: &str,
        scope: TokenScope,
        action: &str,
        mut change: impl FnMut(&TokenRecord, DateTime<Utc>) -> AppResult<(TokenRecord, T)>,
    ) -> AppResult<(TokenRecord, T)> {
        for _ in 0..MAX_EDIT_ATTEMPTS {
            let before = self.token_in(id, scope).await?;
            let now = self.cx.now();
            let (mut after, extra) = change(&before, now)?;
            if after == before {
                return Ok((after, extra));
            }
            after.updated_at = now;
            let changes = audit::diff(
                Some(&view_json(&before, now)?),
                Some(&view_json(&after, now)?),
            );
            let entry = audit::entry(
                principal,
                now,
                action,
                format!("token:{}", after.id),
                changes,
            );
            match self.cx.store.update_token(&after, &entry).await {
                Ok(()) => {
                    self.cx.apply_own_write().await;
                    return Ok((after, extra));
                }
                Err(StoreError::Stale) => continue,
                Err(StoreError::NotFound) => {
                    return Err(AppError::NotFound(format!("token `{id}`")));
                }
                Err(StoreError::Conflict { what }) => {
                    // A taken name, or a reference gone meanwhile (a deleted project).
                    let renamed =
                        validate::name_key(&after.name) != validate::name_key(&before.name);
                    let taken = renamed
                        && after.kind == TokenKind::Api
                        && self
                            .cx
                            .store
                            .api_token_name_taken(&validate::name_key(&after.name))
                            .await?;
                    return Err(if taken {
                        name_taken(&after.name)
                    } else {
                        AppError::Conflict(what)
                    });
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(AppError::Conflict(format!(
            "token `{id}` is being changed by others; retry"
        )))
    }

    /// Stores a newly issued token with its audit row: the one way a single token,
    /// API or personal, is created.
    pub(crate) async fn insert_issued(
        &self,
        record: &TokenRecord,
        entry: &tessera_core::AuditEntry,
    ) -> AppResult<()> {
        if self.store_issued(record, entry).await? {
            Ok(())
        } else {
            Err(name_taken(&record.name))
        }
    }

    /// [`Tokens::insert_issued`], answering `false` when an API token already has the
    /// record's name. A store conflict is a taken name or a missing reference (the
    /// owner or project deleted meanwhile): only the first is reported as a name.
    async fn store_issued(
        &self,
        record: &TokenRecord,
        entry: &tessera_core::AuditEntry,
    ) -> AppResult<bool> {
        match self.cx.store.insert_token(record, entry).await {
            Ok(()) => {
                self.cx.apply_own_write().await;
                Ok(true)
            }
            Err(StoreError::Conflict { what }) => {
                let taken = record.kind == TokenKind::Api
                    && self
                        .cx
                        .store
                        .api_token_name_taken(&validate::name_key(&record.name))
                        .await?;
                if taken {
                    Ok(false)
                } else {
                    Err(AppError::Conflict(what))
                }
            }
            Err(other) => Err(other.into()),
        }
    }

    pub async fn create(
        &self,
        principal: &Principal,
        request: CreateTokenRequest,
    ) -> AppResult<CreatedToken> {
        principal.require(AdminPermission::TokensCreate)?;
        let now = self.cx.now();
        let catalog = self.cx.current_catalog().await?;
        let projects = match &request.project {
            Some(slug) if validate::project_slug(slug).is_ok() => {
                self.cx.store.list_projects().await?
            }
            _ => Vec::new(),
        };
        let settings = self.new_token_settings(request, &catalog, &projects, now)?;
        let (record, secret) = self.issue(settings, principal, now);
        self.insert_issued(
            &record,
            &creation_audit(principal, "token.create", &record)?,
        )
        .await?;
        Ok(CreatedToken {
            record: TokenView::new(&record, now),
            token: secret.expose().to_owned(),
        })
    }

    /// A create request checked into the settings of a new API token, with every bad
    /// field named: the one rule of what a new token may be, for create and import.
    /// `projects` must hold the request's project if it exists.
    pub(crate) fn new_token_settings(
        &self,
        request: CreateTokenRequest,
        catalog: &Catalog,
        projects: &[Project],
        now: DateTime<Utc>,
    ) -> Result<TokenSettings, FieldErrors> {
        let mut errors = FieldErrors::default();
        errors.collect(validate::display_name("name", &request.name));
        let description = request.description.unwrap_or_default();
        errors.collect(validate::description(&description));
        let permissions = match request.token_type {
            Some(token_type) => errors.collect(
                token_type.checked_permissions(&request.permissions.unwrap_or_default(), catalog),
            ),
            None => {
                errors.add("type", "must be one of read-only, full-access, custom");
                None
            }
        };
        let expiry = errors.collect(tessera_core::lifecycle::resolve_expiry(
            request.lifespan,
            request.expires_at,
            now,
        ));
        let rate_limit = request
            .rate_limit
            .and_then(|limit| errors.collect(limit.validate()));
        if let Some(id) = &request.external_id {
            errors.collect(validate::external_id(id));
        }
        let metadata = errors
            .collect(validate::metadata(request.metadata.unwrap_or_default()))
            .unwrap_or_default();
        if let Some(slug) = &request.project {
            check_project_in(slug, projects, &mut errors);
        }
        match (request.token_type, permissions, expiry) {
            (Some(token_type), Some(permissions), Some((lifespan, expires_at)))
                if errors.is_empty() =>
            {
                Ok(TokenSettings {
                    kind: TokenKind::Api,
                    name: request.name,
                    description,
                    token_type,
                    permissions,
                    project: request.project,
                    owner_id: None,
                    lifespan,
                    expires_at,
                    api_version: self.newest_api_version(),
                    rate_limit,
                    external_id: request.external_id,
                    metadata,
                })
            }
            _ => {
                // Each missing value recorded its field's error above.
                if errors.is_empty() {
                    errors.add("type", "must be one of read-only, full-access, custom");
                }
                Err(errors)
            }
        }
    }

    pub async fn get(&self, principal: &Principal, id: &str) -> AppResult<TokenView> {
        principal.require(AdminPermission::TokensRead)?;
        let record = self.api_token(id).await?;
        Ok(TokenView::new(&record, self.cx.now()))
    }

    pub async fn list(&self, principal: &Principal, filter: TokenFilter) -> AppResult<TokenPage> {
        principal.require(AdminPermission::TokensRead)?;
        let now = self.cx.now();
        let query = token_query(filter, now)?;
        let page = self.cx.store.list_tokens(&query).await?;
        Ok(TokenPage {
            items: page
                .items
                .iter()
                .map(|record| TokenView::new(record, now))
                .collect(),
            next_cursor: page
                .next
                .map(|cursor| encode_cursor(query.sort, &cursor, query.now))
                .transpose()?,
            total: page.total,
            total_exact: page.total_exact,
        })
    }

    pub async fn update(
        &self,
        principal: &Principal,
        id: &str,
        request: UpdateTokenRequest,
    ) -> AppResult<TokenView> {
        principal.require(AdminPermission::TokensUpdate)?;
        // What needs the database is looked up once, before the edit loop.
        let catalog = if request.token_type.is_some() || request.permissions.is_some() {
            Some(self.cx.current_catalog().await?)
        } else {
            None
        };
        let mut project_errors = FieldErrors::default();
        if let Some(project) = &request.project {
            self.check_project(project.as_deref(), &mut project_errors)
                .await?;
        }
        let (after, ()) = self
            .modify_token(
                principal,
                id,
                TokenScope::Api,
                "token.update",
                |before, now| {
                    let mut after = before.clone();
                    let mut errors = project_errors.clone();
                    if let Some(name) = &request.name {
                        errors.collect(validate::display_name("name", name));
                        after.name = name.clone();
                    }
                    if let Some(description) = &request.description {
                        errors.collect(validate::description(description));
                        after.description = description.clone();
                    }
                    if let Some(catalog) = &catalog {
                        let token_type = request.token_type.unwrap_or(before.token_type);
                        let permissions = match (&request.permissions, token_type) {
                            (Some(list), _) => list.clone(),
                            (None, TokenType::Custom) => before.permissions.clone(),
                            (None, _) => Vec::new(),
                        };
                        if let Some(checked) =
                            errors.collect(token_type.checked_permissions(&permissions, catalog))
                        {
                            after.token_type = token_type;
                            after.permissions = checked;
                        }
                    }
                    match (request.lifespan, request.expires_at) {
                        (None, None) => {}
                        (None, Some(None)) => {
                            after.lifespan = Lifespan::Unlimited;
                            after.expires_at = None;
                        }
                        (lifespan, expires_at) => {
                            let resolved = tessera_core::lifecycle::resolve_expiry(
                                lifespan,
                                expires_at.flatten(),
                                now,
                            );
                            if let Some((lifespan, expires_at)) = errors.collect(resolved) {
                                after.lifespan = lifespan;
                                after.expires_at = expires_at;
                            }
                        }
                    }
                    if let Some(project) = &request.project {
                        after.project = project.clone();
                    }
                    if let Some(rate_limit) = request.rate_limit {
                        after.rate_limit =
                            rate_limit.and_then(|limit| errors.collect(RateLimit::validate(limit)));
                    }
                    if let Some(external_id) = &request.external_id {
                        if let Some(id) = external_id {
                            errors.collect(validate::external_id(id));
                        }
                        after.external_id.clone_from(external_id);
                    }
                    if let Some(metadata) = &request.metadata {
                        let value = metadata.clone().unwrap_or_default();
                        if let Some(metadata) = errors.collect(validate::metadata(value)) {
                            after.metadata = metadata;
                        }
                    }
                    errors.into_result()?;
                    Ok((after, ()))
                },
            )
            .await?;
        Ok(TokenView::new(&after, self.cx.now()))
    }

    pub async fn delete(&self, principal: &Principal, id: &str) -> AppResult<()> {
        principal.require(AdminPermission::TokensDelete)?;
        self.delete_token_in(principal, id, TokenScope::Api).await
    }

    pub(crate) async fn delete_token_in(
        &self,
        principal: &Principal,
        id: &str,
        scope: TokenScope,
    ) -> AppResult<()> {
        let before = self.token_in(id, scope).await?;
        let now = self.cx.now();
        let changes = audit::diff(Some(&view_json(&before, now)?), None);
        let entry = audit::entry(
            principal,
            now,
            "token.delete",
            format!("token:{}", before.id),
            changes,
        );
        self.cx
            .store
            .delete_token(before.id, &entry)
            .await
            .map_err(not_found(format!("token `{id}`")))?;
        self.cx.apply_own_write().await;
        Ok(())
    }

    pub async fn regenerate(
        &self,
        principal: &Principal,
        id: &str,
        request: RegenerateRequest,
    ) -> AppResult<CreatedToken> {
        principal.require(AdminPermission::TokensRegenerate)?;
        let (after, secret) = self
            .regenerate_in(principal, id, TokenScope::Api, "token.regenerate", request)
            .await?;
        Ok(CreatedToken {
            record: TokenView::new(&after, after.updated_at),
            token: secret.expose().to_owned(),
        })
    }

    /// Gives a token of `scope` a new secret; the old one keeps working for the
    /// requested grace period. The caller has checked the permission.
    pub(crate) async fn regenerate_in(
        &self,
        principal: &Principal,
        id: &str,
        scope: TokenScope,
        action: &str,
        request: RegenerateRequest,
    ) -> AppResult<(TokenRecord, TokenSecret)> {
        let grace = GracePeriod::from_request(request.grace_period_seconds)?;
        self.modify_token(principal, id, scope, action, |before, now| {
            let secret = self.new_secret(before.kind);
            let mut after = before.clone();
            after.digest = self.pepper.digest(&secret);
            after.hint = secret.hint();
            after.grace = grace.until(now).map(|until| GraceDigest {
                digest: before.digest,
                until,
            });
            Ok((after, secret))
        })
        .await
    }

    pub async fn duplicate(
        &self,
        principal: &Principal,
        id: &str,
        request: DuplicateRequest,
    ) -> AppResult<CreatedToken> {
        principal.require(AdminPermission::TokensCreate)?;
        // A copy reveals the original's settings: reading them needs their permission.
        principal.require(AdminPermission::TokensRead)?;
        let original = self.api_token(id).await?;
        if let Some(name) = &request.name {
            validate::display_name("name", name)?;
        }
        // A default name can be taken between the lookup and the insert by a concurrent
        // duplicate; then the next free name is tried.
        for _ in 0..MAX_EDIT_ATTEMPTS {
            let name = match &request.name {
                Some(name) => name.clone(),
                None => self.free_copy_name(&original.name).await?,
            };
            let (record, secret) = self.duplicated(&original, name, principal)?;
            let entry = creation_audit(principal, "token.duplicate", &record)?;
            if self.store_issued(&record, &entry).await? {
                return Ok(CreatedToken {
                    record: TokenView::new(&record, record.created_at),
                    token: secret.expose().to_owned(),
                });
            }
            if request.name.is_some() {
                return Err(name_taken(&record.name));
            }
        }
        Err(AppError::Conflict(format!(
            "could not find a free name for a copy of `{}`; give a name",
            original.name
        )))
    }

    /// A fresh token with `original`'s settings, a new secret and `name`. A 7d/30d/90d
    /// lifespan counts again from now; a custom expiry is kept.
    fn duplicated(
        &self,
        original: &TokenRecord,
        name: String,
        principal: &Principal,
    ) -> AppResult<(TokenRecord, TokenSecret)> {
        let now = self.cx.now();
        let (lifespan, expires_at) = match original.lifespan {
            Lifespan::Custom => (Lifespan::Custom, original.expires_at),
            lifespan => tessera_core::lifecycle::resolve_expiry(Some(lifespan), None, now)?,
        };
        let settings = TokenSettings {
            name,
            lifespan,
            expires_at,
            ..original.settings()
        };
        Ok(self.issue(settings, principal, now))
    }

    async fn free_copy_name(&self, original: &str) -> AppResult<String> {
        for n in 1..=1_000 {
            let candidate = validate::copy_name_candidate(original, n);
            if !self
                .cx
                .store
                .api_token_name_taken(&validate::name_key(&candidate))
                .await?
            {
                return Ok(candidate);
            }
        }
        Err(AppError::Conflict(format!(
            "too many copies of `{original}`; give a name"
        )))
    }

    pub async fn set_status(
        &self,
        principal: &Principal,
        id: &str,
        status: TokenStatus,
    ) -> AppResult<TokenView> {
        principal.require(AdminPermission::TokensUpdate)?;
        let action = match status {
            TokenStatus::Active => "token.enable",
            TokenStatus::Disabled => "token.disable",
        };
        let (after, ()) = self
            .modify_token(principal, id, TokenScope::Api, action, |before, _| {
                Ok((
                    TokenRecord {
                        status,
                        ..before.clone()
                    },
                    (),
                ))
            })
            .await?;
        Ok(TokenView::new(&after, self.cx.now()))
    }

    pub async fn upgrade_version(
        &self,
        principal: &Principal,
        id: &str,
        request: UpgradeVersionRequest,
    ) -> AppResult<TokenView> {
        principal.require(AdminPermission::TokensUpdate)?;
        let (after, ()) = self
            .modify_token(
                principal,
                id,
                TokenScope::Api,
                "token.upgrade_version",
                |before, _| {
                    let api_version = self
                        .api_versions
                        .upgrade(&before.api_version, request.api_version.as_deref())?;
                    Ok((
                        TokenRecord {
                            api_version,
                            ..before.clone()
                        },
                        (),
                    ))
                },
            )
            .await?;
        Ok(TokenView::new(&after, self.cx.now()))
    }

    pub async fn usage(
        &self,
        principal: &Principal,
        id: &str,
        days: UsageDays,
    ) -> AppResult<UsageView> {
        principal.require(AdminPermission::TokensRead)?;
        let days = days.get();
        let record = self.api_token(id).await?;
        let today = self.cx.now().date_naive();
        let first = today - Duration::days(i64::from(days) - 1);
        let rows = self.cx.store.usage(record.id, first).await?;
        let days = first
            .iter_days()
            .take_while(|day| *day <= today)
            .map(|day| {
                let row = rows.iter().find(|row| row.day == day);
                UsageDay {
                    date: day.format("%Y-%m-%d").to_string(),
                    allowed: row.map_or(0, |r| r.allowed),
                    denied: row.map_or(0, |r| r.denied),
                }
            })
            .collect();
        Ok(UsageView { days })
    }
}
