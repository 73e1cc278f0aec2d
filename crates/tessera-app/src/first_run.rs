//! First run: while no administrator exists, `tessera serve` arms a one-time setup code
//! (printed on its stderr and written to `<data-dir>/setup-code`, mode 0600) that
//! `POST /v1/auth/register-first` asks for, so whoever reaches a fresh server first
//! cannot make themselves super-admin.
//!
//! The code is 16 Crockford base32 symbols (80 bits from the OS generator), shown in
//! groups of four: `ABCD-EFGH-JKMN-PQRS`. What is typed is normalized before the
//! constant-time comparison: surrounding and inner whitespace and dashes are dropped,
//! case is ignored, and Crockford's look-alikes read as digits (`I`, `L` as `1`, `O` as
//! `0`; none of them is ever generated). Wrong codes count against the per-address login
//! throttle. Each process arms its own code: on a PostgreSQL cluster the first admin is
//! best made with `tessera admin create`.

use std::path::{Path, PathBuf};

use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::digest::constant_time_eq;

use crate::auth::Auth;
use crate::error::{AppError, AppResult};
use crate::pepper::{Placement, write_private};
use crate::throttle;

/// The setup code's file name in the data dir.
pub const SETUP_CODE_FILE: &str = "setup-code";

/// Crockford's base32 alphabet: no `I`, `L`, `O` or `U`.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a code: 16 × 5 = 80 bits.
const SYMBOLS: usize = 16;
/// Symbols per dash-separated group.
const GROUP: usize = 4;

/// A setup code in its canonical form (`ABCD-EFGH-JKMN-PQRS`). `Debug` never prints
/// it and there is no `Display`: it is shown once, by `tessera serve`, on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode(String);

impl std::fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupCode(<redacted>)")
    }
}

impl SetupCode {
    /// A fresh code from `rng` (each symbol from 5 bits of one random byte: uniform).
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; SYMBOLS];
        rng.fill_bytes(&mut bytes);
        let symbols: Vec<u8> = bytes
            .iter()
            .map(|byte| ALPHABET[usize::from(byte & 0x1f)])
            .collect();
        Self::from_symbols(&symbols)
    }

    /// A well-formed code as typed (see `normalize`), or `None`.
    pub fn parse(input: &str) -> Option<Self> {
        let symbols = normalize(input);
        (symbols.len() == SYMBOLS && symbols.iter().all(|symbol| ALPHABET.contains(symbol)))
            .then(|| Self::from_symbols(&symbols))
    }

    fn from_symbols(symbols: &[u8]) -> Self {
        let groups: Vec<String> = symbols
            .chunks(GROUP)
            .map(|group| String::from_utf8_lossy(group).into_owned())
            .collect();
        Self(groups.join("-"))
    }

    /// The canonical form, to show to the operator.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `input` is this code, once normalized (constant-time in the symbols).
    pub fn matches(&self, input: &str) -> bool {
        constant_time_eq(&normalize(&self.0), &normalize(input))
    }
}

/// What a typed code means: whitespace and dashes dropped, upper case, `I`/`L` read as
/// `1` and `O` as `0` (Crockford's decoding rules).
fn normalize(input: &str) -> Vec<u8> {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => b'1',
            'O' => b'0',
            // Anything outside ASCII can never match; keep the length honest.
            other if other.is_ascii() => other as u8,
            _ => 0,
        })
        .collect()
}

/// The code armed in this process and the file that holds it.
#[derive(Debug)]
pub(crate) struct ArmedCode {
    code: SetupCode,
    file: PathBuf,
}

/// Whether `path` may be read by its owner only (always true off Unix).
fn is_private(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(true)
    }
}

/// The code in `path` when it holds a well-formed one in a private file (so a restart
/// keeps a code someone already copied); otherwise a new code written there.
fn load_or_create(path: &Path) -> std::io::Result<SetupCode> {
    match std::fs::read_to_string(path) {
        Ok(text) => match SetupCode::parse(&text) {
            Some(code) if is_private(path)? => Ok(code),
            // Malformed, or readable by others (then it may have been read): replace it.
            _ => replace(path),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let code = SetupCode::generate(&mut OsRng);
            match write_private(
                path,
                format!("{}\n", code.as_str()).as_bytes(),
                Placement::New,
            ) {
                Ok(()) => Ok(code),
                // Another process on this data dir just wrote one: share it.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    match std::fs::read_to_string(path).map(|text| SetupCode::parse(&text)) {
                        Ok(Some(code)) if is_private(path)? => Ok(code),
                        _ => replace(path),
                    }
                }
                Err(error) => Err(error),
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => replace(path),
        Err(error) => Err(error),
    }
}

/// Writes a new code over whatever `path` holds.
fn replace(path: &Path) -> std::io::Result<SetupCode> {
    let code = SetupCode::generate(&mut OsRng);
    write_private(
        path,
        format!("{}\n", code.as_str()).as_bytes(),
        Placement::Replace,
    )?;
    Ok(code)
}

