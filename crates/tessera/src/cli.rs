//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::listen::ListenAddress;

/// Shown under `tessera --help`.
const MAIN_EXAMPLES: &str = "\
Getting started:
  tessera serve                                   # http://127.0.0.1:8080/admin (first run: a setup code)
  echo \"$PW\" | tessera admin create --email admin@example.com --password-stdin
  tessera token create --name \"CI deploy\" --type read-only --lifespan 30d
  tessera token list
  tessera token disable \"CI deploy\"               # a token by its name or id

Tokens, users and roles are named by their id (a UUID) or their unique name.
Listings are tables on a terminal, tab-separated without a header when piped; --json for scripts.
Shell completions: tessera completions bash|zsh|fish; the manual page: tessera man.
Exit codes: 0 ok, 1 verify: not valid, 2 usage or configuration, 3 not found, 4 conflict,
5 forbidden, 69 database unreachable or address taken, 70 internal error.";

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A self-hosted API token service",
    long_about = "A self-hosted API token service: issue, scope, rotate and revoke API tokens, \
                  and verify them on every request from memory.",
    after_help = MAIN_EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Directory of the SQLite database and the pepper file (default ./tessera-data;
    /// only serve, migrate and admin create create it).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://USER:PASSWORD@HOST/DATABASE (default: SQLite
    /// under --data-dir).
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
    /// Run the server (REST, verify, the admin console at /admin) until SIGINT or SIGTERM.
    #[command(after_help = "\
Examples:
  tessera serve                                   # 127.0.0.1:8080
  tessera serve --listen 8081                     # 127.0.0.1:8081 only
  tessera serve --listen 0.0.0.0:8080             # every interface
  tessera --data-dir /var/lib/tessera serve

On a fresh data dir it says that no administrator exists and prints a one-time setup
code for http://127.0.0.1:8080/admin, and the `tessera admin create` command to paste.")]
    Serve {
        /// Address to listen on: HOST:PORT (127.0.0.1:8080, 0.0.0.0:8080 for every
        /// interface, localhost:8080, [::1]:8080) or a bare PORT, which listens on
        /// 127.0.0.1 only (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<ListenAddress>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Create the first administrator (and more) from the command line.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API tokens: create, list, show, update, regenerate, disable, delete.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Verify a token as the server would; exit 0 when valid, 1 when not.
    #[command(after_help = "\
Examples:
  tessera verify \"$T\" --permission article.create && echo allowed
  printf '%s\\n' \"$T\" | tessera verify - --json")]
    Verify {
        /// The token, or `-` to read it from stdin (keeps it out of `ps` and history).
        token: String,
        /// Also require this permission, `resource.action` (e.g. article.find).
        #[arg(long)]
        permission: Option<String>,
        /// Also require the token to be valid for this project (its slug).
        #[arg(long)]
        project: Option<String>,
    },
    /// Manage the resource catalog.
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Manage projects (a token bound to one verifies only for it).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage administrators: list, invite, change role, deactivate, delete.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage admin roles (the built-in super-admin, token-manager, viewer and your own).
    #[command(subcommand)]
    Role(RoleCommand),
    /// Database maintenance (copy one database into another).
    #[command(subcommand)]
    Db(crate::copy::DbCommand),
    /// Read the audit log, newest first.
    #[command(after_help = "\
Examples:
  tessera audit --action token.create --since 2026-01-01T00:00:00Z
  tessera audit --actor user:ada@example.com --limit 20")]
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
        /// Show at most this many entries (1–500).
        #[arg(long, default_value = "100")]
        limit: u32,
    },
    /// Print a shell completion script to stdout.
    #[command(after_help = "\
Examples:
  tessera completions bash > ~/.local/share/bash-completion/completions/tessera
  tessera completions zsh > \"${fpath[1]}/_tessera\"
  tessera completions fish > ~/.config/fish/completions/tessera.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the manual page (roff) to stdout.
    #[command(after_help = "\
Examples:
  tessera man | man -l -
  tessera man > /usr/local/share/man/man1/tessera.1")]
    Man,
}

/// The shells `tessera completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Where `--role` is described: the built-in roles and custom ones.
const ROLE_HELP: &str = "The role: super-admin (everything), token-manager (API tokens and the \
                         audit log), viewer (read tokens), or a custom role (see `tessera role list`)";

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List administrators.
    List,
    /// Create an administrator (the password, if any, from stdin).
    #[command(after_help = "\
