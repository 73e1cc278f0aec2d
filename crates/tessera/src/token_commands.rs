//! `tessera token …`: the API token commands, through the same application services
//! as the HTTP API, as the operator `cli:<user>`; tables on a terminal, tabs when piped.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};
use tessera_api_types::{
    CreateTokenRequest, CreatedToken, RegenerateRequest, TokenPage, TokenView, UpdateTokenRequest,
};
use tessera_app::{Principal, Tessera};
use tessera_core::{
    Lifespan, RateLimit, SortField, StatusFilter, TokenFilter, TokenPageSize, TokenSort,
    TokenStatus, TokenType,
};

use crate::cli::{TokenCommand, TokenSortArg, TokenStatusArg, TokenTypeArg};
use crate::commands::{open_app, operator, print_json};
use crate::config::Config;
use crate::exit::{self, UsageError};
use crate::table::Table;

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// A token's state as a person reads it: `expired` wins over `active`.
fn state(token: &TokenView) -> &'static str {
    if token.expired {
        "expired"
    } else {
        token.status.as_str()
    }
}

/// What a token may do: a custom token's list, or what its type grants.
fn permissions(token: &TokenView) -> String {
    match token.token_type {
        TokenType::ReadOnly => "every read action".to_owned(),
        TokenType::FullAccess => "every action".to_owned(),
        TokenType::Custom if token.permissions.is_empty() => "none".to_owned(),
        TokenType::Custom => token.permissions.join(", "),
    }
}

/// `token list`'s table.
fn token_table(tokens: &[TokenView]) -> Table {
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "TYPE",
        "STATUS",
        "PROJECT",
        "PERMISSIONS",
        "EXPIRES",
        "LAST USED",
    ]);
    for token in tokens {
        table.row(vec![
            token.id.to_string(),
            token.name.clone(),
            token.token_type.as_str().to_owned(),
            state(token).to_owned(),
            token.project.clone().unwrap_or_else(|| "-".to_owned()),
            permissions(token),
            time(token.expires_at),
            time(token.last_used_at),
        ]);
    }
    table
}

/// `token show`: one field a line.
fn token_details(token: &TokenView) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("id", token.id.to_string()),
        ("name", token.name.clone()),
        ("type", token.token_type.as_str().to_owned()),
        ("permissions", permissions(token)),
        ("status", state(token).to_owned()),
        (
            "project",
            token.project.clone().unwrap_or_else(|| "none".to_owned()),
        ),
        ("expires", time(token.expires_at)),
        ("last used", time(token.last_used_at)),
        (
            "rate limit",
            token.rate_limit.map_or_else(
                || "none".to_owned(),
                |limit| format!("{} requests / {} s", limit.requests, limit.per_seconds),
            ),
        ),
        (
            "external id",
            token
                .external_id
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
        ),
        ("api version", token.api_version.clone()),
        ("hint", token.hint.clone()),
        (
            "created",
            format!("{} by {}", time(Some(token.created_at)), token.created_by),
        ),
    ];
    if !token.description.is_empty() {
        fields.push(("description", token.description.replace('\n', " ")));
    }
    if !token.metadata.is_empty() {
        // A JSON value prints itself; nothing here can fail or come out empty.
        let metadata = serde_json::Value::Object(token.metadata.clone()).to_string();
        fields.push(("metadata", metadata));
    }
    fields
        .iter()
        .map(|(key, value)| format!("{key:<12} {value}\n"))
        .collect()
}

/// One page of API tokens: the one place the CLI asks the application for a list of
/// them (`token list`, and tokens named by name in [`crate::lookup`]).
pub(crate) async fn list_tokens(
    app: &Tessera,
    principal: &Principal,
    filter: TokenFilter,
) -> Result<TokenPage> {
    Ok(app.tokens().list(principal, filter).await?)
}

/// `--type` as the application takes it.
fn token_type(arg: TokenTypeArg) -> TokenType {
    match arg {
        TokenTypeArg::ReadOnly => TokenType::ReadOnly,
        TokenTypeArg::FullAccess => TokenType::FullAccess,
        TokenTypeArg::Custom => TokenType::Custom,
    }
}

