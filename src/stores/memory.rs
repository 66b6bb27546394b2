//! `lock.in-memory`: the embedded store, the zero-setup default for one machine.
//!
//! Locks live in this process only: they are shared by every sidecar client and every
//! `lock.in-memory` component of this dlockd (components are views on one keyspace, told apart
//! by their key prefixes, as components on one Redis are), and lost when the process exits.
//!
//! The map is split into shards, each behind its own mutex held only for a map operation, so
//! there is no global lock on the hot path. An expired entry counts as free the moment its
//! deadline passes (checked on every access, to the millisecond) and a background sweep removes
//! the ones nobody touches again, so memory does not grow without bound. Each shard keeps its
//! entries in deadline order too, so the sweep looks only at the entries that expired, not at
//! every lock held.
//!
//! Each key's holders are a `holders::Record`, so shared, limited and reentrant locks follow
//! the rules every store shares; the store's clock is this process's monotonic clock, in
//! milliseconds since the store was made.
//!
//! A multi-lock's keys are taken and released under all their shards' mutexes at once
//! (`multi.rs`), so nobody sees some of them held and not the others.
//!
//! The store holds at most `DEFAULT_MAX_LOCKS` locks: past it a try for a new key fails with
//! an error saying so (after a sweep of what expired), never a grant, so a client that takes
//! locks and never releases them exhausts the limit rather than the process's memory.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::lock::holders::Record;
use crate::lock::{
    Capabilities, Grant, Kind, LockInfo, LockStore, ManyOutcome, OwnerChecked, Released,
    StoreError, TryLockOutcome,
};
use crate::room;

mod multi;

const SHARDS: usize = 64;
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// The most locks the store holds at once: far above any real use of one sidecar, far below
/// what would exhaust its memory (an entry takes about 200 bytes with its key).
pub(crate) const DEFAULT_MAX_LOCKS: usize = 1_000_000;

/// A key's holders, and when the last of them expires (its place in the deadline order).
struct Held {
    record: Record,
    deadline: Instant,
}

struct Shard {
    locks: Mutex<Table>,
    /// Woken whenever a key of this shard is released, for `wait_for_release`.
    released: Notify,
}

/// A shard's locks, and the same keys in deadline order; every change goes through here, so
/// the two always hold the same entries.
#[derive(Default)]
struct Table {
    held: HashMap<String, Held>,
    expiries: BTreeSet<(Instant, String)>,
}

impl Table {
    fn get(&self, key: &str) -> Option<&Held> {
        self.held.get(key)
    }

    fn put(&mut self, key: &str, held: Held) -> &mut Held {
        if let Some(old) = self.held.get(key) {
            self.expiries.remove(&(old.deadline, key.to_string()));
        }
        self.expiries.insert((held.deadline, key.to_string()));
        match self.held.entry(key.to_string()) {
            Entry::Occupied(mut entry) => {
                entry.insert(held);
                entry.into_mut()
            }
            Entry::Vacant(entry) => entry.insert(held),
        }
    }

    fn remove(&mut self, key: &str) -> Option<Held> {
        let held = self.held.remove(key)?;
        self.expiries.remove(&(held.deadline, key.to_string()));
        Some(held)
    }

    /// Removes the entries whose deadline is not after `now`; answers how many.
    fn expire(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((deadline, _)) = self.expiries.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, key)) = self.expiries.pop_first() {
                self.held.remove(&key);
                removed += 1;
            }
        }
        removed
    }
}

/// The embedded lock store.
pub(crate) struct MemoryStore {
    shards: Box<[Shard]>,
    hasher: RandomState,
    /// The last fencing token handed out, for any key. Seeded from the wall clock in
    /// microseconds so tokens keep increasing across restarts of the process, as long as the
    /// clock does not step back and grants average under a million per second.
    last_token: AtomicU64,
    /// Entries in every shard, expired ones not yet swept included.
    entries: AtomicUsize,
    max_locks: usize,
    /// The store's clock starts here: its times are milliseconds since.
    epoch: Instant,
}

/// Why a try could not put a new key in.
pub(super) struct Full;

impl MemoryStore {
    /// Creates the store, holding at most `DEFAULT_MAX_LOCKS`, and, inside a tokio runtime,
    /// its background sweep, which ends when the store is dropped.
    pub(crate) fn new() -> Arc<Self> {
        Self::with_max_locks(DEFAULT_MAX_LOCKS)
    }

