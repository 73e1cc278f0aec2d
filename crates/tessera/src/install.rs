//! Finding the installation a command acts on (its data dir, database and pepper), or,
//! for the three commands that may, starting one.
//!
//! Only `serve`, `migrate` and `admin create` create a missing data dir, database or
//! pepper, and they say so on stderr. Every other command refuses a missing one (exit
//! 2), naming the path and how to point at the right one, so that a mistyped
//! `--data-dir` or a command run from another directory cannot quietly start an empty
//! installation whose tokens no server knows.
//!
//! The pepper: no command makes a new one for a database that records a pepper
//! fingerprint or holds tokens (none of them would verify), and every command checks
//! the pepper it uses against the database's fingerprint before it acts (see
//! [`tessera_app::pepper`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tessera_app::pepper::{self, DatabasePepper, FingerprintCheck, PepperError};
use tessera_app::{SystemClock, Tessera};
use tessera_core::Pepper;

use crate::config::Config;
use crate::exit::UsageError;

/// Whether a command may start a new installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `serve`, `migrate`, `admin create`: create what is missing, and say so.
    MayCreate,
    /// Every other command: refuse what is missing.
    Existing,
}

/// Opens the configured installation: the data dir, the database (migrated) and the
/// pepper, checked against the database's fingerprint. Also says which migrations
/// opening applied.
pub async fn open(
    config: &Config,
    setup: Setup,
) -> Result<(Arc<Tessera>, tessera_store::Migrated)> {
    let url = config.database_url();
    let shown_url = tessera_store::redact_url(&url);
    // The data dir holds the default SQLite database and, without `pepper_file`, the
    // pepper; with both elsewhere no command needs it (serve's setup code makes it).
    if config.database_url.is_none() || config.pepper_file.is_none() {
        ensure_data_dir(config, setup)?;
    }
    if let Some(file) = tessera_store::sqlite_path(&url) {
        ensure_sqlite_file(config, &file, setup)?;
    }
    let (store, migrated) = tessera_store::open_migrated(&url)
        .await
        .with_context(|| format!("cannot open the database {shown_url}"))?;
    let (pepper, created) = pepper_for(config, store.as_ref(), &shown_url, setup).await?;
    let adoption = match setup {
        Setup::MayCreate => pepper::Adoption::OverTokens,
        Setup::Existing => pepper::Adoption::NotOverTokens,
    };
    match pepper::check_fingerprint(store.as_ref(), &pepper, adoption).await {
        Ok(FingerprintCheck::Matches) => {}
        Ok(FingerprintCheck::Recorded) => {
            tracing::info!(
                pepper_file = %config.pepper_path().display(),
                "recorded the pepper's fingerprint in the database"
            );
        }
        Ok(FingerprintCheck::RecordedOverTokens) => tracing::warn!(
            pepper_file = %config.pepper_path().display(),
            database = %shown_url,
            "the database held tokens but no pepper fingerprint (it predates them): recorded \
             the fingerprint of the pepper in use. Whether its tokens were made with this \
             pepper cannot be checked; if they all answer not_found, this is the wrong pepper"
        ),
        Err(unrecorded @ PepperError::Unrecorded) => {
            return Err(UsageError(format!("{unrecorded} (database {shown_url})")).into());
        }
        Err(PepperError::Store(error)) => {
            return Err(anyhow::Error::new(error).context(format!(
                "cannot check the pepper against the database {shown_url}"
            )));
        }
        Err(mismatch @ PepperError::Mismatch { .. }) => {
            if created {
                // Another process started this database with a pepper of its own at the
                // same moment and won: ours must not linger as if it were the right one.
                let _ = std::fs::remove_file(config.pepper_path());
            }
            return Err(UsageError(mismatch_message(config, &shown_url, &mismatch)).into());
        }
    }
    let app = Tessera::new(store, pepper, config.settings()?, Arc::new(SystemClock))?;
    Ok((Arc::new(app), migrated))
}

/// The ways to name the data dir, for messages.
const POINT_AT_DATA_DIR: &str = "--data-dir DIR, TESSERA_DATA_DIR=DIR, or `data_dir` in the \
     config file (--config FILE, TESSERA_CONFIG, or ./tessera.toml)";

/// The ways to name the pepper's file, for messages.
const POINT_AT_PEPPER: &str =
    "--pepper-file FILE, TESSERA_PEPPER_FILE=FILE, or `pepper_file` in the config file";

/// `path` as a message shows it: as given, and absolute when relative (so a command
/// run from the wrong directory says where it looked).
fn shown(path: &Path) -> String {
    if path.is_absolute() {
        return path.display().to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => {
            let absolute: PathBuf = cwd
                .components()
                .chain(
                    path.components()
                        .filter(|part| *part != std::path::Component::CurDir),
                )
                .collect();
            format!("{} (that is, {})", path.display(), absolute.display())
        }
        Err(_) => path.display().to_string(),
    }
}

