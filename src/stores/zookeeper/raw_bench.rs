//! What a lock costs on ZooKeeper without the sidecar, for the figures scripts/bench.sh sets
//! beside `dlock bench`: the least a lock needs, an ephemeral sequential node created under
//! the key's node and deleted, on one session of the client library the store uses. Not run
//! by the suite:
//!
//! ```text
//! DLOCK_BENCH_ZOOKEEPER=127.0.0.1:2181 cargo test --release --lib zookeeper::raw_bench -- --ignored --nocapture
//! ```
//!
//! `raw_pairs` is the bare floor scripts/bench.sh prints; `raw_entry_pairs` is the same pair
//! the way the store enters a line, its create in one multi-request with a write of the key's
//! node (`tree.rs` says why), so the two together tell the protocol's share of the gap from
//! dlockd's own.

use std::future::Future;

use zookeeper_client::{Acls, Client, CreateMode};

use crate::stores::sql::raw_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_ZOOKEEPER"]
async fn raw_pairs() {
    each_client_count("zookeeper create+delete", |client, key_node| async move {
        let prefix = format!("{key_node}/lock-");
        let (_, sequence) = client.create(&prefix, b"o", &contender()).await.unwrap();
        let node = format!("{prefix}{sequence}");
        client.delete(&node, None).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_ZOOKEEPER"]
async fn raw_entry_pairs() {
    each_client_count(
        "zookeeper multi(create+setData)+delete",
        |client, key_node| async move {
            let prefix = format!("{key_node}/lock-");
            let mut writer = client.new_multi_writer();
            writer.add_create(&prefix, b"o", &contender()).unwrap();
            writer.add_set_data(&key_node, &[], None).unwrap();
            let results = writer.commit().await.unwrap();
            let zookeeper_client::MultiWriteResult::Create { path, .. } = &results[0] else {
                panic!("the multi's first answer is not its create: {results:?}");
            };
            client.delete(path, None).await.unwrap();
        },
    )
    .await;
}

fn contender() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::EphemeralSequential.with_acls(Acls::anyone_all())
}

/// Runs `pair` at each client count, each client on a key node of its own made once, as the
/// store makes a key's node once, all on one session.
async fn each_client_count<F, Fut>(what: &str, pair: F)
where
    F: Fn(Client, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let address = std::env::var("DLOCK_BENCH_ZOOKEEPER").expect("DLOCK_BENCH_ZOOKEEPER=host:port");
    let client = Client::connect(&address).await.unwrap();
    let root = format!("/raw-bench-{}", std::process::id());
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create(&root, &[], &persistent).await.unwrap();
    for clients in raw_bench::client_counts() {
        for c in 0..clients {
            let node = format!("{root}/raw-{c}");
            match client.create(&node, &[], &persistent).await {
                Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
                Err(error) => panic!("{node}: {error}"),
            }
        }
        let (client, root, pair) = (client.clone(), root.clone(), pair.clone());
        raw_bench::measure(what, clients, move |key| {
            pair(client.clone(), format!("{root}/{key}"))
        })
        .await;
    }
}
