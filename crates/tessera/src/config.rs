//! Configuration, layered: defaults → `tessera.toml` → `TESSERA_*` environment → flags.
//!
//! The file is the one `--config` (or `TESSERA_CONFIG`) names, else `./tessera.toml`
//! when it exists. Unknown keys in the file are errors; unknown `TESSERA_*` variables
//! are warned about, since a typo there would otherwise be silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::listen::ListenAddress;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tessera_core::{ApiVersions, ForwardAuthConfig, RouteRules, TokenFormat, TokenPrefix};

/// Every setting, after layering.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: ListenAddress,
    pub data_dir: PathBuf,
    /// Which layer set `data_dir`, for messages about it.
    pub data_dir_origin: Origin,
    /// `None`: SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// The pepper's file; `None`: `pepper` in the data dir.
    pub pepper_file: Option<PathBuf>,
    pub token_prefix: TokenPrefix,
    pub api_versions: Vec<String>,
    pub secure_cookies: bool,
    pub body_limit_bytes: usize,
    pub session_lifetime_seconds: u64,
    pub usage_flush_seconds: u64,
    pub change_poll_milliseconds: u64,
    pub verify_failures_per_minute: u32,
    /// How far behind the database the verify index may fall (e.g. while the database
    /// is unreachable) before verification answers `internal`; 0: never refuse.
    pub max_staleness_seconds: u64,
    /// How long the change feed keeps a change before a node prunes it; 0: forever.
    pub change_feed_retention_hours: u64,
    pub log_format: LogFormat,
    /// `[forward_auth]`: what each route of the protected API requires.
    pub forward_auth: ForwardAuthConfig,
    /// Proxies (CIDRs) whose `X-Forwarded-For` / `Forwarded` name the real client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a request's head may take to arrive (from its first byte; on a new
    /// connection, from the connection opening).
    pub header_timeout_seconds: u64,
    /// How long a connection may stay idle between requests; 0: no keep-alive.
    pub keep_alive_seconds: u64,
    /// At most this many open client connections.
    pub max_connections: usize,
    /// The config file that was read, if any.
    pub source: Option<PathBuf>,
}

/// Which layer of the configuration set a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Environment,
    Flag,
}

