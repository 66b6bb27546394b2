//! The measuring loop of the SQL stores' raw benchmarks (`stores::postgresql::raw_bench`,
//! `stores::mysql::raw_bench`), written once: clients, each on its own key, run a store's take
//! and release statements straight through its pool, and one line reports pairs per second
//! and the latency of a pair, as `dlock bench` counts them, for scripts/bench.sh to set
//! beside `dlock bench` through dlockd. `DLOCK_BENCH_CLIENTS` (default `1,50`) and
//! `DLOCK_BENCH_PAIRS` (default 2000, split between the clients) set the load.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::percentile::percentile;

/// The client counts to measure, one after the other.
pub(crate) fn client_counts() -> Vec<usize> {
    std::env::var("DLOCK_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,50".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("DLOCK_BENCH_CLIENTS: numbers, comma-separated")
        })
        .collect()
}

/// Runs `clients` clients, each on its own key (`raw-<n>`), until the pairs are done, and
/// prints `raw <what>, <clients> clients: …`. A pair is `pair(key)`, which panics on failure.
pub(crate) async fn measure<F, Fut>(what: &str, clients: usize, pair: F)
where
    F: Fn(Arc<str>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let pairs: usize = std::env::var("DLOCK_BENCH_PAIRS")
        .map(|n| n.parse().expect("DLOCK_BENCH_PAIRS: a number"))
        .unwrap_or(2000);
    let remaining = Arc::new(AtomicUsize::new(pairs));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (pair, remaining) = (pair.clone(), remaining.clone());
            let key: Arc<str> = format!("raw-{c}").into();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let start = Instant::now();
                    pair(key.clone()).await;
                    latencies.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(pairs);
    for task in tasks {
        latencies.extend(task.await.expect("a raw bench client panicked"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        "raw {what}, {clients} clients: {:.0} pairs/s, p50 {:.3} ms, p99 {:.3} ms",
        latencies.len() as f64 / seconds,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0)
    );
}
