//! What a lock costs on MySQL or MariaDB without the sidecar, for the figures
//! scripts/bench-sql.sh sets beside `dlock bench`: the store's own take (the uncontended
//! insert) and release statements, one pair after the other on each client's key.
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

use super::{micros, MysqlStore};
use crate::config::Metadata;
use crate::stores::sql::raw_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_MYSQL"]
async fn raw_pairs() {
    let store = connect().await;
    for clients in raw_bench::client_counts() {
        let store = store.clone();
        raw_bench::measure("mysql insert+delete", clients, move |key| {
            let store = store.clone();
            async move {
                let ttl = micros(Duration::from_secs(60));
                let key: &str = &key;
                let taken = store
                    .run(|mut conn, s| async move {
                        conn.exec_drop(&s.insert, (key, key, key, ttl)).await?;
                        Ok(conn.affected_rows())
                    })
                    .await
                    .unwrap();
                assert_eq!(taken, 1, "the take of {key} was refused");
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
