//! How many blocking acquires (and held sessions still waiting for their grant) wait through
//! this sidecar for each lock, so Inspect and List can say how many wait. Both kinds of line
//! count alike, this sidecar's own (`sidecar_line.rs`) and its places in a store's line
//! (`store_line.rs`): a waiter counts from the moment its acquire starts waiting until it takes
//! the lock or gives up. Other sidecars' waiters are not counted: no store says how many wait.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The waiters of this sidecar, by store name and key.
#[derive(Default)]
pub(crate) struct WaitingHere {
    counts: Mutex<HashMap<(String, String), u32>>,
}

/// One waiter, counted until dropped.
pub(crate) struct Waiter<'a> {
    here: &'a WaitingHere,
    at: (String, String),
}

impl WaitingHere {
    /// Counts a waiter for `key` of `store` until the answer is dropped.
    pub(crate) fn wait(&self, store: &str, key: &str) -> Waiter<'_> {
        let at = (store.to_string(), key.to_string());
        *self.counts().entry(at.clone()).or_default() += 1;
        Waiter { here: self, at }
    }

    /// How many wait for `key` of `store` through this sidecar.
    pub(crate) fn count(&self, store: &str, key: &str) -> u32 {
        let counts = self.counts();
        // The map is keyed by owned strings; a lookup without a waiter costs no allocation.
        if counts.is_empty() {
            return 0;
        }
        counts
            .get(&(store.to_string(), key.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<(String, String), u32>> {
        // Plain counts, each changed in one step: a panic elsewhere leaves them usable.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut counts = self.here.counts();
        if let Some(count) = counts.get_mut(&self.at) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.at);
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
