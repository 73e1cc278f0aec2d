//! Field validation errors and the field rules shared by every surface.

use std::collections::BTreeMap;
use std::fmt;

/// Errors keyed by field name (`name`, `permissions[2]`, …), each with a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    /// Records a problem with `field`; the first message for a field wins.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| message.into());
    }

    /// Adds every error of `other`.
    pub fn merge(&mut self, other: FieldErrors) {
        for (field, message) in other.0 {
            self.add(field, message);
        }
    }

    /// Merges the error of `result`, if any, and returns its value.
    pub fn collect<T>(&mut self, result: Result<T, FieldErrors>) -> Option<T> {
        result.map_err(|errors| self.merge(errors)).ok()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (field, message) in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{field}: {message}")?;
        }
        Ok(())
    }
}

/// A request that breaks a rule; the details name each bad field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("validation failed: {0}")]
pub struct ValidationError(pub FieldErrors);

impl From<FieldErrors> for ValidationError {
    fn from(errors: FieldErrors) -> Self {
        Self(errors)
    }
}

/// Longest token, user or role name, in characters.
pub const NAME_MAX: usize = 100;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 500;

/// Characters that make one name look like another or reorder how it is shown:
/// Unicode's default-ignorable code points (zero-width and joining characters, soft
/// hyphen, fillers, variation selectors, tags) and the bidirectional controls.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' // soft hyphen
            | '\u{034F}' // combining grapheme joiner
            | '\u{061C}' // Arabic letter mark
            | '\u{115F}'..='\u{1160}' // Hangul fillers
            | '\u{17B4}'..='\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors, vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, isolates
            | '\u{3164}' // Hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}' // zero-width no-break space
            | '\u{FFA0}' // halfwidth Hangul filler
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}' // musical format controls
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
    )
}

/// Text that fits on one line of a request: a name, an email, a list filter. No control
/// characters at all (NUL included: PostgreSQL cannot store it, and a copy from SQLite
/// would fail on it).
pub fn single_line(field: &str, text: &str) -> Result<(), FieldErrors> {
    if text.chars().any(char::is_control) {
        Err(FieldErrors::single(
            field,
            "must not contain control characters",
        ))
    } else {
        Ok(())
    }
}

/// Free text such as a description: line breaks and tabs are fine, other control
/// characters are not.
pub fn free_text(field: &str, text: &str) -> Result<(), FieldErrors> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Err(FieldErrors::single(
            field,
            "must not contain control characters other than line breaks and tabs",
        ))
    } else {
        Ok(())
    }
}

