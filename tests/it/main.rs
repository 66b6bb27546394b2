//! The integration tests: one crate, so the suite links once. Every test talks to real
//! processes (dlockd, dlock, the Dapr SDKs) through their public interfaces.

mod api;
mod api_errors;
mod backend;
mod cli;
mod components;
mod conformance;
mod harness;
mod lifecycle;
mod locks;
mod locks_api;
mod redis;
mod sdk;
mod servers;
mod zookeeper;
