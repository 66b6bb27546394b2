//! The metadata of a `lock.zookeeper` component, with the names Dapr's ZooKeeper state store
//! uses (`servers`, `sessionTimeout`, `keyPrefixPath`) and digest credentials.

use std::fmt;
use std::time::Duration;

use crate::config::{ConfigError, Metadata};

/// ZooKeeper's own default client port, used when an entry of `servers` names none.
const DEFAULT_PORT: u16 = 2181;

pub(crate) struct Settings {
    /// The ensemble as the client's connect string: `host:port,host:port`.
    pub(crate) servers: String,
    pub(crate) session_timeout: Duration,
    /// How long one request may take, connecting included, before it fails as unavailable.
    pub(crate) request_timeout: Duration,
    /// The root node under which every lock lives, e.g. `/dlock`.
    pub(crate) root: String,
    /// `user:password` for ZooKeeper's digest scheme.
    pub(crate) digest: Option<String>,
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

impl Settings {
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Self, ConfigError> {
        // A connect string may end in a chroot path; here the lock root is keyPrefixPath.
        if let Some(servers) = metadata.non_empty("servers").filter(|s| s.contains('/')) {
            return Err(ConfigError::field(
                "servers",
                format!("'{servers}': no path here: the lock root is keyPrefixPath"),
            ));
        }
        let servers = metadata
            .host_ports(
                "servers",
                "required: the ensemble as a comma-separated list of host:port",
                Some(DEFAULT_PORT),
            )?
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");

        let session_timeout = metadata.duration_or("sessionTimeout", Duration::from_secs(10))?;
        if session_timeout < Duration::from_millis(1) {
            return Err(ConfigError::field("sessionTimeout", "must be at least 1ms"));
        }
        let request_timeout = metadata.duration_or("requestTimeout", Duration::from_secs(3))?;
        if request_timeout < Duration::from_millis(1) {
            return Err(ConfigError::field("requestTimeout", "must be at least 1ms"));
        }

        let root = root_path(metadata.non_empty("keyPrefixPath").unwrap_or("/dlock"))?;

        let digest = match metadata.both_or_neither("username", "password")? {
            None => None,
            Some((user, _)) if user.contains(':') => {
                return Err(ConfigError::field(
                    "username",
                    "a digest user name can't contain ':'",
                ))
            }
            Some((user, password)) => Some(format!("{user}:{password}")),
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

/// The lock root as an absolute ZooKeeper path (Dapr's samples write it without the leading
/// slash). It must be below `/`, outside ZooKeeper's own `/zookeeper`, and valid node names.
fn root_path(text: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::field("keyPrefixPath", format!("'{text}': {why}"));
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

    fn settings(items: &[(&str, &str)]) -> Result<Settings, ConfigError> {
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
        let at_fault = |items: &[(&str, &str)]| settings(items).unwrap_err().field.unwrap();
        assert_eq!(at_fault(&[]), "servers");
        for servers in [
            "zk:port",
            "zk:0",
            "zk1,,zk2",
            "zk:2181/chroot",
            "::1:2181",
            ":2181",
        ] {
            assert_eq!(at_fault(&[("servers", servers)]), "servers", "{servers}");
        }
        let with = |name, value| at_fault(&[("servers", "zk"), (name, value)]);
        assert_eq!(with("sessionTimeout", "10"), "sessionTimeout");
        assert_eq!(with("sessionTimeout", "0"), "sessionTimeout");
        assert_eq!(with("requestTimeout", "soon"), "requestTimeout");
        for root in ["/", "a//b", "a/../b", "zookeeper/x", "a\u{1}b"] {
            assert_eq!(with("keyPrefixPath", root), "keyPrefixPath", "{root}");
        }
        assert_eq!(with("username", "u"), "password");
        assert_eq!(with("password", "s3cr3t"), "username");
        let err = settings(&[
            ("servers", "zk"),
            ("username", "a:b"),
            ("password", "s3cr3t"),
        ])
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("username"));
        assert!(!err.message.contains("s3cr3t"));
    }
}
