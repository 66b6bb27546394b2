//! The settings kit: the value formats every store reads from its metadata (required values,
//! lists of addresses, flags, durations, numbers, PEM text, settings that come in pairs), read
//! one way for all stores, with errors that name the field. A store's own settings file keeps
//! only what is particular to it.

use std::str::FromStr;
use std::time::Duration;

use super::{duration, ConfigError, HostPort, Metadata};

impl Metadata {
    /// Which of two names of one setting is given (`name`, also when neither is): Dapr knows
    /// some settings by an older name too. Both given is refused, naming both.
    pub(crate) fn one_of<'a>(&self, name: &'a str, alias: &'a str) -> Result<&'a str, ConfigError> {
        match (self.non_empty(name), self.non_empty(alias)) {
            (Some(_), Some(_)) => Err(ConfigError::field(
                alias,
                format!("give {name} or {alias}, not both"),
            )),
            (None, Some(_)) => Ok(alias),
            _ => Ok(name),
        }
    }

    /// The value of `name`, which must be set; `missing` says what it should hold.
    pub(crate) fn required(&self, name: &str, missing: &str) -> Result<&str, ConfigError> {
        self.non_empty(name)
            .ok_or_else(|| ConfigError::field(name, missing))
    }

    /// The entries of the comma-separated list `name`, trimmed; `missing` says what it should
    /// hold. An empty entry is refused: a stray comma often marks a server left out.
    pub(crate) fn list(&self, name: &str, missing: &str) -> Result<Vec<&str>, ConfigError> {
        let text = self.required(name, missing)?;
        let entries: Vec<&str> = text.split(',').map(str::trim).collect();
        if entries.contains(&"") {
            return Err(ConfigError::field(
                name,
                format!("'{text}' has an empty entry"),
            ));
        }
        Ok(entries)
    }

    /// The comma-separated list of addresses `name` (see [`HostPort::parse`]).
    pub(crate) fn host_ports(
        &self,
        name: &str,
        missing: &str,
        default_port: Option<u16>,
    ) -> Result<Vec<HostPort>, ConfigError> {
        self.list(name, missing)?
            .into_iter()
            .map(|entry| {
                HostPort::parse(entry, default_port).map_err(|e| ConfigError::field(name, e))
            })
            .collect()
    }

    /// `true` or `false`; false when unset.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        match self.non_empty(name) {
            None => Ok(false),
            Some(text) => text.parse().map_err(|_| {
                ConfigError::field(name, format!("expected true or false, found '{text}'"))
            }),
        }
    }

    /// A Go duration (`5s`, `250ms`), or `default` when unset.
    pub(crate) fn duration_or(
        &self,
        name: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.non_empty(name) {
            None => Ok(default),
            Some(text) => duration::parse(text).map_err(|e| ConfigError::field(name, e)),
        }
    }

    /// A whole number, or `default` when unset.
    pub(crate) fn number_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.non_empty(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| ConfigError::field(name, format!("'{text}' is not a number"))),
        }
    }

    /// PEM text (a certificate or key), given inline as Dapr components do or as the path of a
    /// file holding it; `None` when unset. The value itself never appears in an error: it may
    /// be a key pasted in the wrong form.
    pub(crate) fn pem(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.non_empty(name) else {
            return Ok(None);
        };
        if value.trim_start().starts_with("-----BEGIN") {
            return Ok(Some(value.to_string()));
        }
        let text = std::fs::read_to_string(value).map_err(|e| {
            ConfigError::field(
                name,
                format!("neither PEM text (-----BEGIN …) nor a readable PEM file: {e}"),
            )
        })?;
        if !text.contains("-----BEGIN") {
            return Err(ConfigError::field(
                name,
                "the file holds no PEM block (-----BEGIN …)",
            ));
        }
        Ok(Some(text))
    }

    /// Two values that only work together, such as a user name and its password: both, or
    /// neither.
    pub(crate) fn both_or_neither(
        &self,
        first: &str,
        second: &str,
    ) -> Result<Option<(&str, &str)>, ConfigError> {
        pair(
            (first, self.non_empty(first)),
            (second, self.non_empty(second)),
        )
    }

    /// A certificate and its key, as [`Metadata::pem`] reads them: both, or neither.
    pub(crate) fn pem_pair(
        &self,
        cert: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, ConfigError> {
        pair((cert, self.pem(cert)?), (key, self.pem(key)?))
    }
}

