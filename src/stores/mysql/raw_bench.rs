//! What a lock costs on MySQL or MariaDB without the sidecar, for the figures
//! scripts/bench-sql.sh sets beside `dlock bench`: the store's own take and release
//! statements, one pair after the other on each client's key (a take of a key released before
//! meets its expired row: the insert fails on the key, the row is deleted, the insert runs
//! again).
//! `raw_pairs` runs them through the store's own pool, as `try_lock` and `unlock` do, minus
//! gRPC and the lock service. Not run by the suite:
//!
//! ```text
//! DLOCK_BENCH_MYSQL='user:password@tcp(127.0.0.1:3306)/' \
//!   cargo test --release --lib mysql::raw_bench -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::{micros, take, MysqlStore, Take};
use crate::config::Metadata;
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
                let ttl = micros(Duration::from_secs(60));
                let key: &str = &key;
                let taken = store
                    .run(|mut conn, s| async move { take(&mut conn, s, key, key, ttl).await })
                    .await
                    .unwrap();
                assert!(
                    matches!(taken, Take::Granted(_)),
                    "the take of {key} was refused"
                );
                let released = store
                    .run(|mut conn, s| async move {
                        conn.exec_drop(&s.release, (key, key)).await?;
                        Ok(conn.affected_rows())
                    })
                    .await
                    .unwrap();
                assert_eq!(released, 1, "{key} was not released");
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
