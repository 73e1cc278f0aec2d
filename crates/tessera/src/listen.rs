//! Where `serve` listens: `HOST:PORT`, where HOST is an IP address (`0.0.0.0`,
//! `[::1]`) or a host name (`localhost`), or a bare `PORT`, which binds the loopback
//! address 127.0.0.1 only.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;
use tokio::net::TcpListener;

/// A listen address as written in a flag, a variable or the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ListenAddress {
    /// An IP address and a port.
    Socket(SocketAddr),
    /// A bare port: the loopback address 127.0.0.1.
    Port(u16),
    /// A host name, resolved when binding, and a port.
    Host(String, u16),
}

impl ListenAddress {
    pub fn port(&self) -> u16 {
        match self {
            Self::Socket(address) => address.port(),
            Self::Port(port) | Self::Host(_, port) => *port,
        }
    }

    /// Whether this is a bare port (so the operator may want to know it is loopback only).
    pub fn is_bare_port(&self) -> bool {
        matches!(self, Self::Port(_))
    }

    /// The addresses to try, in order: a host name's IPv4 addresses before its IPv6
    /// ones (`localhost` then serves `http://127.0.0.1:PORT`, what browsers and curl
    /// reach first or fall back to).
    async fn candidates(&self) -> Result<Vec<SocketAddr>, BindError> {
        match self {
            Self::Socket(address) => Ok(vec![*address]),
            Self::Port(port) => Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, *port))]),
            Self::Host(host, port) => {
                let mut found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|error| BindError::Unresolved {
                        address: self.clone(),
                        reason: error.to_string(),
                    })?
                    .collect();
                found.sort_by_key(SocketAddr::is_ipv6);
                found.dedup();
                if found.is_empty() {
                    return Err(BindError::Unresolved {
                        address: self.clone(),
                        reason: "no address found".to_owned(),
                    });
                }
                Ok(found)
            }
        }
    }

    /// Binds the first address that accepts, with an error that says what to do when
    /// none does.
    pub async fn bind(&self) -> Result<TcpListener, BindError> {
        let mut last = None;
        for address in self.candidates().await? {
            match TcpListener::bind(address).await {
                Ok(listener) => return Ok(listener),
                Err(error) => last = Some((address, error)),
            }
        }
        let (address, error) = last.ok_or_else(|| BindError::Unresolved {
            address: self.clone(),
            reason: "no address found".to_owned(),
        })?;
        Err(BindError::Io {
            wanted: self.clone(),
            address,
            error,
        })
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(address) => write!(formatter, "{address}"),
            Self::Port(port) => write!(formatter, "{port}"),
            Self::Host(host, port) => write!(formatter, "{host}:{port}"),
        }
    }
}

impl FromStr for ListenAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let usage = || {
            format!(
                "`{text}` is not a listen address: use HOST:PORT (e.g. 127.0.0.1:8080, \
                 0.0.0.0:8080, localhost:8080, [::1]:8080) or a bare PORT (e.g. 8080, \
                 which listens on 127.0.0.1 only)"
            )
        };
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Ok(Self::Socket(address));
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(Self::Port).map_err(|_| usage());
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(usage)?;
        let port: u16 = port.parse().map_err(|_| usage())?;
        // An IP address without brackets around IPv6, or a malformed one, is not a name.
        if host.parse::<IpAddr>().is_ok() || host.contains(':') || !is_host_name(host) {
            return Err(usage());
        }
        Ok(Self::Host(host.to_owned(), port))
    }
}

impl TryFrom<String> for ListenAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// `host` is a DNS name: dot-separated labels of letters, digits and hyphens.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Why `serve` cannot listen.
#[derive(Debug)]
pub enum BindError {
    Unresolved {
        address: ListenAddress,
        reason: String,
    },
    Io {
        wanted: ListenAddress,
        address: SocketAddr,
        error: std::io::Error,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unresolved { address, reason } => write!(
                formatter,
                "cannot listen on {address}: the host name does not resolve ({reason}); \
                 choose another address with --listen, e.g. --listen 127.0.0.1:{}",
                address.port()
            ),
            Self::Io {
                wanted,
                address,
                error,
            } => {
                let shown = if wanted.to_string() == address.to_string() {
                    address.to_string()
                } else {
                    format!("{wanted} ({address})")
                };
                let another = format!("{}:{}", address.ip(), address.port().wrapping_add(1));
                let another = if address.is_ipv6() {
                    format!("[{}]:{}", address.ip(), address.port().wrapping_add(1))
                } else {
                    another
                };
                match error.kind() {
                    std::io::ErrorKind::AddrInUse => write!(
                        formatter,
                        "cannot listen on {shown}: the address is already in use (another \
                         tessera, or another program, is listening there); stop it or choose \
                         another address with --listen, e.g. --listen {another}"
                    ),
                    std::io::ErrorKind::PermissionDenied => write!(
                        formatter,
                        "cannot listen on {shown}: permission denied (ports below 1024 need \
                         root or CAP_NET_BIND_SERVICE); choose another address with --listen, \
                         e.g. --listen {}:8080",
                        if address.is_ipv6() {
                            format!("[{}]", address.ip())
                        } else {
                            address.ip().to_string()
                        }
                    ),
                    std::io::ErrorKind::AddrNotAvailable => write!(
                        formatter,
                        "cannot listen on {shown}: {} is not an address of this machine; choose \
                         another with --listen, e.g. --listen 0.0.0.0:{} (every interface) or \
                         --listen 127.0.0.1:{}",
                        address.ip(),
                        address.port(),
                        address.port()
                    ),
                    _ => write!(
                        formatter,
                        "cannot listen on {shown}: {error}; choose another address with --listen"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for BindError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_ports_and_host_names_parse() {
        let parse = |text: &str| text.parse::<ListenAddress>();
        assert_eq!(
            parse("127.0.0.1:8080"),
            Ok(ListenAddress::Socket("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            parse("[::1]:9000"),
            Ok(ListenAddress::Socket("[::1]:9000".parse().unwrap()))
        );
        assert_eq!(parse("8081"), Ok(ListenAddress::Port(8081)));
        assert_eq!(
            parse("localhost:8081"),
            Ok(ListenAddress::Host("localhost".into(), 8081))
        );
        assert_eq!(
            parse("tessera.internal:80"),
            Ok(ListenAddress::Host("tessera.internal".into(), 80))
        );
        for bad in [
            "",
            "nowhere",
            "70000",
            "localhost:",
            "localhost:http",
            "::1:80",
            "bad_name:80",
            "1.2.3:80x",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("HOST:PORT"), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn a_bare_port_binds_loopback_and_a_host_name_its_ipv4_address_first() {
        let listener = ListenAddress::Port(0).bind().await.unwrap();
        assert_eq!(
            listener.local_addr().unwrap().ip(),
            IpAddr::from(Ipv4Addr::LOCALHOST)
        );
        let listener = ListenAddress::Host("localhost".into(), 0)
            .bind()
            .await
            .unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }
}
