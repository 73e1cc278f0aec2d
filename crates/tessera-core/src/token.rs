//! The token format: `<prefix>_<40 base62 random><6 base62 CRC-32>`.
//!
//! Parsing rejects a bad length, charset, prefix or checksum before anything else
//! happens, so a random string costs no lookup. Personal tokens use the same format
//! with `p` appended to the prefix (`tsrp_…`) so a secret scanner can tell them apart.

use std::fmt;

use rand::{CryptoRng, RngCore, distributions::Distribution};
use serde::{Deserialize, Serialize};

use crate::base62;
use crate::record::TokenKind;

/// Number of random base62 characters in a token.
pub const RANDOM_LEN: usize = 40;
/// Number of base62 characters of the CRC-32 checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Number of random characters shown in the display hint.
pub const HINT_RANDOM_LEN: usize = 4;

/// Why a string is not a token. Carries no part of the string itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("token has no `_` separator")]
    MissingSeparator,
    #[error("token prefix is not one this server issues")]
    UnknownPrefix,
    #[error("token body has the wrong length")]
    WrongLength,
    #[error("token body has a character outside base62")]
    BadCharacter,
    #[error("token checksum does not match")]
    BadChecksum,
}

/// A validated token prefix: `[a-z][a-z0-9]{1,9}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenPrefix(String);

