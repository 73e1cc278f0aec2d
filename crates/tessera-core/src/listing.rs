//! The typed inputs of the management lists: filters, sorts and page sizes as domain
//! values.
//!
//! Text (a query string, a console form, a command-line flag) is parsed into these
//! where it arrives, and every bad value is named there; the application and the store
//! only ever see values that are already valid. The parse messages say what is
//! accepted and never repeat the input, so a secret pasted into a filter does not come
//! back in an error.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::catalog::TokenType;
use crate::validate::FieldErrors;

/// How far the token list counts its matches: past this many, it answers "at least
/// this many" (`total_exact: false`) rather than the exact number.
///
/// Why a limit: an exact count reads every matching row, and at a million tokens a
/// filter that matches most of them (a word in every name, `status=active`) takes the
/// database a quarter of a second to several seconds, every page. Counting to 10,000
/// takes milliseconds, and "10,000+" tells a person what they need: narrow the filter.
pub const TOKEN_COUNT_LIMIT: u64 = 10_000;

/// A value that did not parse: what is accepted instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseListError(String);

impl ParseListError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// `status` filter. `active` means enabled and not expired; `expired` means past its
/// expiry whatever its status; `disabled` means switched off whatever its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Disabled,
    Expired,
}

impl StatusFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
        }
    }
}

impl FromStr for StatusFilter {
    type Err = ParseListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            "expired" => Ok(Self::Expired),
            _ => Err(ParseListError::new("must be active, disabled or expired")),
        }
    }
}

impl FromStr for TokenType {
    type Err = ParseListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
            .ok_or_else(|| ParseListError::new("must be read-only, full-access or custom"))
    }
}

/// What the token list sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    Name,
    LastUsedAt,
}

impl SortField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::Name => "name",
            Self::LastUsedAt => "last_used_at",
        }
    }
}

/// A sort of the token list: a field, ascending or descending. Written `name` or
/// `-name` (descending); the default is `-created_at`, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for TokenSort {
    fn default() -> Self {
        Self {
            field: SortField::CreatedAt,
            descending: true,
        }
    }
}

impl fmt::Display for TokenSort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.descending {
            f.write_str("-")?;
        }
        f.write_str(self.field.as_str())
    }
}

impl FromStr for TokenSort {
    type Err = ParseListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (descending, field) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let field = match field {
            "created_at" => SortField::CreatedAt,
            "name" => SortField::Name,
            "last_used_at" => SortField::LastUsedAt,
            _ => {
                return Err(ParseListError::new(
                    "must be created_at, name or last_used_at, optionally prefixed with -",
                ));
            }
        };
        Ok(Self { field, descending })
    }
}

/// The `created` shortcut of the token list: a window relative to the listing's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedWindow {
    Last7Days,
    Last30Days,
    OlderThan30Days,
}

impl CreatedWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Last7Days => "last-7-days",
            Self::Last30Days => "last-30-days",
            Self::OlderThan30Days => "older-than-30-days",
        }
    }

    /// Narrows the explicit bounds `(after, before)` to this window as seen at `now`:
    /// the window and the bounds must all hold.
    pub fn narrow(
        self,
        now: DateTime<Utc>,
        after: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match self {
            Self::Last7Days => (after.max(Some(now - Duration::days(7))), before),
            Self::Last30Days => (after.max(Some(now - Duration::days(30))), before),
            Self::OlderThan30Days => {
                let bound = now - Duration::days(30);
                (
                    after,
                    Some(before.map_or(bound, |before| before.min(bound))),
                )
            }
        }
    }
}

impl FromStr for CreatedWindow {
    type Err = ParseListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "last-7-days" => Ok(Self::Last7Days),
            "last-30-days" => Ok(Self::Last30Days),
            "older-than-30-days" => Ok(Self::OlderThan30Days),
            _ => Err(ParseListError::new(
                "must be last-7-days, last-30-days or older-than-30-days",
            )),
        }
    }
}

/// A whole number from 1 to `MAX`: a page size or a span of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MAX: u32>(u32);

impl<const MAX: u32> Bounded<MAX> {
    pub const MAX: u32 = MAX;

    /// `value`, when it is from 1 to `MAX`.
    pub fn new(value: u32) -> Option<Self> {
        (1..=MAX).contains(&value).then_some(Self(value))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The largest value, `MAX`.
    pub const fn largest() -> Self {
        Self(MAX)
    }
}

impl<const MAX: u32> FromStr for Bounded<MAX> {
    type Err = ParseListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse::<u32>()
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| ParseListError::new(format!("must be a whole number from 1 to {MAX}")))
    }
}

/// A page of the token list: 1 to 200 tokens, 50 by default.
pub type TokenPageSize = Bounded<200>;
/// A page of the audit log: 1 to 500 entries, 50 by default.
pub type AuditPageSize = Bounded<500>;
/// The span of a token's usage history: 1 to 366 days, 30 by default.
pub type UsageDays = Bounded<366>;