impl Origin {
    /// How a message names the source of `key` (flag `flag`, variable `variable`).
    pub fn describe(&self, key: &str, variable: &str, flag: &str) -> String {
        match self {
            Self::Default => "the default".to_owned(),
            Self::File(path) => format!("`{key}` in {}", path.display()),
            Self::Environment => variable.to_owned(),
            Self::Flag => flag.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The defaults are the application's and the server's own (`Settings::default`,
/// `Intervals::default`, the server's constants), converted to the file's units, so
/// each default is written once.
impl Default for Config {
    fn default() -> Self {
        let settings = tessera_app::Settings::default();
        let intervals = tessera_app::background::Intervals::default();
        Self {
            listen: ListenAddress::Socket(SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: PathBuf::from("./tessera-data"),
            data_dir_origin: Origin::Default,
            database_url: None,
            pepper_file: None,
            token_prefix: TokenPrefix::default(),
            api_versions: settings.api_versions.all().to_vec(),
            secure_cookies: false,
            body_limit_bytes: tessera_server::DEFAULT_BODY_LIMIT,
            session_lifetime_seconds: settings.session_lifetime.as_secs(),
            usage_flush_seconds: intervals.flush.as_secs(),
            change_poll_milliseconds: u64::try_from(intervals.follow.as_millis())
                .unwrap_or(u64::MAX),
            verify_failures_per_minute: settings.verify_failures_per_address,
            max_staleness_seconds: settings.max_staleness.map_or(0, |max| max.as_secs()),
            change_feed_retention_hours: settings
                .change_feed_retention
                .map_or(0, |retention| retention.as_secs() / 3600),
            log_format: LogFormat::Text,
            forward_auth: ForwardAuthConfig::default(),
            trusted_proxies: Vec::new(),
            header_timeout_seconds: tessera_server::conn::DEFAULT_HEADER_TIMEOUT.as_secs(),
            keep_alive_seconds: tessera_server::conn::DEFAULT_KEEP_ALIVE.as_secs(),
            max_connections: tessera_server::conn::DEFAULT_MAX_CONNECTIONS,
            source: None,
        }
    }
}

/// `tessera.toml`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<ListenAddress>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    pepper_file: Option<PathBuf>,
    token_prefix: Option<String>,
    api_versions: Option<Vec<String>>,
    secure_cookies: Option<bool>,
    body_limit_bytes: Option<usize>,
    session_lifetime_seconds: Option<u64>,
    usage_flush_seconds: Option<u64>,
    change_poll_milliseconds: Option<u64>,
    verify_failures_per_minute: Option<u32>,
    max_staleness_seconds: Option<u64>,
    change_feed_retention_hours: Option<u64>,
    log_format: Option<LogFormat>,
    forward_auth: Option<ForwardAuthConfig>,
    trusted_proxies: Option<Vec<String>>,
    header_timeout_seconds: Option<u64>,
    keep_alive_seconds: Option<u64>,
    max_connections: Option<usize>,
}

/// The flags every command shares.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub pepper_file: Option<PathBuf>,
    pub listen: Option<ListenAddress>,
    pub log_format: Option<LogFormat>,
}

/// Environment variables Tessera reads (besides `TESSERA_LOG`, the log filter).
const KNOWN_ENV: &[&str] = &[
    "TESSERA_CONFIG",
    "TESSERA_LISTEN",
    "TESSERA_DATA_DIR",
    "TESSERA_DATABASE_URL",
    "TESSERA_PEPPER_FILE",
    "TESSERA_TOKEN_PREFIX",
    "TESSERA_API_VERSIONS",
    "TESSERA_SECURE_COOKIES",
    "TESSERA_BODY_LIMIT_BYTES",
    "TESSERA_SESSION_LIFETIME_SECONDS",
    "TESSERA_USAGE_FLUSH_SECONDS",
    "TESSERA_CHANGE_POLL_MILLISECONDS",
    "TESSERA_VERIFY_FAILURES_PER_MINUTE",
    "TESSERA_MAX_STALENESS_SECONDS",
    "TESSERA_CHANGE_FEED_RETENTION_HOURS",
    "TESSERA_TRUSTED_PROXIES",
    "TESSERA_HEADER_TIMEOUT_SECONDS",
    "TESSERA_KEEP_ALIVE_SECONDS",
    "TESSERA_MAX_CONNECTIONS",
    "TESSERA_LOG_FORMAT",
    "TESSERA_LOG",
];

/// The pepper's file name in the data dir (unless `pepper_file` names another file).
pub const DEFAULT_PEPPER_FILE: &str = "pepper";

/// The longest change-feed retention accepted: ten years, in hours.
const MAX_CHANGE_FEED_RETENTION_HOURS: u64 = 10 * 366 * 24;

/// CIDRs (`10.0.0.0/8`) or single addresses (`127.0.0.1`, a /32 or /128).
fn parse_cidrs(list: &[String], source: &str) -> Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("{source}: `{entry}` is not an address or CIDR"))
        })
        .collect()
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|error| anyhow::anyhow!("{name}={value:?} is not valid: {error}"))
}

