//! What a lock costs on etcd without the sidecar, for the figures scripts/bench.sh sets beside
//! `dlock bench`: a put on a lease guarded by "the key does not exist", then a delete, each one
//! transaction through the store's own client (etcd's `concurrency.Mutex` at its floor on a
//! session lease: two writes per pair). Not run by the suite:
//!
//! ```text
//! DLOCK_BENCH_ETCD=127.0.0.1:2379 cargo test --release --lib etcd::raw_bench -- --ignored --nocapture
//! ```

use super::client::{Client, Sent};
use super::requests::{absent, delete, put};
use super::settings::Settings;
use crate::config::Metadata;
use crate::proto::etcd::etcdserverpb::{request_op::Request as Op, RequestOp, TxnRequest};
use crate::stores::sql::raw_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_ETCD"]
async fn raw_pairs() {
    let address = std::env::var("DLOCK_BENCH_ETCD").expect("DLOCK_BENCH_ETCD=host:port");
    let metadata: Metadata = [("endpoints", address.as_str())].into_iter().collect();
    let client =
        std::sync::Arc::new(Client::new(&Settings::from_metadata(&metadata).unwrap()).unwrap());
    let lease = client.grant(60).await.unwrap().id;
    for clients in raw_bench::client_counts() {
        let client = client.clone();
        raw_bench::measure("etcd put+delete", clients, move |key| {
            let client = client.clone();
            async move {
                let path = format!("raw-bench/{key}").into_bytes();
                let take = TxnRequest {
                    compare: vec![absent(&path)],
                    success: vec![put(&path, b"o", lease)],
                    failure: Vec::new(),
                };
                let taken = match client.txn(take).await.unwrap() {
                    Sent::Answered(answer) => answer.succeeded,
                    Sent::Unknown(why) => panic!("the put of {key} went unanswered: {why}"),
                };
                assert!(taken, "the put of {key} was refused");
                let release = TxnRequest {
                    compare: Vec::new(),
                    success: vec![RequestOp {
                        request: Some(Op::RequestDeleteRange(delete(&path))),
                    }],
                    failure: Vec::new(),
                };
                assert!(matches!(
                    client.txn(release).await.unwrap(),
                    Sent::Answered(_)
                ));
            }
        })
        .await;
    }
    client.revoke(lease).await.unwrap();
}
