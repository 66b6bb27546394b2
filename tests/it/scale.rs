//! How one key is handed over when many sidecars wait for it: K sidecars of one app share a
//! store, and 32 clients spread over them wait in the blocking Acquire for the same key, each
//! releasing it as soon as it is granted and asking again, for a few seconds (a cluster of BPM
//! servers at one hot process instance). Prints grants per second, each sidecar's share
//! against its fair share, the spread per client, the longest wait, and the store's own count
//! of operations per grant (`store_counters.rs`), at K = 1 and K = 8, and the ratio of the two
//! rates. A benchmark that prints figures, not a test; run alone, with release sidecars:
//!
//! `scripts/bench-scale.sh [STORE]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dlock::proto::dlock::ReleaseRequest;

use crate::store_counters::{counted_azure_metadata, counters, Counters};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks::acquire_grpc;

const CLIENTS: usize = 32;

/// How long the clients keep asking: `DLOCK_SCALE_SECONDS`, 10 by default.
fn duration() -> Duration {
    let seconds = std::env::var("DLOCK_SCALE_SECONDS").map_or(10, |s| {
        s.parse()
            .expect("DLOCK_SCALE_SECONDS is a number of seconds")
    });
    Duration::from_secs(seconds)
}

/// What one client saw.
#[derive(Default)]
struct Client {
    grants: u64,
    longest_wait: Duration,
}

/// One run's figures.
struct Run {
    sidecars: usize,
    grants_per_sidecar: Vec<u64>,
    clients: Vec<Client>,
    elapsed: Duration,
    /// The store's operations over the run, by counter.
    work: Counters,
}

impl Run {
    fn grants(&self) -> u64 {
        self.grants_per_sidecar.iter().sum()
    }

    fn rate(&self) -> f64 {
        self.grants() as f64 / self.elapsed.as_secs_f64()
    }

    fn line(&self, backend: Backend) -> String {
        let grants = self.grants();
        let fair = grants as f64 / self.sidecars as f64;
        let (low, high) = min_max(&self.grants_per_sidecar);
        let per_client: Vec<u64> = self.clients.iter().map(|c| c.grants).collect();
        let (client_low, client_high) = min_max(&per_client);
        let longest = self.clients.iter().map(|c| c.longest_wait).max().unwrap();
        let work: Vec<String> = self
            .work
            .iter()
            .map(|(name, count)| format!("{name} {:.1}", *count as f64 / grants as f64))
            .collect();
        format!(
            "scale: {backend:?} K={}: {:.0} grants/s; per sidecar {low}-{high} \
             (fair {fair:.0}, {:+.0}%..{:+.0}%); per client {client_low}-{client_high}; \
             longest wait {:.2} s; per grant: {}",
            self.sidecars,
            self.rate(),
            (low as f64 / fair - 1.0) * 100.0,
            (high as f64 / fair - 1.0) * 100.0,
            longest.as_secs_f64(),
            work.join(", ")
        )
    }
}

fn min_max(values: &[u64]) -> (u64, u64) {
    let low = values.iter().copied().min().unwrap_or(0);
    let high = values.iter().copied().max().unwrap_or(0);
    (low, high)
}

/// The component every sidecar of a run loads; Azure's through the counting proxy, since
/// Azurite counts nothing itself.
async fn component_file(backend: Backend) -> String {
    let metadata = match backend {
        Backend::AzureBlob => counted_azure_metadata().await,
        _ => backend.connection(),
    };
    let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    component("store", backend.type_name(), &pairs)
}

async fn run(backend: Backend, sidecars: usize) -> Run {
    let file = component_file(backend).await;
    let daemons: Vec<Dlockd> = (0..sidecars)
        .map(|i| {
            Dlockd::start(Options {
                program: std::env::var_os("DLOCK_BENCH_DLOCKD").map(|binary| vec![binary]),
                ..Options::with_component(&format!("scale-{i}"), file.clone())
            })
        })
        .collect();
    let mut locks = Vec::new();
    for daemon in &daemons {
        locks.push(daemon.locks().await);
    }
    let key = unique("scale");
    let before = counters(backend).await;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (locks, key, stop) = (locks[c % sidecars].clone(), key.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let owner = format!("client-{c}");
            let mut seen = Client::default();
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let answer = acquire_grpc(&locks, "store", &key, &owner, 10, 30_000)
                    .await
                    .expect("the acquire is answered");
                assert!(answer.acquired, "{owner} waited 30 s without a grant");
                seen.longest_wait = seen.longest_wait.max(asked.elapsed());
                seen.grants += 1;
                let release = ReleaseRequest {
                    store_name: "store".into(),
                    resource_id: key.clone(),
                    lock_owner: owner.clone(),
                    ..Default::default()
                };
                let released = locks.clone().release(release).await.expect("released");
                assert_eq!(released.into_inner().status, 0, "{owner}'s release");
            }
            seen
        }));
    }
    tokio::time::sleep(duration()).await;
    stop.store(true, Ordering::Relaxed);
    // Every client still waiting is granted once more and then stops: the run ends when the
    // line is empty, and those grants count too.
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let after = counters(backend).await;
    let mut grants_per_sidecar = vec![0; sidecars];
    for (c, client) in clients.iter().enumerate() {
        grants_per_sidecar[c % sidecars] += client.grants;
    }
    let work = before
        .iter()
        .zip(&after)
        .map(|((name, b), (_, a))| (*name, a - b))
        .collect();
    Run {
        sidecars,
        grants_per_sidecar,
        clients,
        elapsed,
        work,
    }
}

async fn measure(backend: Backend) {
    let one = run(backend, 1).await;
    eprintln!("{}", one.line(backend));
    let eight = run(backend, 8).await;
    eprintln!("{}", eight.line(backend));
    eprintln!(
        "scale: {backend:?}: K=8 hands over at {:.0}% of K=1's rate",
        eight.rate() / one.rate() * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn redis() {
    measure(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn postgresql() {
    measure(Backend::Postgresql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn mysql() {
    measure(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn etcd() {
    measure(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn zookeeper() {
    measure(Backend::Zookeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see the module's documentation"]
async fn azure_blob() {
    measure(Backend::AzureBlob).await;
}
