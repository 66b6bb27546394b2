//! The integration tests: one crate, so the suite links once. Every test talks to real
//! processes (dlockd, dlock, the Dapr SDKs) through their public interfaces; what the tests
//! share lives in `support`.

// The tests stop, freeze and signal the processes they start, and ask whether they run as
// root, through libc.
#![allow(
    unsafe_code,
    clippy::undocumented_unsafe_blocks,
    reason = "process signals and ids through libc"
)]

mod azure_blob;
mod bounds;
mod cli;
mod components;
mod configuration;
mod conformance;
mod console;
mod contract;
mod dapr_api;
mod dropin;
mod etcd;
mod etcd_lost_answers;
mod faults;
mod fuzz;
mod health;
mod keyspace;
mod kinds_cost;
mod lifecycle;
mod locks_api;
mod messages;
mod metrics;
mod mysql;
mod postgresql;
mod reconnect;
mod redis;
mod redis_topologies;
mod reload;
mod scale;
mod sdk;
mod slow_clients;
mod sql_stores;
mod support;
mod top;
mod zookeeper;
