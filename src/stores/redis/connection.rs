//! The connection to Redis in each topology, behind one handle the store runs commands on.
//!
//! - One server: a multiplexed connection that re-establishes itself after a failure.
//! - Sentinel: the same, to the master Sentinel names; after a connection failure or a
//!   `READONLY` answer (the old master came back as a replica) Sentinel is asked again and the
//!   connection moves to the new master. The request that saw the failure fails; the next
//!   ones go to the new master.
//! - Cluster: redis-rs's cluster connection, which routes each command by its keys' slot,
//!   follows MOVED/ASK redirections and refreshes the slot map by itself.
//!
//! In every topology requests are bounded by the read timeout: while Redis is away they fail,
//! they never hang and never grant.
//!
//! A restart of a lone server costs no failed call where it speaks RESP3 (Redis 6 and later):
//! the connection then learns at once that the server closed it and connects again in the
//! background, instead of finding out by failing the next request. A request whose connection
//! was refused (a server or Sentinel master) is sent once more: nothing reached the server.
//! Any other failure may have reached it and is never repeated here, since a lock script that
//! ran may have granted the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ClientTlsConfig, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    ProtocolVersion, RedisConnectionInfo, RedisError, RedisFuture, RedisResult, TlsCertificates,
    TlsMode, Value,
};

use super::settings::{Address, Settings, Tls, Topology};
use crate::config::ConfigError;

/// A handle to run commands on; cheap to clone, one per request.
#[derive(Clone)]
pub(crate) enum Handle {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Whether `error` proves the request never reached the server: its connection was refused,
/// so there was no connection to write it on. A dropped connection, a reset or a timeout may
/// come after the request was written, and the server may have run it.
fn never_sent(error: &RedisError) -> bool {
    error.is_connection_refusal()
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            // The manager swaps in a fresh connection attempt when its last one was refused,
            // so the second try waits for that attempt rather than the failed one.
            Handle::Server(c) => Box::pin(async move {
                match c.send_packed_command(cmd).await {
                    Err(e) if never_sent(&e) => c.send_packed_command(cmd).await,
                    answer => answer,
                }
            }),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Server(c) => Box::pin(async move {
                match c.send_packed_commands(pipeline, offset, count).await {
                    Err(e) if never_sent(&e) => {
                        c.send_packed_commands(pipeline, offset, count).await
                    }
                    answer => answer,
                }
            }),
            Handle::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Server(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

/// The connection of one store.
pub(crate) enum Connection {
    Server {
        manager: ConnectionManager,
        client: Box<Client>,
    },
    Sentinel(Arc<SentinelMaster>),
    Cluster {
        connection: ClusterConnection,
        /// The configured nodes, for the release-signal subscription.
        seeds: Vec<Client>,
    },
}

/// The master behind Sentinel, and how to find it again.
pub(crate) struct SentinelMaster {
    resolver: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<(ConnectionManager, Client)>,
    config: ConnectionManagerConfig,
    dial_timeout: Duration,
    refreshing: AtomicBool,
}

impl Connection {
    /// Connects as `settings` say; the error names `redisHost` or the field at fault.
    pub(crate) async fn open(settings: &Settings) -> Result<Connection, ConfigError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.dial_timeout))
            .set_response_timeout(Some(settings.read_timeout))
            .set_number_of_retries(settings.max_retries)
            .set_min_delay(settings.min_retry_interval)
            .set_max_delay(settings.max_retry_interval);
        let unreachable = |what: String, e: RedisError| {
            if let Some(refused) = password_refused(&e, &what, settings.password.is_some()) {
                return refused;
            }
            // The parser's own words ("Incompatible type - Parse error at 1", the bytes it
            // did not expect) do not say what went wrong: the server is not Redis.
            let why = if e.kind() == ErrorKind::Parse {
                "it did not answer as Redis (is another kind of server on that port?)".to_string()
            } else {
                e.to_string()
            };
            ConfigError::field("redisHost", format!("can't connect to {what}: {why}"))
        };
        if settings.tls.is_some() {
            install_crypto_provider();
        }
        match &settings.topology {
            Topology::Node(address) => {
                let client = server_client(settings, address, ProtocolVersion::RESP2)?;
                let resp3 = server_client(settings, address, ProtocolVersion::RESP3)?;
                let manager = watched_manager(&resp3, &client, config)
                    .await
                    .map_err(|e| unreachable(format!("Redis at {}", show(address)), e))?;
                Ok(Connection::Server {
                    manager,
                    client: Box::new(client),
                })
            }
            Topology::Sentinel {
                sentinels,
                master_name,
                username,
                password,
            } => {
                let resolver =
                    sentinel_client(settings, sentinels, master_name, username, password)
                        .map_err(|e| ConfigError::field("redisHost", e.to_string()))?;
                let resolver = tokio::sync::Mutex::new(resolver);
                let found = find_master(&resolver, &config, settings.dial_timeout)
                    .await
                    .map_err(|e| {
                        let names: Vec<String> = sentinels.iter().map(show).collect();
                        unreachable(
                            format!(
                                "master '{master_name}' through Sentinel {}",
                                names.join(",")
                            ),
                            e,
                        )
                    })?;
                let master = SentinelMaster {
                    resolver,
                    current: RwLock::new(found),
                    config,
                    dial_timeout: settings.dial_timeout,
                    refreshing: AtomicBool::new(false),
                };
                Ok(Connection::Sentinel(Arc::new(master)))
            }
            Topology::Cluster(nodes) => {
                let seeds = nodes
                    .iter()
                    .map(|address| server_client(settings, address, ProtocolVersion::RESP2))
                    .collect::<Result<Vec<_>, _>>()?;
                let connection = cluster_client(settings, nodes)
                    .map_err(|e| ConfigError::field("redisHost", e.to_string()))?
                    .get_async_connection()
                    .await
                    .map_err(|e| {
                        let names: Vec<String> = nodes.iter().map(show).collect();
                        unreachable(format!("Redis Cluster at {}", names.join(",")), e)
                    })?;
                Ok(Connection::Cluster { connection, seeds })
            }
        }
    }

