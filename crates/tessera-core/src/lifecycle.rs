//! Lifecycle rules: lifespans and expiry, status, rate limits, API version upgrades.

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

/// How long a token lives, as chosen at creation or edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum Lifespan {
    #[serde(rename = "7d")]
    #[cfg_attr(feature = "graphql", graphql(name = "DAYS_7"))]
    Days7,
    #[serde(rename = "30d")]
    #[cfg_attr(feature = "graphql", graphql(name = "DAYS_30"))]
    Days30,
    #[serde(rename = "90d")]
    #[cfg_attr(feature = "graphql", graphql(name = "DAYS_90"))]
    Days90,
    #[serde(rename = "unlimited")]
    Unlimited,
    /// An explicit `expires_at`.
    #[serde(rename = "custom")]
    Custom,
}

impl Lifespan {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Days7 => "7d",
            Self::Days30 => "30d",
            Self::Days90 => "90d",
            Self::Unlimited => "unlimited",
            Self::Custom => "custom",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "7d" => Some(Self::Days7),
            "30d" => Some(Self::Days30),
            "90d" => Some(Self::Days90),
            "unlimited" => Some(Self::Unlimited),
            "custom" => Some(Self::Custom),
            _ => None,
        }
    }

    fn days(self) -> Option<i64> {
        match self {
            Self::Days7 => Some(7),
            Self::Days30 => Some(30),
            Self::Days90 => Some(90),
            Self::Unlimited | Self::Custom => None,
        }
    }
}

/// Resolves the requested duration into `(lifespan, expires_at)`, counted from `now`.
///
/// Exactly one of `lifespan` and `expires_at` is required; `lifespan: "custom"` may
/// accompany `expires_at`. An explicit `expires_at` must lie in the future.
pub fn resolve_expiry(
    lifespan: Option<Lifespan>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(Lifespan, Option<DateTime<Utc>>), FieldErrors> {
    match (lifespan, expires_at) {
        (None, None) => Err(FieldErrors::single(
            "lifespan",
            "give a lifespan (7d, 30d, 90d, unlimited) or an expires_at",
        )),
        (Some(Lifespan::Custom), None) => Err(FieldErrors::single(
            "expires_at",
            "a custom lifespan needs expires_at",
        )),
        (Some(lifespan), None) => Ok((
            lifespan,
            lifespan.days().map(|days| now + Duration::days(days)),
        )),
        // RFC 3339 has four-digit years: a later expiry could not be written back.
        (None | Some(Lifespan::Custom), Some(at)) if at.year() > 9999 => Err(FieldErrors::single(
            "expires_at",
            "must be before the year 10000 (or use lifespan: unlimited)",
        )),
        (None | Some(Lifespan::Custom), Some(at)) if at > now => Ok((Lifespan::Custom, Some(at))),
        (None | Some(Lifespan::Custom), Some(_)) => {
            Err(FieldErrors::single("expires_at", "must be in the future"))
        }
        (Some(_), Some(_)) => Err(FieldErrors::single(
            "lifespan",
            "give either a lifespan or an expires_at, not both",
        )),
    }
}

/// Whether a token with this expiry is expired at `now`.
pub fn is_expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// How long a regenerated token's old secret keeps working: 0 (not at all) to one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GracePeriod(u32);

impl GracePeriod {
    /// The longest grace period, in seconds.
    pub const MAX_SECONDS: u32 = 86_400;

    /// `grace_period_seconds` as a request gives it (absent means none).
    pub fn from_request(seconds: Option<u32>) -> Result<Self, FieldErrors> {
        match seconds.unwrap_or(0) {
            seconds if seconds <= Self::MAX_SECONDS => Ok(Self(seconds)),
            _ => Err(FieldErrors::single(
                "grace_period_seconds",
                "must be between 0 and 86400",
            )),
        }
    }

    /// Until when the old secret works after a regeneration at `now`; `None` for none.
    pub fn until(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.0 > 0).then(|| now + Duration::seconds(i64::from(self.0)))
    }
}

