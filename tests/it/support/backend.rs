//! The stores the conformance suite runs against, and how to write a component for each. A
//! new store adds a variant here (reading its server's address from the environment that
//! scripts/test.sh sets) and one `conformance_suite!` line in conformance/mod.rs, naming the
//! groups of items that fit it.

use super::dlockd::{component, Dlockd, Options};
use super::servers::Outage;

/// The admin token every conformance sidecar has, for force release.
pub const ADMIN_TOKEN: &str = "conformance-admin";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// lock.in-memory: one keyspace per dlockd process.
    Memory,
    /// lock.redis on the redis-server scripts/test.sh started (DLOCK_TEST_REDIS).
    Redis,
    /// lock.redis with `redisType: cluster` on the three-master Redis Cluster scripts/test.sh
    /// started (DLOCK_TEST_REDIS_CLUSTER).
    RedisCluster,
    /// lock.etcd on the etcd scripts/test.sh started (DLOCK_TEST_ETCD).
    Etcd,
    /// lock.zookeeper on the ZooKeeper server scripts/test.sh started (DLOCK_TEST_ZOOKEEPER).
    Zookeeper,
    /// lock.postgresql on the PostgreSQL server scripts/test.sh started (DLOCK_TEST_POSTGRES).
    Postgresql,
    /// lock.mysql on the MariaDB server scripts/test.sh started (DLOCK_TEST_MYSQL).
    Mysql,
    /// lock.azure.blobstorage on the Azurite scripts/test.sh started (DLOCK_TEST_AZURITE).
    AzureBlob,
}

/// The session timeout of the ZooKeeper test components: short, so a crashed sidecar's
/// session ends soon, yet long enough not to expire on a busy 2-core machine.
pub const ZOOKEEPER_SESSION: std::time::Duration = std::time::Duration::from_secs(4);

/// The TTL of the lease that keeps an etcd waiter's place in line (`lock.etcd`'s
/// `WAITER_LEASE`): the line skips a dead sidecar's waiter within it.
pub const ETCD_WAITER_LEASE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a Redis waiter's place outlives its last look at its turn (the store's
/// `WAITER_LEASE`): a dead sidecar's waiter leaves the line by then.
pub const REDIS_WAITER_LEASE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a PostgreSQL or MySQL waiter's row outlives its last look at its turn (the SQL
/// kit's `WAITER_LEASE`): a dead sidecar's waiter leaves the line by then.
pub const SQL_WAITER_LEASE: std::time::Duration = std::time::Duration::from_secs(3);

/// How long an Azure Blob waiter's place in the blob's line outlives its last renewal (the
/// store's `WAITER_LEASE`): a dead sidecar's waiter leaves the line by then.
pub const AZURE_BLOB_WAITER_LEASE: std::time::Duration = std::time::Duration::from_secs(6);

/// The Azure Storage emulator's well-known account and key (Azurite's, public).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A connection string in the portal's form with an explicit blob endpoint: Azurite at
/// `address` (`host:port`).
pub fn azurite_connection_string(address: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
         BlobEndpoint=http://{address}/{AZURITE_ACCOUNT};"
    )
}

/// The metadata of a component on Azurite at `address`, in container `container`.
pub fn azurite_metadata(address: &str, container: &str) -> Vec<(&'static str, String)> {
    vec![
        ("connectionString", azurite_connection_string(address)),
        ("containerName", container.to_string()),
    ]
}

/// Short timeouts, so outage tests fail fast.
const REDIS_TIMEOUTS: [(&str, &str); 3] = [
    ("readTimeout", "1s"),
    ("writeTimeout", "1s"),
    ("dialTimeout", "1s"),
];

/// The metadata of a component on the ZooKeeper servers at `servers`.
pub fn zookeeper_metadata(servers: &str) -> Vec<(&'static str, String)> {
    vec![
        ("servers", servers.to_string()),
        (
            "sessionTimeout",
            format!("{}ms", ZOOKEEPER_SESSION.as_millis()),
        ),
    ]
}