Examples:
  echo \"$PW\" | tessera user create --email ada@example.com --role token-manager --password-stdin
  tessera user create --email bob@example.com --role viewer --name \"Bob\"   # no password yet")]
    Create {
        /// The administrator's email, which they sign in with.
        #[arg(long)]
        email: String,
        #[arg(long, help = ROLE_HELP)]
        role: String,
        /// The name shown in the console (default: none).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change an administrator; what is not given stays as it is.
    #[command(after_help = "\
Examples:
  tessera user update ada@example.com --role viewer
  tessera user update \"Ada Lovelace\" --deactivate
  echo \"$NEW_PW\" | tessera user update ada@example.com --password-stdin")]
    Update {
        /// The user: their id (a UUID), email, or unique name.
        #[arg(value_name = "USER")]
        user: String,
        /// A new email.
        #[arg(long)]
        email: Option<String>,
        /// A new display name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, help = ROLE_HELP)]
        role: Option<String>,
        /// Reset the password from standard input (first line); ends their sessions.
        #[arg(long)]
        password_stdin: bool,
        /// Deactivate (ends their sessions and personal tokens at once).
        #[arg(long, conflicts_with = "activate")]
        deactivate: bool,
        /// Activate again (they can sign in with their password).
        #[arg(long)]
        activate: bool,
    },
    /// Remove an administrator with their sessions and personal tokens.
    Delete {
        /// The user: their id (a UUID), email, or unique name.
        #[arg(value_name = "USER")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List roles and the admin permissions each grants.
    List,
    /// Create a custom role.
    #[command(after_help = "\
Examples:
  tessera role create auditor --permission audit.read --permission tokens.read")]
    Create {
        /// The role's name (its id): lowercase letters, digits and dashes.
        name: String,
        /// An admin permission, e.g. tokens.read (repeat the flag).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// What the role is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Replace a role's permissions and/or description.
    Update {
        /// The role's name (a role's id is its name).
        #[arg(value_name = "ROLE")]
        name: String,
        /// An admin permission, e.g. tokens.read (repeat the flag; replaces the list).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// Remove every permission (with no --permission).
        #[arg(long, conflicts_with = "permissions")]
        no_permissions: bool,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a custom role no one holds.
    Delete {
        /// The role's name (a role's id is its name).
        #[arg(value_name = "ROLE")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator; the password is read from stdin.
    #[command(after_help = "\
Examples:
  echo \"$PW\" | tessera admin create --email admin@example.com --password-stdin
  tessera admin create --email ops@example.com --role viewer --password-stdin < pw.txt

Needs no running server and no setup code; creates the data dir when it does not exist.")]
    Create {
        /// The administrator's email, which they sign in with.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, default_value = "super-admin", help = ROLE_HELP)]
        role: String,
        /// The name shown in the console (default: none).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret alone is printed on stdout, exactly once.
    #[command(after_help = "\
Examples:
  T=$(tessera token create --name \"CI deploy\" --type custom --permission article.create --lifespan 30d)
  tessera token create --name dashboard --type read-only --lifespan 90d --project shop --external-id cus_42
  tessera token create --name backup --type full-access --expires-at 2027-01-31T00:00:00Z --json")]
    Create {
        /// The token's name, unique among API tokens (1–100 characters).
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long = "type", value_name = "TYPE", value_enum)]
        token_type: TokenTypeArg,
        /// A permission `resource.action` (custom tokens; repeat the flag).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// How long the token lives: 7d | 30d | 90d | unlimited (this or --expires-at is required).
        #[arg(long, conflicts_with = "expires_at")]
        lifespan: Option<String>,
        /// An RFC 3339 expiry time, e.g. 2027-01-31T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
        /// What the token is for (≤ 500 characters).
        #[arg(long)]
        description: Option<String>,
        /// Bind the token to this project (its slug): it verifies only for that project.
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
    #[command(after_help = "\
Examples:
  tessera token update \"CI deploy\" --lifespan 90d
  tessera token update \"CI deploy\" --type custom --permission article.find --permission article.create
  tessera token update 0190f3c2-… --no-project --rate-limit 100/60")]
    Update {
        #[arg(value_name = "TOKEN", help = TOKEN_HELP)]
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
        /// What the token may do.
        #[arg(long = "type", value_name = "TYPE", value_enum)]
        token_type: Option<TokenTypeArg>,
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
    /// List API tokens: a table on a terminal, tab-separated when piped.
    #[command(after_help = "\
Examples:
  tessera token list --search deploy --status active
  tessera token list --type custom --project shop --sort name
  tessera token list | cut -f2                    # piped: tab-separated, no header
  tessera token list --json | jq -r '.items[].name'

Columns: ID, NAME, TYPE, STATUS, PROJECT, PERMISSIONS, EXPIRES, LAST USED.")]
    List {
        /// Only tokens whose name contains this text (case-insensitive).
        #[arg(long = "search", alias = "q", value_name = "TEXT")]
        search: Option<String>,
        /// Only tokens in this state.
        #[arg(long, value_enum)]
        status: Option<TokenStatusArg>,
        /// Only tokens of this type.
        #[arg(long = "type", value_name = "TYPE", value_enum)]
        token_type: Option<TokenTypeArg>,
        /// Only tokens bound to this project (its slug).
        #[arg(long)]
        project: Option<String>,
        /// Only tokens with this external id.
        #[arg(long, value_name = "ID")]
        external_id: Option<String>,
        /// The order of the rows.
        #[arg(long, value_enum, default_value = "newest")]
        sort: TokenSortArg,
        /// Show at most this many tokens (1–200).
        #[arg(long, default_value = "200")]
        limit: u32,
    },
    /// Create many tokens from a file of JSON lines, one `POST /v1/tokens` body a line.
    ///
    /// Each batch (--batch-size lines) is checked whole and written in one transaction:
    /// all of it or none. The secrets go out as JSON lines in input order (line, id,
    /// name, external_id, token) as soon as their batch is written. A bad line stops
    /// the import, naming it; the batches before it stay imported, and --skip resumes.
    #[command(after_help = "\
Examples:
  tessera token import customers.jsonl --out secrets.jsonl
  printf '%s\\n' '{\"name\":\"acme\",\"type\":\"read-only\",\"lifespan\":\"90d\",\"external_id\":\"cus_42\"}' \\
    | tessera token import - > secrets.jsonl
  tessera token import customers.jsonl --out rest.jsonl --skip 20000   # resume")]
    Import {
        /// The JSON-lines file (`-`: stdin). Blank lines are skipped.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Write the secrets to this new file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Lines per transaction.
        #[arg(long, default_value = "1000", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
        /// Skip this many lines first (to resume an import that stopped).
        #[arg(long, value_name = "LINES", default_value = "0")]
        skip: u64,
    },
    /// Show one token, with its permissions.
    #[command(after_help = "\
Examples:
  tessera token show \"CI deploy\"
  tessera token show 0190f3c2-7d4e-7a91-8c55-2b0e6f1d9a43 --json")]
    Show {
        #[arg(value_name = "TOKEN", help = TOKEN_HELP)]
        id: String,
    },
    /// Give a token a new secret, printed alone on stdout.
    #[command(after_help = "\
Examples:
  NEW=$(tessera token regenerate \"CI deploy\" --grace-period-seconds 3600)")]
    Regenerate {
        #[arg(value_name = "TOKEN", help = TOKEN_HELP)]
        id: String,
        /// Keep the old secret working for this many seconds (0–86400).
        #[arg(long, default_value = "0")]
        grace_period_seconds: u32,
    },
    /// Switch a token off (verification refuses it until it is enabled again).
    Disable {
        #[arg(value_name = "TOKEN", help = TOKEN_HELP)]
        id: String,
    },
    /// Switch a token back on.
    Enable {
        #[arg(value_name = "TOKEN", help = TOKEN_HELP)]
        id: String,
    },
    /// Delete a token for good.
    Delete {
        #[arg(value_name = "TOKEN", help = TOKEN_HELP)]
        id: String,
    },
}

/// How a token argument is described.
const TOKEN_HELP: &str = "The token: its id (a UUID) or its unique name";

/// `--type`: what a token may do, as the catalog of resources defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenTypeArg {
    /// Every read action of every resource (e.g. article.find), following the catalog.
    ReadOnly,
    /// Every action of every resource, read and write, following the catalog.
    FullAccess,
    /// Exactly the permissions given with --permission (resource.action).
    Custom,
}

/// `--status` of `token list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenStatusArg {
    /// Enabled and not expired.
    Active,
    /// Switched off with `token disable`.
    Disabled,
    /// Past its expiry time.
    Expired,
}

/// `--sort` of `token list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenSortArg {
    /// Newest first (the default).
    Newest,
    /// Oldest first.
    Oldest,
    /// By name, A to Z.
    Name,
    /// By name, Z to A.
    NameDesc,
    /// Most recently used first.
    RecentlyUsed,
    /// Least recently used first.
    LeastRecentlyUsed,
}

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// List resources and their actions.
    List,
    /// Add a resource of your API, with its read and write actions.
    #[command(after_help = "\
Examples:
  tessera resource create article --read find,findOne --write create,update,delete

Its permissions are then article.find, article.create, …; read-only tokens get every read
action, full-access tokens every action.")]
    Create {
        /// The resource's name, e.g. article.
        name: String,
        /// Read actions, comma-separated (e.g. find,findOne).
        #[arg(long, value_delimiter = ',')]
        read: Vec<String>,
        /// Write actions, comma-separated (e.g. create,update,delete).
        #[arg(long, value_delimiter = ',')]
        write: Vec<String>,
        /// What the resource is.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a resource (its permissions stop being granted at once).
    Delete {
        /// The resource's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// List projects: slug and name.
    List,
    /// Create a project that tokens can be bound to.
    #[command(after_help = "\
Examples:
  tessera project create shop --name \"Shop\"
  tessera token create --name shop-reader --type read-only --lifespan 30d --project shop")]
    Create {
        /// The project's slug, used on the command line and in the API (e.g. shop).
        slug: String,
        /// The project's display name.
        #[arg(long)]
        name: String,
    },
    /// Delete a project (refused while tokens are bound to it).
    Delete {
        /// The project's slug.
        slug: String,
    },
}

/// The CLI reference (`docs/cli.md`): every command's `--help`, as the binary prints
/// it, one section a command, in the order `tessera --help` lists them.
#[cfg(test)]
fn reference() -> String {
    fn walk(command: &mut clap::Command, path: &str, out: &mut String) {
        let path = if path.is_empty() {
            command.get_name().to_owned()
        } else {
            format!("{path} {}", command.get_name())
        };
        let depth = path.split(' ').count().min(4);
        let help = command.render_long_help().to_string();
        out.push_str(&format!(
            "\n{} `{path}`\n\n```text\n{}\n```\n",
            "#".repeat(depth + 1),
            help.trim_end()
        ));
        for sub in command.get_subcommands_mut() {
            if sub.get_name() != "help" {
                walk(sub, &path, out);
            }
        }
    }
    let mut command = <Cli as clap::CommandFactory>::command()
        .term_width(100)
        .bin_name("tessera");
    command.build();
    let mut out = String::from(
        "# tessera command-line reference\n\n\
         Every command's `--help`, generated from the command-line definition; a test keeps \
         this file equal to it, so do not edit it by hand. `tessera completions \
         bash|zsh|fish` prints shell completions and `tessera man` a manual page, from the \
         same definition.\n",
    );
    walk(&mut command, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");

    /// `docs/cli.md` is what the binary's `--help` says. After a change to a command:
    /// `TESSERA_WRITE_DOCS=1 cargo test -p tessera --bin tessera reference`.
    #[test]
    fn the_committed_cli_reference_is_the_generated_one() {
        let generated = reference();
        if std::env::var_os("TESSERA_WRITE_DOCS").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/cli.md differs from the command line: regenerate it with \
             `TESSERA_WRITE_DOCS=1 cargo test -p tessera --bin tessera reference` and commit it"
        );
        for heading in [
            "## `tessera serve`",
            "### `tessera token create`",
            "--lifespan",
        ] {
            assert!(generated.contains(heading), "{heading} missing");
        }
    }

    /// Every command, argument and flag says in one line what it is for.
    #[test]
    fn every_command_and_flag_is_described() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() && command.get_name() != "help" {
                missing.push(path.clone());
            }
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
        Cli::command().debug_assert();
    }

    /// The commands a newcomer reaches first show examples under their help.
    #[test]
    fn the_main_commands_have_examples() {
        let root = Cli::command();
        assert!(root.get_after_help().is_some());
        for path in [
            &["serve"][..],
            &["admin", "create"],
            &["token", "create"],
            &["token", "list"],
            &["token", "show"],
            &["token", "update"],
            &["verify"],
            &["user", "create"],
            &["completions"],
        ] {
            let mut command = &root;
            for name in path {
                command = command
                    .find_subcommand(name)
                    .unwrap_or_else(|| panic!("no command {path:?}"));
            }
            let examples = command.get_after_help().map(ToString::to_string);
            assert!(
                examples.is_some_and(|text| text.contains("Examples:")),
                "{path:?} has no examples"
            );
        }
    }
}
