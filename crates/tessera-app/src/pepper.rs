//! The pepper file: 32 random bytes, created on first start with mode 0600; and
//! [`write_private`], which writes every secret file of the data dir.
//!
//! Every node and CLI run that shares a database must share the pepper, or no token
//! verifies. Losing it invalidates every token; it is never logged or printed.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use tessera_core::Pepper;
use tessera_core::digest::PEPPER_LEN;

/// Reads the pepper at `path`, creating it (and its directory) when missing.
pub fn load_or_create(path: &Path) -> std::io::Result<Pepper> {
    match std::fs::read(path) {
        Ok(bytes) => Pepper::from_slice(&bytes).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "pepper file {} must hold exactly {PEPPER_LEN} bytes",
                    path.display()
                ),
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(error) => Err(error),
    }
}

/// Writes a new pepper with [`write_private`] in [`Placement::New`] mode, so a
/// concurrent reader never sees a partly written pepper and two racing creators agree
/// on one (the loser reads the winner's).
fn create(path: &Path) -> std::io::Result<Pepper> {
    let mut bytes = [0u8; PEPPER_LEN];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    match write_private(path, &bytes, Placement::New) {
        Ok(()) => Ok(Pepper::from_bytes(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(path),
        Err(error) => Err(error),
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
    std::fs::create_dir_all(parent)?;
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
        let first = load_or_create(&path).unwrap();
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.as_bytes(), second.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(load_or_create(&path).is_err());
    }
}