/// Both values, or neither; one alone is an error naming the one missing.
fn pair<T>(
    (first, a): (&str, Option<T>),
    (second, b): (&str, Option<T>),
) -> Result<Option<(T, T)>, ConfigError> {
    match (a, b) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ConfigError::field(first, format!("required with {second}"))),
        (Some(_), None) => Err(ConfigError::field(second, format!("required with {first}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(items: &[(&str, &str)]) -> Metadata {
        items.iter().copied().collect()
    }

    fn field<T: std::fmt::Debug>(result: Result<T, ConfigError>) -> String {
        result.unwrap_err().field.expect("a field at fault")
    }

    #[test]
    fn required_values_and_lists() {
        let m = metadata(&[("servers", "a:1, b:2"), ("empty", ""), ("gap", "a:1,,b:2")]);
        assert_eq!(m.required("servers", "the servers"), Ok("a:1, b:2"));
        let missing = m.required("empty", "the servers as host:port").unwrap_err();
        assert_eq!(
            missing,
            ConfigError::field("empty", "the servers as host:port")
        );
        assert_eq!(m.list("servers", ""), Ok(vec!["a:1", "b:2"]));
        assert_eq!(field(m.list("gap", "")), "gap");
        assert_eq!(field(metadata(&[("l", "a:1,")]).list("l", "")), "l");
    }

    #[test]
    fn host_port_lists_name_their_field() {
        let m = metadata(&[("servers", "zk1, [::1]:2182"), ("bad", "zk1,::1:2181")]);
        let servers = m.host_ports("servers", "", Some(2181)).unwrap();
        let shown: Vec<String> = servers.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["zk1:2181", "[::1]:2182"]);
        assert_eq!(field(m.host_ports("bad", "", Some(2181))), "bad");
        assert_eq!(field(m.host_ports("servers", "", None)), "servers");
    }

    #[test]
    fn flags_durations_and_numbers_name_their_field() {
        let mut m = Metadata::default();
        m.insert("enableTLS", "yes");
        m.insert("dialTimeout", "2s");
        m.insert("readTimeout", "");
        m.insert("redisDB", "2");
        m.insert("redisMaxRetries", "many");
        assert_eq!(field(m.flag("enableTLS")), "enableTLS");
        assert_eq!(m.flag("failover"), Ok(false));
        let second = Duration::from_secs(1);
        assert_eq!(m.duration_or("dialTimeout", second), Ok(2 * second));
        assert_eq!(m.duration_or("readTimeout", second), Ok(second));
        m.insert("readTimeout", "soon");
        assert_eq!(field(m.duration_or("readTimeout", second)), "readTimeout");
        assert_eq!(m.number_or("redisDB", 0i64), Ok(2));
        assert_eq!(m.number_or("unset", 3usize), Ok(3));
        assert_eq!(
            field(m.number_or("redisMaxRetries", 3usize)),
            "redisMaxRetries"
        );
    }

    #[test]
    fn pem_inline_or_from_a_file_never_shown() {
        let dir = std::env::temp_dir().join(format!("dlock-kit-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("client.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nx\n").unwrap();
        let not_pem = dir.join("notes.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let m = metadata(&[
            ("inline", "-----BEGIN CERTIFICATE-----\ny\n"),
            ("path", key.to_str().unwrap()),
            ("notPem", not_pem.to_str().unwrap()),
            ("pasted", "hunter2-private-key"),
        ]);
        assert!(m
            .pem("inline")
            .unwrap()
            .unwrap()
            .starts_with("-----BEGIN CERT"));
        assert!(m
            .pem("path")
            .unwrap()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE"));
        assert_eq!(m.pem("unset"), Ok(None));
        assert_eq!(field(m.pem("notPem")), "notPem");
        let pasted = m.pem("pasted").unwrap_err();
        assert_eq!(pasted.field.as_deref(), Some("pasted"));
        assert!(!pasted.message.contains("hunter2"), "{pasted}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pairs_are_both_or_neither() {
        let m = metadata(&[
            ("username", "u"),
            ("password", "p"),
            ("cert", "-----BEGIN C"),
        ]);
        assert_eq!(
            m.both_or_neither("username", "password"),
            Ok(Some(("u", "p")))
        );
        assert_eq!(
            m.both_or_neither("sentinelUsername", "sentinelPassword"),
            Ok(None)
        );
        let alone = m
            .both_or_neither("username", "sentinelPassword")
            .unwrap_err();
        assert_eq!(
            alone,
            ConfigError::field("sentinelPassword", "required with username")
        );
        assert_eq!(field(m.both_or_neither("user", "password")), "user");
        assert_eq!(field(m.pem_pair("cert", "key")), "key");
        assert_eq!(m.pem_pair("clientCert", "clientKey"), Ok(None));
    }
}
