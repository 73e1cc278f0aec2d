//! The pepper: 32 random bytes in a file readable by its owner only (mode 0600), the
//! key of every token digest; its fingerprint, which the database records; and
//! `write_private`, which writes every secret file of the data dir.
//!
//! Every node and CLI run that shares a database must share the pepper, or no token
//! verifies. Losing it invalidates every token; it is never logged or printed. So that
//! a wrong or missing pepper is caught rather than answered with `not_found` for every
//! token, the database records the [`fingerprint`] of the pepper it was first used with
//! ([`check_fingerprint`]), and a process whose pepper gives another refuses to act.
//!
//! A database that held tokens before fingerprints existed records the fingerprint of
//! the first pepper that opens it: nothing stored can tell whether that is the pepper
//! its tokens were made with (a digest can only be checked against its secret), so that
//! first pepper is trusted, and [`FingerprintCheck::RecordedOverTokens`] lets the
//! caller say so.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use tessera_core::Pepper;
use tessera_core::digest::PEPPER_LEN;
use tessera_store::{Store, StoreError};

/// What the fingerprint is an HMAC of (under the pepper). Fixed forever: changing it
/// would make every recorded fingerprint differ.
const FINGERPRINT_LABEL: &[u8] = b"tessera pepper fingerprint v1";

/// The pepper's fingerprint: hex HMAC-SHA-256 of a fixed label under it. It tells
/// peppers apart and reveals nothing of the pepper.
pub fn fingerprint(pepper: &Pepper) -> String {
    pepper
        .mac(FINGERPRINT_LABEL)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The start of a fingerprint, enough to compare two by eye in a message.
pub fn short_fingerprint(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}

/// Reads the pepper at `path`: `None` when there is no such file. Refuses a file of
/// the wrong length, and one that its group or others may read or write (then the
/// pepper may have leaked, or the file is not the one the owner set up).
pub fn read(path: &Path) -> std::io::Result<Option<Pepper>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    check_private(path)?;
    Pepper::from_slice(&bytes).map(Some).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the pepper file {} must hold exactly {PEPPER_LEN} bytes (it holds {})",
                path.display(),
                bytes.len()
            ),
        )
    })
}

/// Refuses a pepper file whose mode lets its group or others in (Unix).
fn check_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "the pepper file {} may be read or written by others than its owner \
                     (mode {mode:04o}); make it private with `chmod 600 {}` (a secret \
                     manager: mount it with mode 0400 or 0600)",
                    path.display(),
                    path.display()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes a new random pepper at `path` (mode 0600, created with its directory if
/// need be) with `write_private` in `Placement::New` mode, so a concurrent reader
/// never sees a partly written pepper and two racing creators agree on one: the loser
/// reads the winner's. Only for a database that records no fingerprint and holds no
/// token; see [`DatabasePepper::may_take_a_new_pepper`].
pub fn create(path: &Path) -> std::io::Result<Pepper> {
    let mut bytes = [0u8; PEPPER_LEN];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    match write_private(path, &bytes, Placement::New) {
        Ok(()) => Ok(Pepper::from_bytes(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read(path)?
            .ok_or_else(|| std::io::Error::other("the pepper file vanished as it was created")),
        Err(error) => Err(error),
    }
}

/// Reads the pepper at `path`, creating it (and its directory) when missing, with no
/// look at any database: for tests and tools that make a throwaway installation. The
/// CLI and the server go through [`read`], [`create`] and [`check_fingerprint`].
pub fn load_or_create(path: &Path) -> std::io::Result<Pepper> {
    match read(path)? {
        Some(pepper) => Ok(pepper),
        None => create(path),
    }
}

/// What a database says about its pepper, before a process picks one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabasePepper {
    /// The fingerprint it records, if any.
    pub fingerprint: Option<String>,
    /// Whether it holds any token (whose digests were made under some pepper).
    pub holds_tokens: bool,
}

impl DatabasePepper {
    pub async fn read(store: &dyn Store) -> Result<Self, StoreError> {
        Ok(Self {
            fingerprint: store.pepper_fingerprint().await?,
            holds_tokens: !store.tokens_after(None, 1).await?.is_empty(),
        })
    }

    /// Whether a new pepper may be made for this database: never for one that records a
    /// fingerprint or holds a token, since no token of it would verify any more.
    pub fn may_take_a_new_pepper(&self) -> bool {
        self.fingerprint.is_none() && !self.holds_tokens
    }
}

/// How the pepper in use relates to the database's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintCheck {
    /// The database records this pepper's fingerprint.
    Matches,
    /// The database recorded nothing and held no token: this pepper is its pepper now.
    Recorded,
    /// The database recorded nothing but holds tokens (made before fingerprints were
    /// recorded): this pepper's fingerprint is recorded, unverified (see the module
    /// documentation).
    RecordedOverTokens,
}

/// Whether a command may record its pepper for a database that holds tokens but no
/// fingerprint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// `serve`, `migrate`, `admin create`: the operator starting the installation.
    OverTokens,
    /// Every other command: record only for a database without tokens.
    NotOverTokens,
}

