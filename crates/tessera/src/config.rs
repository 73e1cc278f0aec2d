//! Configuration, layered: defaults → `tessera.toml` → `TESSERA_*` environment → flags.
//!
//! The file is the one `--config` (or `TESSERA_CONFIG`) names, else `./tessera.toml`
//! when it exists. Unknown keys in the file are errors; unknown `TESSERA_*` variables
//! are warned about, since a typo there would otherwise be silently ignored.
//!
//! Each key is declared once, as a field of [`Config`]: figment layers the file and the
//! variables over the defaults and serde reads them into the fields, so the variables
//! Tessera knows are read off the same fields. The environment is passed in (not read
//! here) so that tests and the fuzz target can give their own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::listen::ListenAddress;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tessera_core::{ApiVersions, ForwardAuthConfig, RouteRules, TokenFormat, TokenPrefix};

/// Every setting, after layering. **Each key is declared once, here**: the field is the
/// key of `tessera.toml`, `TESSERA_<KEY>` (upper case) its environment variable, and
/// [`Default`] below its default; the file, the environment and the list of known
/// variables are all read off these fields (figment layers them; serde names them).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: ListenAddress,
    pub data_dir: PathBuf,
    /// Which layer set `data_dir`, for messages about it.
    #[serde(skip)]
    pub data_dir_origin: Origin,
    /// `None`: SQLite under `data_dir` (an empty value means the same).
    #[serde(deserialize_with = "empty_is_none")]
    pub database_url: Option<String>,
    /// The pepper's file; `None`: `pepper` in the data dir (an empty value: the same).
    #[serde(deserialize_with = "empty_is_none")]
    pub pepper_file: Option<PathBuf>,
    pub token_prefix: TokenPrefix,
    /// A list in the file, comma-separated in the environment.
    #[serde(deserialize_with = "list")]
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
    /// `[forward_auth]`: what each route of the protected API requires (file only).
    pub forward_auth: ForwardAuthConfig,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` / `Forwarded` name the real
    /// client. A list in the file, comma-separated in the environment.
    #[serde(deserialize_with = "cidrs")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a request's head may take to arrive (from its first byte; on a new
    /// connection, from the connection opening).
    pub header_timeout_seconds: u64,
    /// How long a connection may stay idle between requests; 0: no keep-alive.
    pub keep_alive_seconds: u64,
    /// At most this many open client connections.
    pub max_connections: usize,
    /// The config file that was read, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Which layer of the configuration set a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
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

/// Read from its name only (`text`, `json`), never from a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(try_from = "String")]
pub enum LogFormat {
    Text,
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(name: String) -> std::result::Result<Self, Self::Error> {
        match name.as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format `{other}`: use text or json")),
        }
    }
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

/// `""` (how a variable or key is set back to "not set") reads as `None`.
fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    let text = String::deserialize(deserializer)?;
    Ok((!text.is_empty()).then(|| T::from(text)))
}

/// A list: a TOML array, or one string of comma-separated items (the environment's).
fn list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<String>),
        Commas(String),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(items) => items,
        OneOrMany::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// CIDRs (`10.0.0.0/8`) or single addresses (`127.0.0.1`, a /32 or /128), as a [`list`].
fn cidrs<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    list(deserializer)?
        .iter()
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{entry}` is not an address or CIDR"))
                })
        })
        .collect()
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

/// The variables Tessera reads that are not keys: the config file's path and the log
/// filter.
const OTHER_ENV: [&str; 2] = ["TESSERA_CONFIG", "TESSERA_LOG"];

/// Keys of the file that no variable sets: tables.
const FILE_ONLY: [&str; 1] = ["forward_auth"];