/// `token list`'s flags as the application's typed filter.
fn token_filter(
    search: Option<String>,
    status: Option<TokenStatusArg>,
    token_type: Option<TokenTypeArg>,
    project: Option<String>,
    external_id: Option<String>,
    sort: TokenSortArg,
    limit: u32,
) -> Result<TokenFilter> {
    let status = status.map(|status| match status {
        TokenStatusArg::Active => StatusFilter::Active,
        TokenStatusArg::Disabled => StatusFilter::Disabled,
        TokenStatusArg::Expired => StatusFilter::Expired,
    });
    let (field, descending) = match sort {
        TokenSortArg::Newest => (SortField::CreatedAt, true),
        TokenSortArg::Oldest => (SortField::CreatedAt, false),
        TokenSortArg::Name => (SortField::Name, false),
        TokenSortArg::NameDesc => (SortField::Name, true),
        TokenSortArg::RecentlyUsed => (SortField::LastUsedAt, true),
        TokenSortArg::LeastRecentlyUsed => (SortField::LastUsedAt, false),
    };
    let limit = TokenPageSize::new(limit).ok_or_else(|| {
        UsageError(format!(
            "--limit {limit}: use a whole number from 1 to {}",
            TokenPageSize::MAX
        ))
    })?;
    Ok(TokenFilter {
        search,
        status,
        token_type: token_type.map(self::token_type),
        project,
        external_id,
        sort: TokenSort { field, descending },
        limit,
        ..TokenFilter::default()
    })
}

/// Prints a revealed secret: alone on stdout, or the whole record as JSON.
fn reveal(created: &CreatedToken, json: bool, verb: &str) -> Result<()> {
    if json {
        return print_json(created);
    }
    eprintln!(
        "{verb} token {} ({}); the secret below is shown only once:",
        created.record.name, created.record.id
    );
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", created.token)?;
    Ok(())
}

/// `--lifespan` / `--expires-at` as the API takes them.
fn parse_expiry(
    lifespan: Option<String>,
    expires_at: Option<String>,
) -> Result<(Option<Lifespan>, Option<DateTime<Utc>>)> {
    let lifespan = lifespan
        .map(|text| {
            Lifespan::parse(&text).ok_or_else(|| {
                UsageError(format!(
                    "--lifespan {text:?}: use 7d, 30d, 90d or unlimited"
                ))
            })
        })
        .transpose()?;
    let expires_at = expires_at
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    UsageError(format!(
                        "--expires-at {text:?}: use RFC 3339, e.g. 2027-01-31T00:00:00Z"
                    ))
                })
        })
        .transpose()?;
    Ok((lifespan, expires_at))
}

/// `--metadata`: any JSON here; the application says what it must be.
fn parse_metadata(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|error| {
        UsageError(format!(
            "--metadata is not JSON ({error}): give an object, e.g. '{{\"plan\":\"pro\"}}'"
        ))
        .into()
    })
}

/// A setting that `--X VALUE` sets and `--no-X` clears.
fn clearable(value: Option<String>, clear: bool) -> Option<Option<String>> {
    match (value, clear) {
        (Some(value), _) => Some(Some(value)),
        (None, true) => Some(None),
        (None, false) => None,
    }
}

fn parse_rate_limit(text: &str) -> Result<RateLimit> {
    let parsed = text.split_once('/').and_then(|(n, s)| {
        Some(RateLimit {
            requests: n.trim().parse().ok()?,
            per_seconds: s.trim().parse().ok()?,
        })
    });
    parsed.ok_or_else(|| {
        UsageError(format!(
            "--rate-limit {text:?}: use REQUESTS/SECONDS, e.g. 100/60"
        ))
        .into()
    })
}