/// Removes a setup-code file that is no longer needed; a missing one is fine. A
/// failure is logged (without the code) and otherwise ignored: once an administrator
/// exists the code opens nothing.
fn remove_code_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(
            %error,
            file = %path.display(),
            "could not remove the setup code file; delete it by hand"
        ),
    }
}

impl Auth {
    /// Arms the first-run setup code while no administrator exists: reuses the
    /// well-formed code in `code_file` (so a restart does not invalidate a code someone
    /// copied) or writes a new one there (mode 0600), keeps it in memory and answers
    /// it, for the caller to show the operator. Once an administrator exists it removes
    /// a leftover `code_file`, arms nothing and answers `None`.
    pub async fn prepare_first_run(&self, code_file: &Path) -> AppResult<Option<String>> {
        if self.cx.store.count_users().await? > 0 {
            self.disarm();
            remove_code_file(code_file);
            return Ok(None);
        }
        let code = load_or_create(code_file).map_err(|error| {
            AppError::Internal(format!(
                "cannot write the setup code file {}: {error}",
                code_file.display()
            ))
        })?;
        let shown = code.as_str().to_owned();
        *self.lock_setup() = Some(ArmedCode {
            code,
            file: code_file.to_path_buf(),
        });
        tracing::info!(
            file = %code_file.display(),
            "no administrator exists: a one-time setup code is armed"
        );
        Ok(Some(shown))
    }

    /// Whether no administrator exists yet (the admin UI then offers registration).
    pub async fn needs_first_admin(&self) -> AppResult<bool> {
        Ok(self.cx.store.count_users().await? == 0)
    }

    fn lock_setup(&self) -> std::sync::MutexGuard<'_, Option<ArmedCode>> {
        self.setup_code
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the armed code; answers its file.
    fn disarm(&self) -> Option<PathBuf> {
        self.lock_setup().take().map(|armed| armed.file)
    }

    /// Checks a presented setup code before any other work of `register_first`. Each
    /// attempt is reserved against the client address's login budget (so guesses are
    /// throttled like logins, also in parallel) and given back only when it matches.
    pub(crate) fn check_setup_code(
        &self,
        presented: &str,
        client: Option<std::net::IpAddr>,
    ) -> AppResult<()> {
        let address = client.map(throttle::address_key);
        if let Some(address) = address {
            self.throttles
                .addresses
                .attempt(&address, self.cx.now())
                .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        }
        let matches = match self.lock_setup().as_ref() {
            None => {
                return Err(AppError::field(
                    "setup_code",
                    "no setup code is active on this server; use the code `tessera serve` \
                     printed, or `tessera admin create`",
                ));
            }
            Some(armed) => armed.code.matches(presented),
        };
        if !matches {
            let message = if presented.trim().is_empty() {
                "enter the setup code `tessera serve` printed"
            } else {
                "does not match the setup code `tessera serve` printed"
            };
            return Err(AppError::field("setup_code", message));
        }
        if let Some(address) = address {
            self.throttles.addresses.forgive(&address);
        }
        Ok(())
    }

    /// Retires the setup code once the first administrator exists: forgets it and
    /// removes its file.
    pub(crate) fn retire_setup_code(&self) {
        if let Some(file) = self.disarm() {
            remove_code_file(&file);
            tracing::info!("first administrator registered: the setup code is retired");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sixteen_crockford_symbols_in_groups() {
        let code = SetupCode::generate(&mut OsRng);
        let text = code.as_str();
        assert_eq!(text.len(), 19, "{text}");
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(groups.len(), 4);
        for group in groups {
            assert_eq!(group.len(), 4);
            assert!(group.bytes().all(|b| ALPHABET.contains(&b)), "{group}");
        }
        assert_ne!(code, SetupCode::generate(&mut OsRng));
        assert_eq!(format!("{code:?}"), "SetupCode(<redacted>)");
    }

    #[test]
    fn typed_codes_are_normalized() {
        let code = SetupCode::parse("ABCD-EFGH-JKMN-PQ10").unwrap();
        assert_eq!(code.as_str(), "ABCD-EFGH-JKMN-PQ10");
        for typed in [
            "ABCD-EFGH-JKMN-PQ10",
            "  abcd-efgh-jkmn-pq10\n",
            "ABCDEFGHJKMNPQ10",
            "abcd efgh jkmn pqlo",
            "ABCD--EFGH JKMN-PQiO",
        ] {
            assert!(code.matches(typed), "{typed:?}");
        }
        for wrong in [
            "",
            "ABCD-EFGH-JKMN-PQ1",
            "ABCD-EFGH-JKMN-PQ100",
            "ABCD-EFGH-JKMN-PQ11",
            "ABCD_EFGH_JKMN_PQ10",
            "ÀBCD-EFGH-JKMN-PQ10",
        ] {
            assert!(!code.matches(wrong), "{wrong:?}");
        }
        for malformed in [
            "",
            "ABCD-EFGH-JKMN",
            "ABCD-EFGH-JKMN-PQRU",
            "ABCD-EFGH-JKMN-PQRS-T",
        ] {
            assert!(SetupCode::parse(malformed).is_none(), "{malformed:?}");
        }
    }
}
