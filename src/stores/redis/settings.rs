//! The metadata of a `lock.redis` component, with daprd's names and defaults (SPEC.md §4).

use std::time::Duration;

use crate::config::Metadata;
use crate::stores::StoreInitError;

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    pub dial_timeout: Duration,
    pub read_timeout: Duration,
    pub max_retries: usize,
    pub min_retry_interval: Duration,
    pub max_retry_interval: Duration,
}

fn field(name: &'static str, message: impl Into<String>) -> StoreInitError {
    StoreInitError::field(name, message)
}

impl Settings {
    pub fn from_metadata(metadata: &Metadata) -> Result<Self, StoreInitError> {
        let address = metadata
            .non_empty("redisHost")
            .ok_or_else(|| field("redisHost", "required: the Redis server as host:port"))?;
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.trim_matches(['[', ']']), port.parse().ok()?)))
            .ok_or_else(|| field("redisHost", format!("'{address}' is not host:port")))?;

        match metadata.get("redisType").map(str::to_lowercase).as_deref() {
            None | Some("") | Some("node") => {}
            Some("cluster") => {
                return Err(field(
                    "redisType",
                    "Redis Cluster is not supported by this build yet",
                ))
            }
            Some(other) => {
                return Err(field(
                    "redisType",
                    format!("'{other}' is not node or cluster"),
                ))
            }
        }
        if metadata.flag("failover")? {
            return Err(field(
                "failover",
                "Redis Sentinel is not supported by this build yet",
            ));
        }
        if metadata.flag("enableTLS")? {
            return Err(field(
                "enableTLS",
                "TLS to Redis is not supported by this build yet",
            ));
        }

        let db = match metadata.non_empty("redisDB") {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| field("redisDB", format!("'{text}' is not a database number")))?,
        };
        let max_retries = match metadata.non_empty("redisMaxRetries") {
            None => 3,
            Some(text) => text
                .parse()
                .map_err(|_| field("redisMaxRetries", format!("'{text}' is not a number")))?,
        };
        let non_empty = |name: &str| metadata.non_empty(name).map(str::to_string);
        Ok(Settings {
            host: host.to_string(),
            port,
            username: non_empty("redisUsername"),
            password: non_empty("redisPassword"),
            db,
            dial_timeout: metadata.duration_or("dialTimeout", Duration::from_secs(5))?,
            // Writes and reads share one deadline on a multiplexed connection; take the longer.
            read_timeout: metadata
                .duration_or("readTimeout", Duration::from_secs(3))?
                .max(metadata.duration_or("writeTimeout", Duration::from_secs(3))?),
            max_retries,
            min_retry_interval: metadata
                .duration_or("redisMinRetryInterval", Duration::from_millis(8))?,
            max_retry_interval: metadata
                .duration_or("redisMaxRetryInterval", Duration::from_millis(512))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(items: &[(&str, &str)]) -> Metadata {
        let mut m = Metadata::default();
        for (k, v) in items {
            m.insert(*k, *v);
        }
        m
    }

    #[test]
    fn daprd_names_and_defaults() {
        let s = Settings::from_metadata(&metadata(&[
            ("redisHost", "localhost:6380"),
            ("redisPassword", "pw"),
            ("redisDB", "2"),
            ("readTimeout", "1s"),
        ]))
        .unwrap();
        assert_eq!((s.host.as_str(), s.port, s.db), ("localhost", 6380, 2));
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.read_timeout, Duration::from_secs(3)); // writeTimeout's default is longer
        assert_eq!(s.dial_timeout, Duration::from_secs(5));
    }

    #[test]
    fn errors_name_the_field() {
        let err = Settings::from_metadata(&metadata(&[])).unwrap_err();
        assert_eq!(err.field, Some("redisHost"));
        let err = Settings::from_metadata(&metadata(&[("redisHost", "nohost")])).unwrap_err();
        assert_eq!(err.field, Some("redisHost"));
        let err = Settings::from_metadata(&metadata(&[("redisHost", "h:1"), ("redisDB", "x")]))
            .unwrap_err();
        assert_eq!(err.field, Some("redisDB"));
        let err =
            Settings::from_metadata(&metadata(&[("redisHost", "h:1"), ("dialTimeout", "soon")]))
                .unwrap_err();
        assert_eq!(err.field, Some("dialTimeout"));
        let err = Settings::from_metadata(&metadata(&[
            ("redisHost", "h:1"),
            ("redisPassword", "s3cr3t"),
            ("redisDB", "x"),
        ]))
        .unwrap_err();
        assert!(!err.message.contains("s3cr3t"));
    }
}
