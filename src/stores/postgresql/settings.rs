//! `lock.postgresql`'s metadata, by the names of Dapr's PostgreSQL state store:
//! `connectionString` (libpq's `key=value` form or a `postgres://` URL, several hosts and
//! `target_session_attrs=read-write` included), `tableName` (optionally `schema.table`),
//! `timeout` (also set as the sessions' `statement_timeout`) and `cleanupInterval`.
//!
//! TLS is set in the connection string as libpq has it. tokio-postgres reads `sslmode` as
//! `disable`, `prefer` or `require`; `sslrootcert` (a CA file) and libpq's `verify-ca` and
//! `verify-full` modes are read here and taken out of the string before it is handed on. Unlike
//! libpq, dlock never encrypts without checking the server's certificate: `require` checks it
//! against `sslrootcert`, else the system's roots, and `prefer` (libpq's default) without a
//! `sslrootcert` connects in the clear, as `prefer` does with a server without TLS. A client
//! certificate for servers that ask for one (`clientcert=verify-ca` or `cert` in pg_hba.conf)
//! is `sslcert` with `sslkey`, PEM files as libpq takes them.

use std::fmt;
use std::str::FromStr;

use tokio_postgres::config::SslMode;

use crate::config::{ConfigError, Metadata};
use crate::stores::sql::settings::TableSettings;

pub(crate) struct Settings {
    /// The parsed connection string; its `Debug` hides the password.
    pub(crate) connection: tokio_postgres::Config,
    /// The CA certificate (PEM) to check the server's with, from `sslrootcert`.
    pub(crate) root_cert: Option<String>,
    /// The client's certificate chain and private key (PEM), from `sslcert` and `sslkey`.
    pub(crate) client_cert: Option<(String, String)>,
    pub(crate) table: TableSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("connection", &self.connection)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The libpq options read here rather than by tokio-postgres.
const OURS: [&str; 4] = ["sslrootcert", "sslmode", "sslcert", "sslkey"];

impl Settings {
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Settings, ConfigError> {
        let text = metadata.required(
            "connectionString",
            "the database to keep locks in, as libpq takes it: \
             'host=db1,db2 user=dlock dbname=bpm target_session_attrs=read-write' or \
             'postgres://dlock@db1,db2/bpm?target_session_attrs=read-write'",
        )?;
        let (rest, options) = take_options(text);
        let mut connection = tokio_postgres::Config::from_str(&rest).map_err(|e| {
            // tokio-postgres names the option at fault, never its value.
            ConfigError::field("connectionString", e.to_string())
        })?;
        let field = |message: String| ConfigError::field("connectionString", message);
        let option = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let read = |name: &str, what: &str| -> Result<Option<String>, ConfigError> {
            let Some(path) = option(name) else {
                return Ok(None);
            };
            let pem = std::fs::read_to_string(path)
                .map_err(|e| field(format!("{name}: can't read the {what} '{path}': {e}")))?;
            Ok(Some(pem))
        };
        let root_cert = read("sslrootcert", "CA file")?;
        let client_cert = match (
            read("sslcert", "certificate file")?,
            read("sslkey", "key file")?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(field(
                    "sslcert and sslkey go together: give both or neither".into(),
                ))
            }
        };
        let ssl_mode = match options.iter().find(|(k, _)| k == "sslmode") {
            None => "prefer",
            Some((_, mode)) => mode.as_str(),
        };
        connection.ssl_mode(match ssl_mode {
            "disable" | "allow" => SslMode::Disable,
            "prefer" if root_cert.is_none() => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" | "verify-ca" | "verify-full" => SslMode::Require,
            other => {
                return Err(field(format!(
                    "sslmode '{other}': expected disable, allow, prefer, require, verify-ca \
                     or verify-full"
                )))
            }
        });
        let table = TableSettings::from_metadata(metadata, true)?;
        if connection.get_connect_timeout().is_none() {
            connection.connect_timeout(table.timeout);
        }
        // The server gives up a statement the sidecar has given up on, so nothing runs on
        // long after its answer stopped mattering (the cleanup's grace period counts on it).
        let bound = format!("-c statement_timeout={}", table.timeout.as_millis());
        let options = match connection.get_options() {
            Some(given) => format!("{given} {bound}"),
            None => bound,
        };
        connection.options(&options);
        if connection.get_application_name().is_none() {
            connection.application_name("dlockd");
        }
        Ok(Settings {
            connection,
            root_cert,
            client_cert,
            table,
        })
    }
}

