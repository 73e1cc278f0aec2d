//! The commands other than `serve`: each opens the configured database and calls the
//! same application services the HTTP API uses, acting as the operator `cli:<user>`.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use tessera_api_types::{ActionView, ProjectRequest, ResourceRequest};
use tessera_app::auth::{NewAdmin, Password};
use tessera_app::{Principal, Tessera, VerifyQuery};
use tessera_core::ActionKind;

use crate::cli::{AdminCommand, Cli, Command, CompletionShell, ProjectCommand, ResourceCommand};
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
        Command::Token(command) => crate::token_commands::run(&config, command, json).await,
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
        .users()
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
            let resources = app.catalog().list_resources(&principal).await?;
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
                .catalog()
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
            app.catalog().delete_resource(&principal, &name).await?;
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
            let projects = app.catalog().list_projects(&principal).await?;
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
                .catalog()
                .create_project(&principal, ProjectRequest { slug, name })
                .await?;
            if json {
                print_json(&created)?;
            } else {
                eprintln!("created project {}", created.slug);
            }
        }
        ProjectCommand::Delete { slug } => {
            app.catalog().delete_project(&principal, &slug).await?;
            eprintln!("deleted project {slug}");
        }
    }
    Ok(exit::OK)
}
