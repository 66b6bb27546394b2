//! Prometheus metrics: daprd's own names for the requests dlockd serves (`daprd.rs`), dlock's
//! under `dlock_` (`dlock.rs`), the process's memory and CPU (`process.rs`); the layers that
//! time every HTTP request and gRPC call (`layers.rs`); and the port they are served on
//! (`endpoint.rs`). Every metric carries daprd's `app_id` label.
//!
//! Built on the `prometheus` crate because it keeps a name exactly as given: daprd's counters
//! have no `_total` suffix, and a library that adds one would break daprd's dashboards.

pub(crate) mod daprd;
mod dlock;
pub mod endpoint;
pub(crate) mod layers;
mod process;

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::{Encoder, Registry, TextEncoder};

use crate::lock::{events, watched, LockService};

/// The sidecar's metrics; one per process.
pub struct Metrics {
    registry: Registry,
    pub(crate) daprd: daprd::Daprd,
    dlock: dlock::Dlock,
    process: process::Process,
}

impl Metrics {
    /// The metrics of a sidecar with this app id, counting the core's events and store calls
    /// from now on.
    pub fn new(app_id: &str) -> Arc<Metrics> {
        let labels = HashMap::from([("app_id".to_string(), app_id.to_string())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("a valid app_id label");
        let metrics = Arc::new(Metrics {
            daprd: daprd::Daprd::new(&registry).expect("distinct valid metric names"),
            dlock: dlock::Dlock::new(&registry).expect("distinct valid metric names"),
            process: process::Process::new(&registry).expect("distinct valid metric names"),
            registry,
        });
        let counted = metrics.clone();
        events::observe(move |event| counted.dlock.event(event));
        let timed = metrics.clone();
        watched::observe_calls(move |store, operation, took| {
            timed.dlock.store_call(store, operation, took)
        });
        metrics
    }

    /// Everything, in Prometheus's text format, with the gauges read from `locks` now.
    pub fn render(&self, locks: &LockService) -> String {
        self.dlock.read_gauges(locks);
        self.process.read();
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("the text encoder writes to memory");
        String::from_utf8(text).expect("the text format is UTF-8")
    }
}