/// A display name: 1–100 characters, no surrounding whitespace, no control characters,
/// no bidirectional overrides or zero-width characters (which would let one name pass
/// for another).
pub fn display_name(field: &str, name: &str) -> Result<(), FieldErrors> {
    let length = name.chars().count();
    let message = if name.trim().is_empty() {
        Some("must not be empty".to_owned())
    } else if length > NAME_MAX {
        Some(format!("must be at most {NAME_MAX} characters"))
    } else if name.trim() != name {
        Some("must not start or end with whitespace".to_owned())
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else if name.chars().any(is_deceptive) {
        Some("must not contain invisible or direction-changing characters".to_owned())
    } else if crate::token::looks_like_secret(name) {
        Some("must not be a token secret: name it for what it is for".to_owned())
    } else {
        None
    };
    message.map_or(Ok(()), |m| Err(FieldErrors::single(field, m)))
}

/// A description: at most 500 characters, line breaks allowed.
pub fn description(text: &str) -> Result<(), FieldErrors> {
    if text.chars().count() > DESCRIPTION_MAX {
        Err(FieldErrors::single(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ))
    } else {
        free_text("description", text)
    }
}

/// Longest `external_id`, in characters.
pub const EXTERNAL_ID_MAX: usize = 128;
/// Largest `metadata` object, in bytes of compact JSON.
pub const METADATA_MAX_BYTES: usize = 4096;

/// An `external_id`: 1–128 characters, no surrounding whitespace, no control
/// characters. Clearing it is `null`, never an empty string, so that "no customer"
/// has one spelling and the list filter cannot confuse the two.
pub fn external_id(id: &str) -> Result<(), FieldErrors> {
    let message = if id.is_empty() {
        Some("must not be empty (send null to clear it)".to_owned())
    } else if id.chars().count() > EXTERNAL_ID_MAX {
        Some(format!("must be at most {EXTERNAL_ID_MAX} characters"))
    } else if id.trim() != id {
        Some("must not start or end with whitespace".to_owned())
    } else if id.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else if crate::token::looks_like_secret(id) {
        Some("must not be a token secret: use your own id for the customer".to_owned())
    } else {
        None
    };
    message.map_or(Ok(()), |m| Err(FieldErrors::single("external_id", m)))
}

/// `metadata`: a JSON object of at most 4 KB as compact JSON; `null` means `{}`.
/// Keys and string values may not hold NUL, which PostgreSQL cannot store.
pub fn metadata(value: serde_json::Value) -> Result<crate::TokenMetadata, FieldErrors> {
    let fail = |message: String| Err(FieldErrors::single("metadata", message));
    let object = match value {
        serde_json::Value::Null => return Ok(crate::TokenMetadata::new()),
        serde_json::Value::Object(object) => object,
        _ => return fail("must be a JSON object".to_owned()),
    };
    let size = serde_json::to_vec(&object).map_or(usize::MAX, |bytes| bytes.len());
    if size > METADATA_MAX_BYTES {
        return fail(format!(
            "must be at most {METADATA_MAX_BYTES} bytes as JSON (this one is {size})"
        ));
    }
    if object_holds_nul(&object) {
        return fail("must not contain NUL characters".to_owned());
    }
    Ok(object)
}

fn object_holds_nul(object: &crate::TokenMetadata) -> bool {
    object
        .iter()
        .any(|(key, value)| key.contains('\0') || json_holds_nul(value))
}

fn json_holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_holds_nul),
        serde_json::Value::Object(object) => object_holds_nul(object),
        _ => false,
    }
}

/// Shortest accepted admin password.
pub const PASSWORD_MIN: usize = 10;
/// Longest accepted admin password (argon2's cost grows with it).
pub const PASSWORD_MAX: usize = 1024;

/// An admin password's rule: 10 to 1024 characters. The message never repeats it.
pub fn password(password: &str) -> Result<(), FieldErrors> {
    let length = password.chars().count();
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&length) {
        Ok(())
    } else {
        Err(FieldErrors::single(
            "password",
            format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
        ))
    }
}

/// An admin's email: `local@domain.tld`, at most 254 bytes, no spaces or control
/// characters. (Deliverability is not checked: admins are created by admins.)
pub fn email(email: &str) -> Result<(), FieldErrors> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(FieldErrors::single("email", "must be an email address"))
    }
}

/// Token names are unique among API tokens, compared after NFKC normalization and
/// case folding, so that `Ｄｅｐｌｏｙ` (full-width) and `deploy` are the same name;
/// this is the key the uniqueness rule compares.
pub fn name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.nfkc().collect::<String>().to_lowercase()
}

/// A project slug: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn project_slug(slug: &str) -> Result<(), FieldErrors> {
    let bytes = slug.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FieldErrors::single(
            "slug",
            "must match [a-z0-9][a-z0-9-]{0,62}",
        ))
    }
}

/// The name a duplicate gets: `<name> (copy)`, then `<name> (copy 2)`, … until
/// `taken` says it is free. Names are cut so the result stays within 100 characters.
pub fn copy_name(original: &str, taken: impl Fn(&str) -> bool) -> String {
    (1u32..)
        .map(|n| copy_name_candidate(original, n))
        .find(|candidate| !taken(&name_key(candidate)))
        .unwrap_or_default()
}

