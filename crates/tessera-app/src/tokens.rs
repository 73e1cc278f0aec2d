//! API token management: create, list, read, edit, regenerate, duplicate, disable,
//! enable, upgrade, delete, usage. Every call authorizes, validates with core, writes
//! through one store method (with its audit row) and updates this node's index.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use tessera_api_types::{
    CreateTokenRequest, CreatedToken, DuplicateRequest, RegenerateRequest, TokenListParams,
    TokenPage, TokenView, UpdateTokenRequest, UpgradeVersionRequest, UsageDay, UsageParams,
    UsageView,
};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{
    AdminPermission, Catalog, GraceDigest, Lifespan, RateLimit, TokenId, TokenKind, TokenRecord,
    TokenSecret, TokenStatus, TokenType, UserId,
};
use tessera_store::{Cursor, SortField, SortKey, StatusFilter, StoreError, TokenQuery, TokenSort};

use crate::error::{AppError, AppResult, not_found};
use crate::principal::Principal;
use crate::{Tessera, audit};

/// The longest grace period a regenerated token's old secret may keep working.
pub const MAX_GRACE_SECONDS: u32 = 86_400;
/// Default and largest page size of the token list.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// Default and largest span of the usage history, in days.
pub const DEFAULT_USAGE_DAYS: u32 = 30;
pub const MAX_USAGE_DAYS: u32 = 366;
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

fn view_json(record: &TokenRecord, now: DateTime<Utc>) -> serde_json::Value {
    serde_json::to_value(TokenView::new(record, now)).unwrap_or_default()
}

impl Tessera {
    /// The catalog as stored now: what a saved permission list is checked against.
    async fn current_catalog(&self) -> AppResult<Catalog> {
        Ok(Catalog::new(&self.store.list_resources().await?))
    }

    async fn check_project(
        &self,
        project: Option<&str>,
        errors: &mut FieldErrors,
    ) -> AppResult<()> {
        let Some(slug) = project else { return Ok(()) };
        if validate::project_slug(slug).is_err() {
            errors.add("project", "must match [a-z0-9][a-z0-9-]{0,62}");
        } else if !self
            .store
            .list_projects()
            .await?
            .iter()
            .any(|p| p.slug == slug)
        {
            errors.add("project", "names no project; see GET /v1/projects");
        }
        Ok(())
    }

    fn new_secret(&self, kind: TokenKind) -> TokenSecret {
        self.settings.token_format.generate(kind, &mut OsRng)
    }

    /// Loads an API token by id, or `NotFound`.
    async fn api_token(&self, id: &str) -> AppResult<TokenRecord> {
        self.token_in(id, TokenScope::Api).await
    }