impl Config {
    /// Layers file, environment (`env`: name/value pairs) and flags over the defaults.
    /// Returns the config and warnings to print (unknown variables).
    pub fn load(overrides: &Overrides, env: &[(String, String)]) -> Result<(Self, Vec<String>)> {
        let explicit = overrides.config.clone().or_else(|| {
            env.iter()
                .find(|(key, _)| key == "TESSERA_CONFIG")
                .map(|(_, value)| PathBuf::from(value))
        });
        let file = match explicit {
            Some(path) => Some(path),
            None => Some(PathBuf::from("tessera.toml")).filter(|path| path.exists()),
        };
        let text = match &file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?,
            ),
            None => None,
        };
        Self::from_sources(file.as_deref().zip(text.as_deref()), overrides, env)
    }

    /// [`Config::load`] once the file (its path and text) is read: layers it, `env` and
    /// the flags over the defaults and checks the result. No I/O; the fuzz target
    /// `fuzz/fuzz_targets/config.rs` runs it on arbitrary files and variables.
    pub fn from_sources(
        file: Option<(&Path, &str)>,
        overrides: &Overrides,
        env: &[(String, String)],
    ) -> Result<(Self, Vec<String>)> {
        let mut warnings = Vec::new();
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        for (key, _) in env {
            if key.starts_with("TESSERA_")
                && !KNOWN_ENV.contains(&key.as_str())
                && !key.starts_with("TESSERA_TEST_")
            {
                warnings.push(format!("ignoring unknown environment variable {key}"));
            }
        }
        let mut config = Self::default();
        if let Some((path, text)) = file {
            config.apply_file(path, text)?;
            config.source = Some(path.to_owned());
        }
        if let Some(v) = lookup("TESSERA_LISTEN") {
            config.listen = parse_env("TESSERA_LISTEN", &v)?;
        }
        if let Some(v) = lookup("TESSERA_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
            config.data_dir_origin = Origin::Environment;
        }
        if let Some(v) = lookup("TESSERA_DATABASE_URL") {
            config.database_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = lookup("TESSERA_PEPPER_FILE") {
            config.pepper_file = Some(v).filter(|v| !v.is_empty()).map(PathBuf::from);
        }
        if let Some(v) = lookup("TESSERA_TOKEN_PREFIX") {
            config.token_prefix = TokenPrefix::new(&v).map_err(anyhow::Error::msg)?;
        }
        if let Some(v) = lookup("TESSERA_API_VERSIONS") {
            config.api_versions = v.split(',').map(|s| s.trim().to_owned()).collect();
        }
        if let Some(v) = lookup("TESSERA_SECURE_COOKIES") {
            config.secure_cookies = parse_env("TESSERA_SECURE_COOKIES", &v)?;
        }
        if let Some(v) = lookup("TESSERA_BODY_LIMIT_BYTES") {
            config.body_limit_bytes = parse_env("TESSERA_BODY_LIMIT_BYTES", &v)?;
        }
        if let Some(v) = lookup("TESSERA_SESSION_LIFETIME_SECONDS") {
            config.session_lifetime_seconds = parse_env("TESSERA_SESSION_LIFETIME_SECONDS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_USAGE_FLUSH_SECONDS") {
            config.usage_flush_seconds = parse_env("TESSERA_USAGE_FLUSH_SECONDS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_CHANGE_POLL_MILLISECONDS") {
            config.change_poll_milliseconds = parse_env("TESSERA_CHANGE_POLL_MILLISECONDS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_VERIFY_FAILURES_PER_MINUTE") {
            config.verify_failures_per_minute =
                parse_env("TESSERA_VERIFY_FAILURES_PER_MINUTE", &v)?;
        }
        if let Some(v) = lookup("TESSERA_TRUSTED_PROXIES") {
            let list: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|cidr| !cidr.is_empty())
                .map(str::to_owned)
                .collect();
            config.trusted_proxies = parse_cidrs(&list, "TESSERA_TRUSTED_PROXIES")?;
        }
        if let Some(v) = lookup("TESSERA_MAX_STALENESS_SECONDS") {
            config.max_staleness_seconds = parse_env("TESSERA_MAX_STALENESS_SECONDS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_HEADER_TIMEOUT_SECONDS") {
            config.header_timeout_seconds = parse_env("TESSERA_HEADER_TIMEOUT_SECONDS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_KEEP_ALIVE_SECONDS") {
            config.keep_alive_seconds = parse_env("TESSERA_KEEP_ALIVE_SECONDS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_MAX_CONNECTIONS") {
            config.max_connections = parse_env("TESSERA_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_CHANGE_FEED_RETENTION_HOURS") {
            config.change_feed_retention_hours =
                parse_env("TESSERA_CHANGE_FEED_RETENTION_HOURS", &v)?;
        }
        if let Some(v) = lookup("TESSERA_LOG_FORMAT") {
            config.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => bail!("TESSERA_LOG_FORMAT={other:?} is not valid: use text or json"),
            };
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
            config.data_dir_origin = Origin::Flag;
        }
        if let Some(url) = &overrides.database_url {
            config.database_url = Some(url.clone());
        }
        if let Some(file) = &overrides.pepper_file {
            config.pepper_file = Some(file.clone());
        }
        if let Some(listen) = &overrides.listen {
            config.listen = listen.clone();
        }
        if let Some(format) = overrides.log_format {
            config.log_format = format;
        }
        config.check()?;
        Ok((config, warnings))
    }

    /// Applies the text of the config file at `path`.
    fn apply_file(&mut self, path: &Path, text: &str) -> Result<()> {
        let file: FileConfig = toml::from_str(text)
            .with_context(|| format!("config file {} is not valid", path.display()))?;
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(value) = file.$field { self.$field = value; } )* };
        }
        if file.data_dir.is_some() {
            self.data_dir_origin = Origin::File(path.to_path_buf());
        }
        if let Some(pepper_file) = file.pepper_file {
            self.pepper_file = Some(pepper_file).filter(|file| !file.as_os_str().is_empty());
        }
        take!(
            listen,
            data_dir,
            api_versions,
            secure_cookies,
            body_limit_bytes,
            session_lifetime_seconds,
            usage_flush_seconds,
            change_poll_milliseconds,
            verify_failures_per_minute,
            max_staleness_seconds,
            change_feed_retention_hours,
            log_format,
            forward_auth,
            header_timeout_seconds,
            keep_alive_seconds,
            max_connections
        );
        if let Some(url) = file.database_url {
            self.database_url = Some(url).filter(|url| !url.is_empty());
        }
        if let Some(list) = file.trusted_proxies {
            self.trusted_proxies =
                parse_cidrs(&list, &format!("{}: trusted_proxies", path.display()))?;
        }
        if let Some(prefix) = file.token_prefix {
            self.token_prefix = TokenPrefix::new(&prefix)
                .map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))?;
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if let Some(url) = &self.database_url {
            check_database_url(url)?;
        }
        ApiVersions::new(self.api_versions.clone()).map_err(anyhow::Error::msg)?;
        if self.usage_flush_seconds == 0 || self.usage_flush_seconds > 10 {
            bail!("usage_flush_seconds must be 1 to 10 (usage must show within 10 seconds)");
        }
        if !(10..=1000).contains(&self.change_poll_milliseconds) {
            bail!(
                "change_poll_milliseconds must be 10 to 1000 (changes must show within a second)"
            );
        }
        if self.change_feed_retention_hours > MAX_CHANGE_FEED_RETENTION_HOURS {
            bail!(
                "change_feed_retention_hours must be 0 (keep every change) to \
                 {MAX_CHANGE_FEED_RETENTION_HOURS} (ten years)"
            );
        }
        if self.body_limit_bytes < 1024 {
            bail!("body_limit_bytes must be at least 1024");
        }
        if !(1..=3600).contains(&self.header_timeout_seconds) {
            bail!("header_timeout_seconds must be 1 to 3600");
        }
        if self.keep_alive_seconds > 86_400 {
            bail!("keep_alive_seconds must be 0 (no keep-alive) to 86400");
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            bail!("max_connections must be 1 to 1000000");
        }
        RouteRules::new(&self.forward_auth).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// How the server treats client connections.
    pub fn connection_options(&self) -> tessera_server::ConnectionOptions {
        tessera_server::ConnectionOptions {
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            keep_alive: (self.keep_alive_seconds > 0)
                .then(|| Duration::from_secs(self.keep_alive_seconds)),
            max_connections: self.max_connections,
        }
    }

    /// The database URL: the configured one, or SQLite under the data dir.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| tessera_store::sqlite_url_in(&self.data_dir))
    }

    /// The pepper's file: `pepper_file` when set, else `pepper` in the data dir.
    pub fn pepper_path(&self) -> PathBuf {
        self.pepper_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(DEFAULT_PEPPER_FILE))
    }

    pub fn settings(&self) -> Result<tessera_app::Settings> {
        Ok(tessera_app::Settings {
            token_format: TokenFormat::new(self.token_prefix.clone()),
            api_versions: ApiVersions::new(self.api_versions.clone())
                .map_err(anyhow::Error::msg)?,
            session_lifetime: Duration::from_secs(self.session_lifetime_seconds),
            verify_failures_per_address: self.verify_failures_per_minute,
            max_staleness: (self.max_staleness_seconds > 0)
                .then(|| Duration::from_secs(self.max_staleness_seconds)),
            forward_auth: RouteRules::new(&self.forward_auth).map_err(anyhow::Error::msg)?,
            change_feed_retention: (self.change_feed_retention_hours > 0)
                .then(|| Duration::from_secs(self.change_feed_retention_hours * 3600)),
            ..tessera_app::Settings::default()
        })
    }
}

