//! The commands other than `serve`: each opens the configured database and calls the
//! same application services the HTTP API uses, acting as the operator `cli:<user>`.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_api_types::{
    ActionView, CreateTokenRequest, CreatedToken, ProjectRequest, RegenerateRequest,
    ResourceRequest, TokenPage, TokenView, UpdateTokenRequest,
};
use tessera_app::auth::{NewAdmin, Password};
use tessera_app::{Principal, Tessera, VerifyQuery};
use tessera_core::{
    ActionKind, Lifespan, RateLimit, SortField, StatusFilter, TokenFilter, TokenPageSize,
    TokenSort, TokenStatus, TokenType,
};

use crate::cli::{
    AdminCommand, Cli, Command, CompletionShell, ProjectCommand, ResourceCommand, TokenCommand,
    TokenSortArg, TokenStatusArg, TokenTypeArg,
};
use crate::config::{Config, LogFormat, Overrides};
use crate::exit::{self, UsageError};
use crate::table::Table;

/// Parses the command line's configuration and runs the command.
pub async fn run(cli: Cli) -> Result<u8> {
    // Generated from the command line's definition: no configuration, no database.
    match cli.command {
        Command::Completions { shell } => return completions(shell).map(|()| exit::OK),
        Command::Man => return manual().map(|()| exit::OK),
        _ => {}
    }
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
        Command::Completions { .. } | Command::Man => Ok(exit::OK),
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

/// `tessera completions SHELL`: the completion script on stdout.
fn completions(shell: CompletionShell) -> Result<()> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: clap_complete panics on a failed write (`… | head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "tessera", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(())
}

/// `tessera man`: the manual page (roff) on stdout.
fn manual() -> Result<()> {
    let command = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&page)?;
    stdout.flush()?;
    Ok(())
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
    Ok(app.list_tokens(principal, filter).await?)
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
            let token = app.update_token(&principal, &id, request).await?;
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
                eprintln!("{} of {} tokens shown", page.items.len(), page.total);
            }
        }
        TokenCommand::Show { id } => {
            let id = crate::lookup::token(&app, &principal, &id).await?;
            let token = app.get_token(&principal, &id).await?;
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
            let created = app.regenerate_token(&principal, &id, request).await?;
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
            app.delete_token(&principal, &id).await?;
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
    let token = app.set_token_status(principal, &id, status).await?;
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
                let mut table = Table::new(&["NAME", "READ", "WRITE", "DESCRIPTION"]);
                for resource in &resources {
                    let of = |kind: ActionKind| {
                        let names: Vec<&str> = resource
                            .actions
                            .iter()
                            .filter(|action| action.kind == kind)
                            .map(|action| action.name.as_str())
                            .collect();
                        if names.is_empty() {
                            "-".to_owned()
                        } else {
                            names.join(",")
                        }
                    };
                    table.row(vec![
                        resource.name.clone(),
                        of(ActionKind::Read),
                        of(ActionKind::Write),
                        resource.description.clone(),
                    ]);
                }
                table.print()?;
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
                let mut table = Table::new(&["SLUG", "NAME"]);
                for project in &projects {
                    table.row(vec![project.slug.clone(), project.name.clone()]);
                }
                table.print()?;
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
