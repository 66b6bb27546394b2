//! What a lock costs on MySQL or MariaDB without the sidecar, for the figures
//! scripts/bench-sql.sh sets beside `dlock bench`: the store's own take (the uncontended
//! insert) and release statements, one pair after the other on each client's key.
//! `raw_pairs` runs them through the store's own pool, as `try_lock` and `unlock` do, minus
//! gRPC and the lock service; `raw_pairs_kept_sessions` through a pool of the same size that
//! keeps idle connections open (mysql_async closes them at once unless given an inactive
//! connection TTL) and their sessions as they were (no `COM_RESET_CONNECTION`, so the
//! prepared statements stay), the least the driver can do. Not run by the suite:
//!
//! ```text
//! DLOCK_BENCH_MYSQL='user:password@tcp(127.0.0.1:3306)/' \
//!   cargo test --release --lib mysql::raw_bench -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, PoolConstraints, PoolOpts};

use super::settings::Settings;
use super::{micros, options, MysqlStore, POOL_SIZE};
use crate::config::Metadata;
use crate::stores::sql::raw_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_MYSQL"]
async fn raw_pairs() {
    let (store, _) = connect().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_MYSQL"]
async fn raw_pairs_kept_sessions() {
    let (store, settings) = connect().await;
    let pool = Pool::new(
        options(&settings).pool_opts(
            PoolOpts::default()
                .with_constraints(PoolConstraints::new(0, POOL_SIZE).expect("0 ≤ the pool's size"))
                .with_inactive_connection_ttl(Duration::from_secs(60))
                .with_reset_connection(false),
        ),
    );
    for clients in raw_bench::client_counts() {
        let (pool, store) = (pool.clone(), store.clone());
        raw_bench::measure(
            "mysql insert+delete, connections kept",
            clients,
            move |key| {
                let (pool, store) = (pool.clone(), store.clone());
                async move {
                    let s = &store.statements;
                    let ttl = micros(Duration::from_secs(60));
                    let key: &str = &key;
                    let mut conn = pool.get_conn().await.unwrap();
                    conn.exec_drop(&s.insert, (key, key, key, ttl))
                        .await
                        .unwrap();
                    assert_eq!(conn.affected_rows(), 1, "the take of {key} was refused");
                    drop(conn);
                    let mut conn = pool.get_conn().await.unwrap();
                    conn.exec_drop(&s.release, (key, key)).await.unwrap();
                    assert_eq!(conn.affected_rows(), 1, "{key} was not released");
                }
            },
        )
        .await;
    }
}

/// The store, connected (the table made) as the bench's component says, and its settings.
async fn connect() -> (Arc<MysqlStore>, Settings) {
    let dsn = std::env::var("DLOCK_BENCH_MYSQL").expect("DLOCK_BENCH_MYSQL=<a DSN>");
    let metadata: Metadata = [("connectionString", dsn.as_str())].into_iter().collect();
    let settings = Settings::from_metadata(&metadata).unwrap();
    (MysqlStore::connect(&metadata).await.unwrap(), settings)
}
