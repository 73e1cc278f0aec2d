//! Helpers shared by the fuzz targets: the secret oracle, and reading fuzz input as text.

use tessera_core::token::{HINT_RANDOM_LEN, RANDOM_LEN};

/// The fuzz input as text: valid UTF-8 as is, anything else with U+FFFD replacements.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// A real secret's 36 characters past its hint hold at least this many different ones
/// (all but certainly: they are random base62). Runs such as `000…0`, which fuzzers
/// love, are not secrets, and could stand in an error for unrelated reasons.
const MIN_DISTINCT: usize = 8;

fn distinct_bytes(text: &str) -> usize {
    let mut seen = [false; 256];
    text.bytes()
        .filter(|b| !std::mem::replace(&mut seen[usize::from(*b)], true))
        .count()
}

/// The secret parts of every token-shaped run in `input`: wherever a lowercase letter
/// or digit is followed by `_` and at least [`RANDOM_LEN`] ASCII letters and digits,
/// the random characters past the display hint (`tsr_ABCD` may be shown, the 36 after
/// it may not), when they look random ([`MIN_DISTINCT`]). Written independently of
/// `tessera_core::token`, on purpose: this is the oracle the product's redaction is
/// checked against.
pub fn secret_tails(input: &str) -> Vec<&str> {
    let bytes = input.as_bytes();
    let mut tails = Vec::new();
    for at in 1..bytes.len() {
        if bytes[at] != b'_' {
            continue;
        }
        let before = bytes[at - 1];
        if !(before.is_ascii_lowercase() || before.is_ascii_digit()) {
            continue;
        }
        let run = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if run >= RANDOM_LEN {
            let start = at + 1 + HINT_RANDOM_LEN;
            let tail = &input[start..at + 1 + RANDOM_LEN];
            if distinct_bytes(tail) >= MIN_DISTINCT {
                tails.push(tail);
            }
        }
    }
    tails
}

/// Whether every occurrence of `tail` in `input` lies inside a token-shaped run: when
/// the same characters also stand somewhere else in the input, on their own, an error
/// may repeat them from there without leaking anything.
fn only_inside_secrets(input: &str, tail: &str) -> bool {
    let bytes = input.as_bytes();
    input.match_indices(tail).all(|(position, _)| {
        // Walk back over the alphanumeric run holding this occurrence to its `_`.
        let mut start = position;
        while start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            start -= 1;
        }
        start >= 2
            && bytes[start - 1] == b'_'
            && (bytes[start - 2].is_ascii_lowercase() || bytes[start - 2].is_ascii_digit())
            && bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count()
                >= RANDOM_LEN
    })
}

/// Panics when `output` (an error message, a detail key or value) repeats the secret
/// part of a token-shaped word of the input. `views` are the input as the client wrote
/// it and as the server decodes it (percent-decoded, JSON strings unescaped): secrets
/// are looked for in each, and characters that also stand outside a secret in some
/// view may be repeated from there.
pub fn assert_no_secret(views: &[&str], output: &str, what: &str) {
    if output.len() < RANDOM_LEN - HINT_RANDOM_LEN {
        return;
    }
    for view in views {
        for tail in secret_tails(view) {
            if output.contains(tail) && views.iter().all(|v| only_inside_secrets(v, tail)) {
                panic!("{what} repeats a secret of the input: {output:?}\ninput: {views:?}");
            }
        }
    }
}

/// Checks every string of an error body (message, detail keys and values).
pub fn assert_error_body_keeps_secrets(
    views: &[&str],
    message: &str,
    details: &serde_json::Map<String, serde_json::Value>,
) {
    assert_no_secret(views, message, "error message");
    for (key, value) in details {
        assert_no_secret(views, key, "error detail key");
        // The text a client reads, not its JSON form: an escape such as `\u0000` would
        // add digits of its own beside the text's.
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        assert_no_secret(views, &text, "error detail");
    }
}

/// Every key and string of a JSON document, one a line: the body as the server reads
/// it. Empty when the body is not JSON.
pub fn json_strings(body: &[u8]) -> String {
    fn walk(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::String(text) => {
                out.push_str(text);
                out.push('\n');
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            serde_json::Value::Object(object) => {
                for (key, item) in object {
                    out.push_str(key);
                    out.push('\n');
                    walk(item, out);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&value, &mut out);
    }
    out
}

/// A query string percent-decoded, as `name=value` lines.
pub fn query_pairs(query: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect()
}

/// A tiny deterministic RNG over fuzz bytes, for `TokenFormat::generate`: the token's
/// random characters come from the input (cycled), so every input names a token.
#[derive(Debug)]
pub struct BytesRng<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> BytesRng<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }
}

impl rand::RngCore for BytesRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut word = [0u8; 4];
        self.fill_bytes(&mut word);
        u32::from_le_bytes(word)
    }

    fn next_u64(&mut self) -> u64 {
        let mut word = [0u8; 8];
        self.fill_bytes(&mut word);
        u64::from_le_bytes(word)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = if self.bytes.is_empty() {
                // Any fixed stream will do; the distribution rejects nothing forever,
                // since it takes the top bits of each word.
                (self.at as u8).wrapping_mul(37)
            } else {
                self.bytes[self.at % self.bytes.len()]
                    .wrapping_add((self.at / self.bytes.len()) as u8)
            };
            self.at = self.at.wrapping_add(1);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Not cryptographic at all: the token format asks for the marker, the fuzzer does not
/// care.
impl rand::CryptoRng for BytesRng<'_> {}
