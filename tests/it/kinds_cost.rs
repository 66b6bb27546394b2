//! What a lock of each kind costs its store, counted by the store itself: the commands,
//! statements or requests it served and the rows, keys or proposals it wrote, per plain try-lock +
//! unlock, per shared grant + release, and per reentrant re-entry + release, side by side. A benchmark that prints
//! figures, not a test (the servers are shared by the whole suite, so their counters move with
//! every other test); run it alone:
//!
//! `scripts/test.sh kinds_cost --ignored --nocapture 2>&1 | grep 'kinds cost'`

use std::sync::Arc;
use std::time::Duration;

use dlock::config::Metadata;
use dlock::lock::{Kind, LockStore};

use crate::contract::store;
use crate::store_counters::{counted_azure_metadata, counters};
use crate::support::backend::{unique, Backend};

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

async fn azure_store() -> Arc<dyn LockStore> {
    let metadata = counted_azure_metadata().await;
    let metadata: Metadata = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    dlock::startup::StoreTypes::new()
        .build("lock.azure.blobstorage", &metadata)
        .await
        .expect("this build has Azure Blob")
        .expect("the Azure store starts")
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
