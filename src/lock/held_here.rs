//! The locks granted through this sidecar and not yet released, with the expiry each was last
//! given: so the sidecar can say how many locks it holds for its clients, and notice a lock
//! that reached its expiry unreleased (a client that crashed or forgot) and publish that it
//! expired. A shared lock has a holder per owner, each with its own expiry, so entries are
//! kept per store, key and owner. It is this sidecar's view only: a lock renewed through another sidecar, or
//! released by force elsewhere, is seen here as expiring at the last expiry this sidecar gave.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::events::{self, What};
use crate::room;

/// How often expiries are looked for: an expiry event comes at most this late.
const SWEEP: Duration = Duration::from_millis(250);

#[derive(Default)]
pub(crate) struct HeldHere {
    locks: Mutex<Locks>,
    /// Whether the sweeping task runs; started by the first grant, which runs on the runtime.
    sweeping: AtomicBool,
}

/// The locks, and their expiries in deadline order, so a sweep looks at the locks that
/// expired and no others, however many are held.
#[derive(Default)]
struct Locks {
    by_key: HashMap<At, Held>,
    /// Every expiry given, soonest first. An entry whose lock was renewed or released since is
    /// stale: the sweep drops it when its time comes, so stale entries last one expiry at most.
    by_expiry: BinaryHeap<Reverse<(Instant, At)>>,
}

/// A holder: store name, key and owner.
type At = (String, String, String);

fn at(store: &str, key: &str, owner: &str) -> At {
    (store.to_string(), key.to_string(), owner.to_string())
}

impl Locks {
    fn expires(&mut self, at: At, expires: Instant) {
        self.by_expiry.push(Reverse((expires, at)));
    }
}

struct Held {
    resource: String,
    expires: Instant,
}

impl HeldHere {
    pub(crate) fn granted(
        self: &Arc<Self>,
        store: &str,
        key: &str,
        resource: &str,
        owner: &str,
        ttl: Duration,
    ) {
        let mut expires = Instant::now() + ttl;
        let at = at(store, key, owner);
        let mut locks = self.lock();
        // A re-entry keeps the later of the two expiries, as the store does.
        if let Some(held) = locks.by_key.get(&at) {
            expires = expires.max(held.expires);
        }
        let held = Held {
            resource: resource.to_string(),
            expires,
        };
        locks.by_key.insert(at.clone(), held);
        locks.expires(at, expires);
        drop(locks);
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    /// The owner renewed the lock for `ttl` from now.
    pub(crate) fn renewed(&self, store: &str, key: &str, owner: &str, ttl: Duration) {
        let mut locks = self.lock();
        let at = at(store, key, owner);
        let Some(held) = locks.by_key.get_mut(&at) else {
            return;
        };
        let expires = Instant::now() + ttl;
        held.expires = expires;
        locks.expires(at, expires);
    }

    /// `owner` no longer holds the lock: it released its last hold.
    pub(crate) fn released(&self, store: &str, key: &str, owner: &str) {
        self.lock().by_key.remove(&at(store, key, owner));
    }

    /// Nobody holds the lock any more: it was released by force.
    pub(crate) fn released_all(&self, store: &str, key: &str) {
        self.lock()
            .by_key
            .retain(|(s, k, _), _| !(s == store && k == key));
    }

    /// How many locks are held through this sidecar, by store.
    pub(crate) fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (store, _, _) in self.lock().by_key.keys() {
            *counts.entry(store.clone()).or_default() += 1;
        }
        counts
    }

    /// Removes the locks past their expiry and publishes that each expired.
    fn expire(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut locks = self.lock();
        while let Some(Reverse((expires, _))) = locks.by_expiry.peek() {
            if *expires > now {
                break;
            }
            let Some(Reverse((_, at))) = locks.by_expiry.pop() else {
                break;
            };
            // Renewed (a later entry stands for it) or released since: stale.
            if locks
                .by_key
                .get(&at)
                .is_some_and(|held| held.expires <= now)
            {
                if let Some(held) = locks.by_key.remove(&at) {
                    expired.push((at.0, held.resource, at.2));
                }
            }
        }
        // After a burst the maps would keep its peak's room.
        if let Some(room) = room::shrink_to(locks.by_key.len(), locks.by_key.capacity()) {
            locks.by_key.shrink_to(room);
        }
        if let Some(room) = room::shrink_to(locks.by_expiry.len(), locks.by_expiry.capacity()) {
            locks.by_expiry.shrink_to(room);
        }
        drop(locks);
        for (store, resource, owner) in expired {
            events::publish(&store, &resource, &owner, What::Expired);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Locks> {
        // Plain data: a panic elsewhere while holding it leaves it usable.
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Looks for expiries until the sidecar's service is dropped.
async fn sweep(held: Weak<HeldHere>) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match held.upgrade() {
            Some(held) => held.expire(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn expired_in(store: &str) -> Vec<String> {
        events::recent()
            .iter()
            .filter(|e| e.store == store && e.what == What::Expired)
            .map(|e| e.resource.clone())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreleased_lock_expires_and_a_renewed_or_released_one_does_not() {
        let store = "held-here-test";
        let held = Arc::new(HeldHere::default());
        held.granted(store, "k1", "forgotten", "o", SECOND);
        held.granted(store, "k2", "renewed", "o", SECOND);
        held.granted(store, "k3", "released", "o", SECOND);
        assert_eq!(held.counts().get(store), Some(&3));
        tokio::time::sleep(SECOND / 2).await;
        held.renewed(store, "k2", "o", SECOND);
        held.renewed(store, "k2", "someone else", Duration::ZERO);
        held.released(store, "k3", "o");
        tokio::time::sleep(SECOND * 3 / 4).await;
        assert_eq!(expired_in(store), ["forgotten"]);
        assert_eq!(held.counts().get(store), Some(&1));
        tokio::time::sleep(SECOND).await;
        assert_eq!(expired_in(store), ["forgotten", "renewed"]);
        assert_eq!(held.counts().get(store), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_drops_the_stale_expiries_of_renewed_and_released_locks() {
        let store = "held-here-stale";
        let held = Arc::new(HeldHere::default());
        held.granted(store, "k", "renewed", "o", SECOND);
        for _ in 0..1000 {
            held.renewed(store, "k", "o", SECOND);
        }
        held.granted(store, "gone", "released", "o", SECOND);
        held.released(store, "gone", "o");
        assert_eq!(held.lock().by_expiry.len(), 1002);
        tokio::time::sleep(SECOND * 2).await;
        assert_eq!(expired_in(store), ["renewed"]);
        assert!(held.lock().by_expiry.is_empty());
        assert!(held.lock().by_key.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_burst_expires_the_maps_hand_back_their_room() {
        let store = "held-here-burst";
        let held = Arc::new(HeldHere::default());
        for i in 0..10_000 {
            held.granted(store, &format!("k{i}"), "burst", "o", SECOND);
        }
        held.granted(store, "long", "kept", "o", SECOND * 60);
        assert!(held.lock().by_key.capacity() >= 10_001);
        tokio::time::sleep(SECOND * 2).await;
        let locks = held.lock();
        assert_eq!(locks.by_key.len(), 1);
        assert!(
            locks.by_key.capacity() < 100 && locks.by_expiry.capacity() < 100,
            "room kept for {} holders and {} expiries",
            locks.by_key.capacity(),
            locks.by_expiry.capacity()
        );
    }
}
