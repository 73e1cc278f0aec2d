//! Connecting to PostgreSQL: Tessera's own URL parameters, the settings each pooled
//! connection gets, and start-up failures told plainly (once, with the address, and
//! what to do).
//!
//! Parameters Tessera reads (and removes before sqlx parses the URL; every other one,
//! `sslmode`, `sslrootcert`, `options`, `application_name`…, is sqlx's, as in libpq):
//!
//! | parameter | default | what it bounds |
//! |---|---|---|
//! | `connect_timeout` (seconds, as in libpq) | 2 | opening a connection (TCP, TLS, sign-in), and waiting for a pooled one |
//! | `statement_timeout` (PostgreSQL's syntax: `10s`, `500ms`, `2min`; `0`: none) | `10s` | each statement, on the server; and each store call, on the client, at twice that plus `connect_timeout` |
//! | `tcp_keepalives_idle`, `tcp_keepalives_interval` (seconds), `tcp_keepalives_count` | 30, 10, 3 | the server's TCP keepalive on Tessera's connections |
//!
//! Why keepalive is set on the server's end: sqlx opens its sockets itself and has no
//! keepalive option, so a client-side `SO_KEEPALIVE` is out of reach. The server's
//! keepalive lets PostgreSQL end the session (and release its locks, e.g. the change
//! feed's advisory lock) of a node that vanished; on Tessera's side, a call that
//! outlives its deadline is abandoned, and the connection it used is closed rather
//! than returned to the pool ([`super::PostgresStore`]'s `after_release` check), so a
//! hung connection never waits for the operating system's TCP timeout.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::StoreError;

/// Run by each pooled connection once, with [`ConnectSettings::session_values`]
/// (`SET` cannot take parameters; `set_config` can, all in one round trip).
///
/// `plan_cache_mode = force_custom_plan`: sqlx prepares each statement once per
/// connection, and after five runs PostgreSQL may keep a generic plan, made without the
/// values. The token list's plans depend on them: a generic plan for a name search
/// guesses how common the substring is, and for a two-character one (which has no
/// trigram) chose to read the whole trigram index (a million tokens: 230 ms, against
/// 41 ms planned for the value). Planning each run costs well under a millisecond.
pub(super) const SESSION_SETUP: &str = "SELECT set_config('statement_timeout', $1, false), \
     set_config('tcp_keepalives_idle', $2, false), \
     set_config('tcp_keepalives_interval', $3, false), \
     set_config('tcp_keepalives_count', $4, false), \
     set_config('plan_cache_mode', 'force_custom_plan', false)";

pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_KEEPALIVES: Keepalives = Keepalives {
    idle: 30,
    interval: 10,
    count: 3,
};

/// The server-side TCP keepalive of each connection (PostgreSQL's `tcp_keepalives_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Keepalives {
    pub idle: u32,
    pub interval: u32,
    pub count: u32,
}

/// A PostgreSQL URL, taken apart.
#[derive(Debug, Clone)]
pub(super) struct ConnectSettings {
    pub options: PgConnectOptions,
    pub connect_timeout: Duration,
    /// `None`: no statement timeout.
    pub statement_timeout: Option<Duration>,
    pub keepalives: Keepalives,
}

