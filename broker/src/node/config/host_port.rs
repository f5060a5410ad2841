//! [`HostPort`]: a listen or advertised address as given (`host:port`), resolved to a
//! socket address only where the broker binds it.

use std::net::SocketAddr;
use std::str::FromStr;

/// A listen or advertised address, `host:port`: the host is a name (`localhost`), an IPv4
/// address, or an IPv6 address in brackets (`[::1]:7070`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address itself when the host is an IP address (no lookup).
    pub fn ip_address(&self) -> Option<SocketAddr> {
        let ip: std::net::IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }

    /// The address to listen on: the host's first IPv4 address, or its first address if it
    /// has no IPv4 one. A name is looked up (`/etc/hosts`, DNS); the error names it.
    pub async fn resolve(&self) -> Result<SocketAddr, ResolveError> {
        if let Some(address) = self.ip_address() {
            return Ok(address);
        }
        let failed = |reason: String| ResolveError {
            address: self.clone(),
            reason,
        };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|error| failed(error.to_string()))?
            .collect();
        addresses
            .iter()
            .find(|address| address.is_ipv4())
            .or(addresses.first())
            .copied()
            .ok_or_else(|| failed("it has no address".to_owned()))
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(text: &str) -> Result<HostPort, String> {
        let wrong = |why: &str| {
            format!("expected HOST:PORT (such as 127.0.0.1:7070, localhost:7070 or [::1]:7070), not {text:?}: {why}")
        };
        if text.contains("://") {
            return Err(wrong("give no scheme"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| wrong("no ]:PORT after an IPv6 address"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| wrong("not an IPv6 address in the brackets"))?;
            (host, port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| wrong("no port"))?;
            if host.contains(':') {
                return Err(wrong("an IPv6 address needs brackets"));
            }
            (host, port)
        };
        let valid_name = |host: &str| {
            host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        };
        if host.is_empty() || host.len() > 253 || !(host.contains(':') || valid_name(host)) {
            return Err(wrong("not a host name or an IP address"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| wrong("not a port number"))?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

/// A listen address whose host name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {} (listen address {address}): {reason}", .address.host)]
pub struct ResolveError {
    pub address: HostPort,
    pub reason: String,
}