/// The connection string of the PostgreSQL server scripts/test.sh started.
pub fn postgres_connection_string() -> String {
    let address = super::servers::shared("DLOCK_TEST_POSTGRES");
    let (host, port) = address
        .rsplit_once(':')
        .expect("DLOCK_TEST_POSTGRES is host:port");
    format!(
        "host={host} port={port} user={} password={} dbname=postgres",
        super::servers::POSTGRES_USER,
        super::servers::shared("DLOCK_TEST_POSTGRES_PASSWORD")
    )
}

/// The DSN of the MariaDB server scripts/test.sh started, as Dapr's MySQL component takes it.
pub fn mysql_dsn() -> String {
    format!(
        "dlock:{}@tcp({})/",
        super::servers::shared("DLOCK_TEST_MYSQL_PASSWORD"),
        super::servers::shared("DLOCK_TEST_MYSQL")
    )
}

impl Backend {
    pub fn type_name(self) -> &'static str {
        match self {
            Backend::Memory => "lock.in-memory",
            Backend::Redis | Backend::RedisCluster => "lock.redis",
            Backend::Etcd => "lock.etcd",
            Backend::Zookeeper => "lock.zookeeper",
            Backend::Postgresql => "lock.postgresql",
            Backend::Mysql => "lock.mysql",
            Backend::AzureBlob => "lock.azure.blobstorage",
        }
    }

    /// Whether two sidecars on this backend see the same locks.
    pub fn shared_between_sidecars(self) -> bool {
        match self {
            Backend::Memory => false,
            Backend::Redis
            | Backend::RedisCluster
            | Backend::Etcd
            | Backend::Zookeeper
            | Backend::Postgresql
            | Backend::Mysql
            | Backend::AzureBlob => true,
        }
    }

    /// How soon the store itself frees the locks of a sidecar that died, whatever their
    /// expiry: ZooKeeper deletes a dead session's ephemeral nodes when the session times out.
    /// `None` where only the expiry frees them.
    pub fn frees_a_dead_sidecars_locks_within(self) -> Option<std::time::Duration> {
        match self {
            Backend::Memory
            | Backend::Redis
            | Backend::RedisCluster
            | Backend::Etcd
            | Backend::Postgresql
            | Backend::Mysql
            | Backend::AzureBlob => None,
            Backend::Zookeeper => Some(ZOOKEEPER_SESSION),
        }
    }

    /// Where the store keeps its own line of waiters (WAIT_QUEUE), so blocking acquires are
    /// served in arrival order across sidecars: how soon the line skips a waiter whose sidecar
    /// died (its session or lease ends). `None` where each sidecar keeps its own line.
    pub fn skips_a_dead_waiter_within(self) -> Option<std::time::Duration> {
        match self {
            Backend::Memory => None,
            Backend::Redis | Backend::RedisCluster => Some(REDIS_WAITER_LEASE),
            Backend::Postgresql | Backend::Mysql => Some(SQL_WAITER_LEASE),
            Backend::AzureBlob => Some(AZURE_BLOB_WAITER_LEASE),
            Backend::Etcd => Some(ETCD_WAITER_LEASE),
            Backend::Zookeeper => Some(ZOOKEEPER_SESSION),
        }
    }

    /// The metadata connecting a component to this backend's shared test server.
    pub fn connection(self) -> Vec<(&'static str, String)> {
        match self {
            Backend::Memory => Vec::new(),
            Backend::Redis => vec![("redisHost", super::servers::shared("DLOCK_TEST_REDIS"))],
            Backend::RedisCluster => vec![
                (
                    "redisHost",
                    super::servers::shared("DLOCK_TEST_REDIS_CLUSTER"),
                ),
                ("redisType", "cluster".into()),
            ],
            Backend::Etcd => vec![("endpoints", super::servers::shared("DLOCK_TEST_ETCD"))],
            Backend::Zookeeper => {
                zookeeper_metadata(&super::servers::shared("DLOCK_TEST_ZOOKEEPER"))
            }
            Backend::Postgresql => vec![("connectionString", postgres_connection_string())],
            Backend::Mysql => vec![("connectionString", mysql_dsn())],
            Backend::AzureBlob => {
                azurite_metadata(&super::servers::shared("DLOCK_TEST_AZURITE"), "dlock-test")
            }
        }
    }

    /// A private server of this backend with a component file pointing at it, for tests
    /// that stop the store; `None` for the embedded store, which has no server to lose.
    pub fn private_server(self) -> Option<(Box<dyn Outage>, String)> {
        match self {
            Backend::Memory => None,
            Backend::Redis => {
                let redis = super::servers::Redis::start(&[]);
                let address = redis.address();
                let mut metadata = vec![("redisHost", address.as_str())];
                metadata.extend(REDIS_TIMEOUTS);
                let file = component("store", self.type_name(), &metadata);
                Some((Box::new(redis), file))
            }
            Backend::RedisCluster => {
                let cluster = super::servers::RedisCluster::start();
                let addresses = cluster.addresses();
                let mut metadata =
                    vec![("redisHost", addresses.as_str()), ("redisType", "cluster")];
                metadata.extend(REDIS_TIMEOUTS);
                let file = component("store", self.type_name(), &metadata);
                Some((Box::new(cluster), file))
            }
            Backend::Etcd => {
                let etcd = super::servers::Etcd::start(&[]);
                let address = etcd.address();
                let file = component(
                    "store",
                    self.type_name(),
                    &[
                        ("endpoints", &address),
                        ("requestTimeout", "1s"),
                        ("dialTimeout", "1s"),
                    ],
                );
                Some((Box::new(etcd), file))
            }
            Backend::Zookeeper => {
                let zookeeper = super::servers::Zookeeper::start();
                let mut metadata = zookeeper_metadata(&zookeeper.address());
                metadata.push(("requestTimeout", "1s".into()));
                let pairs: Vec<(&str, &str)> =
                    metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let file = component("store", self.type_name(), &pairs);
                Some((Box::new(zookeeper), file))
            }
            Backend::Postgresql => {
                let postgres = super::servers::Postgres::start();
                let connection = postgres.connection_string();
                let file = component(
                    "store",
                    self.type_name(),
                    &[("connectionString", &connection), ("timeout", "1s")],
                );
                Some((Box::new(postgres), file))
            }
            Backend::Mysql => {
                let mariadb = super::servers::Mariadb::start();
                let dsn = mariadb.dsn();
                let file = component(
                    "store",
                    self.type_name(),
                    &[("connectionString", &dsn), ("timeout", "1s")],
                );
                Some((Box::new(mariadb), file))
            }
            Backend::AzureBlob => {
                let azurite = super::servers::Azurite::start();
                let mut metadata = azurite_metadata(&azurite.address(), "dlock-test");
                metadata.push(("requestTimeout", "1s".into()));
                let pairs: Vec<(&str, &str)> =
                    metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let file = component("store", self.type_name(), &pairs);
                Some((Box::new(azurite), file))
            }
        }
    }

    /// A component file for this backend, with an optional keyPrefix.
    pub fn component(self, name: &str, key_prefix: Option<&str>) -> String {
        let mut metadata: Vec<(&str, String)> = self.connection();
        if let Some(prefix) = key_prefix {
            metadata.push(("keyPrefix", prefix.to_string()));
        }
        let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
        component(name, self.type_name(), &pairs)
    }

    /// A sidecar with app id `app_id` serving the given (store name, keyPrefix) components.
    pub fn sidecar(self, app_id: &str, stores: &[(&str, Option<&str>)]) -> Dlockd {
        let files: Vec<(String, String)> = stores
            .iter()
            .map(|(name, prefix)| (format!("{name}.yaml"), self.component(name, *prefix)))
            .collect();
        Dlockd::start(Options {
            app_id: app_id.into(),
            files: Some(files),
            env: vec![("DLOCK_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
            ..Options::default()
        })
    }
}

/// A resource id no other test uses.
pub fn unique(label: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