impl ConnectSettings {
    /// Parses `url`: Tessera's parameters here, the rest by sqlx. A bad value is a
    /// `Backend` error naming the parameter.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut connect_timeout = DEFAULT_CONNECT_TIMEOUT;
        let mut statement_timeout = Some(DEFAULT_STATEMENT_TIMEOUT);
        let mut keepalives = DEFAULT_KEEPALIVES;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |what: &str| {
                StoreError::Backend(
                    format!("the database URL's `{key}={value}` is not valid: {what}").into(),
                )
            };
            let seconds = || {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=86_400).contains(n))
                    .ok_or_else(|| bad("use a whole number of seconds from 1 to 86400"))
            };
            match key {
                "connect_timeout" => connect_timeout = Duration::from_secs(seconds()?.into()),
                "statement_timeout" => {
                    statement_timeout = parse_pg_duration(value).ok_or_else(|| {
                        bad("use a duration such as 10s, 500ms or 2min (0: none)")
                    })?;
                }
                "tcp_keepalives_idle" => keepalives.idle = seconds()?,
                "tcp_keepalives_interval" => keepalives.interval = seconds()?,
                "tcp_keepalives_count" => {
                    keepalives.count = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| bad("use a count from 1 to 100"))?;
                }
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let options = PgConnectOptions::from_str(&url)
            .map_err(|error| StoreError::Backend(Box::new(error)))?
            .application_name("tessera");
        Ok(Self {
            options,
            connect_timeout,
            statement_timeout,
            keepalives,
        })
    }

    /// The settings each pooled connection makes once, after connecting: the values of
    /// [`SESSION_SETUP`]'s parameters.
    pub fn session_values(&self) -> [String; 4] {
        let Keepalives {
            idle,
            interval,
            count,
        } = self.keepalives;
        [
            self.statement_timeout
                .map_or(0, |timeout| timeout.as_millis())
                .to_string(),
            idle.to_string(),
            interval.to_string(),
            count.to_string(),
        ]
    }

    /// How long a store call may take before it is abandoned: each statement is bounded
    /// on the server, so a call still waiting long after that is waiting on a connection
    /// that no longer answers.
    pub fn call_deadline(&self) -> Option<Duration> {
        self.statement_timeout
            .map(|timeout| timeout * 2 + self.connect_timeout)
    }

    /// `host:port` (or the socket's path) for messages.
    pub fn target(&self) -> String {
        match self.options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => {
                let host = self.options.get_host();
                let port = self.options.get_port();
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
        }
    }

    fn ssl_mode(&self) -> &'static str {
        match self.options.get_ssl_mode() {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }

    fn database(&self) -> String {
        self.options
            .get_database()
            .unwrap_or_else(|| self.options.get_username())
            .to_owned()
    }

    /// A failure to connect, told once and plainly: what happened, where, and what to
    /// do about it. Connection failures are `Unavailable` (exit 69, HTTP 503); a
    /// malformed URL is `Backend`.
    pub fn explain(&self, error: sqlx::Error) -> StoreError {
        let target = self.target();
        let message = match &error {
            sqlx::Error::Configuration(_) => return StoreError::Backend(Box::new(error)),
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
                "connection refused by {target}: is PostgreSQL running and listening there?"
            ),
            // rustls reports a refused handshake (an untrusted certificate, a name that
            // does not match) as invalid data on the socket.
            sqlx::Error::Io(io)
                if io.kind() == std::io::ErrorKind::InvalidData
                    || io.to_string().contains("certificate") =>
            {
                let hint = if io.to_string().contains("UnknownIssuer") {
                    " (for a server whose certificate comes from its own authority, give that \
                     authority's certificate with sslrootcert=/path/to/ca.pem)"
                } else {
                    ""
                };
                format!(
                    "TLS with the PostgreSQL server at {target} failed (sslmode={}): {io}{hint}",
                    self.ssl_mode()
                )
            }
            sqlx::Error::Io(io) => format!("cannot connect to {target}: {io}"),
            sqlx::Error::Tls(tls) if tls.to_string().contains("does not support TLS") => format!(
                "the PostgreSQL server at {target} does not support TLS, but the database URL \
                 asks for it (sslmode={}): enable TLS on the server, or on a trusted network \
                 use sslmode=prefer or sslmode=disable",
                self.ssl_mode()
            ),
            sqlx::Error::Tls(tls) => format!(
                "TLS with the PostgreSQL server at {target} failed (sslmode={}): {tls}",
                self.ssl_mode()
            ),
            sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
                let database = self.database();
                let mut command = String::from("createdb");
                if self.options.get_socket().is_none() {
                    command.push_str(&format!(
                        " -h {} -p {}",
                        self.options.get_host(),
                        self.options.get_port()
                    ));
                }
                command.push_str(&format!(" -U {} {database}", self.options.get_username()));
                format!(
                    "the database \"{database}\" does not exist on {target}; create it, e.g. \
                     with `{command}` (or CREATE DATABASE \"{database}\"; in psql), then start \
                     again"
                )
            }
            sqlx::Error::Database(db)
                if db
                    .code()
                    .as_deref()
                    .is_some_and(|code| code.starts_with("28")) =>
            {
                format!(
                    "{target} refused to sign in user \"{}\": {}",
                    self.options.get_username(),
                    db.message()
                )
            }
            other => format!("cannot connect to {target}: {other}"),
        };
        StoreError::Unavailable(Box::new(Explained(message)))
    }

    /// Connecting took longer than `connect_timeout`.
    pub fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(Box::new(Explained(format!(
            "no answer from {} within {} s (connect_timeout): is the address right, and \
             does a firewall let it through?",
            self.target(),
            self.connect_timeout.as_secs()
        ))))
    }
}