impl Default for Bounded<200> {
    fn default() -> Self {
        Self(50)
    }
}

impl Default for Bounded<500> {
    fn default() -> Self {
        Self(50)
    }
}

impl Default for Bounded<366> {
    fn default() -> Self {
        Self(30)
    }
}

/// Which API tokens a listing asks for. Text fields are matched as given; their
/// content rules (one line, lengths) are checked by the application, which owns them
/// for every surface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// A substring of the name, compared case- and width-insensitively (`q`).
    pub search: Option<String>,
    pub created: Option<CreatedWindow>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub status: Option<StatusFilter>,
    pub token_type: Option<TokenType>,
    pub project: Option<String>,
    /// Exact `external_id`.
    pub external_id: Option<String>,
    pub sort: TokenSort,
    pub limit: TokenPageSize,
    /// The previous page's `next_cursor`, as the application wrote it.
    pub cursor: Option<String>,
}

/// Which audit entries a listing asks for, newest first. `actor`, `action` and `target`
/// match exactly; `since` is inclusive, `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: AuditPageSize,
    /// The previous page's `next_cursor`, as the application wrote it.
    pub cursor: Option<String>,
}

/// Parses text fields one after another, collecting an error for each bad one under
/// the name the caller knows it by.
#[derive(Debug, Default)]
pub struct FieldParser {
    errors: FieldErrors,
}

impl FieldParser {
    /// `text` parsed as `T`; `None` (with the error recorded) when it does not parse.
    pub fn parse<T: FromStr<Err = ParseListError>>(
        &mut self,
        field: &str,
        text: Option<&str>,
    ) -> Option<T> {
        match text?.parse() {
            Ok(value) => Some(value),
            Err(ParseListError(message)) => {
                self.errors.add(field, message);
                None
            }
        }
    }

    /// `text` as an RFC 3339 instant.
    pub fn time(&mut self, field: &str, text: Option<&str>) -> Option<DateTime<Utc>> {
        match DateTime::parse_from_rfc3339(text?) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                self.errors
                    .add(field, "must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z");
                None
            }
        }
    }

    /// `value`, unless some field was bad: then every error recorded.
    pub fn finish<T>(self, value: T) -> Result<T, FieldErrors> {
        self.errors.into_result().map(|()| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_round_trip_through_text() {
        for text in ["created_at", "-created_at", "name", "-name", "last_used_at"] {
            let sort: TokenSort = text.parse().unwrap();
            assert_eq!(sort.to_string(), text);
        }
        assert_eq!(TokenSort::default().to_string(), "-created_at");
        assert!("--name".parse::<TokenSort>().is_err());
        assert!("Name".parse::<TokenSort>().is_err());
    }

    #[test]
    fn bounded_numbers_refuse_zero_and_beyond_their_maximum() {
        assert_eq!("200".parse::<TokenPageSize>().unwrap().get(), 200);
        assert_eq!(
            "201".parse::<TokenPageSize>().unwrap_err().to_string(),
            "must be a whole number from 1 to 200"
        );
        assert!("0".parse::<UsageDays>().is_err());
        assert!("-1".parse::<AuditPageSize>().is_err());
        assert!(" 5".parse::<AuditPageSize>().is_err());
        assert_eq!(TokenPageSize::default().get(), 50);
        assert_eq!(UsageDays::default().get(), 30);
    }

    #[test]
    fn created_windows_narrow_explicit_bounds() {
        let now = DateTime::parse_from_rfc3339("2026-06-30T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let early = now - Duration::days(60);
        let (after, before) = CreatedWindow::Last7Days.narrow(now, Some(early), None);
        assert_eq!(after, Some(now - Duration::days(7)));
        assert_eq!(before, None);
        let late = now - Duration::days(1);
        let (after, before) = CreatedWindow::OlderThan30Days.narrow(now, None, Some(late));
        assert_eq!(after, None);
        assert_eq!(before, Some(now - Duration::days(30)));
        let (_, before) = CreatedWindow::OlderThan30Days.narrow(now, None, Some(early));
        assert_eq!(before, Some(early));
    }

    #[test]
    fn a_parser_names_every_bad_field_without_echoing_it() {
        let mut parser = FieldParser::default();
        let status: Option<StatusFilter> = parser.parse("status", Some("tsr_secret"));
        let limit: Option<TokenPageSize> = parser.parse("limit", Some("many"));
        let since = parser.time("since", Some("yesterday"));
        assert_eq!((status, limit, since), (None, None, None));
        let errors = parser.finish(()).unwrap_err();
        assert_eq!(errors.iter().count(), 3);
        assert!(
            errors
                .iter()
                .all(|(_, message)| !message.contains("tsr_secret"))
        );
    }
}
