//! `dlock bench`: a load generator in the spirit of redis-benchmark. N clients, each on its own
//! connection, loop over lock+unlock pairs against a sidecar until the total is done; it prints
//! pairs per second and the latency of a pair (p50, p99, max).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde_json::json;

use super::connect::{self, Client};
use super::http_client::HttpClient;
use super::Exit;
use crate::percentile::percentile;
use crate::proto::dapr::{TryLockRequest, UnlockRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Keys {
    /// Each client locks its own key: measures the sidecar and store, no contention.
    Distinct,
    /// Every client locks the same key: most attempts are refused.
    Shared,
    /// Every attempt locks a fresh key and leaves it to expire, unreleased: a burst that fills
    /// the store (scripts/bench-memory.sh measures what memory comes back after it).
    Expiring,
}

pub struct Bench {
    pub clients: usize,
    /// Connections the clients share, round robin (gRPC multiplexes calls on one connection,
    /// as an application's one SDK client does; HTTP/1.1 clients each keep their own).
    pub connections: usize,
    pub pairs: usize,
    pub protocol: Protocol,
    pub keys: Keys,
    pub store: String,
    pub grpc_endpoint: String,
    pub http_endpoint: String,
    pub expiry_seconds: i32,
}

/// One client's connection.
enum Conn {
    Grpc(Client),
    Http(HttpClient),
}

#[derive(Default)]
struct Tally {
    /// Microseconds per attempt (a granted lock and its unlock, or a refused lock).
    latencies: Vec<u32>,
    granted: usize,
    refused: usize,
    errors: usize,
    first_error: Option<String>,
}

pub async fn run(bench: Bench) -> Exit {
    let bench = Arc::new(bench);
    let run_id = std::process::id();
    let mut conns = Vec::with_capacity(bench.clients);
    let mut grpc_pool: Vec<Client> = Vec::new();
    for i in 0..bench.clients {
        let conn = match bench.protocol {
            Protocol::Grpc if grpc_pool.len() >= bench.connections => {
                Conn::Grpc(grpc_pool[i % grpc_pool.len()].clone())
            }
            Protocol::Grpc => {
                match connect::grpc(&bench.grpc_endpoint, Duration::from_secs(5)).await {
                    Ok(client) => {
                        grpc_pool.push(client.clone());
                        Conn::Grpc(client)
                    }
                    Err(message) => {
                        errln!("dlock bench: {message}");
                        return Exit::Unreachable;
                    }
                }
            }
            Protocol::Http => Conn::Http(HttpClient::new(
                &bench.http_endpoint,
                connect::TokenInterceptor::from_env()
                    .token()
                    .map(str::to_string),
            )),
        };
        conns.push(conn);
    }

    let remaining = Arc::new(AtomicUsize::new(bench.pairs));
    let started = Instant::now();
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let key = match bench.keys {
                Keys::Distinct | Keys::Expiring => format!("bench-{run_id}-{i}"),
                Keys::Shared => format!("bench-{run_id}"),
            };
            let owner = format!("bench-{run_id}-{i}");
            tokio::spawn(client_loop(
                bench.clone(),
                conn,
                key,
                owner,
                remaining.clone(),
            ))
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await.expect("a bench client panicked");
        total.latencies.extend(tally.latencies);
        total.granted += tally.granted;
        total.refused += tally.refused;
        total.errors += tally.errors;
        total.first_error = total.first_error.or(tally.first_error);
    }
    let elapsed = started.elapsed();
    print_report(&bench, &mut total, elapsed);
    if total.errors > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

async fn client_loop(
    bench: Arc<Bench>,
    mut conn: Conn,
    key: String,
    owner: String,
    remaining: Arc<AtomicUsize>,
) -> Tally {
    let mut tally = Tally::default();
    let mut attempt = 0u64;
    while remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        let start = Instant::now();
        let outcome = if bench.keys == Keys::Expiring {
            attempt += 1;
            lock(&bench, &mut conn, &format!("{key}-{attempt}"), &owner).await
        } else {
            pair(&bench, &mut conn, &key, &owner).await
        };
        match outcome {
            Ok(true) => tally.granted += 1,
            Ok(false) => tally.refused += 1,
            Err(error) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(error);
            }
        }
        tally
            .latencies
            .push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    tally
}

