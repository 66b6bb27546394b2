//! How many blocking acquires (and held sessions still waiting for their grant) wait through
//! this sidecar for each lock, so Inspect and List can say how many wait. Both kinds of line
//! count alike, this sidecar's own (`sidecar_line.rs`) and its places in a store's line
//! (`store_line.rs`): a waiter counts from the moment its acquire starts waiting until it takes
//! the lock or gives up. Other sidecars' waiters are not counted: no store says how many wait.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::room;

/// The waiters of this sidecar, by store name and key, and their cap.
pub(crate) struct WaitingHere {
    counts: Mutex<Counts>,
    /// The most waiters at once (`--max-waiters`): each holds a task, a place in a line and,
    /// on some stores, a subscription, so one client must not open them without end.
    max: usize,
}

#[derive(Default)]
struct Counts {
    by_key: HashMap<(String, String), u32>,
    all: usize,
}

/// The sidecar already keeps its most waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyWaiters(pub(crate) usize);

impl Default for WaitingHere {
    fn default() -> Self {
        WaitingHere::with_max(usize::MAX)
    }
}

/// One waiter, counted until dropped.
pub(crate) struct Waiter<'a> {
    here: &'a WaitingHere,
    at: (String, String),
}

impl WaitingHere {
    pub(crate) fn with_max(max: usize) -> Self {
        WaitingHere {
            counts: Mutex::default(),
            max,
        }
    }

    /// Counts a waiter for `key` of `store` until the answer is dropped; none past the cap.
    pub(crate) fn wait(&self, store: &str, key: &str) -> Result<Waiter<'_>, TooManyWaiters> {
        let at = (store.to_string(), key.to_string());
        let mut counts = self.counts();
        if counts.all >= self.max {
            return Err(TooManyWaiters(self.max));
        }
        counts.all += 1;
        *counts.by_key.entry(at.clone()).or_default() += 1;
        Ok(Waiter { here: self, at })
    }

    /// How many wait for `key` of `store` through this sidecar.
    pub(crate) fn count(&self, store: &str, key: &str) -> u32 {
        let counts = self.counts();
        // The map is keyed by owned strings; a lookup without a waiter costs no allocation.
        if counts.all == 0 {
            return 0;
        }
        counts
            .by_key
            .get(&(store.to_string(), key.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Plain counts, each changed in one step: a panic elsewhere leaves them usable.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut counts = self.here.counts();
        counts.all -= 1;
        if let Some(count) = counts.by_key.get_mut(&self.at) {
            *count -= 1;
            if *count == 0 {
                counts.by_key.remove(&self.at);
                let (len, capacity) = (counts.by_key.len(), counts.by_key.capacity());
                if let Some(room) = room::shrink_to(len, capacity) {
                    counts.by_key.shrink_to(room);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::{sleep, timeout};

    use super::super::test_double::{acquire, DoubleStore};
    use super::super::TryLockOutcome;
    use super::*;

    #[test]
    fn a_waiter_counts_until_dropped() {
        let here = WaitingHere::default();
        let first = here.wait("s", "k");
        let second = here.wait("s", "k");
        let _other = here.wait("t", "k");
        assert_eq!(here.count("s", "k"), 2);
        drop(first);
        assert_eq!(here.count("s", "k"), 1);
        drop(second);
        assert_eq!(here.count("s", "k"), 0);
        assert_eq!(here.count("t", "k"), 1);
    }

    /// Inspect counts the acquires waiting here, in either kind of line, until they give up.
    #[tokio::test(start_paused = true)]
    async fn inspect_counts_the_waiters_of_this_sidecar() {
        for double in [DoubleStore::default(), DoubleStore::keeping_a_line()] {
            let service = Arc::new(double.service());
            let tried = service.try_lock(acquire("holder", 60, Duration::ZERO).lock);
            assert!(matches!(tried.await, Ok(TryLockOutcome::Granted(_))));
            let waiters: Vec<_> = ["w1", "w2"]
                .into_iter()
                .map(|owner| {
                    let service = service.clone();
                    tokio::spawn(async move {
                        let wait = Duration::from_secs(5);
                        service.acquire(acquire(owner, 60, wait)).await
                    })
                })
                .collect();
            sleep(Duration::from_secs(1)).await;
            let held = service.inspect("store", "r").await.unwrap().unwrap();
            assert_eq!(held.waiting, 2);
            for waiter in waiters {
                let answer = timeout(Duration::from_secs(10), waiter).await.unwrap();
                assert_eq!(answer.unwrap(), Ok(None));
            }
            let held = service.inspect("store", "r").await.unwrap().unwrap();
            assert_eq!(held.waiting, 0);
        }
    }
}
