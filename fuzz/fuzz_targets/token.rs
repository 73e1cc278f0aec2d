//! The token format (`tessera-core/src/token.rs`).
//!
//! Input: any bytes, read as text. Checked:
//! - `TokenFormat::parse` never panics, under the default prefix and under the prefix
//!   the input starts with (when it is a valid one); whatever it accepts is exactly the
//!   input, with the prefix of the kind it reports, the documented length and checksum,
//!   its hint is the prefix and four characters, and it looks like a secret;
//! - a token generated from the input's bytes (under that prefix, both kinds) parses
//!   back as its kind, and any single-character change to it is refused;
//! - `looks_like_secret` and `redact_secrets` never panic; redaction leaves text
//!   without token-shaped words alone, is idempotent, and never returns the random part
//!   of a secret: not of one in the input, nor of a generated token placed anywhere in
//!   the input (glued to letters, digits, `_` or other text on either side).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::TokenKind;
use tessera_core::token::{
    CHECKSUM_LEN, HINT_RANDOM_LEN, RANDOM_LEN, TokenFormat, TokenPrefix, checksum_of,
    looks_like_secret, redact_secrets,
};
use tessera_fuzz::{BytesRng, assert_no_secret};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn check_accepted(format: &TokenFormat, text: &str) {
    let Ok(parsed) = format.parse(text) else {
        return;
    };
    let prefix = format.prefix_for(parsed.kind);
    assert_eq!(parsed.secret.expose(), text);
    assert!(text.starts_with(prefix) && text[prefix.len()..].starts_with('_'));
    assert_eq!(text.len(), prefix.len() + 1 + RANDOM_LEN + CHECKSUM_LEN);
    let (payload, checksum) = text.split_at(prefix.len() + 1 + RANDOM_LEN);
    assert_eq!(checksum_of(payload), checksum);
    assert_eq!(
        parsed.secret.hint(),
        text[..prefix.len() + 1 + HINT_RANDOM_LEN]
    );
    assert!(
        looks_like_secret(text),
        "an accepted token must look like a secret: {text}"
    );
    assert_eq!(redact_secrets(text), format!("{}…", parsed.secret.hint()));
    // A secret never prints itself.
    assert!(!format!("{parsed:?}").contains(&text[prefix.len() + 1..]));
}

/// Whether `text` has an `_` followed by at least [`RANDOM_LEN`] letters and digits:
/// the least a token-shaped word holds.
fn has_long_run_after_underscore(text: &str) -> bool {
    text.match_indices('_').any(|(at, _)| {
        text[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count()
            >= RANDOM_LEN
    })
}

fn check_redaction(input: &str) {
    let redacted = redact_secrets(input);
    assert_no_secret(&[input], &redacted, "redact_secrets");
    assert_eq!(
        redact_secrets(&redacted),
        redacted,
        "redaction is idempotent"
    );
    if !has_long_run_after_underscore(input) {
        assert_eq!(redacted, input, "text without secrets is left alone");
    }
    for word in input.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        if looks_like_secret(word) {
            assert_ne!(
                redact_secrets(word),
                word,
                "a secret-shaped word is redacted"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = tessera_fuzz::text(data);
    let input: &str = &input;

    // The prefix the input starts with, when a deployment could be configured with it.
    let own_prefix = input
        .split_once('_')
        .map(|(prefix, _)| {
            prefix
                .strip_suffix('p')
                .filter(|p| p.len() >= 2)
                .unwrap_or(prefix)
        })
        .and_then(|prefix| TokenPrefix::new(prefix).ok());
    let default = TokenFormat::default();
    let own = own_prefix.clone().map(TokenFormat::new);

    check_accepted(&default, input);
    if let Some(own) = &own {
        check_accepted(own, input);
    }
    let _ = looks_like_secret(input);
    check_redaction(input);

    // A real token, made from the input's bytes, parses back and survives no change.
    let format = own.unwrap_or(default);
    for kind in [TokenKind::Api, TokenKind::Personal] {
        let secret = format.generate(kind, &mut BytesRng::new(data));
        let token = secret.expose();
        assert_eq!(format.parse(token).map(|p| p.kind), Ok(kind), "{token}");
        check_accepted(&format, token);
        let position = data.first().map_or(0, |b| usize::from(*b)) % token.len();
        let original = token.as_bytes()[position];
        let replacement = BASE62[data.get(1).map_or(0, |b| usize::from(*b)) % BASE62.len()];
        if replacement != original && original != b'_' {
            let mut changed = token.as_bytes().to_vec();
            changed[position] = replacement;
            let changed = String::from_utf8(changed).unwrap_or_default();
            assert!(
                format.parse(&changed).is_err(),
                "{token} changed to {changed} still parses"
            );
        }

        // The token pasted somewhere in the input: redaction must hide its random part.
        let cut = data.get(2).map_or(0, |b| usize::from(*b)) % (input.len() + 1);
        let cut = (0..=cut)
            .rev()
            .find(|at| input.is_char_boundary(*at))
            .unwrap_or(0);
        let pasted = format!("{}{token}{}", &input[..cut], &input[cut..]);
        let redacted = redact_secrets(&pasted);
        let random = &token
            [token.len() - CHECKSUM_LEN - RANDOM_LEN + HINT_RANDOM_LEN..token.len() - CHECKSUM_LEN];
        assert!(
            !redacted.contains(random) || input.contains(random),
            "the random part of a token pasted into text survives redaction: {redacted:?}"
        );
        check_redaction(&pasted);
    }
});
