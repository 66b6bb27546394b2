//! Multi-locks in Redis: on one server (a standalone Redis, or Sentinel's master) every key of
//! a multi-lock is read, each key's holders record is changed in this process by the rules
//! every store shares (`lock::holders`), and all are written back by one compare-and-set script
//! over every key (`scripts::swap_many`), which writes nothing unless every key still holds
//! what was read: no client ever sees part of a multi-lock. The keys are kept as holders
//! records (`records.rs`), a plain multi-lock's too, so that one release can give back all of
//! them the same way.
//!
//! In a Redis Cluster each lock key has a hash tag of its own (`keys.rs`), so the keys of one
//! multi-lock are in different slots and no script may touch them together; there, and where
//! grants wait for replicas (`waitReplicas`, confirmed key by key), the keys are taken in
//! sorted order and given back on a refusal, the core's way (`lock::multi`).

use std::time::Duration;

use super::keys::{legacy_fence_key, token_key};
use super::line::{line_key, turn_prefix};
use super::records::{self, halves, lost_races, readable, RACES, UNDRAWN};
use super::{signal, RedisStore};
use crate::lock::holders::Record;
use crate::lock::multi;
use crate::lock::ManyOutcome;
use crate::lock::{Kind, Released, StoreError, TryLockOutcome};

/// One key's part of a `swap_many`: what was read there, and the record to write.
struct Write {
    lock: String,
    /// The lock key's value as read; `None`: absent.
    value: Option<String>,
    /// The token record read, when a plain lock becomes a record.
    token_record: Option<String>,
    record: Record,
    draw: bool,
    publish: bool,
}

impl RedisStore {
    /// Whether one script may take a multi-lock's keys together: one server, and grants that
    /// need no replica's word.
    pub(super) fn multi_atomic(&self) -> bool {
        self.layout.one_slot() && self.wait_replicas.is_none()
    }

    /// `acquire_many`: every key or none.
    pub(super) async fn acquire_all(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        if !self.multi_atomic() {
            return multi::in_sorted_order(self, keys, owner, ttl, kind).await;
        }
        let locks: Vec<String> = keys.iter().map(|key| self.layout.lock_key(key)).collect();
        for _ in 0..RACES {
            let mut writes = Vec::with_capacity(locks.len());
            let mut grants = Vec::with_capacity(locks.len());
            for lock in &locks {
                let look = self.look(lock).await?;
                let Some((mut record, token_record)) = readable(lock, &look, owner)? else {
                    return Ok(ManyOutcome::Held);
                };
                let acquired = record.acquire(look.now_ms, owner, ttl, kind, UNDRAWN);
                let TryLockOutcome::Granted(grant) = acquired.outcome else {
                    return Ok(ManyOutcome::of_one(acquired.outcome));
                };
                grants.push(grant);
                writes.push(Write {
                    lock: lock.clone(),
                    value: look.value,
                    token_record,
                    record,
                    draw: acquired.drew_token,
                    publish: false,
                });
            }
            let Some(tokens) = self.swap_many(&writes).await? else {
                continue;
            };
            for ((grant, write), token) in grants.iter_mut().zip(&writes).zip(tokens) {
                if write.draw {
                    grant.fencing_token = Some(token);
                }
            }
            return Ok(ManyOutcome::Granted(grants));
        }
        Err(lost_races(&locks[0]))
    }

    /// `release_many`: one hold of every key (or all), as one write. A key kept as a plain
    /// lock (taken one key at a time) has no record to change with the others: then the keys
    /// are released one by one.
    pub(super) async fn release_all(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        if !self.multi_atomic() {
            return multi::release_each(self, keys, owner, all_holds).await;
        }
        let locks: Vec<String> = keys.iter().map(|key| self.layout.lock_key(key)).collect();
        'race: for _ in 0..RACES {
            let mut writes = Vec::with_capacity(locks.len());
            let mut each = Vec::with_capacity(locks.len());
            for lock in &locks {
                let look = self.look(lock).await?;
                let mut record = match look.value.as_deref() {
                    None => Record::free(),
                    Some(value) => match records::decode(lock, value)? {
                        Some(record) => record,
                        None => break 'race,
                    },
                };
                record.purge(look.now_ms);
                let before = record.holders.len();
                each.push(record.release(look.now_ms, owner, all_holds));
                writes.push(Write {
                    lock: lock.clone(),
                    publish: record.holders.len() < before,
                    value: look.value,
                    token_record: None,
                    record,
                    draw: false,
                });
            }
            if self.swap_many(&writes).await?.is_some() {
                return Ok(multi::released_whole(&each));
            }
        }
        multi::release_each(self, keys, owner, all_holds).await
    }

    /// The compare-and-set of several records (`scripts::swap_many`): the tokens drawn, one
    /// per write (0 where none), or `None` when any key had changed since it was read.
    async fn swap_many(&self, writes: &[Write]) -> Result<Option<Vec<u64>>, StoreError> {
        let mut invocation = self.swap_many.prepare_invoke();
        invocation.arg(writes.len());
        let flag = |on: bool| if on { "1" } else { "0" };
        for write in writes {
            let lock = &write.lock;
            let encoded = write.record.encode();
            let (before, after) = if write.draw {
                halves(&encoded)?
            } else {
                (encoded, String::new())
            };
            let channel = if write.publish {
                signal::channel(lock)
            } else {
                String::new()
            };
            invocation
                .key(lock)
                .key(self.layout.fencing_counter(lock))
                .key(token_key(lock))
                .key(legacy_fence_key(lock))
                .key(line_key(lock))
                .arg(flag(write.value.is_some()))
                .arg(write.value.as_deref().unwrap_or_default())
                .arg(write.token_record.as_deref().unwrap_or_default())
                .arg(before)
                .arg(after)
                .arg(flag(write.draw))
                .arg(write.record.last_deadline().unwrap_or(0))
                .arg(channel)
                .arg(turn_prefix(lock));
        }
        let answer: Vec<i64> = invocation
            .invoke_async(&mut self.connection.handle())
            .await
            .map_err(|e| self.failed(e))?;
        if answer.first() == Some(&-1) {
            return Ok(None);
        }
        Ok(Some(answer.into_iter().map(|t| t.max(0) as u64).collect()))
    }
}
