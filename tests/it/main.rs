//! The integration tests: one crate, so the suite links once. Every test talks to real
//! processes (dlockd, dlock, the Dapr SDKs) through their public interfaces; what the tests
//! share lives in `support`.

mod azure_blob;
mod cli;
mod components;
mod conformance;
mod contract;
mod dapr_api;
mod dropin;
mod etcd;
mod keyspace;
mod lifecycle;
mod locks_api;
mod reconnect;
mod redis;
mod redis_topologies;
mod sdk;
mod support;
mod zookeeper;
