//! The metadata of a `lock.zookeeper` component, with the names Dapr's ZooKeeper state store
//! uses (`servers`, `sessionTimeout`, `keyPrefixPath`) and digest credentials.

use std::fmt;
use std::time::Duration;

use crate::config::Metadata;
use crate::stores::StoreInitError;

/// ZooKeeper's own default client port, used when an entry of `servers` names none.
const DEFAULT_PORT: u16 = 2181;

pub struct Settings {
    /// The ensemble as the client's connect string: `host:port,host:port`.
    pub servers: String,
    pub session_timeout: Duration,
    /// How long one request may take, connecting included, before it fails as unavailable.
    pub request_timeout: Duration,
    /// The root node under which every lock lives, e.g. `/dlock`.
    pub root: String,
    /// `user:password` for ZooKeeper's digest scheme.
    pub digest: Option<String>,
}

/// Credentials stay out of logs and errors.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("servers", &self.servers)
            .field("session_timeout", &self.session_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("root", &self.root)
            .field("digest", &self.digest.as_ref().map(|_| "<set>"))
            .finish()
    }
}

fn field(name: &'static str, message: impl Into<String>) -> StoreInitError {
    StoreInitError::field(name, message)
}

impl Settings {
    pub fn from_metadata(metadata: &Metadata) -> Result<Self, StoreInitError> {
        let servers = metadata.non_empty("servers").ok_or_else(|| {
            field(
                "servers",
                "required: the ensemble as a comma-separated list of host:port",
            )
        })?;
        let servers = servers
            .split(',')
            .map(|entry| server(entry.trim()))
            .collect::<Result<Vec<_>, _>>()?
            .join(",");

        let session_timeout = metadata.duration_or("sessionTimeout", Duration::from_secs(10))?;
        if session_timeout < Duration::from_millis(1) {
            return Err(field("sessionTimeout", "must be at least 1ms"));
        }
        let request_timeout = metadata.duration_or("requestTimeout", Duration::from_secs(3))?;
        if request_timeout < Duration::from_millis(1) {
            return Err(field("requestTimeout", "must be at least 1ms"));
        }

        let root = root_path(metadata.non_empty("keyPrefixPath").unwrap_or("/dlock"))?;

        let digest = match (
            metadata.non_empty("username"),
            metadata.non_empty("password"),
        ) {
            (None, None) => None,
            (Some(user), Some(password)) if !user.contains(':') => {
                Some(format!("{user}:{password}"))
            }
            (Some(_), Some(_)) => {
                return Err(field("username", "a digest user name can't contain ':'"))
            }
            (Some(_), None) => return Err(field("password", "required with username")),
            (None, Some(_)) => return Err(field("username", "required with password")),
        };

        Ok(Settings {
            servers,
            session_timeout,
            request_timeout,
            root,
            digest,
        })
    }
}

/// One `host:port` (or `host`, or `[v6]:port`) entry of `servers`, normalised.
fn server(entry: &str) -> Result<String, StoreInitError> {
    let bad = |why: &str| field("servers", format!("'{entry}': {why}"));
    if entry.is_empty() {
        return Err(bad("empty entry"));
    }
    if entry.contains('/') {
        return Err(bad("no path here: the lock root is keyPrefixPath"));
    }
    let (host, port) = match entry.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (format!("[{host}]"), after.strip_prefix(':'))
        }
        None => match entry.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host.to_string(), Some(port)),
            Some(_) => return Err(bad("write an IPv6 address as [address]:port")),
            None => (entry.to_string(), None),
        },
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("no host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
    };
    Ok(format!("{host}:{port}"))
}

/// The lock root as an absolute ZooKeeper path (Dapr's samples write it without the leading
/// slash). It must be below `/`, outside ZooKeeper's own `/zookeeper`, and valid node names.
fn root_path(text: &str) -> Result<String, StoreInitError> {
    let bad = |why: &str| field("keyPrefixPath", format!("'{text}': {why}"));
    let path = format!("/{}", text.trim_start_matches('/'));
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Err(bad("the locks need a node of their own below /"));
    }
    for name in path[1..].split('/') {
        if name.is_empty() || name == "." || name == ".." {
            return Err(bad("every segment must be a node name"));
        }
        if name.chars().any(forbidden) {
            return Err(bad("contains characters ZooKeeper forbids in node names"));
        }
    }
    if path == "/zookeeper" || path.starts_with("/zookeeper/") {
        return Err(bad("/zookeeper is ZooKeeper's own"));
    }
    Ok(path.to_string())
}

/// The characters ZooKeeper refuses in a path (its PathUtils.validatePath; the surrogates it
/// also refuses can't occur in a Rust string).
fn forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(items: &[(&str, &str)]) -> Metadata {
        items.iter().copied().collect()
    }

    fn settings(items: &[(&str, &str)]) -> Result<Settings, StoreInitError> {
        Settings::from_metadata(&metadata(items))
    }

    #[test]
    fn daprs_names_and_defaults() {
        let s = settings(&[("servers", "zk1:2181, zk2 ,[::1]:2182")]).unwrap();
        assert_eq!(s.servers, "zk1:2181,zk2:2181,[::1]:2182");
        assert_eq!(s.session_timeout, Duration::from_secs(10));
        assert_eq!(s.request_timeout, Duration::from_secs(3));
        assert_eq!(s.root, "/dlock");
        assert!(s.digest.is_none());

        let s = settings(&[
            ("servers", "localhost:2181"),
            ("sessionTimeout", "4s"),
            ("requestTimeout", "500ms"),
            ("keyPrefixPath", "dapr/locks/"),
            ("username", "app"),
            ("password", "s3cr3t"),
        ])
        .unwrap();
        assert_eq!(s.session_timeout, Duration::from_secs(4));
        assert_eq!(s.request_timeout, Duration::from_millis(500));
        assert_eq!(s.root, "/dapr/locks");
        assert_eq!(s.digest.as_deref(), Some("app:s3cr3t"));
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    #[test]
    fn errors_name_the_field() {
        let at_fault = |items: &[(&str, &str)]| settings(items).unwrap_err().field;
        assert_eq!(at_fault(&[]), Some("servers"));
        for servers in [
            "zk:port",
            "zk:0",
            "zk1,,zk2",
            "zk:2181/chroot",
            "::1:2181",
            ":2181",
        ] {
            assert_eq!(
                at_fault(&[("servers", servers)]),
                Some("servers"),
                "{servers}"
            );
        }
        let with = |name, value| at_fault(&[("servers", "zk"), (name, value)]);
        assert_eq!(with("sessionTimeout", "10"), Some("sessionTimeout"));
        assert_eq!(with("sessionTimeout", "0"), Some("sessionTimeout"));
        assert_eq!(with("requestTimeout", "soon"), Some("requestTimeout"));
        for root in ["/", "a//b", "a/../b", "zookeeper/x", "a\u{1}b"] {
            assert_eq!(with("keyPrefixPath", root), Some("keyPrefixPath"), "{root}");
        }
        assert_eq!(with("username", "u"), Some("password"));
        assert_eq!(with("password", "s3cr3t"), Some("username"));
        let err = settings(&[
            ("servers", "zk"),
            ("username", "a:b"),
            ("password", "s3cr3t"),
        ])
        .unwrap_err();
        assert_eq!(err.field, Some("username"));
        assert!(!err.message.contains("s3cr3t"));
    }
}
