//! What a lock costs on PostgreSQL without the sidecar, for the figures scripts/bench.sh
//! sets beside `dlock bench`: the store's own take and release statements, one pair after the
//! other on each client's key, through the store's own pool and prepared-statement cache (the
//! path `try_lock` and `unlock` take, minus gRPC and the lock service). Not run by the suite:
//!
//! ```text
//! DLOCK_BENCH_POSTGRES='host=127.0.0.1 port=5432 user=… password=… dbname=postgres' \
//!   cargo test --release --lib postgresql::raw_bench -- --ignored --nocapture
//! ```

use std::time::Duration;

use super::PostgresStore;
use crate::config::Metadata;
use crate::stores::sql::{self, raw_bench};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_POSTGRES"]
async fn raw_pairs() {
    let connection =
        std::env::var("DLOCK_BENCH_POSTGRES").expect("DLOCK_BENCH_POSTGRES=<connection string>");
    let metadata: Metadata = [("connectionString", connection.as_str())]
        .into_iter()
        .collect();
    let store = PostgresStore::connect(&metadata).await.unwrap();
    let ttl = sql::ttl_millis(Duration::from_secs(60));
    for clients in raw_bench::client_counts() {
        let store = store.clone();
        raw_bench::measure("postgresql take+release", clients, move |key| {
            let store = store.clone();
            async move {
                let key: &str = &key;
                let taken = store.query(|s| &s.take, &[&key, &key, &ttl]).await.unwrap();
                assert_eq!(taken.len(), 1, "the take of {key} was refused");
                let released = store.query(|s| &s.release, &[&key, &key]).await.unwrap();
                assert!(released[0].get::<_, bool>(0), "{key} was not released");
            }
        })
        .await;
    }
}
