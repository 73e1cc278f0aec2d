//! `tessera user …`, `tessera role …` and `tessera audit`: the same services as
//! `/v1/users`, `/v1/roles` and `/v1/audit`, acting as the operator.

use std::io::BufRead;

use anyhow::{Context, Result};
use tessera_api_types::{
    AuditParams, CreateUserRequest, RoleRequest, RoleUpdate, UpdateUserRequest,
};
use tessera_core::AdminPermission;

use crate::cli::{RoleCommand, UserCommand};
use crate::commands::{open_app, operator, print_json};
use crate::config::Config;
use crate::exit::{self, UsageError};
use crate::table::Table;

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
    match command {
        UserCommand::List => {
            let users = app.users().list(&principal).await?;
            if json {
                print_json(&users)?;
            } else {
                let mut table = Table::new(&["ID", "EMAIL", "NAME", "ROLE", "STATE"]);
                for user in &users {
                    let state = if user.active { "active" } else { "inactive" };
                    table.row(vec![
                        user.id.to_string(),
                        user.email.clone(),
                        user.name.clone(),
                        user.role.clone(),
                        state.to_owned(),
                    ]);
                }
                table.print()?;
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
                .users()
                .create(
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
            let id = crate::lookup::user(&app, &principal, &user).await?;
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
            let user = app.users().update(&principal, &id, request).await?;
            if json {
                print_json(&user)?;
            } else {
                eprintln!("updated administrator {}", user.email);
            }
        }
        UserCommand::Delete { user } => {
            let id = crate::lookup::user(&app, &principal, &user).await?;
            app.users().delete(&principal, &id).await?;
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
            let roles = app.roles().list(&principal).await?;
            if json {
                print_json(&roles)?;
            } else {
                let mut table = Table::new(&["NAME", "KIND", "PERMISSIONS"]);
                for role in &roles {
                    let names: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
                    let kind = if role.builtin { "built-in" } else { "custom" };
                    table.row(vec![role.name.clone(), kind.to_owned(), names.join(", ")]);
                }
                table.print()?;
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
            let role = app.roles().create(&principal, request).await?;
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
            let name = crate::lookup::role(&app, &principal, &name).await?;
            let role = app
                .roles()
                .update(
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
            let name = crate::lookup::role(&app, &principal, &name).await?;
            app.roles().delete(&principal, &name).await?;
            eprintln!("deleted role {name}");
        }
    }
    Ok(exit::OK)
}

pub async fn audit(config: &Config, params: AuditParams, json: bool) -> Result<u8> {
    let app = open_app(config).await?;
    let filter = params.parse().map_err(tessera_app::AppError::from)?;
    let page = app.audit().list(&operator(), filter).await?;
    if json {
        print_json(&page)?;
    } else {
        let mut table = Table::new(&["TIME", "ACTOR", "ACTION", "TARGET", "CHANGES"]);
        for entry in &page.items {
            table.row(vec![
                entry.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                entry.actor.clone(),
                entry.action.clone(),
                entry.target.clone(),
                entry.changes.to_string(),
            ]);
        }
        table.print()?;
    }
    Ok(exit::OK)
}
