//! This sidecar's own line of waiters per key, for stores that keep none
//! (`Capabilities::line` off): blocking acquires for one key on this sidecar are served first
//! come, first served, and a release made through this sidecar wakes the first in line at once,
//! without waiting for the store's signal or a poll.
//!
//! Only the first waiter of a key asks the store; the others wait their turn, so a crowd of
//! waiters costs the store one request per attempt, not one per waiter. A try through this
//! sidecar is refused while any of its waiters waits for the key (KINDS.md, rule 3), so it
//! never jumps them: on the in-memory store, whose every waiter waits in this one sidecar,
//! that makes this line the key's whole line. A place is left when dropped: a waiter that
//! gives up, times out or disconnects leaves no trace.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::room;

/// The lines of this sidecar, one per store and key that has waiters: two stores may give
/// the same key (two components with one `keyPrefix`), and a waiter on one must never wait
/// behind a waiter on the other.
#[derive(Default)]
pub(crate) struct SidecarLines {
    lines: Mutex<HashMap<(String, String), Line>>,
}

struct Line {
    next_id: u64,
    waiting: VecDeque<u64>,
    /// Wakes every waiter of the key: on a release through this sidecar, and when the line
    /// moves.
    changed: Arc<Notify>,
}

/// A waiter's place in this sidecar's line for one key; dropping it leaves the line.
pub(crate) struct SidecarPlace<'a> {
    lines: &'a SidecarLines,
    at: (String, String),
    id: u64,
    changed: Arc<Notify>,
}

impl SidecarLines {
    fn lines(&self) -> MutexGuard<'_, HashMap<(String, String), Line>> {
        // Every change under this mutex is a single operation on one line: poisoning can't
        // leave a line half-changed.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the end of the line for `key` of `store`.
    pub(crate) fn join(&self, store: &str, key: &str) -> SidecarPlace<'_> {
        let at = (store.to_string(), key.to_string());
        let mut lines = self.lines();
        let line = lines.entry(at.clone()).or_insert_with(|| Line {
            next_id: 0,
            waiting: VecDeque::new(),
            changed: Arc::new(Notify::new()),
        });
        let id = line.next_id;
        line.next_id += 1;
        line.waiting.push_back(id);
        SidecarPlace {
            lines: self,
            at,
            id,
            changed: line.changed.clone(),
        }
    }

    /// Whether any acquire waits in the line for `key` of `store`.
    pub(crate) fn anyone_waits(&self, store: &str, key: &str) -> bool {
        let lines = self.lines();
        // Keyed by owned strings; a try with nobody waiting here costs no allocation.
        !lines.is_empty() && lines.contains_key(&(store.to_string(), key.to_string()))
    }

    /// Says that `key` of `store` was released through this sidecar: its waiters look again.
    pub(crate) fn released(&self, store: &str, key: &str) {
        let lines = self.lines();
        // Keyed by owned strings; a release with nobody waiting here costs no allocation.
        if lines.is_empty() {
            return;
        }
        if let Some(line) = lines.get(&(store.to_string(), key.to_string())) {
            line.changed.notify_waiters();
        }
    }
}

impl SidecarPlace<'_> {
    /// Whether this place is first in line.
    pub(crate) fn is_first(&self) -> bool {
        self.lines
            .lines()
            .get(&self.at)
            .is_some_and(|l| l.waiting.front() == Some(&self.id))
    }

    /// A future that completes on the key's next release through this sidecar or move of the
    /// line. Create it before looking at the store, so nothing in between is missed.
    pub(crate) fn changed(&self) -> Pin<Box<Notified<'_>>> {
        let mut notified = Box::pin(self.changed.notified());
        notified.as_mut().enable();
        notified
    }
}

