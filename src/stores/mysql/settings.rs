//! `lock.mysql`'s metadata, by the names of Dapr's MySQL state store: `connectionString` in
//! the Go driver's DSN form Dapr takes (`user:password@tcp(host:port)/database?tls=true`),
//! `schemaName` (the database the table lives in, created if missing), `tableName`,
//! `timeout`, `cleanupInterval`, and `pemPath` (the CA that signed the server's certificate,
//! for `tls=custom`, as Dapr registers it).
//!
//! Of the DSN's parameters, `tls` (`true`, `custom`, `skip-verify`, `preferred`, `false`) is
//! read; the Go driver's client-side ones (`parseTime`, `charset`, …) have no meaning here and
//! are ignored. `preferred` connects in the clear: dlock does not encrypt without checking.

use std::fmt;

use crate::config::{ConfigError, HostPort, Metadata};
use crate::stores::sql::settings::{identifier, TableSettings};

/// MySQL's port when the DSN names none.
const DEFAULT_PORT: u16 = 3306;

/// The database the table goes in when `schemaName` is unset.
const DEFAULT_SCHEMA: &str = "dlock";

pub(crate) struct Settings {
    pub(crate) user: String,
    pub(crate) password: Option<String>,
    pub(crate) server: Server,
    pub(crate) tls: Tls,
    pub(crate) schema: String,
    pub(crate) table: TableSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Server {
    Tcp(HostPort),
    Socket(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tls {
    Off,
    /// Checked against the system's roots, or the `pemPath` CA (PEM text).
    Verified {
        ca: Option<String>,
    },
    /// Encrypted, the server's certificate unchecked (`tls=skip-verify`).
    Unverified,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("user", &self.user)
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("schema", &self.schema)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Settings, ConfigError> {
        let dsn = metadata.required(
            "connectionString",
            "the database to keep locks in, as Dapr's MySQL component takes it: \
             'dlock:password@tcp(db:3306)/?tls=true'",
        )?;
        let field = |m: String| ConfigError::field("connectionString", m);
        // As the Go driver reads it: the last '/' ends the address, the last '@' before it
        // ends the credentials.
        let slash = dsn
            .rfind('/')
            .ok_or_else(|| field("expected user:password@tcp(host:port)/database".into()))?;
        let (front, back) = (&dsn[..slash], &dsn[slash + 1..]);
        let (credentials, address) = match front.rfind('@') {
            Some(at) => (&front[..at], &front[at + 1..]),
            None => ("", front),
        };
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user, Some(password.to_string())),
            None => (credentials, None),
        };
        if user.is_empty() {
            return Err(field(
                "names no user (user:password@tcp(host:port)/)".into(),
            ));
        }
        let server = match address {
            "" | "tcp" => Server::Tcp(HostPort {
                host: "127.0.0.1".into(),
                port: DEFAULT_PORT,
            }),
            _ => {
                let (net, inner) = address
                    .strip_suffix(')')
                    .and_then(|a| a.split_once('('))
                    .ok_or_else(|| {
                        field(format!("address '{address}': expected tcp(host:port)"))
                    })?;
                match net {
                    "tcp" => Server::Tcp(
                        HostPort::parse(inner, Some(DEFAULT_PORT))
                            .map_err(|e| field(format!("address '{inner}': {e}")))?,
                    ),
                    "unix" => Server::Socket(inner.to_string()),
                    other => return Err(field(format!("network '{other}': expected tcp or unix"))),
                }
            }
        };
        let query = back.split_once('?').map_or("", |(_, q)| q);
        let tls_param = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "tls")
            .map(|(_, v)| v);
        let ca = metadata.pem("pemPath")?;
        let tls = match tls_param {
            None | Some("false") | Some("preferred") => Tls::Off,
            Some("true") => Tls::Verified { ca },
            Some("custom") => {
                let ca = ca.ok_or_else(|| {
                    ConfigError::field("pemPath", "required with tls=custom: the CA (PEM)")
                })?;
                Tls::Verified { ca: Some(ca) }
            }
            Some("skip-verify") => Tls::Unverified,
            Some(other) => {
                return Err(field(format!(
                    "tls={other}: expected true, custom, skip-verify, preferred or false"
                )))
            }
        };
        let schema = metadata
            .non_empty("schemaName")
            .unwrap_or(DEFAULT_SCHEMA)
            .to_string();
        identifier("schemaName", &schema)?;
        Ok(Settings {
            user: user.to_string(),
            password,
            server,
            tls,
            schema,
            table: TableSettings::from_metadata(metadata, false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(items: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_metadata(&items.iter().copied().collect())
    }

    #[test]
    fn the_dsn_form_dapr_takes() {
        let s = settings(&[(
            "connectionString",
            "dlock:p@ss:w0rd@tcp(db.local:3307)/bpm?parseTime=true&tls=skip-verify",
        )])
        .unwrap();
        assert_eq!(s.user, "dlock");
        assert_eq!(s.password.as_deref(), Some("p@ss:w0rd"));
        assert_eq!(
            s.server,
            Server::Tcp(HostPort::parse("db.local:3307", None).unwrap())
        );
        assert_eq!(s.tls, Tls::Unverified);
        assert_eq!(
            (s.schema.as_str(), s.table.table.as_str()),
            ("dlock", "dlock_locks")
        );
        assert!(!format!("{s:?}").contains("w0rd"));
        let s = settings(&[
            ("connectionString", "root@unix(/run/mysqld.sock)/"),
            ("schemaName", "bpm"),
        ])
        .unwrap();
        assert_eq!(s.server, Server::Socket("/run/mysqld.sock".into()));
        assert_eq!(
            (s.password, s.tls, s.schema.as_str()),
            (None, Tls::Off, "bpm")
        );
        let s = settings(&[("connectionString", "u:p@tcp([::1])/?tls=true")]).unwrap();
        assert_eq!(
            s.server,
            Server::Tcp(HostPort::parse("[::1]:3306", None).unwrap())
        );
        assert_eq!(s.tls, Tls::Verified { ca: None });
    }

    #[test]
    fn errors_name_the_field_and_hide_the_password() {
        for (items, name) in [
            (&[][..], "connectionString"),
            (
                &[("connectionString", "u:hunter2@tcp(db:3306)")][..],
                "connectionString",
            ),
            (
                &[("connectionString", ":hunter2@tcp(db)/")][..],
                "connectionString",
            ),
            (
                &[("connectionString", "u:hunter2@udp(db)/")][..],
                "connectionString",
            ),
            (
                &[("connectionString", "u:hunter2@tcp(db:many)/")][..],
                "connectionString",
            ),
            (
                &[("connectionString", "u:hunter2@tcp(db)/?tls=maybe")][..],
                "connectionString",
            ),
            (
                &[("connectionString", "u:hunter2@tcp(db)/?tls=custom")][..],
                "pemPath",
            ),
            (
                &[
                    ("connectionString", "u:hunter2@tcp(db)/"),
                    ("schemaName", "a-b"),
                ][..],
                "schemaName",
            ),
            (
                &[
                    ("connectionString", "u:hunter2@tcp(db)/"),
                    ("tableName", "s.t"),
                ][..],
                "tableName",
            ),
        ] {
            let err = settings(items).err().unwrap();
            assert_eq!(err.field.as_deref(), Some(name), "{items:?}");
            assert!(!err.message.contains("hunter2"), "{}", err.message);
        }
    }
}
