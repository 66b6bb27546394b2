//! Multi-locks in etcd (`lock::multi`): every key of a multi-lock is taken, and released, by
//! one transaction, so no other client ever sees some of its keys held and the others not.
//!
//! A plain multi-lock is read first, every key at one revision, and refused from that read
//! when any key is held (a key past its deadline is deleted on the way, as a try-lock does).
//! Then one transaction puts every key, on this sidecar's shared lease of the expiry's bucket,
//! only if each is absent, nobody waits in its line and no shared or reentrant holder has it:
//! the comparisons a single try-lock makes, for every key at once. Every key is created at the
//! transaction's revision, which is each key's fencing token, as a single grant's is.
//!
//! A multi-lock of another kind reads each key's plain lock, line and holders at one revision,
//! applies the shared rules (`lock::holders`) to each, and puts a holder key per key, each on a
//! lease of its own (as `holders.rs` keeps them), in one transaction guarded on each key's
//! plain lock and line being absent and on no holder key of it having been written since the
//! read: etcd compares a range key by key, so one comparison of the holders' mod revisions
//! against the read's revision catches any holder that came or changed. A holder that left
//! meanwhile only makes room, so it is no reason to refuse. A re-entry (the owner holds every
//! key already, reentrantly) takes one more hold of each key in turn, the core's way: each key
//! stays the owner's throughout, so no other client sees any key change hands.
//!
//! A release reads every key and its holders at one revision and writes the release of every
//! key the owner holds (a plain key's delete, a holder key's new count or its delete) in one
//! transaction, each guarded on the version read.
//!
//! etcd refuses a transaction with more than `--max-txn-ops` comparisons or operations (128
//! unless its operator raised it), and a multi-lock's try compares three things per key: a
//! multi-lock of more keys than fit (`ATOMIC_KEYS`) is taken key by key and given back on a
//! refusal, the core's way.

use std::time::Duration;

use super::client::Sent;
use super::deadline::{self, Planned, Record as PlainRecord};
use super::holders::{self, Holding};
use super::requests::{
    absent, compare, delete, none_in, put, ranges, read_range, revision_of, unwritten_since,
};
use super::EtcdStore;
use crate::lock::multi::{self, ManyOutcome};
use crate::lock::{Grant, Kind, OwnerChecked, Released, StoreError, TryLockOutcome};
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareTarget, TargetUnion},
    request_op::Request as Op,
    RequestOp, TxnRequest,
};
use crate::proto::etcd::mvccpb::KeyValue;

/// One key's write in a release: the key as read, and the value it becomes (`None`: deleted).
type Write = (KeyValue, Option<Vec<u8>>);

/// etcd's default `--max-txn-ops`: the most comparisons, and the most operations, one
/// transaction may have.
const MAX_TXN_OPS: usize = 128;

/// The most keys a multi-lock may have to be taken in one transaction: three comparisons (and
/// three reads) per key.
const ATOMIC_KEYS: usize = MAX_TXN_OPS / 3;

/// How many times a multi-lock's try reads its keys again after they changed between its read
/// and its transaction, before it reports them as too busy.
const RACES: usize = 8;

/// How many lost answers a multi-lock's release rides out before it fails.
const LOST_ANSWERS: u32 = 3;

/// The delete of the key at `path` as an operation of a transaction.
fn delete_op(path: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(delete(path))),
    }
}

impl EtcdStore {
    /// `acquire_many`: every key or none, in one transaction.
    pub(super) async fn acquire_all(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        if keys.len() > ATOMIC_KEYS {
            tracing::debug!(
                "a multi-lock of {} keys, more than one etcd transaction takes ({ATOMIC_KEYS}), \
                 is taken key by key",
                keys.len()
            );
            return multi::in_sorted_order(self, keys, owner, ttl, kind).await;
        }
        if kind.is_plain() {
            return self.acquire_all_plain(keys, owner, ttl).await;
        }
        for _ in 0..RACES {
            let Some(outcome) = self.try_all_held(keys, owner, ttl, kind).await? else {
                continue;
            };
            return Ok(outcome);
        }
        Err(StoreError::unavailable(format!(
            "the keys of a multi-lock from {} on changed under every try",
            keys[0]
        )))
    }