pub(crate) async fn run(config: &Config, command: TokenCommand, json: bool) -> Result<u8> {
    let app = open_app(config).await?;
    let principal = operator();
    match command {
        TokenCommand::Create {
            name,
            token_type,
            permissions,
            lifespan,
            expires_at,
            description,
            project,
            rate_limit,
            external_id,
            metadata,
        } => {
            let token_type = self::token_type(token_type);
            let (lifespan, expires_at) = parse_expiry(lifespan, expires_at)?;
            let request = CreateTokenRequest {
                name,
                description,
                token_type: Some(token_type),
                permissions: (!permissions.is_empty()).then_some(permissions),
                lifespan,
                expires_at,
                project,
                rate_limit: rate_limit.as_deref().map(parse_rate_limit).transpose()?,
                external_id,
                metadata: metadata.as_deref().map(parse_metadata).transpose()?,
            };
            let created = app.tokens().create(&principal, request).await?;
            reveal(&created, json, "created")?;
        }
        TokenCommand::Update {
            id,
            name,
            description,
            token_type,
            permissions,
            lifespan,
            expires_at,
            project,
            no_project,
            rate_limit,
            no_rate_limit,
            external_id,
            no_external_id,
            metadata,
        } => {
            let token_type = token_type.map(self::token_type);
            let (lifespan, expires_at) = parse_expiry(lifespan, expires_at)?;
            let rate_limit = match (rate_limit, no_rate_limit) {
                (Some(text), _) => Some(Some(parse_rate_limit(&text)?)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let request = UpdateTokenRequest {
                name,
                description,
                token_type,
                permissions: (!permissions.is_empty()).then_some(permissions),
                lifespan,
                expires_at: expires_at.map(Some),
                project: clearable(project, no_project),
                rate_limit,
                external_id: clearable(external_id, no_external_id),
                metadata: metadata
                    .as_deref()
                    .map(parse_metadata)
                    .transpose()?
                    .map(Some),
            };
            if request == UpdateTokenRequest::default() {
                return Err(UsageError(
                    "nothing to change: give at least one setting (see `tessera token update --help`)"
                        .into(),
                )
                .into());
            }
            let id = crate::lookup::token(&app, &principal, &id).await?;
            let token = app.tokens().update(&principal, &id, request).await?;
            if json {
                print_json(&token)?;
            } else {
                eprintln!("updated token {}", token.name);
            }
        }
        TokenCommand::Import {
            file,
            out,
            batch_size,
            skip,
        } => {
            let options = crate::import::Options {
                file,
                out,
                batch_size: batch_size as usize,
                skip,
            };
            crate::import::run(&app, &principal, options).await?;
        }
        TokenCommand::List {
            search,
            status,
            token_type,
            project,
            external_id,
            sort,
            limit,
        } => {
            let filter = token_filter(
                search,
                status,
                token_type,
                project,
                external_id,
                sort,
                limit,
            )?;
            let page = list_tokens(&app, &principal, filter).await?;
            if json {
                print_json(&page)?;
            } else {
                token_table(&page.items).print()?;
                let at_least = if page.total_exact { "" } else { "at least " };
                eprintln!(
                    "{} of {at_least}{} tokens shown",
                    page.items.len(),
                    page.total
                );
            }
        }
        TokenCommand::Show { id } => {
            let id = crate::lookup::token(&app, &principal, &id).await?;
            let token = app.tokens().get(&principal, &id).await?;
            if json {
                print_json(&token)?;
            } else {
                write!(std::io::stdout(), "{}", token_details(&token))?;
            }
        }
        TokenCommand::Regenerate {
            id,
            grace_period_seconds,
        } => {
            let id = crate::lookup::token(&app, &principal, &id).await?;
            let request = RegenerateRequest {
                grace_period_seconds: Some(grace_period_seconds),
            };
            let created = app.tokens().regenerate(&principal, &id, request).await?;
            reveal(&created, json, "regenerated")?;
        }
        TokenCommand::Disable { id } => {
            status(&app, &principal, &id, TokenStatus::Disabled, json).await?
        }
        TokenCommand::Enable { id } => {
            status(&app, &principal, &id, TokenStatus::Active, json).await?
        }
        TokenCommand::Delete { id: key } => {
            let id = crate::lookup::token(&app, &principal, &key).await?;
            app.tokens().delete(&principal, &id).await?;
            eprintln!("deleted token {key}");
        }
    }
    Ok(exit::OK)
}

async fn status(
    app: &Tessera,
    principal: &Principal,
    id: &str,
    status: TokenStatus,
    json: bool,
) -> Result<()> {
    let id = crate::lookup::token(app, principal, id).await?;
    let token = app.tokens().set_status(principal, &id, status).await?;
    if json {
        print_json(&token)?;
    } else {
        eprintln!("token {} is now {}", token.name, token.status.as_str());
    }
    Ok(())
}
