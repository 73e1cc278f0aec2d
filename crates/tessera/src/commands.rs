//! The commands other than `serve`: each opens the configured database and calls the
//! same application services the HTTP API uses, acting as the operator `cli:<user>`.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_api_types::{
    ActionView, CreateTokenRequest, CreatedToken, ProjectRequest, RegenerateRequest,
    ResourceRequest, TokenListParams, TokenView, UpdateTokenRequest,
};
use tessera_app::auth::{NewAdmin, Password};
use tessera_app::{Principal, Tessera, VerifyQuery};
use tessera_core::{ActionKind, Lifespan, RateLimit, TokenStatus, TokenType};

use crate::cli::{AdminCommand, Cli, Command, ProjectCommand, ResourceCommand, TokenCommand};
use crate::config::{Config, LogFormat, Overrides};
use crate::exit::{self, UsageError};

/// Parses the command line's configuration and runs the command.
pub async fn run(cli: Cli) -> Result<u8> {
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let overrides = Overrides {
        config: cli.global.config.clone(),
        data_dir: cli.global.data_dir.clone(),
        database_url: cli.global.database_url.clone(),
        pepper_file: cli.global.pepper_file.clone(),
        listen,
        log_format: cli.global.log_format,
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (config, warnings) =
        Config::load(&overrides, &env).map_err(|error| UsageError(format!("{error:#}")))?;
    let serving = matches!(cli.command, Command::Serve { .. });
    init_logging(&config, serving);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let json = cli.global.json;
    match cli.command {
        Command::Serve { .. } => crate::serve::run(config).await.map(|()| exit::OK),
        Command::Migrate => {
            let (_, migrated) = open_or_create_app_migrated(&config).await?;
            eprintln!(
                "{}",
                migration_report(
                    &migrated,
                    &tessera_store::redact_url(&config.database_url())
                )
            );
            Ok(exit::OK)
        }
        Command::Admin(command) => admin(&config, command, json).await,
        Command::Token(command) => token(&config, command, json).await,
        Command::Verify {
            token,
            permission,
            project,
        } => verify(&config, &token, permission, project, json).await,
        Command::Resource(command) => resource(&config, command, json).await,
        Command::Project(command) => project(&config, command, json).await,
        Command::User(command) => crate::people::user(&config, command, json).await,
        Command::Role(command) => crate::people::role(&config, command, json).await,
        Command::Db(command) => crate::copy::run(&config, command, json).await,
        Command::Audit {
            since,
            until,
            actor,
            action,
            target,
            limit,
        } => {
            let params = tessera_api_types::AuditParams {
                actor,
                action,
                target,
                since,
                until,
                limit: Some(limit.to_string()),
                cursor: None,
            };
            crate::people::audit(&config, params, json).await
        }
    }
}

fn init_logging(config: &Config, serving: bool) {
    let default = if serving { "info,sqlx=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(error) = result {
        eprintln!("warning: logging is not set up: {error}");
    }
}

/// What `migrate` says: the migrations it applied, or that there were none to apply.
fn migration_report(migrated: &tessera_store::Migrated, database: &str) -> String {
    if migrated.applied.is_empty() {
        return format!(
            "database is up to date (schema version {}): {database}",
            migrated.version
        );
    }
    let list: Vec<String> = migrated
        .applied
        .iter()
        .map(|(version, description)| format!("  {version:04} {description}"))
        .collect();
    format!(
        "applied {} migration{} to {database} (schema version {}):\n{}",
        migrated.applied.len(),
        if migrated.applied.len() == 1 { "" } else { "s" },
        migrated.version,
        list.join("\n")
    )
}

/// Opens the database (migrating it) and the pepper of an existing installation;
/// refuses a missing data dir, database or pepper (see [`crate::install`]).
pub async fn open_app(config: &Config) -> Result<Arc<Tessera>> {
    Ok(
        crate::install::open(config, crate::install::Setup::Existing)
            .await?
            .0,
    )
}

/// [`open_app`] for `serve`, `migrate` and `admin create`, which may start a new
/// installation: they create what is missing, and say so on stderr.
pub async fn open_or_create_app(config: &Config) -> Result<Arc<Tessera>> {
    Ok(open_or_create_app_migrated(config).await?.0)
}

/// [`open_or_create_app`], also telling which migrations it applied.
pub async fn open_or_create_app_migrated(
    config: &Config,
) -> Result<(Arc<Tessera>, tessera_store::Migrated)> {
    crate::install::open(config, crate::install::Setup::MayCreate).await
}

/// The operator, named for the audit log after the OS user running the command:
/// `$USER`, `$LOGNAME`, else the name /etc/passwd gives this process's uid.
pub(crate) fn operator() -> Principal {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(os_user_from_uid)
        .unwrap_or_else(|| "unknown".to_owned());
    Principal::operator(&user)
}

fn os_user_from_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&uid.as_str()))
        .and_then(|fields| fields.first().map(|name| (*name).to_owned()))
        .or(Some(format!("uid-{uid}")))
}