/// A message that says it all (no source: the cause is in the text, once).
#[derive(Debug)]
pub(super) struct Explained(pub String);

impl fmt::Display for Explained {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for Explained {}

/// PostgreSQL's duration syntax for `statement_timeout`: a whole number with an
/// optional unit (`ms` the default, `s`, `min`, `h`). `Some(None)` is `0` (none).
fn parse_pg_duration(text: &str) -> Option<Option<Duration>> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text[..digits].parse().ok()?;
    let unit = text[digits..].trim();
    let duration = match unit {
        "" | "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "min" => Duration::from_secs(number.checked_mul(60)?),
        "h" => Duration::from_secs(number.checked_mul(3600)?),
        _ => return None,
    };
    if duration > Duration::from_secs(86_400) {
        return None;
    }
    Some((!duration.is_zero()).then_some(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tessera_parameters_are_read_and_removed() {
        let settings = ConnectSettings::from_url(
            "postgres://app@db.internal:6432/tessera?connect_timeout=3&sslmode=require\
             &statement_timeout=2min&tcp_keepalives_idle=60&options=-c%20search_path%3Dx",
        )
        .unwrap();
        assert_eq!(settings.connect_timeout, Duration::from_secs(3));
        assert_eq!(settings.statement_timeout, Some(Duration::from_secs(120)));
        assert_eq!(settings.keepalives.idle, 60);
        assert_eq!(settings.keepalives.count, 3);
        assert_eq!(settings.target(), "db.internal:6432");
        assert_eq!(settings.ssl_mode(), "require");
        assert_eq!(
            settings.options.get_options(),
            Some("-c search_path=x"),
            "sqlx's own parameters are kept"
        );
        assert_eq!(settings.call_deadline(), Some(Duration::from_secs(243)));
        assert_eq!(settings.session_values(), ["120000", "60", "10", "3"]);

        let defaults = ConnectSettings::from_url("postgres://localhost/tessera").unwrap();
        assert_eq!(defaults.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(defaults.statement_timeout, Some(DEFAULT_STATEMENT_TIMEOUT));
        let none = ConnectSettings::from_url("postgres://localhost/t?statement_timeout=0").unwrap();
        assert_eq!(none.statement_timeout, None);
        assert_eq!(none.call_deadline(), None);
        assert_eq!(none.session_values()[0], "0");
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for url in [
            "postgres://h/d?connect_timeout=0",
            "postgres://h/d?connect_timeout=soon",
            "postgres://h/d?statement_timeout=10 parsecs",
            "postgres://h/d?tcp_keepalives_count=0",
        ] {
            let error = ConnectSettings::from_url(url).unwrap_err().to_string();
            let parameter = url.split('?').nth(1).unwrap();
            assert!(error.contains(parameter), "{url}: {error}");
        }
    }

    #[test]
    fn durations_follow_postgresql() {
        assert_eq!(
            parse_pg_duration("1500"),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            parse_pg_duration("250ms"),
            Some(Some(Duration::from_millis(250)))
        );
        assert_eq!(
            parse_pg_duration("10s"),
            Some(Some(Duration::from_secs(10)))
        );
        assert_eq!(parse_pg_duration("0"), Some(None));
        assert_eq!(parse_pg_duration("2 weeks"), None);
        assert_eq!(parse_pg_duration(""), None);
    }
}
