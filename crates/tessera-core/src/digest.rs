//! Keyed digests of secrets under the server pepper (HMAC-SHA-256).
//!
//! Storage and the verify index are keyed by digest, never by secret. Looking a digest
//! up in a hash map is not constant-time, and need not be: an attacker who learns
//! digest bits through timing still cannot invert HMAC without the pepper. Secrets
//! that are *compared* (CSRF tokens) go through [`constant_time_eq`].

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::token::TokenSecret;

/// Length of the pepper in bytes.
pub const PEPPER_LEN: usize = 32;

/// The server-wide HMAC key. `Debug` never prints it.
#[derive(Clone)]
pub struct Pepper([u8; PEPPER_LEN]);

impl Pepper {
    pub fn from_bytes(bytes: [u8; PEPPER_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads a pepper from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; PEPPER_LEN] {
        &self.0
    }

    /// HMAC-SHA-256 of `message` under this pepper.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so construction cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac());
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The digest under which a token secret is stored and indexed.
    pub fn digest(&self, secret: &TokenSecret) -> TokenDigest {
        TokenDigest(self.mac(secret.expose().as_bytes()))
    }
}

#[allow(clippy::panic)]
#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    panic!("HMAC-SHA-256 accepts keys of any length")
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// HMAC-SHA-256 of a token secret: what storage and the verify index hold.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TokenFormat, TokenKind};

    #[test]
    fn mac_is_hmac_sha256_keyed_by_the_pepper() {
        // Expected value from Python: hmac.new(bytes(range(32)), msg, hashlib.sha256).
        let mut key = [0u8; 32];
        for (index, byte) in key.iter_mut().enumerate() {
            *byte = index as u8;
        }
        let hex: String = Pepper::from_bytes(key)
            .mac(b"what do ya want for nothing?")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "099805f4ac310786968565c098db515cc50862b420ae31e20238312344bed36a"
        );
    }

    #[test]
    fn digest_depends_on_pepper_and_secret() {
        let format = TokenFormat::default();
        let secret = format.generate(TokenKind::Api, &mut rand::rngs::OsRng);
        let other = format.generate(TokenKind::Api, &mut rand::rngs::OsRng);
        let a = Pepper::from_bytes([1; 32]);
        let b = Pepper::from_bytes([2; 32]);
        assert_eq!(a.digest(&secret), a.digest(&secret));
        assert_ne!(a.digest(&secret), b.digest(&secret));
        assert_ne!(a.digest(&secret), a.digest(&other));
    }

    #[test]
    fn debug_hides_pepper() {
        assert_eq!(
            format!("{:?}", Pepper::from_bytes([7; 32])),
            "Pepper(<redacted>)"
        );
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
