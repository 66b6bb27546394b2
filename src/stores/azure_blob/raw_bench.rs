//! The raw minimum a lock costs on the blob service, for the README's figures next to
//! `dlock bench`: one lease acquired and released on a blob, straight through this store's
//! client (the same HTTP stack and signing), no record, no checks. Not run by the suite:
//!
//! ```text
//! DLOCK_BENCH_AZURITE=127.0.0.1:10100 cargo test --release --lib raw_lease_pairs -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::account::{DEV_ACCOUNT, DEV_ACCOUNT_KEY};
use super::client::{BlobClient, LeaseAction, Written};
use super::lease_id;
use super::settings::Settings;
use crate::config::Metadata;

const PAIRS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_AZURITE"]
async fn raw_lease_pairs() {
    let address = std::env::var("DLOCK_BENCH_AZURITE").expect("DLOCK_BENCH_AZURITE=host:port");
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};\
         BlobEndpoint=http://{address}/{DEV_ACCOUNT};"
    );
    let metadata: Metadata = [
        ("connectionString", connection.as_str()),
        ("containerName", "dlock-bench"),
    ]
    .into_iter()
    .collect();
    let client = Arc::new(BlobClient::new(&Settings::from_metadata(&metadata).unwrap()).unwrap());
    client.create_container().await.unwrap();
    for clients in [1, 50] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let blob = format!("raw-{c}");
                client.create(&blob).await.unwrap();
                let id = lease_id(&blob);
                let mut latencies = Vec::new();
                for _ in 0..PAIRS / clients {
                    let pair = Instant::now();
                    let taken = client
                        .lease(&blob, LeaseAction::Acquire(&id), None)
                        .await
                        .unwrap();
                    assert!(matches!(taken, Written::Done(_)));
                    client
                        .lease(&blob, LeaseAction::Release(&id), None)
                        .await
                        .unwrap();
                    latencies.push(pair.elapsed());
                }
                latencies
            }));
        }
        let mut latencies: Vec<Duration> = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "raw lease acquire+release, {clients} clients: {:.0} pairs/s, p50 {:?}, p99 {:?} \
             (2 requests per pair)",
            latencies.len() as f64 / elapsed.as_secs_f64(),
            at(0.5),
            at(0.99)
        );
    }
}