pub(crate) fn print_json(value: &impl Serialize) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value).map_err(std::io::Error::from)?;
    writeln!(stdout)?;
    Ok(())
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn describe(token: &TokenView) -> String {
    let status = if token.expired {
        "expired"
    } else {
        token.status.as_str()
    };
    format!(
        "{}  {:<30}  {:<11}  {:<8}  expires {:<16}  last used {}",
        token.id,
        token.name,
        token.token_type.as_str(),
        status,
        token.expires_at.map_or_else(
            || "never".to_owned(),
            |at| at.format("%Y-%m-%d %H:%M").to_string()
        ),
        time(token.last_used_at),
    )
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

async fn admin(config: &Config, command: AdminCommand, json: bool) -> Result<u8> {
    let AdminCommand::Create {
        email,
        password_stdin: _,
        role,
        name,
    } = command;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(UsageError(
            "no password on stdin: pipe it in, e.g. `echo \"$PW\" | tessera admin create …`".into(),
        )
        .into());
    }
    let app = open_or_create_app(config).await?;
    let user = app
        .create_admin(
            &operator(),
            NewAdmin {
                email,
                name,
                role,
                password: Password(password),
            },
        )
        .await?;
    if json {
        print_json(&user)?;
    } else {
        eprintln!(
            "created administrator {} with role {}",
            user.email, user.role
        );
    }
    Ok(exit::OK)
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

async fn token(config: &Config, command: TokenCommand, json: bool) -> Result<u8> {
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
            let token_type = TokenType::parse(&token_type).ok_or_else(|| {
                UsageError(format!(
                    "--type {token_type:?}: use read-only, full-access or custom"
                ))
            })?;
            let (lifespan, expires_at) = parse_expiry(lifespan, expires_at)?;
            let lifespan = lifespan.or(expires_at.is_none().then_some(Lifespan::Unlimited));
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
            let created = app.create_token(&principal, request).await?;
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
            let token_type = token_type
                .map(|text| {
                    TokenType::parse(&text).ok_or_else(|| {
                        UsageError(format!(
                            "--type {text:?}: use read-only, full-access or custom"
                        ))
                    })
                })
                .transpose()?;
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
            let token = app.update_token(&principal, &id, request).await?;
            if json {
                print_json(&token)?;
            } else {
                eprintln!("updated token {}", token.name);
            }
        }
        TokenCommand::List {
            q,
            status,
            token_type,
            project,
            external_id,
            limit,
        } => {
            let params = TokenListParams {
                q,
                status,
                token_type,
                project,
                external_id,
                limit: Some(limit.to_string()),
                ..TokenListParams::default()
            };
            let filter = params.parse().map_err(tessera_app::AppError::from)?;
            let page = app.list_tokens(&principal, filter).await?;
            if json {
                print_json(&page)?;
            } else {
                let mut stdout = std::io::stdout().lock();
                for token in &page.items {
                    writeln!(stdout, "{}", describe(token))?;
                }
                eprintln!("{} of {} tokens shown", page.items.len(), page.total);
            }
        }
        TokenCommand::Show { id } => {
            let token = app.get_token(&principal, &id).await?;
            if json {
                print_json(&token)?;
            } else {
                writeln!(std::io::stdout(), "{}", describe(&token))?;
            }
        }
        TokenCommand::Regenerate {
            id,
            grace_period_seconds,
        } => {
            let request = RegenerateRequest {
                grace_period_seconds: Some(grace_period_seconds),
            };
            let created = app.regenerate_token(&principal, &id, request).await?;
            reveal(&created, json, "regenerated")?;
        }
        TokenCommand::Disable { id } => {
            status(&app, &principal, &id, TokenStatus::Disabled, json).await?
        }
        TokenCommand::Enable { id } => {
            status(&app, &principal, &id, TokenStatus::Active, json).await?
        }
        TokenCommand::Delete { id } => {
            app.delete_token(&principal, &id).await?;
            eprintln!("deleted token {id}");
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
    let token = app.set_token_status(principal, id, status).await?;
    if json {
        print_json(&token)?;
    } else {
        eprintln!("token {} is now {}", token.name, token.status.as_str());
    }
    Ok(())
}

async fn verify(
    config: &Config,
    token: &str,
    permission: Option<String>,
    project: Option<String>,
    json: bool,
) -> Result<u8> {
    let from_stdin;
    let token = if token == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the token from stdin")?;
        from_stdin = line.trim().to_owned();
        from_stdin.as_str()
    } else {
        token
    };
    let app = open_app(config).await?;
    app.load().await?;
    let query = VerifyQuery {
        token,
        permission: permission.as_deref(),
        project: project.as_deref(),
    };
    let response = app.verify(query, None)?.into_response();
    if let Err(error) = app.flush_usage().await {
        tracing::warn!(%error, "could not record this verification's usage");
    }
    if json {
        print_json(&response)?;
    } else if let Some(token) = &response.token {
        eprintln!(
            "valid: {} ({}, {}, api {})",
            token.name,
            token.id,
            token.token_type.as_str(),
            token.api_version
        );
    } else if let Some(code) = response.code {
        eprintln!("not valid: {}", code.as_str());
    }
    Ok(if response.valid {
        exit::OK
    } else {
        exit::INVALID_TOKEN
    })
}