impl TokenPrefix {
    /// Validates a configured prefix.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let bytes = prefix.as_bytes();
        let shape_ok = (2..=10).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if shape_ok {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(format!(
                "token prefix `{prefix}` must match [a-z][a-z0-9]{{1,9}}"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TokenPrefix {
    fn default() -> Self {
        Self("tsr".to_owned())
    }
}

impl TryFrom<String> for TokenPrefix {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<TokenPrefix> for String {
    fn from(value: TokenPrefix) -> Self {
        value.0
    }
}

/// A token secret. It never prints itself: `Debug` shows `<redacted>` and there is no
/// `Display`; code that must reveal it calls [`TokenSecret::expose`] on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// The secret text, for the one response that reveals it and for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The display hint stored beside the digest: prefix, `_`, first 4 random chars.
    pub fn hint(&self) -> String {
        let (prefix, body) = self.0.split_once('_').unwrap_or((&self.0, ""));
        format!("{prefix}_{}", body.get(..HINT_RANDOM_LEN).unwrap_or(body))
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A string that passed format and checksum checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken {
    pub kind: TokenKind,
    pub secret: TokenSecret,
}

/// The token format of one deployment: its API prefix and the derived personal prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    api_prefix: TokenPrefix,
    personal_prefix: String,
}

impl Default for TokenFormat {
    fn default() -> Self {
        Self::new(TokenPrefix::default())
    }
}

impl TokenFormat {
    pub fn new(api_prefix: TokenPrefix) -> Self {
        let personal_prefix = format!("{}p", api_prefix.as_str());
        Self {
            api_prefix,
            personal_prefix,
        }
    }

    pub fn prefix_for(&self, kind: TokenKind) -> &str {
        match kind {
            TokenKind::Api => self.api_prefix.as_str(),
            TokenKind::Personal => &self.personal_prefix,
        }
    }

    /// Generates a new token of `kind` from a cryptographic RNG.
    pub fn generate(&self, kind: TokenKind, rng: &mut (impl RngCore + CryptoRng)) -> TokenSecret {
        let random: String = rand::distributions::Alphanumeric
            .sample_iter(rng)
            .take(RANDOM_LEN)
            .map(char::from)
            .collect();
        TokenSecret(with_checksum(self.prefix_for(kind), &random))
    }

    /// Checks format and checksum, and tells which kind of token the prefix names.
    pub fn parse(&self, text: &str) -> Result<ParsedToken, TokenFormatError> {
        let (prefix, body) = text
            .split_once('_')
            .ok_or(TokenFormatError::MissingSeparator)?;
        let kind = if prefix == self.api_prefix.as_str() {
            TokenKind::Api
        } else if prefix == self.personal_prefix {
            TokenKind::Personal
        } else {
            return Err(TokenFormatError::UnknownPrefix);
        };
        if body.len() != RANDOM_LEN + CHECKSUM_LEN {
            return Err(TokenFormatError::WrongLength);
        }
        if !body.bytes().all(base62::is_digit) {
            return Err(TokenFormatError::BadCharacter);
        }
        let split = prefix.len() + 1 + RANDOM_LEN;
        let (payload, checksum) = text.split_at(split);
        if checksum_of(payload) != checksum {
            return Err(TokenFormatError::BadChecksum);
        }
        Ok(ParsedToken {
            kind,
            secret: TokenSecret(text.to_owned()),
        })
    }
}

/// The 6-digit base62 CRC-32 (IEEE) of `payload`.
pub fn checksum_of(payload: &str) -> String {
    base62::encode_fixed(u64::from(crc32fast::hash(payload.as_bytes())), CHECKSUM_LEN)
}

fn with_checksum(prefix: &str, random: &str) -> String {
    let payload = format!("{prefix}_{random}");
    let checksum = checksum_of(&payload);
    payload + &checksum
}

/// Whether `word` has the shape of a token secret, under any prefix: a short prefix
/// (a lowercase letter, then lowercase letters or digits, as [`TokenPrefix`] allows),
/// `_`, then at least [`RANDOM_LEN`] base62 characters. Names use this to refuse a
/// pasted secret.
pub fn looks_like_secret(word: &str) -> bool {
    let Some((prefix, body)) = word.split_once('_') else {
        return false;
    };
    (1..=16).contains(&prefix.len())
        && prefix
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && body.len() >= RANDOM_LEN
        && body.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The token a request presents, from its header values: `Authorization: Bearer …`
/// (the scheme in any case), else `X-Api-Key`, trimmed. Forward-auth and the embedded
/// verifier's layer both read requests this way.
pub fn presented_token<'a>(
    authorization: Option<&'a str>,
    api_key: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .or_else(|| api_key.map(str::trim))
}

/// `text` with the random part of everything shaped like a secret cut to its display
/// hint: wherever `_` is followed by at least [`RANDOM_LEN`] base62 characters, only
/// the first four stay, followed by `…` (`tsr_ABCD…`). What surrounds the run is kept,
/// whatever it is, so a secret glued to other text (`x_tsr_…`, `tsr_…_old`,
/// `Bearertsr_…`) is hidden all the same. What a message may repeat of client input.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('_') {
        let (through_separator, after) = rest.split_at(at + 1);
        out.push_str(through_separator);
        let run = after.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if run >= RANDOM_LEN {
            // The run is ASCII, so these are character boundaries.
            out.push_str(&after[..HINT_RANDOM_LEN]);
            out.push('…');
            rest = &after[run..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_recognized_and_redacted_to_their_hint() {
        let secret = TokenFormat::default().generate(TokenKind::Api, &mut rand::rngs::OsRng);
        let text = secret.expose();
        assert!(looks_like_secret(text));
        let personal = TokenFormat::default().generate(TokenKind::Personal, &mut rand::rngs::OsRng);
        assert!(looks_like_secret(personal.expose()));
        for plain in [
            "deploy",
            "ci_bot",
            "tsr_short",
            "Tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!looks_like_secret(plain), "{plain}");
        }
        let message = format!("unknown field `{text}`, expected `name`");
        let redacted = redact_secrets(&message);
        assert!(!redacted.contains(&text[8..]), "{redacted}");
        assert!(
            redacted.contains(&format!("`{}…`", &text[..8])),
            "{redacted}"
        );
        assert_eq!(redact_secrets("no secret here"), "no secret here");
    }

    /// Found by the `token` fuzz target: a secret glued to other word characters was
    /// repeated whole, and a deployment's prefix with digits was not recognized.
    #[test]
    fn glued_secrets_and_prefixes_with_digits_are_redacted() {
        let secret = TokenFormat::default().generate(TokenKind::Api, &mut rand::rngs::OsRng);
        let text = secret.expose();
        let hint = format!("{}…", secret.hint());
        for (glued, expected) in [
            (format!("x_{text}"), format!("x_{hint}")),
            (format!("{text}_old"), format!("{hint}_old")),
            (format!("Bearer{text}"), format!("Bearer{hint}")),
            (format!("tsr_Ky{text}9P"), format!("tsr_Ky{hint}")),
            (format!("{text}_{text}"), format!("{hint}_{hint}")),
        ] {
            let redacted = redact_secrets(&glued);
            assert_eq!(redacted, expected, "{glued}");
            assert!(!redacted.contains(&text[8..]), "{redacted}");
            assert_eq!(redact_secrets(&redacted), redacted, "idempotent");
        }
        let acme = TokenFormat::new(TokenPrefix::new("acme2").unwrap())
            .generate(TokenKind::Personal, &mut rand::rngs::OsRng);
        assert!(looks_like_secret(acme.expose()), "{}", acme.expose());
        assert_eq!(redact_secrets(acme.expose()), format!("{}…", acme.hint()));
        assert!(!looks_like_secret(
            "2fa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
        assert_eq!(
            redact_secrets("snake_case_words stay"),
            "snake_case_words stay"
        );
    }

    use super::*;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn format() -> TokenFormat {
        TokenFormat::default()
    }

    #[test]
    fn generated_token_has_the_documented_shape() {
        let secret = format().generate(TokenKind::Api, &mut OsRng);
        let text = secret.expose();
        assert!(text.starts_with("tsr_"));
        assert_eq!(text.len(), 4 + RANDOM_LEN + CHECKSUM_LEN);
        assert_eq!(format().parse(text).map(|p| p.kind), Ok(TokenKind::Api));
        assert_eq!(secret.hint(), text[..8].to_owned());
    }

    #[test]
    fn personal_tokens_use_the_p_prefix() {
        let secret = format().generate(TokenKind::Personal, &mut OsRng);
        assert!(secret.expose().starts_with("tsrp_"));
        assert_eq!(
            format().parse(secret.expose()).map(|p| p.kind),
            Ok(TokenKind::Personal)
        );
    }

    #[test]
    fn checksum_matches_zlib_crc32() {
        // zlib.crc32(b"tsr_" + b"A"*40) == 0x13b14174, computed with Python.
        let payload = format!("tsr_{}", "A".repeat(40));
        assert_eq!(crc32fast::hash(payload.as_bytes()), 0x13b1_4174);
        assert_eq!(checksum_of(&payload), base62::encode_fixed(0x13b1_4174, 6));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = format().generate(TokenKind::Api, &mut OsRng);
        let printed = format!(
            "{secret:?} {:?}",
            ParsedToken {
                kind: TokenKind::Api,
                secret: secret.clone()
            }
        );
        assert!(!printed.contains(&secret.expose()[4..]));
    }

    #[test]
    fn rejects_each_kind_of_bad_string() {
        let good = format().generate(TokenKind::Api, &mut OsRng);
        let text = good.expose();
        let cases: Vec<(String, TokenFormatError)> = vec![
            ("no-separator".into(), TokenFormatError::MissingSeparator),
            (
                text.replacen("tsr_", "abc_", 1),
                TokenFormatError::UnknownPrefix,
            ),
            (
                text[..text.len() - 1].to_owned(),
                TokenFormatError::WrongLength,
            ),
            (format!("{text}0"), TokenFormatError::WrongLength),
            (
                // At index 5 itself: `replacen` of that character would hit the prefix
                // first whenever it is `t`, `s` or `r` (one run in twenty).
                format!("{}-{}", &text[..5], &text[6..]),
                TokenFormatError::BadCharacter,
            ),
            ("".into(), TokenFormatError::MissingSeparator),
        ];
        for (input, expected) in cases {
            assert_eq!(format().parse(&input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn prefix_rules() {
        for ok in ["tsr", "ab", "a123456789", "acme2"] {
            assert!(TokenPrefix::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "1ab", "Tsr", "a_b", "abcdefghijk", "tsr-"] {
            assert!(TokenPrefix::new(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_round_trips(random in "[0-9A-Za-z]{40}", prefix in "[a-z][a-z0-9]{1,9}") {
            let format = TokenFormat::new(TokenPrefix::new(&prefix).unwrap());
            let text = with_checksum(&prefix, &random);
            prop_assert_eq!(format.parse(&text).map(|p| p.kind), Ok(TokenKind::Api));
        }

        #[test]
        fn any_single_character_change_is_caught(random in "[0-9A-Za-z]{40}", position in 0usize..46, replacement in "[0-9A-Za-z]") {
            let text = with_checksum("tsr", &random);
            let index = 4 + position;
            prop_assume!(&text[index..=index] != replacement.as_str());
            let mut changed = text.clone();
            changed.replace_range(index..=index, &replacement);
            prop_assert!(format().parse(&changed).is_err());
        }

        #[test]
        fn parse_never_panics(input in ".{0,80}") {
            let _ = format().parse(&input);
        }
    }
}