    async fn acquire_all_plain(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
    ) -> Result<ManyOutcome, StoreError> {
        let paths: Vec<Vec<u8>> = keys.iter().map(|key| self.path(key)).collect();
        // Refused by a read alone while any key is held: no write for a waiter's retries.
        let read = TxnRequest {
            compare: Vec::new(),
            success: paths
                .iter()
                .map(|path| read_range(path, &[], false))
                .collect(),
            failure: Vec::new(),
        };
        let found = ranges(self.client.read_together(read).await?);
        for kv in found.into_iter().flat_map(|range| range.kvs) {
            if PlainRecord::read(&kv.value).left(Duration::MAX).is_some() {
                return Ok(ManyOutcome::Held);
            }
            deadline::delete_expired(&self.client, &kv.key, kv.mod_revision).await?;
        }
        let lease = self.leases.for_lock(ttl).await?;
        let mut guards = Vec::with_capacity(3 * keys.len());
        let mut puts = Vec::with_capacity(keys.len());
        let mut planned = Vec::with_capacity(keys.len());
        for (key, path) in keys.iter().zip(&paths) {
            let (line, line_end) = self.line(key);
            let (holders, holders_end) = self.holders(key);
            guards.extend([
                absent(path),
                none_in(&line, &line_end),
                none_in(&holders, &holders_end),
            ]);
            let plan = Planned::new(owner, ttl);
            puts.push(put(path, &plan.value, lease));
            planned.push(plan);
        }
        let sent = self
            .client
            .txn(TxnRequest {
                compare: guards,
                success: puts,
                failure: Vec::new(),
            })
            .await?;
        let revision = match sent {
            Sent::Answered(answer) if answer.succeeded => revision_of(&answer),
            Sent::Answered(_) => return Ok(ManyOutcome::Held),
            // One transaction: its first key tells whether all of them landed.
            Sent::Unknown(reason) => {
                let first = (&planned[0].value[..], lease);
                match self.grant_landed(&paths[0], first, false, reason).await? {
                    TryLockOutcome::Granted(Grant {
                        fencing_token: Some(token),
                        ..
                    }) => token as i64,
                    refused => return Ok(ManyOutcome::of_one(refused)),
                }
            }
        };
        for (plan, path) in planned.into_iter().zip(&paths) {
            plan.landed(&self.timers, path, revision);
        }
        let grant = Grant::first(Some(revision as u64));
        Ok(ManyOutcome::Granted(vec![grant; keys.len()]))
    }

