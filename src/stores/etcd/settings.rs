//! The metadata of a `lock.etcd` component. The names are those of Dapr's etcd state store
//! (`endpoints`, `keyPrefixPath`, `tlsEnable`, `ca`, `cert`, `key`) plus `username` /
//! `password` for etcd's own authentication and two timeouts.

use std::fmt;
use std::time::Duration;

use crate::config::{ConfigError, HostPort, Metadata};

/// Where locks live when `keyPrefixPath` is unset.
pub(crate) const DEFAULT_PREFIX: &str = "dlock";

#[derive(Clone)]
pub(crate) struct Settings {
    /// `host:port` of each member, as given.
    pub(crate) endpoints: Vec<String>,
    /// Keys are `<key_prefix>/<store key>`.
    pub(crate) key_prefix: String,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) tls: Option<Tls>,
    pub(crate) dial_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

/// A user name and password for etcd's Authenticate call. The password never shows in
/// `Debug`.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// PEM text for TLS: the CA that signed the members' certificates, and optionally a client
/// certificate with its key.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) ca: String,
    pub(crate) identity: Option<(String, String)>,
}

impl Settings {
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Self, ConfigError> {
        let listed = metadata.list(
            "endpoints",
            "required: the etcd members as host:port, separated by commas",
        )?;
        let tls_enabled = metadata.flag("tlsEnable")?;
        let mut endpoints = Vec::new();
        // Dapr's etcd endpoints may be written as URLs; the scheme must agree with tlsEnable.
        for endpoint in listed {
            let address = if let Some(rest) = endpoint.strip_prefix("https://") {
                if !tls_enabled {
                    return Err(ConfigError::field(
                        "tlsEnable",
                        format!("endpoint '{endpoint}' is https: set tlsEnable to true"),
                    ));
                }
                rest
            } else {
                endpoint.strip_prefix("http://").unwrap_or(endpoint)
            };
            let address = HostPort::parse(address.trim_end_matches('/'), None)
                .map_err(|e| ConfigError::field("endpoints", e))?;
            endpoints.push(address.to_string());
        }

        let key_prefix = metadata
            .get("keyPrefixPath")
            .unwrap_or(DEFAULT_PREFIX)
            .trim_end_matches('/')
            .to_string();

        let credentials =
            metadata
                .both_or_neither("username", "password")?
                .map(|(username, password)| Credentials {
                    username: username.to_string(),
                    password: password.to_string(),
                });

        let tls = if tls_enabled {
            let ca = metadata.pem("ca")?.ok_or_else(|| {
                ConfigError::field(
                    "ca",
                    "required with tlsEnable: the CA certificate (PEM text or a file path)",
                )
            })?;
            Some(Tls {
                ca,
                identity: metadata.pem_pair("cert", "key")?,
            })
        } else {
            None
        };

        Ok(Settings {
            endpoints,
            key_prefix,
            credentials,
            tls,
            dial_timeout: metadata.duration_or("dialTimeout", Duration::from_secs(5))?,
            request_timeout: metadata.duration_or("requestTimeout", Duration::from_secs(3))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(items: &[(&str, &str)]) -> Metadata {
        items.iter().copied().collect()
    }

    #[test]
    fn names_and_defaults() {
        let s = Settings::from_metadata(&metadata(&[(
            "endpoints",
            "http://10.0.0.1:2379, 10.0.0.2:2379",
        )]))
        .unwrap();
        assert_eq!(s.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(s.key_prefix, "dlock");
        assert!(s.credentials.is_none() && s.tls.is_none());
        assert_eq!(s.request_timeout, Duration::from_secs(3));
        let s = Settings::from_metadata(&metadata(&[
            ("endpoints", "h:1"),
            ("keyPrefixPath", "/apps/locks/"),
            ("username", "bpm"),
            ("password", "s3cr3t"),
            ("requestTimeout", "1s"),
        ]))
        .unwrap();
        assert_eq!(s.key_prefix, "/apps/locks");
        assert_eq!(s.request_timeout, Duration::from_secs(1));
        let credentials = s.credentials.unwrap();
        assert_eq!(credentials.username, "bpm");
        assert!(!format!("{credentials:?}").contains("s3cr3t"));
    }

    #[test]
    fn pem_inline_or_from_a_file() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let dir = std::env::temp_dir().join(format!("dlock-etcd-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca).unwrap();
        for value in [ca, path.to_str().unwrap()] {
            let s = Settings::from_metadata(&metadata(&[
                ("endpoints", "h:1"),
                ("tlsEnable", "true"),
                ("ca", value),
            ]))
            .unwrap();
            assert_eq!(s.tls.unwrap().ca, ca);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_field_and_hide_secrets() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "endpoints"),
            (&[("endpoints", "nohost")], "endpoints"),
            (&[("endpoints", " , ")], "endpoints"),
            (&[("endpoints", "h:1,")], "endpoints"),
            (&[("endpoints", "https://h:1")], "tlsEnable"),
            (
                &[("endpoints", "h:1"), ("tlsEnable", "yes please")],
                "tlsEnable",
            ),
            (&[("endpoints", "h:1"), ("tlsEnable", "true")], "ca"),
            (
                &[
                    ("endpoints", "h:1"),
                    ("tlsEnable", "true"),
                    ("ca", "/no/such/ca.pem"),
                ],
                "ca",
            ),
            (
                &[
                    ("endpoints", "h:1"),
                    ("tlsEnable", "true"),
                    ("ca", "-----BEGIN CERTIFICATE-----"),
                    ("key", "hunter2-private-key"),
                ],
                "key",
            ),
            (
                &[("endpoints", "h:1"), ("password", "hunter2-secret")],
                "username",
            ),
            (&[("endpoints", "h:1"), ("username", "bpm")], "password"),
            (
                &[("endpoints", "h:1"), ("requestTimeout", "3")],
                "requestTimeout",
            ),
        ];
        for (items, name) in cases {
            let err = Settings::from_metadata(&metadata(items)).err().unwrap();
            assert_eq!(
                err.field.as_deref(),
                Some(*name),
                "{items:?}: {}",
                err.message
            );
            assert!(!err.message.contains("hunter2"), "{}", err.message);
        }
    }
}