/// The keys, read off [`Config`]'s fields (serde lists them for its deserializer).
fn keys() -> &'static [&'static str] {
    /// A deserializer that only records the field names it is asked for.
    struct FieldNames(Option<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for &mut FieldNames {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("field names only"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(serde::de::Error::custom("field names only"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut names = FieldNames(None);
        let _ = Config::deserialize(&mut names);
        names.0.unwrap_or_default()
    })
}

/// `TESSERA_<KEY>`.
fn variable_of(key: &str) -> String {
    format!("TESSERA_{}", key.to_ascii_uppercase())
}

/// Every environment variable Tessera reads.
pub fn known_env() -> Vec<String> {
    keys()
        .iter()
        .filter(|key| !FILE_ONLY.contains(key))
        .map(|key| variable_of(key))
        .chain(OTHER_ENV.map(str::to_owned))
        .collect()
}

/// The `TESSERA_<KEY>` variables of `env` as a figment layer. Values stay text; the
/// extraction (`extract_lossy`) reads `"true"` or `"4096"` as the key's type.
struct Environment<'a> {
    env: &'a [(String, String)],
}

impl figment::Provider for Environment<'_> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable").interpolater(|_, key| {
            key.last()
                .map_or_else(|| "TESSERA_".to_owned(), |key| variable_of(key))
        })
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for key in keys().iter().filter(|key| !FILE_ONLY.contains(key)) {
            let variable = variable_of(key);
            if let Some((_, value)) = self.env.iter().find(|(name, _)| *name == variable) {
                dict.insert(
                    (*key).to_owned(),
                    figment::value::Value::from(value.clone()),
                );
            }
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// The config file's text as a figment layer, named by its path in messages.
struct File<'a> {
    path: &'a Path,
    text: &'a str,
}

impl figment::Provider for File<'_> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::from(
            format!("config file {}", self.path.display()),
            figment::Source::File(self.path.to_path_buf()),
        )
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::providers::Format as _;
        figment::providers::Toml::string(self.text).data()
    }
}

/// A figment error as one line per problem, naming where the bad value came from:
/// "environment variable TESSERA_X: …" or "config file F is not valid: `key`: …".
fn describe(error: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = error
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            let source = error.metadata.as_ref().map(|metadata| &metadata.source);
            match source {
                Some(Some(figment::Source::File(path))) if key.is_empty() => {
                    format!(
                        "config file {} is not valid: {}",
                        path.display(),
                        error.kind
                    )
                }
                Some(Some(figment::Source::File(path))) => format!(
                    "config file {} is not valid: `{key}`: {}",
                    path.display(),
                    error.kind
                ),
                Some(_) if !error.path.is_empty() => format!(
                    "environment variable {}: {}",
                    variable_of(&error.path[0]),
                    error.kind
                ),
                _ => format!("configuration `{key}`: {}", error.kind),
            }
        })
        .collect();
    anyhow::anyhow!(lines.join("; "))
}

/// The pepper's file name in the data dir (unless `pepper_file` names another file).
pub const DEFAULT_PEPPER_FILE: &str = "pepper";

/// The longest change-feed retention accepted: ten years, in hours.
const MAX_CHANGE_FEED_RETENTION_HOURS: u64 = 10 * 366 * 24;

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
        let known = known_env();
        let warnings = env
            .iter()
            .filter(|(key, _)| {
                key.starts_with("TESSERA_")
                    && !key.starts_with("TESSERA_TEST_")
                    && !known.contains(key)
            })
            .map(|(key, _)| format!("ignoring unknown environment variable {key}"))
            .collect();
        let mut figment = figment::Figment::new();
        if let Some((path, text)) = file {
            figment = figment.merge(File { path, text });
        }
        let figment = figment.merge(Environment { env });
        let mut config: Self = figment.extract_lossy().map_err(describe)?;
        config.source = file.map(|(path, _)| path.to_owned());
        config.data_dir_origin = match figment.find_metadata("data_dir") {
            Some(metadata) => match &metadata.source {
                Some(figment::Source::File(path)) => Origin::File(path.clone()),
                _ => Origin::Environment,
            },
            None => Origin::Default,
        };
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
mod tests;
