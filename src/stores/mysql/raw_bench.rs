//! What a lock costs on MySQL or MariaDB without the sidecar, for the figures
//! scripts/bench.sh sets beside `dlock bench`: the store's own `try_lock` and `unlock`
//! (minus gRPC and the lock service), one pair after the other on each client's key. A take of
//! a key released before meets its expired row: the insert fails on the key, the row is
//! deleted, the insert runs again. Not run by the suite:
//!
//! ```text
//! DLOCK_BENCH_MYSQL='user:password@tcp(127.0.0.1:3306)/' \
//!   cargo test --release --lib mysql::raw_bench -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::Duration;

use super::MysqlStore;
use crate::config::Metadata;
use crate::lock::{LockStore, OwnerChecked, TryLockOutcome};
use crate::stores::sql::raw_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_MYSQL"]
async fn raw_pairs() {
    let store = connect().await;
    for clients in raw_bench::client_counts() {
        let store = store.clone();
        raw_bench::measure("mysql take+release", clients, move |key| {
            let store = store.clone();
            async move {
                let taken = store.try_lock(&key, &key, Duration::from_secs(60)).await;
                let granted = matches!(taken, Ok(TryLockOutcome::Granted(_)));
                assert!(granted, "the take of {key} was refused: {taken:?}");
                let released = store.unlock(&key, &key).await;
                assert_eq!(released, Ok(OwnerChecked::Applied), "{key}");
            }
        })
        .await;
    }
}

/// The store, connected (the table made) as the bench's component says.
async fn connect() -> Arc<MysqlStore> {
    let dsn = std::env::var("DLOCK_BENCH_MYSQL").expect("DLOCK_BENCH_MYSQL=<a DSN>");
    let metadata: Metadata = [("connectionString", dsn.as_str())].into_iter().collect();
    MysqlStore::connect(&metadata).await.unwrap()
}
