//! The metadata of a `lock.redis` component, with daprd's names and defaults (docs/contract.md §4),
//! plus `redisType: cluster`, which daprd refuses and dlock serves.

use std::time::Duration;

use crate::config::{ConfigError, Metadata};

/// A server address as host and port.
pub(crate) type Address = (String, u16);

/// How the Redis servers are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server (`redisHost`).
    Node(Address),
    /// A Redis Cluster, found through any of the `redisHost` addresses (comma-separated).
    Cluster(Vec<Address>),
    /// A master found through Sentinel (`failover: true`): `redisHost` lists the sentinels.
    Sentinel {
        sentinels: Vec<Address>,
        master_name: String,
        username: Option<String>,
        password: Option<String>,
    },
}

/// TLS to Redis (`enableTLS`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tls {
    /// Accept any server certificate (`insecureSkipTLSVerify`): encryption without
    /// authentication of the server.
    pub(crate) skip_verify: bool,
    /// PEM client certificate and key (`clientCert`, `clientKey`) for servers that ask for one.
    pub(crate) client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// PEM certificate authority to trust instead of the system's roots (`caCert`, dlock's
    /// own: daprd trusts the system roots only).
    pub(crate) ca: Option<Vec<u8>>,
}

/// `waitReplicas`: a grant (or renewal) counts only once this many replicas have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitReplicas {
    pub(crate) replicas: u32,
    /// How long Redis's `WAIT` waits for them (`waitReplicasTimeout`); shorter than the read
    /// timeout, so the answer, short or not, arrives within the request's own bound.
    pub(crate) timeout: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) topology: Topology,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    pub(crate) tls: Option<Tls>,
    pub(crate) dial_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) max_retries: usize,
    pub(crate) min_retry_interval: Duration,
    pub(crate) max_retry_interval: Duration,
    pub(crate) wait_replicas: Option<WaitReplicas>,
}

impl Settings {
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Self, ConfigError> {
        let mut hosts: Vec<Address> = metadata
            .host_ports("redisHost", "required: the Redis server as host:port", None)?
            .into_iter()
            .map(|address| (address.host, address.port))
            .collect();
        let cluster = match metadata.get("redisType").map(str::to_lowercase).as_deref() {
            None | Some("") | Some("node") => false,
            Some("cluster") => true,
            Some(other) => {
                return Err(ConfigError::field(
                    "redisType",
                    format!("'{other}' is not node or cluster"),
                ))
            }
        };
        let failover = metadata.flag("failover")?;
        let topology = match (cluster, failover) {
            (true, true) => {
                return Err(ConfigError::field(
                    "failover",
                    "Sentinel (failover: true) and redisType: cluster exclude each other: a \
                     Redis Cluster fails over by itself",
                ))
            }
            (true, false) => Topology::Cluster(hosts),
            (false, true) => Topology::Sentinel {
                sentinels: hosts,
                master_name: metadata
                    .required(
                        "sentinelMasterName",
                        "required with failover: true: the master's name in Sentinel",
                    )?
                    .to_string(),
                username: metadata.non_empty("sentinelUsername").map(str::to_string),
                password: metadata.non_empty("sentinelPassword").map(str::to_string),
            },
            (false, false) if hosts.len() == 1 => Topology::Node(hosts.remove(0)),
            (false, false) => {
                return Err(ConfigError::field(
                    "redisHost",
                    "several addresses need redisType: cluster or failover: true (Sentinel)",
                ))
            }
        };

        let tls = if metadata.flag("enableTLS")? {
            Some(Tls {
                skip_verify: metadata.flag("insecureSkipTLSVerify")?,
                client_identity: metadata
                    .pem_pair("clientCert", "clientKey")?
                    .map(|(cert, key)| (cert.into_bytes(), key.into_bytes())),
                ca: metadata.pem("caCert")?.map(String::into_bytes),
            })
        } else {
            None
        };

        let db = metadata.number_or("redisDB", 0)?;
        if db != 0 && matches!(topology, Topology::Cluster(_)) {
            return Err(ConfigError::field(
                "redisDB",
                "a Redis Cluster has database 0 only",
            ));
        }
        // Writes and reads share one deadline on a multiplexed connection; take the longer.
        let read_timeout = metadata
            .duration_or("readTimeout", Duration::from_secs(3))?
            .max(metadata.duration_or("writeTimeout", Duration::from_secs(3))?);
        let wait_replicas = wait_replicas(metadata, &topology, read_timeout)?;
        // Dapr's state and lock stores also take the older `maxRetries` for `redisMaxRetries`
        // (daprd copies it over when `redisMaxRetries` is unset); either name, not both.
        let retries = metadata.one_of("redisMaxRetries", "maxRetries")?;
        Ok(Settings {
            topology,
            username: metadata.non_empty("redisUsername").map(str::to_string),
            password: metadata.non_empty("redisPassword").map(str::to_string),
            db,
            tls,
            dial_timeout: metadata.duration_or("dialTimeout", Duration::from_secs(5))?,
            read_timeout,
            max_retries: metadata.number_or(retries, 3)?,
            min_retry_interval: metadata
                .duration_or("redisMinRetryInterval", Duration::from_millis(8))?,
            max_retry_interval: metadata
                .duration_or("redisMaxRetryInterval", Duration::from_millis(512))?,
            wait_replicas,
        })
    }
}

