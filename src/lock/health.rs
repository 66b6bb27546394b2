//! Each store's health, kept once here for every store: every call's outcome is recorded
//! (`watched.rs` sees them all), so an outage is logged when it starts (warn), reminded at most
//! once a minute while it lasts (warn), and logged when it ends (info); and the API and
//! `dlock status` can say which store is failing, since when, and why.
//!
//! Calls alone would leave an idle sidecar blind to an outage, so a background probe
//! (`probe.rs`) asks every store a cheap question at a set interval and records the answer
//! here too.
//!
//! A store that is merely asked for something it cannot do (`StoreError::Unsupported`) is not
//! failing; every other error is. Daprd's `/v1.0/healthz` endpoints do not read this: SDKs
//! wait on them at start-up, and daprd keeps them healthy through a store outage too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::events::{self, What};
use super::StoreError;

/// How often a store that keeps failing is logged again.
const REMINDER: Duration = Duration::from_secs(60);

/// A store's health as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    Ok,
    Failing {
        /// When the first call of this outage failed, by the wall clock.
        since: SystemTime,
        /// How long it has been failing, by the monotonic clock.
        lasted: Duration,
        /// The last failed call's error.
        last_error: String,
    },
}

/// What a recorded outcome changed, and so what is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The first failure after a success (or since start-up).
    Failing,
    /// Still failing, and the last warning is a minute old.
    Reminder,
    /// A success after failures.
    Recovered,
}

/// What an outcome came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A call an application's request made.
    Call,
    /// The background probe.
    Probe,
}

/// One store's health record.
pub(crate) struct StoreHealth {
    /// The store's name, and where it points (`LoadedStore::location`), for the log lines.
    name: String,
    location: String,
    /// Whether the store is failing, read without the lock so that a healthy store's calls
    /// cost one atomic load.
    failing: AtomicBool,
    outage: Mutex<Option<Outage>>,
}

struct Outage {
    since: SystemTime,
    started: Instant,
    last_warned: Instant,
    failed_calls: u64,
    last_error: String,
}

impl StoreHealth {
    pub(crate) fn new(name: &str, location: &str) -> Self {
        StoreHealth {
            name: name.to_string(),
            location: location.to_string(),
            failing: AtomicBool::new(false),
            outage: Mutex::new(None),
        }
    }

    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Records a call's outcome, logging the change it makes, if any.
    pub(crate) fn record<T>(&self, outcome: &Result<T, StoreError>) {
        self.seen(outcome, Seen::Call);
    }

    /// Records a health probe's outcome (`probe.rs`): it moves the store's health as a call
    /// does, but is not counted among the failed calls an outage reports.
    pub(crate) fn record_probe(&self, outcome: &Result<(), StoreError>) {
        self.seen(outcome, Seen::Probe);
    }

    fn seen<T>(&self, outcome: &Result<T, StoreError>, how: Seen) {
        match outcome {
            Ok(_) => {
                if self.failing.load(Ordering::Relaxed) {
                    self.succeeded();
                }
            }
            Err(StoreError::Unsupported(_)) => {}
            Err(error) => {
                self.failed(error, how);
            }
        }
    }

    pub(crate) fn now(&self) -> Health {
        match &*self.lock() {
            None => Health::Ok,
            Some(outage) => Health::Failing {
                since: outage.since,
                lasted: outage.started.elapsed(),
                last_error: outage.last_error.clone(),
            },
        }
    }

    fn succeeded(&self) -> Option<Change> {
        let mut outage = self.lock();
        let ended = outage.take()?;
        self.failing.store(false, Ordering::Relaxed);
        tracing::info!(
            store = %self.name,
            "lock store {} ({}) recovered after failing for {:.1}s ({} failed calls)",
            self.name,
            self.location,
            ended.started.elapsed().as_secs_f64(),
            ended.failed_calls
        );
        let recovered = What::StoreRecovered {
            after: ended.started.elapsed(),
            failed_calls: ended.failed_calls,
        };
        events::publish(&self.name, "", "", recovered);
        Some(Change::Recovered)
    }

    fn failed(&self, error: &StoreError, how: Seen) -> Option<Change> {
        let calls = u64::from(how == Seen::Call);
        let mut outage = self.lock();
        let now = Instant::now();
        let change = match &mut *outage {
            None => {
                *outage = Some(Outage {
                    since: SystemTime::now(),
                    started: now,
                    last_warned: now,
                    failed_calls: calls,
                    last_error: error.to_string(),
                });
                self.failing.store(true, Ordering::Relaxed);
                tracing::warn!(
                    store = %self.name,
                    "lock store {} ({}) is failing: {error}",
                    self.name,
                    self.location
                );
                let failing = What::StoreFailing {
                    error: error.to_string(),
                };
                events::publish(&self.name, "", "", failing);
                Change::Failing
            }
            Some(outage) => {
                outage.failed_calls += calls;
                outage.last_error = error.to_string();
                if now.duration_since(outage.last_warned) < REMINDER {
                    return None;
                }
                outage.last_warned = now;
                tracing::warn!(
                    store = %self.name,
                    "lock store {} ({}) is still failing, for {:.0}s ({} failed calls): {error}",
                    self.name,
                    self.location,
                    now.duration_since(outage.started).as_secs_f64(),
                    outage.failed_calls
                );
                Change::Reminder
            }
        };
        Some(change)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        // The record is plain data: a panic elsewhere while holding it leaves it usable.
        self.outage.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> StoreError {
        StoreError::unavailable("connection refused")
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_logged_when_it_starts_each_minute_and_when_it_ends() {
        let health = StoreHealth::new("s", "lock.double");
        assert_eq!(health.now(), Health::Ok);
        assert_eq!(health.failed(&down(), Seen::Call), Some(Change::Failing));
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(5)).await;
            assert_eq!(health.failed(&down(), Seen::Call), None);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(health.failed(&down(), Seen::Call), Some(Change::Reminder));
        assert_eq!(health.failed(&down(), Seen::Call), None);
        match health.now() {
            Health::Failing {
                lasted, last_error, ..
            } => {
                assert_eq!(lasted, Duration::from_secs(60));
                assert_eq!(last_error, "lock store unavailable: connection refused");
            }
            Health::Ok => panic!("the store is failing"),
        }
        assert_eq!(health.succeeded(), Some(Change::Recovered));
        assert_eq!(health.succeeded(), None);
        assert_eq!(health.now(), Health::Ok);
        assert_eq!(health.failed(&down(), Seen::Call), Some(Change::Failing));
    }

    #[test]
    fn a_call_the_store_cannot_do_is_not_a_failure() {
        let health = StoreHealth::new("s", "lock.double");
        health.record::<()>(&Err(StoreError::Unsupported("listing")));
        assert_eq!(health.now(), Health::Ok);
        health.record::<()>(&Err(StoreError::failed("bad answer")));
        assert!(matches!(health.now(), Health::Failing { .. }));
        health.record(&Ok(()));
        assert_eq!(health.now(), Health::Ok);
    }
}
