//! Throughput figures for the ignored benchmarks that set a store's cost through dlockd beside
//! a bare client of the same server: `dlock bench` run against a sidecar, and the same loop of
//! pairs driven by a bare client.

use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::dlockd::{Dlockd, DLOCK};

/// `dlock bench` against `sidecar`'s `store`: `clients` clients, each on its own key, doing
/// `pairs` lock+unlock pairs in all over gRPC; answers its pairs per second.
pub fn dlock_bench(sidecar: &Dlockd, store: &str, clients: usize, pairs: usize) -> f64 {
    let run = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, "bench", "--store", store])
        .args(["-c", &clients.to_string(), "-n", &pairs.to_string()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "dlock bench failed: {out}");
    let rate = out
        .split_once("throughput: ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok());
    rate.unwrap_or_else(|| panic!("no throughput in: {out}"))
}

/// `clients` tasks, client `n` on key number `n`, calling `pair(n)` until `pairs` are done in
/// all; answers pairs per second.
pub async fn raw_pairs<F, Fut>(clients: usize, pairs: usize, pair: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let remaining = Arc::new(AtomicUsize::new(pairs));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let (pair, remaining) = (pair.clone(), remaining.clone());
            tokio::spawn(async move {
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    pair(n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a bare client panicked");
    }
    pairs as f64 / started.elapsed().as_secs_f64()
}
