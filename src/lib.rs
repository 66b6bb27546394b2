//! dlock: a Dapr-compatible distributed-lock sidecar (`dlockd`) and its command-line client
//! (`dlock`). The library holds everything both binaries and the integration tests share.

pub mod api;
pub mod cli;
pub mod config;
pub mod interrupt;
pub mod lock;
pub mod metrics;
pub(crate) mod percentile;
pub mod proto;
pub mod startup;
pub(crate) mod stores;
