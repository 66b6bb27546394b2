//! A server's address as a component's metadata writes it: `host:port`, `[v6 address]:port`,
//! or a host alone where the store has a default port. Every store reads addresses this one
//! way, so an IPv6 address is written the same in every component file.

use std::fmt;
use std::net::Ipv6Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// A name or an address, IPv6 without its brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl HostPort {
    /// Reads one address. A port must be given unless `default_port` is; an IPv6 address
    /// takes a port only in brackets (`[::1]:2181`). Bare, it is taken only when it can't be
    /// read as an address and a port: `::1` is the address `::1`, but `::1:2181` is refused,
    /// since it is also the address `::1:2181`.
    pub(crate) fn parse(entry: &str, default_port: Option<u16>) -> Result<HostPort, String> {
        let bad = |why: &str| format!("'{entry}': {why}");
        let not_host_port = || format!("'{entry}' is not host:port");
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
                match after {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(after.strip_prefix(':').ok_or_else(not_host_port)?),
                    ),
                }
            }
            None => match entry.rsplit_once(':') {
                None => (entry, None),
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some((host, port)) => {
                    let an_address = entry.parse::<Ipv6Addr>().is_ok();
                    let also_address_and_port =
                        host.parse::<Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok();
                    if default_port.is_none() || !an_address || also_address_and_port {
                        return Err(bad("write an IPv6 address as [address]:port"));
                    }
                    (entry, None)
                }
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => default_port.ok_or_else(not_host_port)?,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

/// `host:port`, with an IPv6 address in brackets: how clients and connect strings want it.
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(entry: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
        HostPort::parse(entry, default_port).map(|a| (a.host, a.port))
    }

    #[test]
    fn names_and_ipv4_with_a_port() {
        assert_eq!(read("localhost:6379", None), Ok(("localhost".into(), 6379)));
        assert_eq!(
            read("10.0.0.1:2379", Some(1)),
            Ok(("10.0.0.1".into(), 2379))
        );
    }

    #[test]
    fn a_host_alone_takes_the_default_port_if_there_is_one() {
        assert_eq!(read("zk1", Some(2181)), Ok(("zk1".into(), 2181)));
        assert_eq!(read("zk1", None), Err("'zk1' is not host:port".into()));
    }

    #[test]
    fn ipv6_in_brackets() {
        assert_eq!(read("[::1]:2379", None), Ok(("::1".into(), 2379)));
        assert_eq!(read("[fe80::1]", Some(2181)), Ok(("fe80::1".into(), 2181)));
        assert!(read("[::1]", None).is_err());
        assert!(read("[::1", Some(2181)).is_err());
        assert!(read("[::1]2379", None).is_err());
        assert!(read("[]:2379", None).is_err());
    }

    #[test]
    fn bare_ipv6_only_where_it_cannot_hold_a_port() {
        assert_eq!(read("::1", Some(2181)), Ok(("::1".into(), 2181)));
        assert_eq!(
            read("fe80::abcd", Some(2181)),
            Ok(("fe80::abcd".into(), 2181))
        );
        // Both the address ::1 port 2181 and the address ::1:2181: refused, not guessed.
        assert!(read("::1:2181", Some(2181)).is_err());
        assert!(read("2001:db8::1:2379", Some(2379)).is_err());
        // Without a default port, a bare IPv6 address always lacks one.
        assert!(read("::1", None).is_err());
    }

    #[test]
    fn bad_hosts_and_ports() {
        for entry in ["", ":2181", "zk:port", "zk:0", "zk:65536", "zk:"] {
            assert!(read(entry, Some(2181)).is_err(), "{entry}");
        }
    }

    #[test]
    fn shown_as_clients_want_it() {
        let shown = |entry| HostPort::parse(entry, Some(1)).unwrap().to_string();
        assert_eq!(shown("[::1]:2379"), "[::1]:2379");
        assert_eq!(shown("::1"), "[::1]:1");
        assert_eq!(shown("zk1"), "zk1:1");
    }
}