    /// One try of a multi-lock of a kind other than the plain one: its answer, or `None` when
    /// a key changed between the read and the transaction.
    async fn try_all_held(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<Option<ManyOutcome>, StoreError> {
        let mut reads = Vec::with_capacity(3 * keys.len());
        for key in keys {
            let (line, line_end) = self.line(key);
            let (start, end) = self.holders(key);
            reads.extend([
                read_range(&self.path(key), &[], true),
                read_range(&line, &line_end, true),
                read_range(&start, &end, false),
            ]);
        }
        let answer = self
            .client
            .read_together(TxnRequest {
                compare: Vec::new(),
                success: reads,
                failure: Vec::new(),
            })
            .await?;
        let read_at = revision_of(&answer);
        let found = ranges(answer);
        if found.len() != 3 * keys.len() {
            return Err(StoreError::failed("etcd left out a read of a transaction"));
        }
        let mut holdings = Vec::with_capacity(keys.len());
        for (key, read) in keys.iter().zip(found.chunks(3)) {
            let (plain, waiting, held) = (&read[0], &read[1], &read[2]);
            if plain.count > 0 {
                return Ok(Some(ManyOutcome::Held));
            }
            let mut after = holders::record(&held.kvs, |_| holders::NEVER);
            let acquired = after.acquire(holders::NOW, owner, ttl, kind, 0);
            if !matches!(acquired.outcome, TryLockOutcome::Granted(_)) {
                return Ok(Some(ManyOutcome::of_one(acquired.outcome)));
            }
            if !acquired.drew_token {
                // A re-entry: every key is the owner's already (see the module's doc).
                let outcome = multi::in_sorted_order(self, keys, owner, ttl, kind).await?;
                return Ok(Some(outcome));
            }
            // A try never jumps the line.
            if waiting.count > 0 {
                return Ok(Some(ManyOutcome::Held));
            }
            let holding = Holding {
                mode: after.mode,
                limit: after.limit,
                holds: 1,
            };
            holdings.push((key, holding));
        }
        let mut leases = Vec::with_capacity(keys.len());
        for _ in keys {
            match self.client.grant(Self::lease_seconds(ttl)).await {
                Ok(granted) => leases.push(granted.id),
                Err(error) => {
                    leases
                        .into_iter()
                        .for_each(|lease| self.client.discard(lease));
                    return Err(error);
                }
            }
        }
        let mut guards = Vec::with_capacity(3 * keys.len());
        let mut puts = Vec::with_capacity(keys.len());
        for ((key, holding), lease) in holdings.iter().zip(&leases) {
            let (line, line_end) = self.line(key);
            let (start, end) = self.holders(key);
            guards.extend([
                absent(&self.path(key)),
                none_in(&line, &line_end),
                unwritten_since(&start, &end, read_at),
            ]);
            puts.push(put(&self.holder(key, owner), &holding.encode(), *lease));
        }
        let sent = self
            .client
            .txn(TxnRequest {
                compare: guards,
                success: puts,
                failure: Vec::new(),
            })
            .await;
        let discard_all = || leases.iter().for_each(|lease| self.client.discard(*lease));
        let revision = match sent {
            Ok(Sent::Answered(answer)) if answer.succeeded => revision_of(&answer),
            Ok(Sent::Answered(_)) => {
                discard_all();
                return Ok(None);
            }
            Ok(Sent::Unknown(reason)) => {
                // One transaction: its first key tells whether all of them landed.
                let (key, holding) = &holdings[0];
                let first = self.holder(key, owner);
                let value = holding.encode();
                let landed = self.grant_landed(&first, (&value, leases[0]), false, reason);
                match landed.await {
                    Ok(TryLockOutcome::Granted(Grant {
                        fencing_token: Some(token),
                        ..
                    })) => token as i64,
                    other => {
                        discard_all();
                        return other.map(|refused| Some(ManyOutcome::of_one(refused)));
                    }
                }
            }
            Err(error) => {
                discard_all();
                return Err(error);
            }
        };
        let grant = Grant::first(Some(revision as u64));
        Ok(Some(ManyOutcome::Granted(vec![grant; keys.len()])))
    }

    /// `release_many`: one of `owner`'s holds of every key (or all of them), in one
    /// transaction.
    pub(super) async fn release_all(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        if keys.len() > ATOMIC_KEYS {
            return multi::release_each(self, keys, owner, all_holds).await;
        }
        let mut lost = 0;
        loop {
            let mut reads = Vec::with_capacity(2 * keys.len());
            for key in keys {
                let (start, end) = self.holders(key);
                reads.extend([
                    read_range(&self.path(key), &[], false),
                    read_range(&start, &end, false),
                ]);
            }
            let read = TxnRequest {
                compare: Vec::new(),
                success: reads,
                failure: Vec::new(),
            };
            let found = ranges(self.client.read_together(read).await?);
            if found.len() != 2 * keys.len() {
                return Err(StoreError::failed("etcd left out a read of a transaction"));
            }
            let mut each = Vec::with_capacity(keys.len());
            let mut writes: Vec<Write> = Vec::new();
            for (key, read) in keys.iter().zip(found.chunks(2)) {
                let (released, write) = self.release_one(key, owner, all_holds, read);
                each.push(released);
                writes.extend(write);
            }
            if writes.is_empty() {
                return Ok(multi::released_whole(&each));
            }
            let guards = writes
                .iter()
                .map(|(kv, _)| {
                    let at = TargetUnion::ModRevision(kv.mod_revision);
                    compare(&kv.key, CompareTarget::Mod, at)
                })
                .collect();
            let ops = writes
                .iter()
                .map(|(kv, to)| match to {
                    Some(value) => put(&kv.key, value, kv.lease),
                    None => delete_op(&kv.key),
                })
                .collect();
            let request = TxnRequest {
                compare: guards,
                success: ops,
                failure: Vec::new(),
            };
            let reason = match self.client.txn(request).await? {
                Sent::Answered(answer) if answer.succeeded => {
                    self.after_release(&writes);
                    return Ok(multi::released_whole(&each));
                }
                Sent::Answered(_) => continue, // changed since the read: read again
                Sent::Unknown(reason) => reason,
            };
            // One transaction: its first write tells whether all of them landed.
            lost += 1;
            let (first, to) = &writes[0];
            let now = self.get(&first.key).await?;
            let unchanged = now
                .as_ref()
                .is_some_and(|kv| kv.mod_revision == first.mod_revision);
            if !unchanged {
                let to = to.as_deref().map(|value| (value, first.lease));
                if holders::wrote(first, to, now.as_ref()) {
                    self.after_release(&writes);
                    return Ok(multi::released_whole(&each));
                }
            } else if lost == LOST_ANSWERS {
                return Err(StoreError::unavailable(reason));
            }
        }
    }

    /// One key's release as read (`read`: its plain lock, then its holders): the answer, and
    /// the write it takes, if any.
    fn release_one(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
        read: &[crate::proto::etcd::etcdserverpb::RangeResponse],
    ) -> (Released, Option<Write>) {
        let not = |outcome| Released {
            outcome,
            holds_left: 0,
        };
        if let Some(plain) = read[0].kvs.first() {
            if PlainRecord::read(&plain.value).owner != owner {
                return (not(OwnerChecked::HeldByOther), None);
            }
            return (not(OwnerChecked::Applied), Some((plain.clone(), None)));
        }
        let mut record = holders::record(&read[1].kvs, |_| holders::NEVER);
        let released = record.release(holders::NOW, owner, all_holds);
        let mine = self.holder(key, owner);
        let Some(current) = read[1].kvs.iter().find(|kv| kv.key == mine) else {
            return (released, None);
        };
        let to = (released.holds_left > 0).then(|| {
            let holding = Holding {
                mode: record.mode,
                limit: record.limit,
                holds: released.holds_left,
            };
            holding.encode()
        });
        (released, Some((current.clone(), to)))
    }

    /// After a release's transaction: this sidecar's timers of the plain keys deleted stop,
    /// and the leases of the holder keys deleted go.
    fn after_release(&self, writes: &[Write]) {
        for (kv, to) in writes {
            if to.is_some() {
                continue;
            }
            if kv.key.starts_with(&self.holders_prefix) {
                self.client.discard(kv.lease);
            } else {
                self.timers.disarm(&kv.key);
            }
        }
    }
}