/// `waitReplicas` and `waitReplicasTimeout`. The timeout defaults to half the read timeout and
/// must stay below it: the grant script and `WAIT` go out as one request bounded by the read
/// timeout, and a `WAIT` still running when that bound cuts the request off would leave a
/// grant nobody answers for, where a `WAIT` that ends first lets the store release it.
fn wait_replicas(
    metadata: &Metadata,
    topology: &Topology,
    read_timeout: Duration,
) -> Result<Option<WaitReplicas>, ConfigError> {
    let replicas: u32 = metadata.number_or("waitReplicas", 0)?;
    let timeout = metadata.duration_or("waitReplicasTimeout", read_timeout / 2)?;
    if replicas == 0 {
        if metadata.non_empty("waitReplicasTimeout").is_some() {
            return Err(ConfigError::field(
                "waitReplicasTimeout",
                "has no effect without waitReplicas (the number of replicas to wait for)",
            ));
        }
        return Ok(None);
    }
    if let Topology::Node(_) = topology {
        return Err(ConfigError::field(
            "waitReplicas",
            "needs replicas, which one server without Sentinel may not have: use failover: \
             true (Sentinel) or redisType: cluster",
        ));
    }
    if timeout.is_zero() || timeout >= read_timeout {
        return Err(ConfigError::field(
            "waitReplicasTimeout",
            format!(
                "must be above 0 and below the read timeout ({read_timeout:?}), which bounds \
                 the grant and the wait together"
            ),
        ));
    }
    Ok(Some(WaitReplicas { replicas, timeout }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(items: &[(&str, &str)]) -> Metadata {
        items.iter().copied().collect()
    }

    fn error(items: &[(&str, &str)]) -> ConfigError {
        Settings::from_metadata(&metadata(items)).unwrap_err()
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
        assert_eq!(s.topology, Topology::Node(("localhost".into(), 6380)));
        assert_eq!(s.db, 2);
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.read_timeout, Duration::from_secs(3)); // writeTimeout's default is longer
        assert_eq!(s.dial_timeout, Duration::from_secs(5));
        assert!(s.tls.is_none());
        assert_eq!(s.wait_replicas, None);
    }

    #[test]
    fn dapr_older_max_retries_name() {
        let retries = |items: &[(&str, &str)]| {
            let mut all = vec![("redisHost", "h:1")];
            all.extend_from_slice(items);
            Settings::from_metadata(&metadata(&all)).map(|s| s.max_retries)
        };
        assert_eq!(retries(&[("maxRetries", "5")]), Ok(5));
        assert_eq!(retries(&[("redisMaxRetries", "4")]), Ok(4));
        assert_eq!(retries(&[]), Ok(3));
        assert_eq!(
            retries(&[("maxRetries", "many")])
                .unwrap_err()
                .field
                .as_deref(),
            Some("maxRetries")
        );
        let both = retries(&[("redisMaxRetries", "4"), ("maxRetries", "5")]).unwrap_err();
        assert_eq!(both.field.as_deref(), Some("maxRetries"));
        assert!(both.message.contains("redisMaxRetries"), "{both}");
    }

    #[test]
    fn wait_replicas() {
        let sentinel = [
            ("redisHost", "s1:26379"),
            ("failover", "true"),
            ("sentinelMasterName", "m"),
            ("readTimeout", "2s"),
            ("writeTimeout", "2s"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut items = sentinel.to_vec();
            items.extend_from_slice(extra);
            Settings::from_metadata(&metadata(&items))
        };
        assert_eq!(
            with(&[("waitReplicas", "1")]).unwrap().wait_replicas,
            Some(WaitReplicas {
                replicas: 1,
                timeout: Duration::from_secs(1)
            })
        );
        assert_eq!(
            with(&[("waitReplicas", "2"), ("waitReplicasTimeout", "250ms")])
                .unwrap()
                .wait_replicas,
            Some(WaitReplicas {
                replicas: 2,
                timeout: Duration::from_millis(250)
            })
        );
        assert_eq!(with(&[("waitReplicas", "0")]).unwrap().wait_replicas, None);
        for timeout in ["2s", "5s", "0s"] {
            let refused =
                with(&[("waitReplicas", "1"), ("waitReplicasTimeout", timeout)]).unwrap_err();
            assert_eq!(refused.field.as_deref(), Some("waitReplicasTimeout"));
        }
    }

    #[test]
    fn sentinel_and_cluster() {
        let s = Settings::from_metadata(&metadata(&[
            ("redisHost", "s1:26379, [::1]:26380"),
            ("failover", "true"),
            ("sentinelMasterName", "mymaster"),
            ("sentinelPassword", "spw"),
        ]))
        .unwrap();
        assert_eq!(
            s.topology,
            Topology::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("::1".into(), 26380)],
                master_name: "mymaster".into(),
                username: None,
                password: Some("spw".into()),
            }
        );
        let s = Settings::from_metadata(&metadata(&[
            ("redisHost", "a:7000,b:7001"),
            ("redisType", "Cluster"),
        ]))
        .unwrap();
        assert_eq!(
            s.topology,
            Topology::Cluster(vec![("a".into(), 7000), ("b".into(), 7001)])
        );
    }

    #[test]
    fn tls_material() {
        // PEM read from a file is the settings kit's, tested there.
        let s = Settings::from_metadata(&metadata(&[
            ("redisHost", "h:1"),
            ("enableTLS", "true"),
            ("insecureSkipTLSVerify", "true"),
            ("clientCert", "-----BEGIN CERTIFICATE-----\ny\n"),
            ("clientKey", "-----BEGIN PRIVATE KEY-----\nx\n"),
        ]))
        .unwrap();
        let tls = s.tls.unwrap();
        assert!(tls.skip_verify);
        let (cert, key) = tls.client_identity.unwrap();
        assert!(cert.starts_with(b"-----BEGIN CERTIFICATE"));
        assert!(key.starts_with(b"-----BEGIN PRIVATE KEY"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "redisHost"),
            (&[("redisHost", "nohost")], "redisHost"),
            (&[("redisHost", "a:1,b:2")], "redisHost"),
            (&[("redisHost", "h:1"), ("redisDB", "x")], "redisDB"),
            (
                &[("redisHost", "h:1"), ("dialTimeout", "soon")],
                "dialTimeout",
            ),
            (&[("redisHost", "h:1"), ("redisType", "ring")], "redisType"),
            (
                &[("redisHost", "h:1"), ("waitReplicas", "1")],
                "waitReplicas",
            ),
            (
                &[
                    ("redisHost", "h:1"),
                    ("redisType", "cluster"),
                    ("waitReplicas", "many"),
                ],
                "waitReplicas",
            ),
            (
                &[("redisHost", "h:1"), ("waitReplicasTimeout", "1s")],
                "waitReplicasTimeout",
            ),
            (&[("redisHost", "h:1"), ("failover", "yes")], "failover"),
            (
                &[("redisHost", "h:1"), ("failover", "true")],
                "sentinelMasterName",
            ),
            (
                &[
                    ("redisHost", "h:1"),
                    ("redisType", "cluster"),
                    ("redisDB", "1"),
                ],
                "redisDB",
            ),
            (
                &[
                    ("redisHost", "h:1"),
                    ("enableTLS", "true"),
                    ("clientCert", "/nonexistent/cert.pem"),
                ],
                "clientCert",
            ),
            (
                &[
                    ("redisHost", "h:1"),
                    ("enableTLS", "true"),
                    ("clientCert", "-----BEGIN CERTIFICATE-----"),
                ],
                "clientKey",
            ),
        ];
        for (items, expected) in cases {
            assert_eq!(error(items).field.as_deref(), Some(*expected), "{items:?}");
        }
        let err = error(&[
            ("redisHost", "h:1"),
            ("redisPassword", "s3cr3t"),
            ("redisDB", "x"),
        ]);
        assert!(!err.message.contains("s3cr3t"));
    }
}
