//! What a lock of each kind costs its store, counted by the store itself: the commands,
//! statements or requests it served and the rows, keys or proposals it wrote, per plain try-lock + unlock, per shared
//! grant + release, and per reentrant re-entry + release, side by side. A benchmark that prints
//! figures, not a test (the servers are shared by the whole suite, so their counters move with
//! every other test); run it alone:
//!
//! `scripts/test.sh kinds_cost --ignored --nocapture 2>&1 | grep 'kinds cost'`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dlock::cli::http_client::HttpClient;
use dlock::config::Metadata;
use dlock::lock::{Kind, LockStore};
use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::contract::store;
use crate::support::backend::{azurite_metadata, unique, Backend};
use crate::support::servers::shared;

const ROUNDS: u64 = 100;
const TTL: Duration = Duration::from_secs(30);

/// The pairs measured (an acquire and its release), each run `ROUNDS` times on keys of its own.
#[derive(Clone, Copy, Debug)]
enum Operation {
    Plain,
    Shared,
    Reentry,
}

async fn run(store: &Arc<dyn LockStore>, operation: Operation, keys: &[String]) {
    for key in keys {
        match operation {
            Operation::Plain => {
                store.try_lock(key, "o", TTL).await.unwrap();
                store.unlock(key, "o").await.unwrap();
            }
            Operation::Shared => {
                store.acquire(key, "o", TTL, Kind::shared(3)).await.unwrap();
                store.release(key, "o", false).await.unwrap();
            }
            Operation::Reentry => {
                store
                    .acquire(key, "o", TTL, Kind::PLAIN.reentrant())
                    .await
                    .unwrap();
                store.release(key, "o", false).await.unwrap();
            }
        }
    }
}

/// Takes each key once reentrantly, so that the measured pair is a re-entry and its release.
async fn prepare(store: &Arc<dyn LockStore>, operation: Operation, keys: &[String]) {
    if let Operation::Reentry = operation {
        for key in keys {
            store
                .acquire(key, "o", TTL, Kind::PLAIN.reentrant())
                .await
                .unwrap();
        }
    }
}

/// A store's own counters, by name.
pub(crate) type Counters = Vec<(&'static str, u64)>;

async fn redis_counters() -> Counters {
    let mut redis = crate::redis::raw().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut redis)
        .await
        .unwrap();
    let calls = |line: &str| -> u64 {
        line.split("calls=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    };
    let commands: u64 = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .map(calls)
        .sum();
    let scripts: u64 = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .map(calls)
        .sum();
    vec![
        ("commands (inner ones of scripts included)", commands),
        ("script calls", scripts),
    ]
}

async fn postgres_counters() -> Counters {
    // A busy backend reports its counts once a second at most, an idle one within 10 s.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let client = crate::sql_stores::postgres().await;
    let row = client
        .query_one(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database \
             WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    vec![
        ("transactions", row.get::<_, i64>(0) as u64),
        ("rows written", row.get::<_, i64>(1) as u64),
    ]
}

async fn mysql_counters() -> Counters {
    let mut mysql = crate::sql_stores::mysql().await;
    let rows: Vec<(String, String)> = mysql
        .query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN \
             ('Questions', 'Com_insert', 'Com_update', 'Com_delete', 'Com_commit')",
        )
        .await
        .unwrap();
    let get = |name: &str| -> u64 {
        rows.iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v.parse().unwrap())
    };
    vec![
        ("statements", get("Questions")),
        (
            "write statements",
            get("Com_insert") + get("Com_update") + get("Com_delete"),
        ),
        ("commits", get("Com_commit")),
    ]
}

/// etcd's own metrics: the gRPC messages it received (a stream's counted one by one) and the
/// Raft proposals it committed (every write, lease grants and revokes included).
async fn etcd_counters() -> Counters {
    let address = shared("DLOCK_TEST_ETCD");
    let metrics = HttpClient::new(&format!("http://{address}"), None)
        .get("/metrics")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    let sum = |name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    vec![
        ("requests", sum("grpc_server_msg_received_total{")),
        ("writes", sum("etcd_server_proposals_committed_total ")),
    ]
}

/// ZooKeeper's `mntr`: the packets it received (requests and the session's pings).
async fn zookeeper_counters() -> Counters {
    let address = shared("DLOCK_TEST_ZOOKEEPER");
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(b"mntr").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let value = |name: &str| -> u64 {
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in mntr: {answer}"))
    };
    vec![("requests (pings included)", value("zk_packets_received"))]
}

/// Azurite counts nothing, so the Azure store talks to it through this proxy, which counts the
/// HTTP requests that pass, and the writes (PUT, DELETE) among them.
struct CountingProxy {
    address: String,
    requests: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
}

impl CountingProxy {
    async fn start(target: String) -> CountingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (requests, writes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counts = (requests.clone(), writes.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let counts = counts.clone();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                tokio::spawn(async move {
                    let mut line = Vec::new();
                    let mut chunk = [0u8; 16 * 1024];
                    while let Ok(n) = client_read.read(&mut chunk).await {
                        if n == 0 || server_write.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        for &byte in &chunk[..n] {
                            if byte != b'\n' {
                                line.push(byte);
                                continue;
                            }
                            let text = String::from_utf8_lossy(&line);
                            if text.trim_end().ends_with(" HTTP/1.1") {
                                counts.0.fetch_add(1, Ordering::Relaxed);
                                if text.starts_with("PUT ") || text.starts_with("DELETE ") {
                                    counts.1.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            line.clear();
                        }
                    }
                });
            }
        });
        CountingProxy {
            address,
            requests,
            writes,
        }
    }
}

/// The proxy the Azure store of this process talks through.
static AZURE_PROXY: tokio::sync::OnceCell<CountingProxy> = tokio::sync::OnceCell::const_new();

async fn azure_proxy() -> &'static CountingProxy {
    AZURE_PROXY
        .get_or_init(|| CountingProxy::start(shared("DLOCK_TEST_AZURITE")))
        .await
}

