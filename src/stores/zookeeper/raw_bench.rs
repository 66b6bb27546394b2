//! What a lock costs on ZooKeeper without the sidecar, for the figures scripts/bench.sh sets
//! beside `dlock bench`: the least a lock needs, an ephemeral sequential node created under
//! the key's node and deleted, on one session of the client library the store uses. Not run
//! by the suite:
//!
//! ```text
//! DLOCK_BENCH_ZOOKEEPER=127.0.0.1:2181 cargo test --release --lib zookeeper::raw_bench -- --ignored --nocapture
//! ```

use zookeeper_client::{Acls, Client, CreateMode};

use crate::stores::sql::raw_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_ZOOKEEPER"]
async fn raw_pairs() {
    let address = std::env::var("DLOCK_BENCH_ZOOKEEPER").expect("DLOCK_BENCH_ZOOKEEPER=host:port");
    let client = Client::connect(&address).await.unwrap();
    let root = format!("/raw-bench-{}", std::process::id());
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create(&root, &[], &persistent).await.unwrap();
    for clients in raw_bench::client_counts() {
        for c in 0..clients {
            // Each client's key node, made once, as the store makes a key's node once.
            let node = format!("{root}/raw-{c}");
            match client.create(&node, &[], &persistent).await {
                Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
                Err(error) => panic!("{node}: {error}"),
            }
        }
        let (client, root) = (client.clone(), root.clone());
        raw_bench::measure("zookeeper create+delete", clients, move |key| {
            let (client, prefix) = (client.clone(), format!("{root}/{key}/lock-"));
            async move {
                let contender = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
                let (_, sequence) = client.create(&prefix, b"o", &contender).await.unwrap();
                client
                    .delete(&format!("{prefix}{sequence}"), None)
                    .await
                    .unwrap();
            }
        })
        .await;
    }
}