    pub(crate) fn handle(&self) -> Handle {
        match self {
            Connection::Server { manager, .. } => Handle::Server(manager.clone()),
            Connection::Sentinel(master) => Handle::Server(master.current().0),
            Connection::Cluster { connection, .. } => Handle::Cluster(connection.clone()),
        }
    }

    /// Tells the connection a request failed, so a Sentinel set-up looks for a new master.
    pub(crate) fn failed(&self, error: &RedisError) {
        if let Connection::Sentinel(master) = self {
            let moved = error.code() == Some("READONLY")
                || error.is_io_error()
                || error.is_timeout()
                || error.is_connection_dropped()
                || error.is_connection_refusal();
            if moved && !master.refreshing.swap(true, Ordering::AcqRel) {
                let master = master.clone();
                tokio::spawn(async move {
                    match master.connect().await {
                        Ok(found) => *master.current.write().expect("not poisoned") = found,
                        Err(e) => tracing::debug!("Sentinel has no reachable master yet: {e}"),
                    }
                    master.refreshing.store(false, Ordering::Release);
                });
            }
        }
    }

    /// Clients to subscribe to the release channel through, in order of preference. A
    /// publication reaches every node of a cluster and every replica of a master.
    pub(crate) fn subscribers(&self) -> Vec<Client> {
        match self {
            Connection::Server { client, .. } => vec![(**client).clone()],
            Connection::Sentinel(master) => vec![master.current().1],
            Connection::Cluster { seeds, .. } => seeds.clone(),
        }
    }