async fn resource(config: &Config, command: ResourceCommand, json: bool) -> Result<u8> {
    let app = open_app(config).await?;
    let principal = operator();
    match command {
        ResourceCommand::List => {
            let resources = app.list_resources(&principal).await?;
            if json {
                print_json(&resources)?;
            } else {
                for resource in &resources {
                    let actions: Vec<String> = resource
                        .actions
                        .iter()
                        .map(|a| format!("{} ({})", a.name, a.kind.as_str()))
                        .collect();
                    writeln!(
                        std::io::stdout(),
                        "{}: {}",
                        resource.name,
                        actions.join(", ")
                    )?;
                }
            }
        }
        ResourceCommand::Create {
            name,
            read,
            write,
            description,
        } => {
            let actions = read
                .into_iter()
                .map(|name| ActionView {
                    name,
                    kind: ActionKind::Read,
                })
                .chain(write.into_iter().map(|name| ActionView {
                    name,
                    kind: ActionKind::Write,
                }))
                .collect();
            let created = app
                .create_resource(
                    &principal,
                    ResourceRequest {
                        name,
                        description,
                        actions,
                    },
                )
                .await?;
            if json {
                print_json(&created)?;
            } else {
                eprintln!("created resource {}", created.name);
            }
        }
        ResourceCommand::Delete { name } => {
            app.delete_resource(&principal, &name).await?;
            eprintln!("deleted resource {name}");
        }
    }
    Ok(exit::OK)
}

async fn project(config: &Config, command: ProjectCommand, json: bool) -> Result<u8> {
    let app = open_app(config).await?;
    let principal = operator();
    match command {
        ProjectCommand::List => {
            let projects = app.list_projects(&principal).await?;
            if json {
                print_json(&projects)?;
            } else {
                for project in &projects {
                    writeln!(std::io::stdout(), "{}  {}", project.slug, project.name)?;
                }
            }
        }
        ProjectCommand::Create { slug, name } => {
            let created = app
                .create_project(&principal, ProjectRequest { slug, name })
                .await?;
            if json {
                print_json(&created)?;
            } else {
                eprintln!("created project {}", created.slug);
            }
        }
        ProjectCommand::Delete { slug } => {
            app.delete_project(&principal, &slug).await?;
            eprintln!("deleted project {slug}");
        }
    }
    Ok(exit::OK)
}