/// One lock, and its unlock if granted. True when granted.
async fn pair(bench: &Bench, conn: &mut Conn, key: &str, owner: &str) -> Result<bool, String> {
    let granted = lock(bench, conn, key, owner).await?;
    if granted {
        unlock(bench, conn, key, owner).await?;
    }
    Ok(granted)
}

/// One lock. True when granted.
async fn lock(bench: &Bench, conn: &mut Conn, key: &str, owner: &str) -> Result<bool, String> {
    match conn {
        Conn::Grpc(client) => Ok(client
            .try_lock_alpha1(TryLockRequest {
                store_name: bench.store.clone(),
                resource_id: key.to_string(),
                lock_owner: owner.to_string(),
                expiry_in_seconds: bench.expiry_seconds,
            })
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner()
            .success),
        Conn::Http(client) => {
            let lock = json!({"resourceId": key, "lockOwner": owner, "expiryInSeconds": bench.expiry_seconds});
            let answer = client
                .post(
                    &format!("/v1.0-alpha1/lock/{}", bench.store),
                    lock.to_string(),
                )
                .await?;
            if answer.status != 200 {
                return Err(String::from_utf8_lossy(&answer.body).into_owned());
            }
            Ok(answer.json()["success"] == json!(true))
        }
    }
}

/// One unlock.
async fn unlock(bench: &Bench, conn: &mut Conn, key: &str, owner: &str) -> Result<(), String> {
    match conn {
        Conn::Grpc(client) => {
            client
                .unlock_alpha1(UnlockRequest {
                    store_name: bench.store.clone(),
                    resource_id: key.to_string(),
                    lock_owner: owner.to_string(),
                })
                .await
                .map_err(|s| s.message().to_string())?;
        }
        Conn::Http(client) => {
            let unlock = json!({"resourceId": key, "lockOwner": owner});
            let answer = client
                .post(
                    &format!("/v1.0-alpha1/unlock/{}", bench.store),
                    unlock.to_string(),
                )
                .await?;
            if answer.status != 200 {
                return Err(String::from_utf8_lossy(&answer.body).into_owned());
            }
        }
    }
    Ok(())
}

fn print_report(bench: &Bench, total: &mut Tally, elapsed: Duration) {
    total.latencies.sort_unstable();
    let percentile = |p: f64| percentile(&total.latencies, p);
    let seconds = elapsed.as_secs_f64();
    let attempts = total.latencies.len();
    outln!(
        "dlock bench: {attempts} attempts, {} clients on {} connections, {}, {} keys, store '{}'",
        bench.clients,
        match bench.protocol {
            Protocol::Grpc => bench.connections.min(bench.clients),
            Protocol::Http => bench.clients,
        },
        match bench.protocol {
            Protocol::Grpc => "gRPC",
            Protocol::Http => "HTTP",
        },
        match bench.keys {
            Keys::Distinct => "distinct",
            Keys::Shared => "shared",
            Keys::Expiring => "expiring",
        },
        bench.store
    );
    outln!(
        "  throughput: {:.0} lock+unlock pairs/s ({:.0} attempts/s) over {seconds:.2}s",
        total.granted as f64 / seconds,
        attempts as f64 / seconds
    );
    outln!(
        "  latency per attempt: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(50.0),
        percentile(99.0),
        percentile(100.0)
    );
    outln!(
        "  granted {}, refused {}, errors {}",
        total.granted,
        total.refused,
        total.errors
    );
    if let Some(error) = &total.first_error {
        outln!("  first error: {error}");
    }
}
