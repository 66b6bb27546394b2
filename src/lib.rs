//! dlock: a Dapr-compatible distributed-lock sidecar (`dlockd`) and its command-line client
//! (`dlock`). The library holds everything both binaries and the integration tests share.

// Public is what the binaries, the integration tests and the examples use, and nothing more:
// everything else is `pub(crate)`, which this lint keeps so (a `pub` item that nothing outside
// can reach is a warning), and the helpers only the tests use are behind `test-support`.
#![warn(unreachable_pub)]
// A build without every store (Cargo.toml's features) leaves parts of the kit the stores share
// unused: typed metadata readers, the SQL stores' common code. Dead code is found by the full
// build, which the lints and the tests run.
#![cfg_attr(
    not(all(
        feature = "redis",
        feature = "etcd",
        feature = "zookeeper",
        feature = "postgresql",
        feature = "mysql",
        feature = "azure-blob"
    )),
    allow(dead_code)
)]

pub mod api;
pub mod cli;
pub mod config;
pub mod interrupt;
pub mod lock;
pub mod metrics;
pub(crate) mod percentile;
#[allow(unused_qualifications, reason = "the code tonic-prost-build generates")]
pub mod proto;
pub(crate) mod room;
pub mod startup;
pub(crate) mod stores;