/// The `n`-th name tried for a duplicate of `original` (1: `<name> (copy)`).
pub fn copy_name_candidate(original: &str, n: u32) -> String {
    let suffix = if n <= 1 {
        " (copy)".to_owned()
    } else {
        format!(" (copy {n})")
    };
    let room = NAME_MAX - suffix.chars().count();
    let base: String = original.chars().take(room).collect();
    format!("{}{suffix}", base.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_rules() {
        let table: [(&str, bool); 7] = [
            ("Deploy bot", true),
            ("x", true),
            ("", false),
            ("   ", false),
            (" padded", false),
            ("tab\there", false),
            ("é", true),
        ];
        for (name, ok) in table {
            assert_eq!(display_name("name", name).is_ok(), ok, "{name:?}");
        }
        assert!(display_name("name", &"a".repeat(100)).is_ok());
        let err = display_name("name", &"a".repeat(101)).unwrap_err();
        assert_eq!(err.get("name"), Some("must be at most 100 characters"));
    }

    #[test]
    fn look_alike_names_share_a_key_and_invisible_characters_are_refused() {
        assert_eq!(name_key("Ｄｅｐｌｏｙ"), name_key("deploy"));
        assert_eq!(name_key("ﬁle"), name_key("FILE"), "ligatures fold");
        assert_ne!(name_key("deploy"), name_key("deploy 2"));
        for bad in [
            "dep\u{200B}loy",
            "abc\u{202E}gpj.exe",
            "x\u{2066}y",
            "\u{FEFF}z",
        ] {
            assert!(display_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(display_name("name", "日本語の名前").is_ok());
    }

    #[test]
    fn text_rules_refuse_control_characters() {
        assert!(single_line("q", "a\u{0}").is_err());
        assert!(single_line("q", "a\nb").is_err());
        assert!(single_line("q", "plain text ✓").is_ok());
        assert!(free_text("description", "two\nlines\tand a tab\r\n").is_ok());
        assert!(free_text("description", "nul\u{0}").is_err());
        assert!(free_text("description", "bell\u{7}").is_err());
        assert!(description("a\u{0}b").is_err());
    }

    #[test]
    fn description_limit_counts_characters() {
        assert!(description(&"é".repeat(500)).is_ok());
        assert!(description(&"é".repeat(501)).is_err());
    }

    #[test]
    fn external_id_rules() {
        for ok in ["cus_123", "acme corp", &"é".repeat(128)] {
            assert!(external_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", " cus", "cus\n", "a\0b", &"a".repeat(129)] {
            assert!(external_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_rules() {
        use serde_json::json;
        assert_eq!(metadata(json!(null)), Ok(crate::TokenMetadata::new()));
        let plan = metadata(json!({"plan": "pro", "seats": [1, 2]})).unwrap();
        assert_eq!(plan["plan"], "pro");
        for not_object in [json!([]), json!("x"), json!(3), json!(true)] {
            let err = metadata(not_object).unwrap_err();
            assert_eq!(err.get("metadata"), Some("must be a JSON object"));
        }
        // {"k":"…"} is 8 bytes of framing around the string.
        assert!(metadata(json!({"k": "a".repeat(METADATA_MAX_BYTES - 8)})).is_ok());
        assert!(metadata(json!({"k": "a".repeat(METADATA_MAX_BYTES - 7)})).is_err());
        assert!(metadata(json!({"deep": {"list": ["a\u{0}b"]}})).is_err());
        assert!(metadata(json!({"a\u{0}": 1})).is_err());
    }

    #[test]
    fn slug_rules() {
        for ok in ["shop", "0", "a-b-c", &"a".repeat(63)] {
            assert!(project_slug(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "Shop", "a_b", &"a".repeat(64)] {
            assert!(project_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copy_names_are_unique_and_bounded() {
        let taken = ["ci (copy)", "ci (copy 2)"];
        assert_eq!(copy_name("CI", |n| taken.contains(&n)), "CI (copy 3)");
        assert_eq!(copy_name("deploy", |_| false), "deploy (copy)");
        let long = "x".repeat(100);
        let copy = copy_name(&long, |_| false);
        assert_eq!(copy.chars().count(), 100);
        assert!(copy.ends_with(" (copy)"));
    }

    #[test]
    fn email_rule() {
        for ok in ["a@b.co", "first.last@example.com"] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a b@c.de", "a@.com"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_rule_counts_characters_and_never_echoes() {
        assert!(password("0123456789").is_ok());
        assert!(password("ünïcödé-ok").is_ok());
        let error = password("short").unwrap_err();
        assert_eq!(error.get("password"), Some("must be 10 to 1024 characters"));
        assert!(password(&"x".repeat(1025)).is_err());
    }
}
