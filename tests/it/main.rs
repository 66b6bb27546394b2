//! The integration tests: one crate, so the suite links once. Every test talks to real
//! processes (dlockd, dlock, the Dapr SDKs) through their public interfaces.

mod api;
mod api_errors;
mod backend;
mod certs;
mod cli;
mod components;
mod conformance;
mod contract;
mod etcd;
mod harness;
mod lifecycle;
mod locks;
mod locks_api;
mod redis;
mod redis_topologies;
mod sdk;
mod servers;
mod zookeeper;