/// Splits the options of `OURS` out of a connection string in either form, returning the
/// rest for tokio-postgres and the options taken out.
fn take_options(text: &str) -> (String, Vec<(String, String)>) {
    let mut taken = Vec::new();
    let is_ours = |pair: &str| {
        let (key, value) = pair.split_once('=')?;
        OURS.contains(&key.trim())
            .then(|| (key.trim().to_string(), value.trim().to_string()))
    };
    let url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    if url {
        let Some((base, query)) = text.split_once('?') else {
            return (text.to_string(), taken);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match is_ours(pair) {
                Some(option) => taken.push(option),
                None => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, taken)
    } else {
        let mut kept = Vec::new();
        for word in text.split_whitespace() {
            match is_ours(word) {
                Some(option) => taken.push(option),
                None => kept.push(word),
            }
        }
        (kept.join(" "), taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::{Host, TargetSessionAttrs};

    fn settings(connection_string: &str) -> Result<Settings, ConfigError> {
        let metadata: Metadata = [("connectionString", connection_string)]
            .into_iter()
            .collect();
        Settings::from_metadata(&metadata)
    }

    #[test]
    fn both_forms_with_several_hosts() {
        for text in [
            "host=db1,db2 port=5432,5433 user=dlock password=hunter2 dbname=bpm \
             target_session_attrs=read-write",
            "postgres://dlock:hunter2@db1:5432,db2:5433/bpm?target_session_attrs=read-write",
        ] {
            let s = settings(text).unwrap();
            let hosts: Vec<String> = s
                .connection
                .get_hosts()
                .iter()
                .map(|h| match h {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            assert_eq!(hosts, ["db1", "db2"], "{text}");
            assert_eq!(s.connection.get_ports(), [5432, 5433]);
            assert_eq!(
                s.connection.get_target_session_attrs(),
                TargetSessionAttrs::ReadWrite
            );
            assert_eq!(s.connection.get_ssl_mode(), SslMode::Disable);
            assert_eq!(
                s.connection.get_options(),
                Some("-c statement_timeout=5000")
            );
            assert!(!format!("{s:?}").contains("hunter2"));
        }
    }

    #[test]
    fn tls_options_are_read_here() {
        let s = settings("host=db1 user=u sslmode=require").unwrap();
        assert_eq!(s.connection.get_ssl_mode(), SslMode::Require);
        let s = settings("postgres://u@db1/bpm?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(s.connection.get_ssl_mode(), SslMode::Require);
        assert_eq!(s.connection.get_application_name(), Some("x"));
    }

    #[test]
    fn errors_name_the_field_and_hide_the_password() {
        for text in [
            "",
            "host=db1 password=hunter2 sslmode=sometimes",
            "host=db1 password=hunter2 port=many",
            "postgres://u:hunter2@db1:many/bpm",
            "host=db1 password=hunter2 sslrootcert=/no/such/ca.pem sslmode=require",
            "host=db1 password=hunter2 sslcert=/no/such/client.pem sslkey=/no/such/client.key",
            "host=db1 password=hunter2 sslmode=require sslcert=/etc/hostname",
            "host=db1 password=hunter2 frobnicate=yes",
        ] {
            let err = settings(text).expect_err(text);
            assert_eq!(err.field.as_deref(), Some("connectionString"), "{text}");
            assert!(!err.message.contains("hunter2"), "{}", err.message);
        }
    }
}