    /// Handles that together see every key once, for SCAN: the server, or each cluster master.
    pub(crate) async fn scan_targets(&self) -> RedisResult<Vec<ScanTarget>> {
        let Connection::Cluster { connection, .. } = self else {
            return Ok(vec![ScanTarget {
                handle: self.handle(),
                node: None,
            }]);
        };
        let mut connection = connection.clone();
        let slots: Value = connection
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        // Each entry: [first slot, last slot, [master host, port, id…], replicas…].
        if let Value::Array(ranges) = slots {
            for range in ranges {
                let Value::Array(range) = range else { continue };
                let Some(Value::Array(master)) = range.get(2) else {
                    continue;
                };
                let host: Option<String> = master
                    .first()
                    .and_then(|v| redis::from_redis_value_ref(v).ok());
                let port: Option<u16> = master
                    .get(1)
                    .and_then(|v| redis::from_redis_value_ref(v).ok());
                if let (Some(host), Some(port)) = (host, port) {
                    if !masters.contains(&(host.clone(), port)) {
                        masters.push((host, port));
                    }
                }
            }
        }
        Ok(masters
            .into_iter()
            .map(|node| ScanTarget {
                handle: Handle::Cluster(connection.clone()),
                node: Some(node),
            })
            .collect())
    }
}

/// Where one SCAN runs: the server, or one cluster master by address.
pub(crate) struct ScanTarget {
    handle: Handle,
    node: Option<(String, u16)>,
}

impl ScanTarget {
    /// Runs `cmd` (a SCAN step) on this target.
    pub(crate) async fn run<T: redis::FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match (&mut self.handle, &self.node) {
            (Handle::Cluster(connection), Some((host, port))) => {
                let value = connection
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )
                    .await?;
                Ok(redis::from_redis_value(value)?)
            }
            (handle, _) => cmd.query_async(handle).await,
        }
    }
}

impl SentinelMaster {
    fn current(&self) -> (ConnectionManager, Client) {
        self.current.read().expect("not poisoned").clone()
    }

    async fn connect(&self) -> RedisResult<(ConnectionManager, Client)> {
        find_master(&self.resolver, &self.config, self.dial_timeout).await
    }
}

/// Asks Sentinel for the master and connects to it, within the dial timeout.
async fn find_master(
    resolver: &tokio::sync::Mutex<SentinelClient>,
    config: &ConnectionManagerConfig,
    dial_timeout: Duration,
) -> RedisResult<(ConnectionManager, Client)> {
    let asked = async {
        let client = resolver.lock().await.async_get_client().await?;
        let manager = client
            .get_connection_manager_with_config(config.clone())
            .await?;
        Ok((manager, client))
    };
    tokio::time::timeout(dial_timeout, asked)
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from((
                ErrorKind::Io,
                "no answer from Sentinel or the master within dialTimeout",
            )))
        })
}

fn show((host, port): &Address) -> String {
    format!("{host}:{port}")
}

fn redis_info(settings: &Settings) -> RedisConnectionInfo {
    let mut info = RedisConnectionInfo::default().set_db(settings.db);
    if let Some(username) = &settings.username {
        info = info.set_username(username);
    }
    if let Some(password) = &settings.password {
        info = info.set_password(password);
    }
    info
}

fn certificates(tls: &Tls) -> TlsCertificates {
    TlsCertificates {
        client_tls: tls
            .client_identity
            .as_ref()
            .map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.ca.clone(),
    }
}

fn address(settings: &Settings, (host, port): &Address) -> ConnectionAddr {
    match &settings.tls {
        None => ConnectionAddr::Tcp(host.clone(), *port),
        Some(tls) => ConnectionAddr::TcpTls {
            host: host.clone(),
            port: *port,
            insecure: tls.skip_verify,
            tls_params: None,
        },
    }
}

