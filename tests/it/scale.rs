//! The scale benchmark: K sidecars of one app, W clients on each, every client looping a
//! blocking acquire and a release of one key for a while (a cluster of servers at one hot
//! resource). It prints the grants per second, each sidecar's share against its fair share, the
//! spread per client, the longest wait, and the store's own count of operations per grant (the
//! counters `kinds_cost.rs` reads), at K = 1 and K = 8 with the same 32 clients. A benchmark
//! that prints figures, not a test (the shared servers' counters move with every other test):
//! scripts/bench-scale.sh runs it alone, one store at a time.

use std::time::{Duration, Instant};

use crate::kinds_cost::counters;
use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::locks::acquire;

/// Clients in all, spread evenly over the sidecars.
const CLIENTS: usize = 32;

/// How long each run lasts (`DLOCK_SCALE_SECONDS`, 10 by default).
fn run_for() -> Duration {
    let seconds = std::env::var("DLOCK_SCALE_SECONDS").ok();
    Duration::from_secs(seconds.and_then(|s| s.parse().ok()).unwrap_or(10))
}

/// One client's tally.
struct Tally {
    sidecar: usize,
    grants: u64,
    longest_wait: Duration,
}

/// One run: `sidecars` sidecars, `CLIENTS / sidecars` clients on each; answers the grants.
async fn run(backend: Backend, sidecars: usize) -> u64 {
    let running: Vec<_> = (0..sidecars)
        .map(|_| backend.sidecar("scale", &[("store", None)]))
        .collect();
    let key = unique("scale");
    let run_for = run_for();
    // Azurite and the cluster's nodes are not counted (kinds_cost.rs reads one server's).
    let counted = !matches!(backend, Backend::AzureBlob | Backend::RedisCluster);
    let before = if counted {
        counters(backend).await
    } else {
        Vec::new()
    };
    let started = Instant::now();
    let until = started + run_for;
    let mut clients = Vec::new();
    for (at, sidecar) in running.iter().enumerate() {
        for c in 0..CLIENTS / sidecars {
            let (locks, api, key) = (sidecar.locks().await, Api::new(sidecar).await, key.clone());
            let owner = format!("s{at}-c{c}");
            clients.push(tokio::spawn(async move {
                let mut tally = Tally {
                    sidecar: at,
                    grants: 0,
                    longest_wait: Duration::ZERO,
                };
                loop {
                    let asked = Instant::now();
                    let left = until.saturating_duration_since(asked);
                    if left.is_zero() {
                        return tally;
                    }
                    if acquire(&locks, &key, &owner, 30, left)
                        .await
                        .unwrap()
                        .is_none()
                    {
                        return tally;
                    }
                    tally.longest_wait = tally.longest_wait.max(asked.elapsed());
                    tally.grants += 1;
                    let released = api.unlock(Protocol::Grpc, "store", &key, &owner).await;
                    assert_eq!(released, Ok(SUCCESS));
                }
            }));
        }
    }
    let mut tallies = Vec::new();
    for client in clients {
        tallies.push(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    let after = if counted {
        counters(backend).await
    } else {
        Vec::new()
    };
    let grants: u64 = tallies.iter().map(|t| t.grants).sum();
    let per_sidecar: Vec<u64> = (0..sidecars)
        .map(|at| {
            tallies
                .iter()
                .filter(|t| t.sidecar == at)
                .map(|t| t.grants)
                .sum()
        })
        .collect();
    let per_client = tallies.iter().map(|t| t.grants);
    let (least, most) = (per_client.clone().min().unwrap(), per_client.max().unwrap());
    let longest = tallies.iter().map(|t| t.longest_wait).max().unwrap();
    let per_grant: Vec<String> = before
        .iter()
        .zip(&after)
        .map(|((name, b), (_, a))| format!("{name} {:.1}", (a - b) as f64 / grants.max(1) as f64))
        .collect();
    eprintln!(
        "scale: {backend:?} K={sidecars} W={}: {:.0} grants/s; per sidecar {per_sidecar:?} \
         (fair share {}); per client {least} – {most}; longest wait {longest:.2?}; per grant \
         {}",
        CLIENTS / sidecars,
        grants as f64 / elapsed.as_secs_f64(),
        grants / sidecars as u64,
        per_grant.join(", ")
    );
    grants
}

async fn measure(backend: Backend) {
    let one = run(backend, 1).await;
    let eight = run(backend, 8).await;
    eprintln!(
        "scale: {backend:?} grants at K=8 / K=1: {:.2}",
        eight as f64 / one.max(1) as f64
    );
}

macro_rules! scale {
    ($($name:ident => $backend:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "a benchmark: scripts/bench-scale.sh runs it"]
            async fn $name() {
                measure($backend).await;
            }
        )*
    };
}

scale!(
    redis => Backend::Redis,
    redis_cluster => Backend::RedisCluster,
    postgresql => Backend::Postgresql,
    mysql => Backend::Mysql,
    etcd => Backend::Etcd,
    zookeeper => Backend::Zookeeper,
    azure_blob => Backend::AzureBlob,
);