async fn azure_store() -> Arc<dyn LockStore> {
    let metadata = azurite_metadata(&azure_proxy().await.address, "dlock-test");
    let metadata: Metadata = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    dlock::startup::StoreTypes::new()
        .build("lock.azure.blobstorage", &metadata)
        .await
        .expect("this build has Azure Blob")
        .expect("the Azure store starts")
}

async fn azure_counters() -> Counters {
    let proxy = azure_proxy().await;
    vec![
        ("requests", proxy.requests.load(Ordering::Relaxed)),
        ("writes", proxy.writes.load(Ordering::Relaxed)),
    ]
}

/// The counters of `backend`'s shared server (not Azurite's: see `CountingProxy`), also read
/// by the scale benchmark (`scale.rs`).
pub(crate) async fn counters(backend: Backend) -> Counters {
    match backend {
        Backend::Redis => redis_counters().await,
        Backend::Postgresql => postgres_counters().await,
        Backend::Mysql => mysql_counters().await,
        Backend::Etcd => etcd_counters().await,
        Backend::Zookeeper => zookeeper_counters().await,
        Backend::AzureBlob => azure_counters().await,
        other => panic!("no counters read for {other:?}"),
    }
}

async fn measure(backend: Backend) {
    let store = match backend {
        Backend::AzureBlob => azure_store().await,
        _ => store(backend).await,
    };
    for operation in [Operation::Plain, Operation::Shared, Operation::Reentry] {
        let keys: Vec<String> = (0..ROUNDS).map(|_| unique("lock||cost||k")).collect();
        prepare(&store, operation, &keys).await;
        let before = counters(backend).await;
        run(&store, operation, &keys).await;
        let after = counters(backend).await;
        let figures: Vec<String> = before
            .iter()
            .zip(&after)
            .map(|((name, b), (_, a))| {
                // Reading the counters adds a few commands or statements per read: under
                // 0.05 per pair over the rounds.
                format!("{name} {:.2}", (a - b) as f64 / ROUNDS as f64)
            })
            .collect();
        eprintln!(
            "kinds cost: {backend:?} {operation:?}: per pair {}",
            figures.join(", ")
        );
    }
}

#[tokio::test]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn redis() {
    measure(Backend::Redis).await;
}

#[tokio::test]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn postgresql() {
    measure(Backend::Postgresql).await;
}

#[tokio::test]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn mysql() {
    measure(Backend::Mysql).await;
}

#[tokio::test]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn etcd() {
    measure(Backend::Etcd).await;
}

#[tokio::test]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn zookeeper() {
    measure(Backend::Zookeeper).await;
}

#[tokio::test]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn azure_blob() {
    measure(Backend::AzureBlob).await;
}
