//! Multi-locks in the in-memory store: every shard that holds one of the keys is locked, in
//! shard order (so two multi-locks never wait on each other's shard), the keys' records are
//! changed on copies, and only once every key allows it are the copies kept. Nothing of a try
//! that fails is ever written, and a grant or release changes every key before any mutex is
//! let go: no other caller sees part of a multi-lock.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::Duration;

use super::{Full, MemoryStore, Table};
use crate::lock::holders::Record;
use crate::lock::{Kind, ManyOutcome, Released, StoreError, TryLockOutcome};

/// The locked shards of a multi-lock's keys, by shard index.
type Locked<'a> = BTreeMap<usize, MutexGuard<'a, Table>>;

impl MemoryStore {
    /// `acquire_many`: all of `keys` or none; when the store is full, what expired makes room,
    /// then once more.
    pub(super) fn take_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        self.with_room(|| self.try_many(keys, owner, ttl, kind))
    }

    fn try_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, Full> {
        let mut locked = self.lock_shards(keys);
        let now = self.now_ms();
        // One token for every key: drawn from the store's one counter, it exceeds every earlier
        // grant's of each key.
        let next_token = self.last_token.fetch_add(1, Ordering::Relaxed) + 1;
        let mut changed = Vec::with_capacity(keys.len());
        let mut grants = Vec::with_capacity(keys.len());
        let mut new_keys = 0;
        for key in keys {
            let table = &locked[&self.shard_index(key)];
            let mut record = match table.get(key) {
                Some(held) => held.record.clone(),
                None => {
                    new_keys += 1;
                    Record::free()
                }
            };
            match record.acquire(now, owner, ttl, kind, next_token).outcome {
                TryLockOutcome::Granted(grant) => grants.push(grant),
                refused => return Ok(ManyOutcome::of_one(refused)),
            }
            changed.push(record);
        }
        self.reserve_many(new_keys)?;
        for (key, record) in keys.iter().zip(changed) {
            let table = locked
                .get_mut(&self.shard_index(key))
                .expect("every key's shard is locked");
            self.keep(table, key, record);
        }
        Ok(ManyOutcome::Granted(grants))
    }

    /// `release_many`: one hold of every key, or all of them, as one change.
    pub(super) fn release_whole(&self, keys: &[String], owner: &str, all_holds: bool) -> Released {
        let mut locked = self.lock_shards(keys);
        let now = self.now_ms();
        let mut each = Vec::with_capacity(keys.len());
        let mut freed = Vec::new();
        for key in keys {
            let index = self.shard_index(key);
            let table = locked.get_mut(&index).expect("every key's shard is locked");
            let mut record = table
                .get(key)
                .map_or_else(Record::free, |h| h.record.clone());
            let before = record.holders.len();
            each.push(record.release(now, owner, all_holds));
            if record.holders.len() < before {
                freed.push(index);
            }
            if table.get(key).is_some() {
                self.keep(table, key, record);
            }
        }
        drop(locked);
        for index in freed {
            self.shards[index].released.notify_waiters();
        }
        crate::lock::multi::released_whole(&each)
    }

    /// Locks the shards of `keys`, each once, in shard order.
    fn lock_shards(&self, keys: &[String]) -> Locked<'_> {
        let mut locked = Locked::new();
        let mut indices: Vec<usize> = keys.iter().map(|key| self.shard_index(key)).collect();
        indices.sort_unstable();
        indices.dedup();
        for index in indices {
            locked.insert(index, Self::locks(&self.shards[index]));
        }
        locked
    }

    /// Counts `n` more entries, unless the store would hold more than its maximum.
    fn reserve_many(&self, n: usize) -> Result<(), Full> {
        if self.entries.fetch_add(n, Ordering::Relaxed) + n <= self.max_locks {
            return Ok(());
        }
        self.entries.fetch_sub(n, Ordering::Relaxed);
        Err(Full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[tokio::test]
    async fn a_multi_lock_counts_its_new_keys_against_the_maximum_and_a_refusal_counts_none() {
        let store = MemoryStore::with_max_locks(3);
        let held = store.take_many(&keys(&["a", "b"]), "o", TTL, Kind::PLAIN);
        assert!(matches!(held, Ok(ManyOutcome::Granted(_))));
        let refused = store.take_many(&keys(&["a", "c"]), "p", TTL, Kind::PLAIN);
        assert_eq!(refused, Ok(ManyOutcome::Held));
        assert_eq!(store.entries.load(Ordering::Relaxed), 2);
        let full = store.take_many(&keys(&["c", "d"]), "p", TTL, Kind::PLAIN);
        assert!(full.unwrap_err().to_string().contains("maximum of 3 locks"));
        store.release_whole(&keys(&["a", "b"]), "o", false);
        assert_eq!(store.entries.load(Ordering::Relaxed), 0);
        let room = store.take_many(&keys(&["c", "d"]), "p", TTL, Kind::PLAIN);
        assert!(matches!(room, Ok(ManyOutcome::Granted(_))));
    }
}
