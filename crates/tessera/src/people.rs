//! `tessera user …`, `tessera role …` and `tessera audit`: the same services as
//! `/v1/users`, `/v1/roles` and `/v1/audit`, acting as the operator.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use tessera_api_types::{
    AuditParams, CreateUserRequest, RoleRequest, RoleUpdate, UpdateUserRequest,
};
use tessera_core::AdminPermission;

use crate::cli::{RoleCommand, UserCommand};
use crate::commands::{open_app, operator, print_json};
use crate::config::Config;
use crate::exit::{self, UsageError};

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(UsageError("no password on stdin".into()).into());
    }
    Ok(password)
}

fn parse_permissions(names: &[String]) -> Result<Vec<AdminPermission>> {
    names
        .iter()
        .map(|name| {
            AdminPermission::parse(name).ok_or_else(|| {
                let known: Vec<&str> = AdminPermission::ALL.iter().map(|p| p.as_str()).collect();
                UsageError(format!(
                    "--permission {name:?}: use one of {}",
                    known.join(", ")
                ))
                .into()
            })
        })
        .collect()
}

pub async fn user(config: &Config, command: UserCommand, json: bool) -> Result<u8> {
    let app = open_app(config).await?;
    let principal = operator();
    // Users are named by id or email on the command line.
    let resolve = |key: String| {
        let app = app.clone();
        let principal = principal.clone();
        async move {
            let users = app.list_users(&principal).await?;
            users
                .into_iter()
                .find(|u| u.id.to_string() == key || u.email.eq_ignore_ascii_case(&key))
                .map(|u| u.id.to_string())
                .ok_or_else(|| {
                    anyhow::Error::from(tessera_app::AppError::NotFound(format!("user `{key}`")))
                })
        }
    };
    match command {
        UserCommand::List => {
            let users = app.list_users(&principal).await?;
            if json {
                print_json(&users)?;
            } else {
                let mut stdout = std::io::stdout().lock();
                for user in &users {
                    let state = if user.active { "active" } else { "inactive" };
                    writeln!(
                        stdout,
                        "{}  {:<32}  {:<14}  {}",
                        user.id, user.email, user.role, state
                    )?;
                }
            }
        }
        UserCommand::Create {
            email,
            role,
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let user = app
                .create_user(
                    &principal,
                    CreateUserRequest {
                        email,
                        name,
                        role,
                        password,
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
        }
        UserCommand::Update {
            user,
            email,
            name,
            role,
            password_stdin,
            deactivate,
            activate,
        } => {
            let id = resolve(user).await?;
            let password = if password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let active = match (activate, deactivate) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let request = UpdateUserRequest {
                email,
                name,
                role,
                password,
                active,
            };
            let user = app.update_user(&principal, &id, request).await?;
            if json {
                print_json(&user)?;
            } else {
                eprintln!("updated administrator {}", user.email);
            }
        }
        UserCommand::Delete { user } => {
            let id = resolve(user.clone()).await?;
            app.delete_user(&principal, &id).await?;
            eprintln!("deleted administrator {user}");
        }
    }
    Ok(exit::OK)
}

pub async fn role(config: &Config, command: RoleCommand, json: bool) -> Result<u8> {
    let app = open_app(config).await?;
    let principal = operator();
    match command {
        RoleCommand::List => {
            let roles = app.list_roles(&principal).await?;
            if json {
                print_json(&roles)?;
            } else {
                let mut stdout = std::io::stdout().lock();
                for role in &roles {
                    let names: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
                    writeln!(stdout, "{:<16} {}", role.name, names.join(", "))?;
                }
            }
        }
        RoleCommand::Create {
            name,
            permissions,
            description,
        } => {
            let request = RoleRequest {
                name,
                description,
                permissions: parse_permissions(&permissions)?,
            };
            let role = app.create_role(&principal, request).await?;
            if json {
                print_json(&role)?;
            } else {
                eprintln!("created role {}", role.name);
            }
        }
        RoleCommand::Update {
            name,
            permissions,
            no_permissions,
            description,
        } => {
            let permissions = if no_permissions || !permissions.is_empty() {
                Some(parse_permissions(&permissions)?)
            } else {
                None
            };
            let role = app
                .update_role(
                    &principal,
                    &name,
                    RoleUpdate {
                        description,
                        permissions,
                    },
                )
                .await?;
            if json {
                print_json(&role)?;
            } else {
                eprintln!("updated role {}", role.name);
            }
        }
        RoleCommand::Delete { name } => {
            app.delete_role(&principal, &name).await?;
            eprintln!("deleted role {name}");
        }
    }
    Ok(exit::OK)
}

pub async fn audit(config: &Config, params: AuditParams, json: bool) -> Result<u8> {
    let app = open_app(config).await?;
    let filter = params.parse().map_err(tessera_app::AppError::from)?;
    let page = app.list_audit(&operator(), filter).await?;
    if json {
        print_json(&page)?;
    } else {
        let mut stdout = std::io::stdout().lock();
        for entry in &page.items {
            writeln!(
                stdout,
                "{}  {:<28} {:<26} {:<46} {}",
                entry.at.format("%Y-%m-%d %H:%M:%S"),
                entry.actor,
                entry.action,
                entry.target,
                entry.changes
            )?;
        }
    }
    Ok(exit::OK)
}