    fn with_max_locks(max_locks: usize) -> Arc<Self> {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let store = Arc::new(MemoryStore {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    locks: Mutex::new(Table::default()),
                    released: Notify::new(),
                })
                .collect(),
            hasher: RandomState::new(),
            last_token: AtomicU64::new(seed),
            entries: AtomicUsize::new(0),
            max_locks,
            epoch: Instant::now(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&store)));
        }
        store
    }

    fn shard(&self, key: &str) -> &Shard {
        &self.shards[self.shard_index(key)]
    }

    fn shard_index(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    fn locks(shard: &Shard) -> MutexGuard<'_, Table> {
        // A panic while holding a shard lock cannot leave a map half-updated (every change is
        // one map operation), so a poisoned mutex is safe to keep using.
        shard.locks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes expired entries, each shard's in deadline order; returns how many are left.
    fn sweep_once(&self) -> usize {
        let now = Instant::now();
        let mut left = 0;
        for shard in self.shards.iter() {
            let mut locks = Self::locks(shard);
            let removed = locks.expire(now);
            // A burst leaves each table sized for its peak: once it is mostly empty, hand the
            // room back, so memory follows the locks held rather than the most ever held.
            let live = locks.held.len();
            if let Some(room) = room::shrink_to(live, locks.held.capacity()) {
                locks.held.shrink_to(room);
            }
            left += live;
            if removed > 0 {
                self.entries.fetch_sub(removed, Ordering::Relaxed);
                shard.released.notify_waiters();
            }
        }
        left
    }

    /// Counts one more entry, unless the store is full.
    fn reserve(&self) -> Result<(), Full> {
        if self.entries.fetch_add(1, Ordering::Relaxed) < self.max_locks {
            return Ok(());
        }
        self.entries.fetch_sub(1, Ordering::Relaxed);
        Err(Full)
    }

    /// The store's clock: milliseconds since the store was made.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// One try at `key`; `Full` when the key is new and the store holds its maximum.
    fn try_once(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, Full> {
        let now = self.now_ms();
        let mut locks = Self::locks(self.shard(key));
        let mut record = match locks.get(key) {
            Some(held) => held.record.clone(),
            None => {
                self.reserve()?;
                Record::free()
            }
        };
        // Drawn under the shard lock, so successive holders of a key see increasing tokens;
        // a try that draws none leaves a gap, which fencing allows.
        let next_token = self.last_token.fetch_add(1, Ordering::Relaxed) + 1;
        let acquired = record.acquire(now, owner, ttl, kind, next_token);
        self.keep(&mut locks, key, record);
        Ok(acquired.outcome)
    }

    /// A try of any kind; when the store is full, what expired makes room, then once more.
    fn take(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        self.with_room(|| self.try_once(key, owner, ttl, kind))
    }

    /// Runs `attempt`; when the store is full, sweeps what expired to make room and runs it
    /// once more, and a store still full is an error saying so.
    pub(super) fn with_room<T>(
        &self,
        attempt: impl Fn() -> Result<T, Full>,
    ) -> Result<T, StoreError> {
        if let Ok(outcome) = attempt() {
            return Ok(outcome);
        }
        self.sweep_once();
        attempt().map_err(|Full| {
            StoreError::failed(format!(
                "the in-memory store holds its maximum of {} locks: release some first",
                self.max_locks
            ))
        })
    }

    /// Puts `record` back as `key`'s holders, or removes the key when nobody holds it.
    fn keep(&self, locks: &mut Table, key: &str, record: Record) {
        match record.last_deadline() {
            Some(last) => {
                let deadline = self.instant(last);
                locks.put(key, Held { record, deadline });
            }
            None => {
                if locks.remove(key).is_some() {
                    self.entries.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A time of the store's clock as an instant.
    fn instant(&self, ms: u64) -> Instant {
        let far = self.epoch + Duration::from_secs(100 * 365 * 24 * 3600);
        self.epoch
            .checked_add(Duration::from_millis(ms))
            .map_or(far, |at| at.min(far))
    }

    /// Applies `change` to `key`'s holders and keeps what it leaves; wakes the waiters when a
    /// place came free.
    fn change<T>(&self, key: &str, change: impl FnOnce(&mut Record, u64) -> T) -> T {
        let shard = self.shard(key);
        let mut locks = Self::locks(shard);
        let Some(held) = locks.get(key) else {
            return change(&mut Record::free(), self.now_ms());
        };
        let mut record = held.record.clone();
        let before = record.holders.len();
        let answer = change(&mut record, self.now_ms());
        let freed = record.holders.len() < before;
        self.keep(&mut locks, key, record);
        drop(locks);
        if freed {
            shard.released.notify_waiters();
        }
        answer
    }
}

async fn sweep(store: Weak<MemoryStore>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.upgrade() {
            Some(store) => {
                store.sweep_once();
            }
            None => return,
        }
    }
}

#[async_trait]
impl LockStore for MemoryStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        self.take(key, owner, ttl, Kind::PLAIN)
    }

    async fn acquire_kind(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        self.take(key, owner, ttl, kind)
    }

    async fn acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        self.take_many(keys, owner, ttl, kind)
    }

    async fn release_many(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        Ok(self.release_whole(keys, owner, all_holds))
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        Ok(self.change(key, |record, now| record.release(now, owner, all_holds)))
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        Ok(self.change(key, |record, now| record.take_back(now, owner, grant)))
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        Ok(self.change(key, |record, now| record.renew(now, owner, ttl)))
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let now = self.now_ms();
        let locks = Self::locks(self.shard(key));
        Ok(locks.get(key).and_then(|held| held.record.info(key, now)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let now = self.now_ms();
        let mut found = Vec::new();
        for shard in self.shards.iter() {
            let locks = Self::locks(shard);
            found.extend(
                locks
                    .held
                    .iter()
                    .filter(|(key, _)| key.starts_with(prefix))
                    .filter_map(|(key, held)| held.record.info(key, now)),
            );
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let shard = self.shard(key);
        let removed = Self::locks(shard).remove(key);
        if removed.is_some() {
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        let now = self.now_ms();
        let was_held = removed.is_some_and(|held| held.record.info("", now).is_some());
        if was_held {
            shard.released.notify_waiters();
        }
        Ok(was_held)
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        let shard = self.shard(key);
        let released = shard.released.notified();
        tokio::pin!(released);
        // Registered before looking, so a release between the look and the wait is not missed.
        released.as_mut().enable();
        // Until the first holder's deadline: then a place comes free.
        let now = self.now_ms();
        let first_deadline = Self::locks(shard).get(key).and_then(|held| {
            let live = held.record.holders.iter().map(|e| e.deadline_ms);
            live.filter(|deadline| *deadline > now).min()
        });
        let Some(first_deadline) = first_deadline else {
            return Ok(());
        };
        let wait = max_wait.min(Duration::from_millis(first_deadline - now));
        tokio::select! {
            _ = released => {}
            _ = tokio::time::sleep(wait) => {}
        }
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
            line: false,
            shared: true,
            limit: true,
            reentrant: true,
            multi: true,
            multi_atomic: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn token(outcome: TryLockOutcome) -> u64 {
        match outcome {
            TryLockOutcome::Granted(grant) => grant.fencing_token.unwrap(),
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn not_reentrant_and_owner_checked() {
        let store = MemoryStore::new();
        assert!(matches!(
            store.try_lock("k", "a", TTL).await,
            Ok(TryLockOutcome::Granted(_))
        ));
        assert_eq!(
            store.try_lock("k", "a", TTL).await,
            Ok(TryLockOutcome::Held)
        );
        assert_eq!(
            store.try_lock("k", "b", TTL).await,
            Ok(TryLockOutcome::Held)
        );
        assert_eq!(store.unlock("k", "b").await, Ok(OwnerChecked::HeldByOther));
        assert_eq!(store.unlock("k", "a").await, Ok(OwnerChecked::Applied));
        assert_eq!(store.unlock("k", "a").await, Ok(OwnerChecked::NotHeld));
    }

    #[tokio::test]
    async fn expiry_frees_the_key_to_the_millisecond() {
        let store = MemoryStore::new();
        let ttl = Duration::from_millis(50);
        token(store.try_lock("k", "a", ttl).await.unwrap());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            store.try_lock("k", "b", TTL).await,
            Ok(TryLockOutcome::Held)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        assert_eq!(store.unlock("k", "a").await, Ok(OwnerChecked::NotHeld));
        assert_eq!(store.renew("k", "a", TTL).await, Ok(OwnerChecked::NotHeld));
        token(store.try_lock("k", "b", TTL).await.unwrap());
        assert_eq!(store.unlock("k", "a").await, Ok(OwnerChecked::HeldByOther));
    }

    #[tokio::test]
    async fn fencing_tokens_increase_per_key() {
        let store = MemoryStore::new();
        let first = token(store.try_lock("k", "a", TTL).await.unwrap());
        store.unlock("k", "a").await.unwrap();
        token(store.try_lock("other", "a", TTL).await.unwrap());
        let second = token(store.try_lock("k", "b", TTL).await.unwrap());
        assert!(second > first);
        let info = store.inspect("k").await.unwrap().unwrap();
        assert_eq!(
            (info.owner.as_str(), info.fencing_token),
            ("b", Some(second))
        );
    }

    #[tokio::test]
    async fn renew_extends_only_the_holders_lock() {
        let store = MemoryStore::new();
        token(
            store
                .try_lock("k", "a", Duration::from_millis(40))
                .await
                .unwrap(),
        );
        assert_eq!(
            store.renew("k", "b", TTL).await,
            Ok(OwnerChecked::HeldByOther)
        );
        assert_eq!(store.renew("k", "a", TTL).await, Ok(OwnerChecked::Applied));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            store.try_lock("k", "b", TTL).await,
            Ok(TryLockOutcome::Held)
        );
    }

    #[tokio::test]
    async fn sweep_removes_expired_entries() {
        let store = MemoryStore::new();
        for i in 0..1000 {
            token(
                store
                    .try_lock(&format!("k{i}"), "a", Duration::from_millis(1))
                    .await
                    .unwrap(),
            );
        }
        token(store.try_lock("live", "a", TTL).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.sweep_once(), 1);
    }

    #[tokio::test]
    async fn past_its_maximum_a_try_for_a_new_key_fails_and_a_held_one_is_held() {
        let store = MemoryStore::with_max_locks(3);
        for key in ["a", "b"] {
            token(store.try_lock(key, "o", TTL).await.unwrap());
        }
        token(
            store
                .try_lock("short", "o", Duration::from_millis(20))
                .await
                .unwrap(),
        );
        let full = store.try_lock("c", "o", TTL).await.unwrap_err();
        assert!(full.to_string().contains("maximum of 3 locks"), "{full}");
        assert_eq!(
            store.try_lock("a", "p", TTL).await,
            Ok(TryLockOutcome::Held)
        );
        // A lock that expired makes room, and so does a release.
        tokio::time::sleep(Duration::from_millis(30)).await;
        token(store.try_lock("c", "o", TTL).await.unwrap());
        assert!(store.try_lock("d", "o", TTL).await.is_err());
        store.unlock("a", "o").await.unwrap();
        token(store.try_lock("d", "o", TTL).await.unwrap());
        assert_eq!(store.force_release("d").await, Ok(true));
        token(store.try_lock("e", "o", TTL).await.unwrap());
    }

    #[tokio::test]
    async fn the_deadline_order_follows_every_change() {
        let store = MemoryStore::new();
        let short = Duration::from_millis(20);
        for i in 0..50 {
            token(store.try_lock(&format!("k{i}"), "a", short).await.unwrap());
        }
        for i in 0..10 {
            store.renew(&format!("k{i}"), "a", TTL).await.unwrap();
        }
        for i in 10..20 {
            store.unlock(&format!("k{i}"), "a").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        // An expired key taken again is one entry, at its new deadline.
        token(store.try_lock("k20", "b", TTL).await.unwrap());
        for shard in store.shards.iter() {
            let locks = MemoryStore::locks(shard);
            assert_eq!(locks.held.len(), locks.expiries.len());
        }
        // The renewed and the retaken keys outlive their first deadline; the rest go.
        assert_eq!(store.sweep_once(), 11);
        assert_eq!(store.entries.load(Ordering::Relaxed), 11);
        assert!(store.inspect("k3").await.unwrap().is_some());
        assert_eq!(store.inspect("k20").await.unwrap().unwrap().owner, "b");
    }

    #[tokio::test]
    async fn list_force_release_and_wake() {
        let store = MemoryStore::new();
        token(store.try_lock("lock||a||1", "x", TTL).await.unwrap());
        token(store.try_lock("lock||a||2", "y", TTL).await.unwrap());
        token(store.try_lock("lock||b||1", "z", TTL).await.unwrap());
        let listed = store.list("lock||a||").await.unwrap();
        let keys: Vec<_> = listed.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["lock||a||1", "lock||a||2"]);

        let waiter = {
            let store = store.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                store.wait_for_release("lock||a||1", TTL).await.unwrap();
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.force_release("lock||a||1").await, Ok(true));
        assert_eq!(store.force_release("lock||a||1").await, Ok(false));
        assert!(waiter.await.unwrap() < Duration::from_secs(1));
    }
}

// The store contract (`lock::contract`), in-process. The store keeps time to the millisecond;
// its expiry checks take locks of a fifth of a second, so that a pause of a busy machine does
// not expire a lock a check still needs.
#[cfg(test)]
crate::store_contract!(
    contract,
    store: async { MemoryStore::new() },
    short_ttl: Duration::from_millis(200),
    one_instance: true,
    capabilities: [fencing, listing, release_signal, shared, limit, reentrant, multi, multi_atomic],
);