/// Whether a token is switched on. Expiry is derived separately from `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum TokenStatus {
    Active,
    Disabled,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A per-token rate limit: at most `requests` verifications per `per_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "graphql",
    derive(async_graphql::SimpleObject, async_graphql::InputObject),
    graphql(input_name = "RateLimitInput")
)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

impl RateLimit {
    pub const MAX_REQUESTS: u32 = 1_000_000;
    pub const MAX_PER_SECONDS: u32 = 86_400;

    pub fn validate(self) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        if !(1..=Self::MAX_REQUESTS).contains(&self.requests) {
            errors.add("rate_limit.requests", "must be between 1 and 1000000");
        }
        if !(1..=Self::MAX_PER_SECONDS).contains(&self.per_seconds) {
            errors.add("rate_limit.per_seconds", "must be between 1 and 86400");
        }
        errors.into_result().map(|()| self)
    }

    /// How the limit is counted (GCRA, as Tessera's limiter and the embedded
    /// verifier's both do): up to `requests` at once, then one more every
    /// `per_seconds / requests`. `None` for a limit that measures nothing (zero requests
    /// or seconds, which [`RateLimit::validate`] refuses).
    pub fn burst_and_period(self) -> Option<(std::num::NonZeroU32, std::time::Duration)> {
        let burst = std::num::NonZeroU32::new(self.requests)?;
        let period = std::time::Duration::from_secs(u64::from(self.per_seconds)) / self.requests;
        (!period.is_zero()).then_some((burst, period))
    }
}

/// The configured API versions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersions(Vec<String>);

impl ApiVersions {
    /// Checks the configured list: non-empty, no blanks, no duplicates.
    pub fn new(versions: Vec<String>) -> Result<Self, String> {
        if versions.is_empty() {
            return Err("api_versions must list at least one version".into());
        }
        for (index, version) in versions.iter().enumerate() {
            if version.trim().is_empty() || version.len() > 64 {
                return Err(format!("api_versions[{index}] must be 1-64 characters"));
            }
            if versions[..index].contains(version) {
                return Err(format!("api_versions lists `{version}` twice"));
            }
        }
        Ok(Self(versions))
    }

    pub fn all(&self) -> &[String] {
        &self.0
    }

    /// The version new tokens get.
    pub fn newest(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    fn position(&self, version: &str) -> Option<usize> {
        self.0.iter().position(|v| v == version)
    }

    /// The version an upgrade from `current` to `target` (default: newest) lands on.
    /// Upgrades only move forward; a version no longer configured counts as oldest.
    pub fn upgrade(&self, current: &str, target: Option<&str>) -> Result<String, FieldErrors> {
        let target = target.unwrap_or(self.newest());
        let Some(to) = self.position(target) else {
            return Err(FieldErrors::single(
                "api_version",
                "is not a configured API version; see GET /v1/api-versions",
            ));
        };
        match self.position(current) {
            Some(from) if from >= to => Err(FieldErrors::single(
                "api_version",
                format!("the token is on `{current}`; upgrades only move to a newer version"),
            )),
            _ => Ok(target.to_owned()),
        }
    }
}

impl Default for ApiVersions {
    fn default() -> Self {
        Self(vec!["v1".to_owned()])
    }
}

/// Whole seconds to wait, rounded up, at least one (`Retry-After`, `retry_after_seconds`).
pub fn retry_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_bursts_its_requests_then_spaces_them_over_its_window() {
        let limit = RateLimit {
            requests: 10,
            per_seconds: 60,
        };
        let (burst, period) = limit.burst_and_period().unwrap();
        assert_eq!(burst.get(), 10);
        assert_eq!(period, std::time::Duration::from_secs(6));
        let none = RateLimit {
            requests: 0,
            per_seconds: 60,
        };
        assert_eq!(none.burst_and_period(), None);
    }
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn expiry_table() {
        let later = now() + Duration::hours(1);
        let earlier = now() - Duration::hours(1);
        let cases = [
            (
                Some(Lifespan::Days7),
                None,
                Ok((Lifespan::Days7, Some(now() + Duration::days(7)))),
            ),
            (
                Some(Lifespan::Days30),
                None,
                Ok((Lifespan::Days30, Some(now() + Duration::days(30)))),
            ),
            (
                Some(Lifespan::Days90),
                None,
                Ok((Lifespan::Days90, Some(now() + Duration::days(90)))),
            ),
            (
                Some(Lifespan::Unlimited),
                None,
                Ok((Lifespan::Unlimited, None)),
            ),
            (None, Some(later), Ok((Lifespan::Custom, Some(later)))),
            (
                Some(Lifespan::Custom),
                Some(later),
                Ok((Lifespan::Custom, Some(later))),
            ),
            (None, Some(earlier), Err("expires_at")),
            (Some(Lifespan::Custom), None, Err("expires_at")),
            (Some(Lifespan::Days7), Some(later), Err("lifespan")),
            (None, None, Err("lifespan")),
        ];
        for (lifespan, expires_at, expected) in cases {
            let got = resolve_expiry(lifespan, expires_at, now());
            match expected {
                Ok(value) => assert_eq!(got, Ok(value)),
                Err(field) => assert!(
                    got.unwrap_err().get(field).is_some(),
                    "{lifespan:?} {expires_at:?}"
                ),
            }
        }
    }

    #[test]
    fn expiry_is_inclusive_of_the_instant() {
        assert!(is_expired(Some(now()), now()));
        assert!(!is_expired(Some(now() + Duration::seconds(1)), now()));
        assert!(!is_expired(None, now()));
    }

    #[test]
    fn upgrades_only_move_forward() {
        let versions = ApiVersions::new(vec!["v1".into(), "v2".into(), "v3".into()]).unwrap();
        assert_eq!(versions.newest(), "v3");
        assert_eq!(versions.upgrade("v1", None), Ok("v3".into()));
        assert_eq!(versions.upgrade("v1", Some("v2")), Ok("v2".into()));
        assert!(versions.upgrade("v3", None).is_err());
        assert!(versions.upgrade("v2", Some("v1")).is_err());
        assert!(versions.upgrade("v2", Some("v9")).is_err());
        assert_eq!(versions.upgrade("retired", Some("v1")), Ok("v1".into()));
    }

    #[test]
    fn configured_versions_are_checked() {
        assert!(ApiVersions::new(vec![]).is_err());
        assert!(ApiVersions::new(vec!["v1".into(), "v1".into()]).is_err());
        assert!(ApiVersions::new(vec![" ".into()]).is_err());
    }

    #[test]
    fn rate_limit_bounds() {
        assert!(
            RateLimit {
                requests: 1,
                per_seconds: 1
            }
            .validate()
            .is_ok()
        );
        let err = RateLimit {
            requests: 0,
            per_seconds: 86_401,
        }
        .validate()
        .unwrap_err();
        assert!(err.get("rate_limit.requests").is_some());
        assert!(err.get("rate_limit.per_seconds").is_some());
    }

    #[test]
    fn grace_periods_run_from_nothing_to_one_day() {
        let now = Utc::now();
        assert_eq!(GracePeriod::from_request(None).unwrap().until(now), None);
        assert_eq!(GracePeriod::from_request(Some(0)).unwrap().until(now), None);
        assert_eq!(
            GracePeriod::from_request(Some(86_400)).unwrap().until(now),
            Some(now + Duration::days(1))
        );
        let error = GracePeriod::from_request(Some(86_401)).unwrap_err();
        assert_eq!(
            error.get("grace_period_seconds"),
            Some("must be between 0 and 86400")
        );
    }
}