/// The database URL schemes Tessera opens, as said in messages.
pub const SUPPORTED_DATABASE_URLS: &str = "sqlite:PATH (e.g. sqlite:///var/lib/tessera/tessera.db) or \
     postgres://USER:PASSWORD@HOST/DATABASE (postgresql:// too)";

/// Refuses a database URL whose scheme Tessera cannot open (`mysql://…`), naming the
/// ones it can; the URL itself is not repeated, as it may hold a password.
pub fn check_database_url(url: &str) -> Result<()> {
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        return Ok(());
    }
    let scheme = match url.split_once(':') {
        Some((scheme, _)) if !scheme.is_empty() => format!("scheme `{scheme}:`"),
        _ => "no scheme".to_owned(),
    };
    bail!(
        "the database URL has {scheme}, which Tessera does not support: use \
         {SUPPORTED_DATABASE_URLS}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// With nothing configured, the application runs on its own defaults: the file's
    /// defaults are those, converted, not a second copy that could drift.
    #[test]
    fn the_defaults_are_the_applications() {
        let (config, _) = Config::from_sources(None, &Overrides::default(), &[]).unwrap();
        let settings = config.settings().unwrap();
        let app = tessera_app::Settings::default();
        assert_eq!(settings.session_lifetime, app.session_lifetime);
        assert_eq!(
            settings.verify_failures_per_address,
            app.verify_failures_per_address
        );
        assert_eq!(settings.max_staleness, app.max_staleness);
        assert_eq!(settings.change_feed_retention, app.change_feed_retention);
        assert_eq!(settings.api_versions.all(), app.api_versions.all());
        assert_eq!(
            settings
                .token_format
                .prefix_for(tessera_core::TokenKind::Api),
            app.token_format.prefix_for(tessera_core::TokenKind::Api)
        );
        let intervals = tessera_app::background::Intervals::default();
        assert_eq!(
            Duration::from_secs(config.usage_flush_seconds),
            intervals.flush
        );
        assert_eq!(
            Duration::from_millis(config.change_poll_milliseconds),
            intervals.follow
        );
    }

    #[test]
    fn the_log_format_flag_wins_over_the_environment() {
        let overrides = Overrides {
            log_format: Some(LogFormat::Json),
            ..Overrides::default()
        };
        let (config, _) =
            Config::load(&overrides, &env(&[("TESSERA_LOG_FORMAT", "text")])).unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        let (config, _) = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_LOG_FORMAT", "json")]),
        )
        .unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn trusted_proxies_come_from_file_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n").unwrap();
        let overrides = Overrides {
            config: Some(file.clone()),
            ..Overrides::default()
        };
        let (config, _) = Config::load(&overrides, &[]).unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        assert!(
            config.trusted_proxies[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())
        );
        let (config, _) =
            Config::load(&overrides, &env(&[("TESSERA_TRUSTED_PROXIES", "::1/128")])).unwrap();
        assert_eq!(config.trusted_proxies.len(), 1);
        let error = Config::load(
            &overrides,
            &env(&[("TESSERA_TRUSTED_PROXIES", "10.0.0.0/33")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("10.0.0.0/33"), "{error}");
    }

    #[test]
    fn forward_auth_rules_load_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(
            &file,
            "[forward_auth]\ndefault = \"any-valid-token\"\n\
             [[forward_auth.rules]]\nmethods = [\"GET\"]\npath = \"/api/**\"\npermission = \"article.find\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config: Some(file.clone()),
            ..Overrides::default()
        };
        let (config, _) = Config::load(&overrides, &[]).unwrap();
        let rules = config.settings().unwrap().forward_auth;
        assert_eq!(rules.len(), 1);
        std::fs::write(
            &file,
            "[[forward_auth.rules]]\nmethods = [\"GET\"]\npath = \"/api/**/x\"\npermission = \"article.find\"\n",
        )
        .unwrap();
        let error = Config::load(&overrides, &[]).unwrap_err().to_string();
        assert!(
            error.contains("forward_auth.rules[0]") && error.contains("last segment"),
            "{error}"
        );
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\napi_versions = [\"v1\", \"v2\"]\n").unwrap();
        let overrides = Overrides {
            config: Some(file.clone()),
            ..Overrides::default()
        };
        let (config, _) =
            Config::load(&overrides, &env(&[("TESSERA_DATA_DIR", "/from-env")])).unwrap();
        assert_eq!(config.listen.port(), 9000, "file beats default");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from-env"),
            "env beats file"
        );
        assert_eq!(config.api_versions, vec!["v1", "v2"]);
        let overrides = Overrides {
            config: Some(file),
            data_dir: Some("/from-flag".into()),
            ..Overrides::default()
        };
        let (config, _) =
            Config::load(&overrides, &env(&[("TESSERA_DATA_DIR", "/from-env")])).unwrap();
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from-flag"),
            "flag beats env"
        );
    }

    #[test]
    fn unknown_env_is_warned_and_unknown_keys_fail() {
        let (_, warnings) =
            Config::load(&Overrides::default(), &env(&[("TESSERA_LISTN", "x")])).unwrap();
        assert_eq!(
            warnings,
            vec!["ignoring unknown environment variable TESSERA_LISTN"]
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let overrides = Overrides {
            config: Some(file),
            ..Overrides::default()
        };
        let error = Config::load(&overrides, &[]).unwrap_err();
        assert!(format!("{error:#}").contains("lisen"), "{error:#}");
    }

    #[test]
    fn max_staleness_defaults_to_five_minutes_and_zero_means_never() {
        let (config, _) = Config::load(&Overrides::default(), &[]).unwrap();
        assert_eq!(config.max_staleness_seconds, 300);
        assert_eq!(
            config.settings().unwrap().max_staleness,
            Some(Duration::from_secs(300))
        );
        let (config, warnings) = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_MAX_STALENESS_SECONDS", "0")]),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.settings().unwrap().max_staleness, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "max_staleness_seconds = 60\n").unwrap();
        let overrides = Overrides {
            config: Some(file),
            ..Overrides::default()
        };
        let (config, _) = Config::load(&overrides, &[]).unwrap();
        assert_eq!(
            config.settings().unwrap().max_staleness,
            Some(Duration::from_secs(60))
        );
        let error = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_MAX_STALENESS_SECONDS", "-1")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("TESSERA_MAX_STALENESS_SECONDS"));
    }

    #[test]
    fn change_feed_retention_defaults_to_seven_days_and_zero_means_forever() {
        let (config, _) = Config::load(&Overrides::default(), &[]).unwrap();
        assert_eq!(config.change_feed_retention_hours, 168);
        assert_eq!(
            config.settings().unwrap().change_feed_retention,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        let (config, warnings) = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_CHANGE_FEED_RETENTION_HOURS", "0")]),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.settings().unwrap().change_feed_retention, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(&file, "change_feed_retention_hours = 48\n").unwrap();
        let overrides = Overrides {
            config: Some(file),
            ..Overrides::default()
        };
        let (config, _) = Config::load(&overrides, &[]).unwrap();
        assert_eq!(
            config.settings().unwrap().change_feed_retention,
            Some(Duration::from_secs(48 * 3600))
        );
        let error = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_CHANGE_FEED_RETENTION_HOURS", "7d")]),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("TESSERA_CHANGE_FEED_RETENTION_HOURS")
        );
        let error = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_CHANGE_FEED_RETENTION_HOURS", "1000000")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("change_feed_retention_hours"));
    }

    #[test]
    fn the_pepper_file_comes_from_file_environment_or_flag() {
        let (config, _) = Config::load(&Overrides::default(), &[]).unwrap();
        assert_eq!(config.pepper_path(), PathBuf::from("./tessera-data/pepper"));
        assert_eq!(config.data_dir_origin, Origin::Default);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        std::fs::write(
            &file,
            "pepper_file = \"/run/secrets/pepper\"\ndata_dir = \"/srv/t\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config: Some(file.clone()),
            ..Overrides::default()
        };
        let (config, _) = Config::load(&overrides, &[]).unwrap();
        assert_eq!(config.pepper_path(), PathBuf::from("/run/secrets/pepper"));
        assert_eq!(config.data_dir_origin, Origin::File(file.clone()));
        let (config, warnings) = Config::load(
            &overrides,
            &env(&[
                ("TESSERA_PEPPER_FILE", "/from-env"),
                ("TESSERA_DATA_DIR", "/d"),
            ]),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.pepper_path(), PathBuf::from("/from-env"));
        assert_eq!(config.data_dir_origin, Origin::Environment);
        let overrides = Overrides {
            config: Some(file),
            pepper_file: Some("/from-flag".into()),
            data_dir: Some("/flag".into()),
            ..Overrides::default()
        };
        let (config, _) =
            Config::load(&overrides, &env(&[("TESSERA_PEPPER_FILE", "/from-env")])).unwrap();
        assert_eq!(config.pepper_path(), PathBuf::from("/from-flag"));
        assert_eq!(config.data_dir_origin, Origin::Flag);
    }

    /// docs/configuration.md names every variable Tessera reads (and with it every
    /// key: each key has its variable).
    #[test]
    fn the_configuration_reference_names_every_variable() {
        let reference = include_str!("../../../docs/configuration.md");
        for variable in KNOWN_ENV {
            assert!(
                reference.contains(&format!("`{variable}`")),
                "docs/configuration.md does not name {variable}"
            );
            if let Some(key) = variable.strip_prefix("TESSERA_")
                && !matches!(*variable, "TESSERA_CONFIG" | "TESSERA_LOG")
            {
                let key = format!("`{}`", key.to_lowercase());
                assert!(
                    reference.contains(&key),
                    "docs/configuration.md lacks {key}"
                );
            }
        }
    }

    #[test]
    fn bad_values_name_their_source() {
        let error = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_LISTEN", "nowhere")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("TESSERA_LISTEN"));
        let error = Config::load(
            &Overrides::default(),
            &env(&[("TESSERA_TOKEN_PREFIX", "Bad")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("prefix"));
    }
}