/// Why a pepper may not be used with a database.
#[derive(Debug, thiserror::Error)]
pub enum PepperError {
    /// The database records another pepper's fingerprint.
    #[error(
        "this pepper is not the one the database was first used with (fingerprint {}…, \
         the database records {}…)",
        short_fingerprint(ours),
        short_fingerprint(recorded)
    )]
    Mismatch { ours: String, recorded: String },
    /// The database holds tokens but records no fingerprint (it predates them), and
    /// this command may not adopt one: only `serve` and `migrate` (and `admin create`)
    /// record the pepper of such a database, so a read-only command run with a stale
    /// pepper file cannot bind the database to the wrong pepper for good.
    #[error(
        "the database holds tokens but records no pepper fingerprint yet; run `tessera \
         migrate` (or `tessera serve`) once with the pepper its tokens were made with"
    )]
    Unrecorded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks `pepper` against the fingerprint the database records, recording it when
/// there is none yet (the first claim wins when several processes race, and the others
/// then find it differs unless they share the pepper).
pub async fn check_fingerprint(
    store: &dyn Store,
    pepper: &Pepper,
    adoption: Adoption,
) -> Result<FingerprintCheck, PepperError> {
    let ours = fingerprint(pepper);
    let recorded = match store.pepper_fingerprint().await? {
        Some(recorded) => recorded,
        None => {
            let holds_tokens = !store.tokens_after(None, 1).await?.is_empty();
            if holds_tokens && adoption == Adoption::NotOverTokens {
                return Err(PepperError::Unrecorded);
            }
            let recorded = store.claim_pepper_fingerprint(&ours).await?;
            if recorded == ours {
                return Ok(if holds_tokens {
                    FingerprintCheck::RecordedOverTokens
                } else {
                    FingerprintCheck::Recorded
                });
            }
            recorded
        }
    };
    if recorded == ours {
        Ok(FingerprintCheck::Matches)
    } else {
        Err(PepperError::Mismatch { ours, recorded })
    }
}

/// How [`write_private`] puts its file in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Only where no file exists yet (`AlreadyExists` otherwise), so racing creators
    /// agree on one file.
    New,
    /// Over whatever is there.
    Replace,
}

/// Writes `bytes` to a private (mode 0600) temporary file next to `path`, syncs it,
/// then links or renames it into place, so a reader never sees a partly written file.
/// Creates the parent directory when missing. The secret files of the data dir (the
/// pepper, the setup code) are all written this way.
pub(crate) fn write_private(
    path: &Path,
    bytes: &[u8],
    placement: Placement,
) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    if !parent.as_os_str().is_empty() && !parent.exists() {
        // Like the data dir itself: its owner's only.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent)?;
    }
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy());
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let temporary = parent.join(format!(
        ".{name}-{}.tmp",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let placed = written.and_then(|()| match placement {
        Placement::New => std::fs::hard_link(&temporary, path),
        Placement::Replace => std::fs::rename(&temporary, path),
    });
    // After a rename there is nothing left to remove; after a link (or a failure) the
    // temporary name goes.
    let _ = std::fs::remove_file(&temporary);
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_owner_only_mode_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/pepper");
        assert!(read(&path).unwrap().is_none());
        let first = create(&path).unwrap();
        let second = read(&path).unwrap().unwrap();
        assert_eq!(first.as_bytes(), second.as_bytes());
        assert_eq!(
            create(&path).unwrap().as_bytes(),
            first.as_bytes(),
            "a second creator reads the first one's"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "a directory made for it is private");
        }
        write_private(&path, b"short", Placement::Replace).unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("32 bytes"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_pepper_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pepper");
        create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = read(&path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            let message = error.to_string();
            assert!(
                message.contains(&format!("{mode:04o}")) && message.contains("chmod 600"),
                "{message}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(
            read(&path).unwrap().is_some(),
            "read-only for its owner is fine"
        );
    }

    #[test]
    fn fingerprints_tell_peppers_apart_and_are_stable() {
        let one = fingerprint(&Pepper::from_bytes([1; 32]));
        assert_eq!(one, fingerprint(&Pepper::from_bytes([1; 32])));
        assert_ne!(one, fingerprint(&Pepper::from_bytes([2; 32])));
        assert_eq!(one.len(), 64);
        assert!(!one.contains(&"01".repeat(32)));
        assert_eq!(short_fingerprint(&one).len(), 12);
    }
}
