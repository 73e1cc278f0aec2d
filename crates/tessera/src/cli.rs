//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::listen::ListenAddress;

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "A self-hosted API token service")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Directory of the SQLite database and the pepper file (default ./tessera-data;
    /// only serve, migrate and admin create create it).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (default: SQLite under --data-dir).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// The pepper's file (default: `pepper` in --data-dir); every process that uses a
    /// database needs the same one.
    #[arg(long, global = true, value_name = "FILE")]
    pub pepper_file: Option<PathBuf>,
    /// Configuration file (default: ./tessera.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log lines on stderr as text or as one JSON object per line (default: text, or
    /// `log_format` / TESSERA_LOG_FORMAT).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<crate::config::LogFormat>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (REST, verify, ops endpoints) until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on: HOST:PORT (127.0.0.1:8080, 0.0.0.0:8080 for every
        /// interface, localhost:8080, [::1]:8080) or a bare PORT, which listens on
        /// 127.0.0.1 only (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<ListenAddress>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Verify a token; exit 0 when valid, 1 when not.
    Verify {
        /// The token, or `-` to read it from stdin (keeps it out of `ps` and history).
        token: String,
        #[arg(long)]
        permission: Option<String>,
        #[arg(long)]
        project: Option<String>,
    },
    /// Manage the resource catalog.
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage administrators (beyond `admin create`).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage admin roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Database maintenance (copy one database into another).
    #[command(subcommand)]
    Db(crate::copy::DbCommand),
    /// Read the audit log, newest first.
    Audit {
        /// Only entries at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only entries before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Only this actor, e.g. `user:ada@example.com` or `cli:root`.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, e.g. `token.create`.
        #[arg(long)]
        action: Option<String>,
        /// Only this target, e.g. `token:<id>`.
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value = "100")]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List administrators.
    List,
    /// Create an administrator (the password, if any, from stdin).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an administrator.
    Update {
        /// The user's id or email.
        user: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        role: Option<String>,
        /// Reset the password from standard input (first line); ends their sessions.
        #[arg(long)]
        password_stdin: bool,
        /// Deactivate (ends their sessions and personal tokens at once).
        #[arg(long, conflicts_with = "activate")]
        deactivate: bool,
        #[arg(long)]
        activate: bool,
    },
    /// Remove an administrator with their sessions and personal tokens.
    Delete {
        /// The user's id or email.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    List,
    /// Create a custom role.
    Create {
        name: String,
        /// An admin permission, e.g. tokens.read (repeat the flag).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Replace a role's permissions and/or description.
    Update {
        name: String,
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// Remove every permission (with no --permission).
        #[arg(long, conflicts_with = "permissions")]
        no_permissions: bool,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a custom role no one holds.
    Delete {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator; the password is read from stdin.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, default_value = "super-admin")]
        role: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret alone is printed on stdout.
    Create {
        #[arg(long)]
        name: String,
        /// read-only | full-access | custom
        #[arg(long = "type", value_name = "TYPE")]
        token_type: String,
        /// A permission `resource.action` (custom tokens; repeat the flag).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// 7d | 30d | 90d | unlimited
        #[arg(long, conflicts_with = "expires_at")]
        lifespan: Option<String>,
        /// An RFC 3339 expiry time.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// REQUESTS/SECONDS, e.g. 100/60.
        #[arg(long, value_name = "N/SECONDS")]
        rate_limit: Option<String>,
        /// The customer or account this token belongs to, in your API's terms (≤ 128 characters).
        #[arg(long, value_name = "ID")]
        external_id: Option<String>,
        /// A JSON object (≤ 4 KB) that verification returns with the token, e.g. '{"plan":"pro"}'.
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
    },
    /// Change a token's settings; what is not given stays as it is.
    Update {
        /// The token's id.
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
        /// read-only | full-access | custom
        #[arg(long = "type", value_name = "TYPE")]
        token_type: Option<String>,
        /// A permission `resource.action` (custom tokens; repeat the flag; replaces the list).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// 7d | 30d | 90d | unlimited, counted from now.
        #[arg(long, conflicts_with = "expires_at")]
        lifespan: Option<String>,
        /// An RFC 3339 expiry time.
        #[arg(long)]
        expires_at: Option<String>,
        /// Bind the token to this project.
        #[arg(long, conflicts_with = "no_project")]
        project: Option<String>,
        /// Unbind the token from its project.
        #[arg(long)]
        no_project: bool,
        /// REQUESTS/SECONDS, e.g. 100/60.
        #[arg(long, value_name = "N/SECONDS", conflicts_with = "no_rate_limit")]
        rate_limit: Option<String>,
        /// Remove the token's rate limit.
        #[arg(long)]
        no_rate_limit: bool,
        /// The customer or account this token belongs to (≤ 128 characters).
        #[arg(long, value_name = "ID", conflicts_with = "no_external_id")]
        external_id: Option<String>,
        /// Remove the token's external id.
        #[arg(long)]
        no_external_id: bool,
        /// Replace the token's metadata with this JSON object ('{}' empties it).
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
    },
    /// List tokens.
    List {
        /// Name contains (case-insensitive).
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long = "type", value_name = "TYPE")]
        token_type: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// Only tokens with this external id.
        #[arg(long, value_name = "ID")]
        external_id: Option<String>,
        #[arg(long, default_value = "200")]
        limit: u32,
    },
    /// Show one token.
    Show { id: String },
    /// Give a token a new secret, printed alone on stdout.
    Regenerate {
        id: String,
        /// Keep the old secret working for this many seconds (0–86400).
        #[arg(long, default_value = "0")]
        grace_period_seconds: u32,
    },
    /// Switch a token off.
    Disable { id: String },
    /// Switch a token back on.
    Enable { id: String },
    /// Delete a token.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// List resources and their actions.
    List,
    /// Add a resource.
    Create {
        name: String,
        /// Read actions, comma-separated (e.g. find,findOne).
        #[arg(long, value_delimiter = ',')]
        read: Vec<String>,
        /// Write actions, comma-separated (e.g. create,update,delete).
        #[arg(long, value_delimiter = ',')]
        write: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a resource (its permissions stop being granted at once).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    List,
    Create {
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Delete a project (refused while tokens are bound to it).
    Delete {
        slug: String,
    },
}
