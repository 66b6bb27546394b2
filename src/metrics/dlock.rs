//! dlock's own metrics, under `dlock_`: what happened to locks and stores, counted from the
//! core's events (so they tell the same story as the console's feed), the store calls' latency
//! from the call observers, and the gauges read when Prometheus scrapes (locks held through
//! this sidecar, store health). Labels are store names, operations and outcomes only: resource
//! ids and owners are unbounded, and may be sensitive, so they never become labels.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::daprd::{counter, histogram};
use crate::lock::events::{ComponentChange, Event, What};
use crate::lock::{Health, LockService, Mode, OwnerChecked};

/// A lock mode as a label value.
fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Exclusive => "exclusive",
        Mode::Shared => "shared",
    }
}

/// Seconds, from a millisecond to ten minutes: a wait for a lock and a store call both.
const SECONDS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 600.0,
];

pub(crate) struct Dlock {
    grants: IntCounterVec,
    refusals: IntCounterVec,
    releases: IntCounterVec,
    expiries: IntCounterVec,
    lost: IntCounterVec,
    force_releases: IntCounterVec,
    store_failures: IntCounterVec,
    component_changes: IntCounterVec,
    wait: HistogramVec,
    store_calls: HistogramVec,
    held: IntGaugeVec,
    store_up: IntGaugeVec,
}

impl Dlock {
    pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
        let store = ["store"];
        let by_mode = ["store", "mode"];
        Ok(Dlock {
            grants: counter(
                registry,
                "dlock_lock_grants_total",
                "Locks granted through this sidecar (TryLock, blocking acquires, held sessions), \
                 by mode: exclusive, shared.",
                &by_mode,
            )?,
            refusals: counter(
                registry,
                "dlock_lock_refusals_total",
                "Locks refused because another owner held them (TryLock, or a blocking \
                 acquire whose wait ran out), by mode: exclusive, shared.",
                &by_mode,
            )?,
            releases: counter(
                registry,
                "dlock_lock_releases_total",
                "Releases asked through this sidecar, by the store's answer: released, \
                 not_held (LOCK_DOES_NOT_EXIST), held_by_other (LOCK_BELONGS_TO_OTHERS).",
                &["store", "outcome"],
            )?,
            expiries: counter(
                registry,
                "dlock_lock_expiries_total",
                "Locks granted through this sidecar that reached their expiry unreleased.",
                &store,
            )?,
            lost: counter(
                registry,
                "dlock_locks_lost_total",
                "Held sessions that lost their lock.",
                &store,
            )?,
            force_releases: counter(
                registry,
                "dlock_force_releases_total",
                "Locks released by an operator, whoever held them.",
                &store,
            )?,
            store_failures: counter(
                registry,
                "dlock_store_failures_total",
                "Times a store began failing (its first failed call after serving).",
                &store,
            )?,
            component_changes: counter(
                registry,
                "dlock_component_reloads_total",
                "Component files changed under the running sidecar, by change: added, \
                 changed, removed, rejected (did not load; the running version stays).",
                &["store", "change"],
            )?,
            wait: histogram(
                registry,
                "dlock_lock_wait_seconds",
                "Time blocking acquires and held sessions waited for a lock, by outcome \
                 (granted, or refused when the wait ran out) and mode.",
                &SECONDS,
                &["store", "outcome", "mode"],
            )?,
            store_calls: histogram(
                registry,
                "dlock_store_request_duration_seconds",
                "Time each call to a lock store took, failed calls included.",
                &SECONDS,
                &["store", "operation"],
            )?,
            held: gauge(
                registry,
                "dlock_locks_held",
                "Locks granted through this sidecar and not released or expired yet.",
            )?,
            store_up: gauge(
                registry,
                "dlock_store_healthy",
                "1 while the store's last call succeeded, 0 while it is failing.",
            )?,
        })
    }

    /// Counts one event.
    pub(crate) fn event(&self, event: &Event) {
        let store = event.store.as_str();
        match &event.what {
            What::Granted { waited, mode, .. } => {
                let mode = mode_label(*mode);
                self.grants.with_label_values(&[store, mode]).inc();
                self.waited(store, "granted", mode, *waited);
            }
            What::Refused { waited, mode } => {
                let mode = mode_label(*mode);
                self.refusals.with_label_values(&[store, mode]).inc();
                self.waited(store, "refused", mode, *waited);
            }
            What::Released { outcome } => {
                let outcome = match outcome {
                    OwnerChecked::Applied => "released",
                    OwnerChecked::NotHeld => "not_held",
                    OwnerChecked::HeldByOther => "held_by_other",
                };
                self.releases.with_label_values(&[store, outcome]).inc();
            }
            What::Expired => self.expiries.with_label_values(&[store]).inc(),
            What::Lost { .. } => self.lost.with_label_values(&[store]).inc(),
            What::ForceReleased => self.force_releases.with_label_values(&[store]).inc(),
            What::StoreFailing { .. } => self.store_failures.with_label_values(&[store]).inc(),
            What::StoreRecovered { .. } => {}
            What::Component { change } => {
                let change = match change {
                    ComponentChange::Added => "added",
                    ComponentChange::Changed => "changed",
                    ComponentChange::Removed => "removed",
                    ComponentChange::Rejected { .. } => "rejected",
                };
                self.component_changes
                    .with_label_values(&[store, change])
                    .inc();
            }
        }
    }

    fn waited(&self, store: &str, outcome: &str, mode: &str, waited: Option<Duration>) {
        if let Some(waited) = waited {
            self.wait
                .with_label_values(&[store, outcome, mode])
                .observe(waited.as_secs_f64());
        }
    }

    /// Times one store call.
    pub(crate) fn store_call(&self, store: &str, operation: &str, took: Duration) {
        self.store_calls
            .with_label_values(&[store, operation])
            .observe(took.as_secs_f64());
    }

    /// Sets the gauges from the service as it is now, for every loaded store (a store that
    /// is gone drops out).
    pub(crate) fn read_gauges(&self, locks: &LockService) {
        let held = locks.held_here();
        self.held.reset();
        self.store_up.reset();
        for store in locks.registry().iter() {
            let name = store.name.as_str();
            let count = held.get(name).copied().unwrap_or(0);
            self.held
                .with_label_values(&[name])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
            let up = matches!(store.health(), Health::Ok);
            self.store_up.with_label_values(&[name]).set(i64::from(up));
        }
    }
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGaugeVec> {
    let family = IntGaugeVec::new(Opts::new(name, help), &["store"])?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}