/// A connection manager that hears of a closed connection as it happens: over RESP3 where the
/// server speaks it (`resp3`), else over RESP2 (`resp2`, for Redis before 6), where the first
/// request after a restart can still fail. Only the manager uses RESP3; the release-signal
/// subscription keeps RESP2.
async fn watched_manager(
    resp3: &Client,
    resp2: &Client,
    config: ConnectionManagerConfig,
) -> RedisResult<ConnectionManager> {
    match resp3
        .get_connection_manager_with_config(config.clone())
        .await
    {
        // A server without RESP3 refuses HELLO with an error answer, not a dropped connection.
        Err(e) if !e.is_io_error() => {
            tracing::debug!("Redis refused RESP3 ({e}); using RESP2");
            resp2.get_connection_manager_with_config(config).await
        }
        answer => answer,
    }
}

fn server_client(
    settings: &Settings,
    server: &Address,
    protocol: ProtocolVersion,
) -> Result<Client, ConfigError> {
    let info = address(settings, server)
        .into_connection_info()
        .map(|info| info.set_redis_settings(redis_info(settings).set_protocol(protocol)));
    let client = match &settings.tls {
        None => info.and_then(Client::open),
        Some(tls) => info.and_then(|info| Client::build_with_tls(info, certificates(tls))),
    };
    client.map_err(|e| tls_or_host_error(settings, e))
}

/// The error of a server that refused the password, or wants one it was not given: it was
/// reached, and the field at fault is `redisPassword` (its value never shown).
pub(crate) fn password_refused(
    error: &RedisError,
    what: &str,
    password_given: bool,
) -> Option<ConfigError> {
    let refused = error.kind() == ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"));
    if !refused {
        return None;
    }
    let why = if password_given {
        "it refused the password (check redisPassword, and redisUsername for an ACL user)"
    } else {
        "it requires a password: set redisPassword (and redisUsername for an ACL user)"
    };
    Some(ConfigError::field(
        "redisPassword",
        format!("{what} was reached, but {why}"),
    ))
}

/// A client-construction error: bad TLS material names its field, anything else redisHost.
fn tls_or_host_error(settings: &Settings, error: RedisError) -> ConfigError {
    let field = match &settings.tls {
        Some(tls) if tls.client_identity.is_some() => "clientCert",
        Some(_) => "caCert",
        None => "redisHost",
    };
    ConfigError::field(field, error.to_string())
}

fn tls_mode(tls: &Tls) -> TlsMode {
    if tls.skip_verify {
        TlsMode::Insecure
    } else {
        TlsMode::Secure
    }
}

fn sentinel_client(
    settings: &Settings,
    sentinels: &[Address],
    master_name: &str,
    username: &Option<String>,
    password: &Option<String>,
) -> RedisResult<SentinelClient> {
    let addresses = sentinels
        .iter()
        .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
    let mut builder =
        SentinelClientBuilder::new(addresses, master_name, SentinelServerType::Master)?
            .set_client_to_redis_db(settings.db);
    if let Some(username) = &settings.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(username) = username {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if let Some(tls) = &settings.tls {
        builder = builder
            .set_client_to_redis_tls_mode(tls_mode(tls))
            .set_client_to_redis_certificates(certificates(tls))
            .set_client_to_sentinel_tls_mode(tls_mode(tls))
            .set_client_to_sentinel_certificates(certificates(tls));
    }
    builder.build()
}

fn cluster_client(
    settings: &Settings,
    nodes: &[Address],
) -> RedisResult<redis::cluster::ClusterClient> {
    let infos = nodes
        .iter()
        .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
    let mut builder = redis::cluster::ClusterClientBuilder::new(infos)
        .connection_timeout(settings.dial_timeout)
        .response_timeout(settings.read_timeout)
        .retries(settings.max_retries as u32)
        .min_retry_wait(settings.min_retry_interval.as_millis() as u64)
        .max_retry_wait(settings.max_retry_interval.as_millis() as u64);
    if let Some(username) = &settings.username {
        builder = builder.username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.password(password);
    }
    if let Some(tls) = &settings.tls {
        builder = builder.tls(tls_mode(tls)).certs(certificates(tls));
    }
    builder.build()
}

/// rustls is built without a default crypto provider; the first TLS store installs ring.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