impl Drop for SidecarPlace<'_> {
    fn drop(&mut self) {
        let mut lines = self.lines.lines();
        if let Some(line) = lines.get_mut(&self.at) {
            line.waiting.retain(|id| *id != self.id);
            if line.waiting.is_empty() {
                lines.remove(&self.at);
                if let Some(room) = room::shrink_to(lines.len(), lines.capacity()) {
                    lines.shrink_to(room);
                }
            } else {
                line.changed.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc::{self, UnboundedSender};
    use tokio::time::{sleep, timeout, Instant};

    use super::super::test_double::{acquire, service_of, unlock, DoubleStore, KEY};
    use super::super::{LockService, OwnerChecked, TryLockOutcome};

    const LONG: Duration = Duration::from_secs(60);
    /// Long enough for a first waiter's polls to back off to their longest pause, and not a
    /// multiple of it: a waiter that takes the lock at the instant of a release was woken by it.
    const SETTLE: Duration = Duration::from_millis(1234);

    type Taken = UnboundedSender<(&'static str, Instant)>;

    /// Starts `owner`'s blocking acquire, which reports when it took the lock.
    fn waiter(service: &Arc<LockService>, owner: &'static str, taken: &Taken) {
        let (service, taken) = (service.clone(), taken.clone());
        tokio::spawn(async move {
            let grant = service.acquire(acquire(owner, 60, LONG)).await.unwrap();
            assert!(grant.is_some(), "{owner} never took the lock");
            taken.send((owner, Instant::now())).unwrap();
        });
    }

    async fn hold(service: &LockService, owner: &str) {
        let tried = service.try_lock(acquire(owner, 60, LONG).lock).await;
        assert!(matches!(tried, Ok(TryLockOutcome::Granted(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn first_come_first_served_each_woken_at_once_by_a_release_here() {
        let service = Arc::new(DoubleStore::default().service());
        hold(&service, "holder").await;
        let (taken, mut took) = mpsc::unbounded_channel();
        for owner in ["w1", "w2", "w3"] {
            waiter(&service, owner, &taken);
            sleep(Duration::from_millis(1)).await;
        }
        // Only the waiters report: if they all fail, the channel closes.
        drop(taken);
        let mut holder = "holder";
        for expected in ["w1", "w2", "w3"] {
            sleep(SETTLE).await;
            let released_at = Instant::now();
            let released = service.unlock(unlock(holder)).await;
            assert_eq!(released, Ok(OwnerChecked::Applied));
            let (owner, at) = took.recv().await.unwrap();
            assert_eq!(owner, expected);
            assert_eq!(at, released_at, "{owner} was not woken by the release");
            holder = owner;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_try_never_jumps_a_waiter_here() {
        let double = DoubleStore::default();
        let service = Arc::new(double.service());
        hold(&service, "holder").await;
        let (taken, mut took) = mpsc::unbounded_channel();
        waiter(&service, "waiter", &taken);
        drop(taken);
        sleep(SETTLE).await;
        // Freed behind this sidecar's back (an expiry, a release elsewhere): the waiter finds
        // it at its next poll, and a try in between does not take its turn.
        double.lose(KEY);
        let tried = service.try_lock(acquire("jumper", 60, LONG).lock).await;
        assert_eq!(tried, Ok(TryLockOutcome::Held));
        let (owner, _) = took.recv().await.unwrap();
        assert_eq!(owner, "waiter");
        // With nobody waiting, a try is granted again.
        let released = service.unlock(unlock("waiter")).await;
        assert_eq!(released, Ok(OwnerChecked::Applied));
        hold(&service, "jumper").await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_acquire_leaves_the_line() {
        let service = Arc::new(DoubleStore::default().service());
        hold(&service, "holder").await;
        let mut quitter = Box::pin(service.acquire(acquire("quitter", 60, LONG)));
        // Driven a little, so it stands first in line.
        assert!(timeout(Duration::from_millis(1), &mut quitter)
            .await
            .is_err());
        let (taken, mut took) = mpsc::unbounded_channel();
        waiter(&service, "patient", &taken);
        drop(taken);
        sleep(SETTLE).await;
        // The client disconnects: the API drops its acquire.
        drop(quitter);
        let released_at = Instant::now();
        let released = service.unlock(unlock("holder")).await;
        assert_eq!(released, Ok(OwnerChecked::Applied));
        let (owner, at) = took.recv().await.unwrap();
        assert_eq!((owner, at), ("patient", released_at));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_never_waits_behind_another_stores_waiter_for_the_same_key() {
        let (a, b) = (DoubleStore::default(), DoubleStore::default());
        let service = Arc::new(service_of(&[("a", &a), ("b", &b)]));
        let mut held_on_a = acquire("holder", 60, LONG).lock;
        held_on_a.store = "a".into();
        let tried = service.try_lock(held_on_a).await;
        assert!(matches!(tried, Ok(TryLockOutcome::Granted(_))));
        // A waiter on `a`, first in its line for the key both stores give `r`.
        let mut on_a = acquire("waits-on-a", 60, LONG);
        on_a.lock.store = "a".into();
        let waiting_on_a = service.clone();
        tokio::spawn(async move { waiting_on_a.acquire(on_a).await });
        sleep(Duration::from_millis(1)).await;
        // `b` is free: its waiter takes the lock at once.
        let mut on_b = acquire("waits-on-b", 60, LONG);
        on_b.lock.store = "b".into();
        let taken = timeout(Duration::from_secs(1), service.acquire(on_b)).await;
        assert!(matches!(taken, Ok(Ok(Some(_)))), "{taken:?}");
        assert_eq!(b.holder(KEY).as_deref(), Some("waits-on-b"));
    }
}