fn ensure_data_dir(config: &Config, setup: Setup) -> Result<()> {
    let dir = &config.data_dir;
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(UsageError(format!(
            "the data directory {} is not a directory",
            shown(dir)
        ))
        .into());
    }
    match setup {
        Setup::Existing => Err(UsageError(format!(
            "the data directory {} does not exist (from {}). It holds the database and the \
             pepper of an installation, and only `serve`, `migrate` and `admin create` start \
             a new one. Point at the installation's data directory with {POINT_AT_DATA_DIR}.",
            shown(dir),
            config
                .data_dir_origin
                .describe("data_dir", "TESSERA_DATA_DIR", "--data-dir"),
        ))
        .into()),
        Setup::MayCreate => {
            create_data_dir(dir)?;
            eprintln!(
                "created the data directory {} for a new installation",
                shown(dir)
            );
            Ok(())
        }
    }
}

/// Creates the data directory, readable by its owner only (it holds the pepper and
/// the database of digests and password hashes).
fn create_data_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

fn ensure_sqlite_file(config: &Config, file: &Path, setup: Setup) -> Result<()> {
    if file.exists() {
        return Ok(());
    }
    match setup {
        Setup::Existing if config.database_url.is_none() => Err(UsageError(format!(
            "there is no database in the data directory {} (no {}). Only `serve`, `migrate` \
             and `admin create` start a new installation; point at the installation's data \
             directory with {POINT_AT_DATA_DIR}.",
            shown(&config.data_dir),
            file.display()
        ))
        .into()),
        Setup::Existing => Err(UsageError(format!(
            "the SQLite database {} does not exist; only `serve`, `migrate` and `admin create` \
             create one. Check --database-url, TESSERA_DATABASE_URL or `database_url` in the \
             config file.",
            shown(file)
        ))
        .into()),
        Setup::MayCreate => {
            create_private_file(file)?;
            eprintln!("created the database {}", shown(file));
            Ok(())
        }
    }
}

/// Creates `path` empty and readable by its owner only, unless it exists. SQLite would
/// create the database file with the umask's mode (usually world-readable); created
/// first, it keeps 0600, and SQLite gives its `-wal`/`-shm` files the same mode.
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => {
            Err(error).with_context(|| format!("cannot create the database {}", path.display()))
        }
    }
}

/// The pepper to use: the configured file's, or (a command that may start an
/// installation, on a database that has no pepper yet) a new one. Also says whether
/// it was just made.
async fn pepper_for(
    config: &Config,
    store: &dyn tessera_store::Store,
    shown_url: &str,
    setup: Setup,
) -> Result<(Pepper, bool)> {
    let path = config.pepper_path();
    let read = pepper::read(&path).map_err(|error| {
        // The pepper module's own refusals (length, mode) name the file already.
        if error.get_ref().is_some() {
            UsageError(error.to_string())
        } else {
            UsageError(format!(
                "cannot read the pepper file {}: {error}",
                shown(&path)
            ))
        }
    })?;
    if let Some(pepper) = read {
        return Ok((pepper, false));
    }
    let database = DatabasePepper::read(store)
        .await
        .with_context(|| format!("cannot read the database {shown_url}"))?;
    if setup == Setup::MayCreate && database.may_take_a_new_pepper() {
        let pepper = pepper::create(&path)
            .with_context(|| format!("cannot create the pepper file {}", path.display()))?;
        eprintln!(
            "created a new pepper in {} (mode 0600): every process that uses this database \
             needs this file; back it up with the database",
            shown(&path)
        );
        return Ok((pepper, true));
    }
    let what = match (&database.fingerprint, database.holds_tokens) {
        (Some(fingerprint), _) => format!(
            "the database {shown_url} was set up with a pepper (fingerprint {}…)",
            pepper::short_fingerprint(fingerprint)
        ),
        (None, true) => format!("the database {shown_url} holds tokens made with a pepper"),
        (None, false) => format!(
            "only `serve`, `migrate` and `admin create` make a pepper, for a database that \
             has none ({shown_url})"
        ),
    };
    Err(UsageError(format!(
        "there is no pepper file at {}, and {what}. A new pepper would make every token \
         unknown: copy the pepper file of a node that uses this database to {} (the same 32 \
         bytes, mode 0600), or point at it with {POINT_AT_PEPPER}.{}",
        shown(&path),
        path.display(),
        data_dir_hint(config),
    ))
    .into())
}

/// For a pepper under the data dir, a reminder that the data dir may be the mistake.
fn data_dir_hint(config: &Config) -> String {
    if config.pepper_file.is_some() {
        return String::new();
    }
    format!(
        " (Or is the data directory wrong? It is {}, from {}.)",
        config.data_dir.display(),
        config
            .data_dir_origin
            .describe("data_dir", "TESSERA_DATA_DIR", "--data-dir"),
    )
}

fn mismatch_message(config: &Config, shown_url: &str, mismatch: &PepperError) -> String {
    let path: PathBuf = config.pepper_path();
    format!(
        "the pepper in {} does not belong to the database {shown_url}: {mismatch}. With it no \
         token of this database would verify, so nothing was done. Every process that uses \
         a database needs the same pepper: copy the pepper file of a node that uses this \
         database over {} (the same 32 bytes, mode 0600), or point at it with \
         {POINT_AT_PEPPER}.{}",
        shown(&path),
        path.display(),
        data_dir_hint(config),
    )
}