    /// Loads a token by id within `scope`, or `NotFound` (also for a token outside it,
    /// so one user cannot learn another's token ids).
    pub(crate) async fn token_in(&self, id: &str, scope: TokenScope) -> AppResult<TokenRecord> {
        let token_id = parse_id(id)?;
        match self.store.get_token(token_id).await? {
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
            let now = self.clock.now();
            let (mut after, extra) = change(&before, now)?;
            if after == before {
                return Ok((after, extra));
            }
            after.updated_at = now;
            let changes = audit::diff(
                Some(&view_json(&before, now)),
                Some(&view_json(&after, now)),
            );
            let entry = audit::entry(
                principal,
                now,
                action,
                format!("token:{}", after.id),
                changes,
            );
            match self.store.update_token(&after, &entry).await {
                Ok(()) => {
                    self.apply_own_write().await;
                    return Ok((after, extra));
                }
                Err(StoreError::Stale) => continue,
                Err(StoreError::NotFound) => {
                    return Err(AppError::NotFound(format!("token `{id}`")));
                }
                Err(StoreError::Conflict { .. }) => {
                    return Err(AppError::Conflict(format!(
                        "an API token named `{}` already exists",
                        after.name
                    )));
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(AppError::Conflict(format!(
            "token `{id}` is being changed by others; retry"
        )))
    }

    async fn insert_token(
        &self,
        principal: &Principal,
        action: &str,
        record: &TokenRecord,
    ) -> AppResult<()> {
        let changes = audit::diff(None, Some(&view_json(record, record.created_at)));
        let entry = audit::entry(
            principal,
            record.created_at,
            action,
            format!("token:{}", record.id),
            changes,
        );
        self.store
            .insert_token(record, &entry)
            .await
            .map_err(|error| match error {
                tessera_store::StoreError::Conflict { .. } => AppError::Conflict(format!(
                    "an API token named `{}` already exists",
                    record.name
                )),
                other => other.into(),
            })?;
        self.apply_own_write().await;
        Ok(())
    }

    pub async fn create_token(
        &self,
        principal: &Principal,
        request: CreateTokenRequest,
    ) -> AppResult<CreatedToken> {
        principal.require(AdminPermission::TokensCreate)?;
        let now = self.clock.now();
        let mut errors = FieldErrors::default();
        errors.collect(validate::display_name("name", &request.name));
        let description = request.description.unwrap_or_default();
        errors.collect(validate::description(&description));
        let catalog = self.current_catalog().await?;
        let permissions = match request.token_type {
            Some(token_type) => errors.collect(
                token_type.checked_permissions(&request.permissions.unwrap_or_default(), &catalog),
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
        self.check_project(request.project.as_deref(), &mut errors)
            .await?;
        errors.into_result()?;
        let (Some(token_type), Some(permissions), Some((lifespan, expires_at))) =
            (request.token_type, permissions, expiry)
        else {
            return Err(AppError::Internal(
                "validation passed without values".into(),
            ));
        };
        let secret = self.new_secret(TokenKind::Api);
        let record = TokenRecord {
            id: TokenId::new_at(now, &mut OsRng),
            kind: TokenKind::Api,
            name: request.name,
            description,
            token_type,
            permissions,
            project: request.project,
            owner_id: None,
            status: TokenStatus::Active,
            lifespan,
            expires_at,
            api_version: self.settings.api_versions.newest().to_owned(),
            hint: secret.hint(),
            digest: self.pepper.digest(&secret),
            grace: None,
            created_at: now,
            created_by: principal.actor.clone(),
            updated_at: now,
            last_used_at: None,
            rate_limit,
            external_id: request.external_id,
            metadata,
            revision: 0,
        };
        self.insert_token(principal, "token.create", &record)
            .await?;
        Ok(CreatedToken {
            record: TokenView::new(&record, now),
            token: secret.expose().to_owned(),
        })
    }

    pub async fn get_token(&self, principal: &Principal, id: &str) -> AppResult<TokenView> {
        principal.require(AdminPermission::TokensRead)?;
        let record = self.api_token(id).await?;
        Ok(TokenView::new(&record, self.clock.now()))
    }

    pub async fn list_tokens(
        &self,
        principal: &Principal,
        params: TokenListParams,
    ) -> AppResult<TokenPage> {
        principal.require(AdminPermission::TokensRead)?;
        let now = self.clock.now();
        let query = token_query(params, now)?;
        let page = self.store.list_tokens(&query).await?;
        Ok(TokenPage {
            items: page
                .items
                .iter()
                .map(|record| TokenView::new(record, now))
                .collect(),
            next_cursor: page
                .next
                .map(|cursor| encode_cursor(query.sort, &cursor, query.now)),
            total: page.total,
        })
    }

    pub async fn update_token(
        &self,
        principal: &Principal,
        id: &str,
        request: UpdateTokenRequest,
    ) -> AppResult<TokenView> {
        principal.require(AdminPermission::TokensUpdate)?;
        // What needs the database is looked up once, before the edit loop.
        let catalog = if request.token_type.is_some() || request.permissions.is_some() {
            Some(self.current_catalog().await?)
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
        Ok(TokenView::new(&after, self.clock.now()))
    }

    pub async fn delete_token(&self, principal: &Principal, id: &str) -> AppResult<()> {
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
        let now = self.clock.now();
        let changes = audit::diff(Some(&view_json(&before, now)), None);
        let entry = audit::entry(
            principal,
            now,
            "token.delete",
            format!("token:{}", before.id),
            changes,
        );
        self.store
            .delete_token(before.id, &entry)
            .await
            .map_err(not_found(format!("token `{id}`")))?;
        self.apply_own_write().await;
        Ok(())
    }

    pub async fn regenerate_token(
        &self,
        principal: &Principal,
        id: &str,
        request: RegenerateRequest,
    ) -> AppResult<CreatedToken> {
        principal.require(AdminPermission::TokensRegenerate)?;
        let grace_seconds = request.grace_period_seconds.unwrap_or(0);
        if grace_seconds > MAX_GRACE_SECONDS {
            return Err(AppError::field(
                "grace_period_seconds",
                "must be between 0 and 86400",
            ));
        }
        let (after, secret) = self
            .modify_token(
                principal,
                id,
                TokenScope::Api,
                "token.regenerate",
                |before, now| Ok(self.regenerated(before, grace_seconds, now)),
            )
            .await?;
        Ok(CreatedToken {
            record: TokenView::new(&after, after.updated_at),
            token: secret.expose().to_owned(),
        })
    }

    /// `before` with a new secret; the old digest keeps working for `grace_seconds`.
    pub(crate) fn regenerated(
        &self,
        before: &TokenRecord,
        grace_seconds: u32,
        now: DateTime<Utc>,
    ) -> (TokenRecord, TokenSecret) {
        let secret = self.new_secret(before.kind);
        let mut after = before.clone();
        after.digest = self.pepper.digest(&secret);
        after.hint = secret.hint();
        after.grace = (grace_seconds > 0).then(|| GraceDigest {
            digest: before.digest,
            until: now + Duration::seconds(i64::from(grace_seconds)),
        });
        after.updated_at = now;
        (after, secret)
    }

    pub async fn duplicate_token(
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
            match self
                .insert_token(principal, "token.duplicate", &record)
                .await
            {
                Ok(()) => {
                    return Ok(CreatedToken {
                        record: TokenView::new(&record, record.created_at),
                        token: secret.expose().to_owned(),
                    });
                }
                Err(AppError::Conflict(_)) if request.name.is_none() => continue,
                Err(error) => return Err(error),
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
        let now = self.clock.now();
        let (lifespan, expires_at) = match original.lifespan {
            Lifespan::Custom => (Lifespan::Custom, original.expires_at),
            lifespan => tessera_core::lifecycle::resolve_expiry(Some(lifespan), None, now)?,
        };
        let secret = self.new_secret(TokenKind::Api);
        let record = TokenRecord {
            id: TokenId::new_at(now, &mut OsRng),
            name,
            status: TokenStatus::Active,
            lifespan,
            expires_at,
            hint: secret.hint(),
            digest: self.pepper.digest(&secret),
            grace: None,
            created_at: now,
            created_by: principal.actor.clone(),
            updated_at: now,
            last_used_at: None,
            revision: 0,
            ..original.clone()
        };
        Ok((record, secret))
    }

    async fn free_copy_name(&self, original: &str) -> AppResult<String> {
        for n in 1..=1_000 {
            let candidate = validate::copy_name_candidate(original, n);
            if !self
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

    pub async fn set_token_status(
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
        Ok(TokenView::new(&after, self.clock.now()))
    }

    pub async fn upgrade_token_version(
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
                        .settings
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
        Ok(TokenView::new(&after, self.clock.now()))
    }

    pub async fn token_usage(
        &self,
        principal: &Principal,
        id: &str,
        params: UsageParams,
    ) -> AppResult<UsageView> {
        principal.require(AdminPermission::TokensRead)?;
        let days = match params.days.as_deref() {
            None => DEFAULT_USAGE_DAYS,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|days| (1..=MAX_USAGE_DAYS).contains(days))
                .ok_or_else(|| AppError::field("days", "must be a whole number from 1 to 366"))?,
        };
        let record = self.api_token(id).await?;
        let today = self.clock.now().date_naive();
        let first = today - Duration::days(i64::from(days) - 1);
        let rows = self.store.usage(record.id, first).await?;
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

/// The wire form of a list cursor: the sort it belongs to and the last row's position.
#[derive(Serialize, Deserialize)]
struct CursorWire {
    s: String,
    /// The instant the listing began: later pages keep its filters' time windows.
    a: i64,
    n: Option<i64>,
    t: Option<String>,
    i: String,
}

fn sort_name(sort: TokenSort) -> String {
    let field = match sort.field {
        SortField::CreatedAt => "created_at",
        SortField::Name => "name",
        SortField::LastUsedAt => "last_used_at",
    };
    if sort.descending {
        format!("-{field}")
    } else {
        field.to_owned()
    }
}

fn encode_cursor(sort: TokenSort, cursor: &Cursor, now: DateTime<Utc>) -> String {
    let (n, t) = match &cursor.key {
        SortKey::Number(value) => (Some(*value), None),
        SortKey::Text(value) => (None, Some(value.clone())),
    };
    let wire = CursorWire {
        s: sort_name(sort),
        a: now.timestamp_millis(),
        n,
        t,
        i: cursor.id.to_string(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
}

/// 9999-12-31T23:59:59.999Z in Unix milliseconds: the last instant RFC 3339 writes.
const LAST_CURSOR_MILLIS: i64 = 253_402_300_799_999;

fn decode_cursor(text: &str, sort: TokenSort) -> Option<(Cursor, DateTime<Utc>)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let wire: CursorWire = serde_json::from_slice(&bytes).ok()?;
    if wire.s != sort_name(sort) {
        return None;
    }
    let key = match (wire.n, wire.t) {
        (Some(n), None) => SortKey::Number(n),
        (None, Some(t)) => SortKey::Text(t),
        _ => return None,
    };
    // The instant the listing began, as the client sent it back: only one a server could
    // have written (1970 to 9999), so the filters' `now - 30 days` cannot overflow.
    if !(0..=LAST_CURSOR_MILLIS).contains(&wire.a) {
        return None;
    }
    let at = chrono::TimeZone::timestamp_millis_opt(&Utc, wire.a).single()?;
    Some((
        Cursor {
            key,
            id: TokenId::parse(&wire.i)?,
        },
        at,
    ))
}

fn parse_time(field: &str, text: &str, errors: &mut FieldErrors) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(_) => {
            errors.add(field, "must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z");
            None
        }
    }
}

/// Validates list parameters into a store query; every bad parameter is named. Pure
/// (`now` is the listing's instant); public for the fuzz targets (`fuzz/`).
pub fn token_query(params: TokenListParams, now: DateTime<Utc>) -> AppResult<TokenQuery> {
    let mut errors = FieldErrors::default();
    let text = params.sort.as_deref().unwrap_or("-created_at");
    let (descending, field) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let field = match field {
        "created_at" => Some(SortField::CreatedAt),
        "name" => Some(SortField::Name),
        "last_used_at" => Some(SortField::LastUsedAt),
        _ => None,
    };
    let sort = match field {
        Some(field) => TokenSort { field, descending },
        None => {
            errors.add(
                "sort",
                "must be created_at, name or last_used_at, optionally prefixed with -",
            );
            TokenSort::default()
        }
    };
    // A cursor carries the instant its listing began, so every page sees the same
    // `created` and `status` windows.
    let (after, now) = match params.cursor.as_deref() {
        None => (None, now),
        Some(text) => match decode_cursor(text, sort) {
            Some((cursor, at)) => (Some(cursor), at),
            None => {
                errors.add(
                    "cursor",
                    "is not a cursor of this listing; start again without it",
                );
                (None, now)
            }
        },
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                errors.add("limit", "must be a whole number from 1 to 200");
                DEFAULT_LIMIT
            }
        },
    };
    let mut created_after = params
        .created_after
        .as_deref()
        .and_then(|text| parse_time("created_after", text, &mut errors));
    let mut created_before = params
        .created_before
        .as_deref()
        .and_then(|text| parse_time("created_before", text, &mut errors));
    match params.created.as_deref() {
        None => {}
        Some("last-7-days") => created_after = created_after.max(Some(now - Duration::days(7))),
        Some("last-30-days") => created_after = created_after.max(Some(now - Duration::days(30))),
        Some("older-than-30-days") => {
            let bound = now - Duration::days(30);
            created_before = Some(created_before.map_or(bound, |before| before.min(bound)));
        }
        Some(_) => errors.add(
            "created",
            "must be last-7-days, last-30-days or older-than-30-days",
        ),
    }
    let status = match params.status.as_deref() {
        None => None,
        Some("active") => Some(StatusFilter::Active),
        Some("disabled") => Some(StatusFilter::Disabled),
        Some("expired") => Some(StatusFilter::Expired),
        Some(_) => {
            errors.add("status", "must be active, disabled or expired");
            None
        }
    };
    let token_type = match params.token_type.as_deref() {
        None => None,
        Some(text) => {
            let parsed = TokenType::parse(text);
            if parsed.is_none() {
                errors.add("type", "must be read-only, full-access or custom");
            }
            parsed
        }
    };
    for (field, text) in [
        ("q", &params.q),
        ("project", &params.project),
        ("external_id", &params.external_id),
    ] {
        if let Some(text) = text {
            errors.collect(validate::single_line(field, text));
        }
    }
    // Compared with the stored name key, so normalized the same way.
    let name_contains = params
        .q
        .map(|q| validate::name_key(q.trim()))
        .filter(|q| !q.is_empty());
    if name_contains
        .as_ref()
        .is_some_and(|q| q.chars().count() > validate::NAME_MAX)
    {
        errors.add("q", "must be at most 100 characters");
    }
    let external_id = params.external_id.filter(|id| !id.is_empty());
    if let Some(id) = &external_id
        && errors.get("external_id").is_none()
    {
        errors.collect(validate::external_id(id));
    }
    errors.into_result()?;
    Ok(TokenQuery {
        kind: TokenKind::Api,
        owner: None,
        name_contains,
        created_after,
        created_before,
        status,
        token_type,
        project: params.project.filter(|p| !p.is_empty()),
        external_id,
        sort,
        limit,
        after,
        now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cursor_round_trips_and_is_tied_to_its_sort() {
        let sort = TokenSort {
            field: SortField::Name,
            descending: false,
        };
        let cursor = Cursor {
            key: SortKey::Text("ci".into()),
            id: TokenId::new_at(Utc::now(), &mut OsRng),
        };
        let at = Utc.with_ymd_and_hms(2026, 2, 3, 4, 5, 6).unwrap();
        let text = encode_cursor(sort, &cursor, at);
        assert_eq!(decode_cursor(&text, sort), Some((cursor, at)));
        assert_eq!(decode_cursor(&text, TokenSort::default()), None);
        assert_eq!(decode_cursor("garbage", sort), None);
    }

    /// A cursor carries its listing's instant, and clients can write any: one at the
    /// edge of the calendar used to panic on `now - 30 days` (found while writing the
    /// `query_strings` fuzz target).
    #[test]
    fn a_cursor_from_the_edge_of_time_is_refused_not_a_panic() {
        let sort = TokenSort::default();
        let cursor = Cursor {
            key: SortKey::Number(1),
            id: TokenId::new_at(Utc::now(), &mut OsRng),
        };
        for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            for created in ["last-7-days", "last-30-days", "older-than-30-days"] {
                let params = TokenListParams {
                    cursor: Some(encode_cursor(sort, &cursor, at)),
                    created: Some(created.into()),
                    ..TokenListParams::default()
                };
                let Err(AppError::Validation(error)) = token_query(params, Utc::now()) else {
                    panic!("a cursor at {at} is refused");
                };
                assert!(error.0.get("cursor").is_some(), "{error}");
            }
        }
    }

    #[test]
    fn list_parameters_name_each_bad_field() {
        let params = TokenListParams {
            sort: Some("size".into()),
            limit: Some("500".into()),
            status: Some("gone".into()),
            created: Some("yesterday".into()),
            created_after: Some("monday".into()),
            token_type: Some("admin".into()),
            cursor: Some("x".into()),
            ..TokenListParams::default()
        };
        let Err(AppError::Validation(error)) = token_query(params, Utc::now()) else {
            panic!("expected a validation error");
        };
        for field in [
            "sort",
            "limit",
            "status",
            "created",
            "created_after",
            "type",
        ] {
            assert!(error.0.get(field).is_some(), "{field} not named: {error}");
        }
    }
}
