//! A waiter's place in a key's line of waiters: a key of its own under the line's range,
//! holding the owner, ordered among every sidecar's waiters by its create revision.
//!
//! Each waiter's key is attached to a lease of its own (`WAITER_LEASE`) that this sidecar
//! keeps alive while the waiter waits, so the key of a waiter whose sidecar died goes with
//! the lease, within its TTL. The first waiter takes the lock with one transaction: put the
//! lock key (with its deadline, `deadline.rs`, on this sidecar's shared lease, `leases.rs`)
//! and delete its own waiter key, only if the lock key is absent (or was past its deadline,
//! and deleted), its waiter key is still the one it made, and no waiter key in the line is
//! older than it. A waiter watches only the key just ahead of it, or the lock key and the
//! holders' keys once it is first (`watch::deleted`), then no longer than the lock's
//! deadline. Leaving revokes the waiter's lease, which deletes its key.
//!
//! Every kind waits in this one line (KINDS.md rule 3): a waiter is granted only once no waiter
//! key in the line is older than its own, so everything ahead of it was granted first, and a
//! try of any kind is refused while anyone waits. A plain waiter, first, is granted once the
//! key's holders (`holders.rs`) are gone too; a waiter of another kind, first, once the holders
//! admit it by the shared rules (`lock::holders`), by one transaction that puts its holder key
//! (on a lease of its own) and deletes its waiter key, guarded on no holder key having been
//! written since they were read. So readers in a row are granted together, and a waiting
//! writer holds back every reader behind it. A waiter whose owner came to hold the key by
//! another request meanwhile waits for that hold to go (the core's first try takes a re-entry).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::client::{Client, Sent};
use super::deadline::{self, Planned, Timers};
use super::holders::{self, Holding};
use super::leases::Leases;
use super::requests::{
    absent, any_in, compare, none_in, put, ranges, read_range, revision_of, unwritten_since,
};
use super::watch;
use super::EtcdStore;
use crate::lock::{Conflict, Grant, Kind, Place, StoreError, TryLockOutcome};
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request as Op,
    Compare, DeleteRangeRequest, RangeRequest, RequestOp, TxnRequest,
};

/// The TTL of a waiter's lease, in seconds (etcd may grant more: its minimum). A dead
/// sidecar's waiter holds up the line at most this long; the sidecar renews the lease three
/// times per TTL while the waiter waits.
const WAITER_LEASE: i64 = 3;

/// A waiter: whose it is, the lease its grant gets, and the lock and line it waits in.
pub(crate) struct Waiter {
    pub(crate) client: Arc<Client>,
    pub(crate) leases: Arc<Leases>,
    pub(crate) timers: Arc<Timers>,
    pub(crate) released: broadcast::Sender<Vec<u8>>,
    /// The lock key.
    pub(crate) lock: Vec<u8>,
    /// The range of the key's shared and reentrant holders, who hold it as much as the lock key.
    pub(crate) holders: Vec<u8>,
    pub(crate) holders_end: Vec<u8>,
    /// The range of the key's waiters.
    pub(crate) line: Vec<u8>,
    pub(crate) line_end: Vec<u8>,
    pub(crate) owner: String,
    /// The owner's holder key, for a kind other than the plain lock.
    pub(crate) holder: Vec<u8>,
    /// The lock's expiry.
    pub(crate) ttl: Duration,
    pub(crate) kind: Kind,
}

/// A waiter's place in the line: the store's `Place`.
pub(crate) struct EtcdPlace {
    waiter: Waiter,
    entry: Entry,
    /// The waiter key just ahead, as last seen; `None` when first.
    ahead: Option<Vec<u8>>,
}

/// A waiter's key in the line, and the task keeping its lease alive.
struct Entry {
    key: Vec<u8>,
    lease: i64,
    /// The revision that created the key: it orders the waiter in the line.
    revision: i64,
    keeper: AbortHandle,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Waiter {
    /// Puts the waiter's key at the end of the line.
    pub(crate) async fn join(self) -> Result<EtcdPlace, StoreError> {
        let entry = self.enter().await?;
        Ok(EtcdPlace {
            waiter: self,
            entry,
            ahead: None,
        })
    }

    async fn enter(&self) -> Result<Entry, StoreError> {
        let lease = self.client.grant(WAITER_LEASE).await?;
        let mut key = self.line.clone();
        key.extend_from_slice(format!("{:016x}", lease.id).as_bytes());
        let put = self
            .client
            .txn(TxnRequest {
                compare: Vec::new(),
                success: vec![put(&key, self.owner.as_bytes(), lease.id)],
                failure: Vec::new(),
            })
            .await;
        // The put created the key: its revision orders the waiter. After a lost answer, the
        // key itself says whether it was made, and at which revision.
        let revision = match put {
            Ok(Sent::Answered(answer)) => Ok(answer.header.map_or(0, |h| h.revision)),
            Ok(Sent::Unknown(reason)) => self.created(&key, lease.id, reason).await,
            Err(error) => Err(error),
        };
        let revision = match revision {
            Ok(revision) => revision,
            Err(error) => {
                self.client.discard(lease.id);
                return Err(error);
            }
        };
        let client = self.client.clone();
        let every = Duration::from_secs(lease.ttl.max(1) as u64) / 3;
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match client.keep_alive(lease.id).await {
                    Ok(ttl) if ttl <= 0 => return, // gone: the waiter sees its key missing
                    Ok(_) => {}
                    Err(error) => tracing::debug!("a waiter's lease was not renewed: {error}"),
                }
            }
        });
        Ok(Entry {
            key,
            lease: lease.id,
            revision,
            keeper: keeper.abort_handle(),
        })
    }

    /// The revision that created the waiter's key on `lease`, after a put whose answer was lost.
    async fn created(&self, key: &[u8], lease: i64, reason: String) -> Result<i64, StoreError> {
        let answer = self
            .client
            .range(RangeRequest {
                key: key.to_vec(),
                ..RangeRequest::default()
            })
            .await?;
        match answer.kvs.into_iter().find(|kv| kv.lease == lease) {
            Some(kv) => Ok(kv.create_revision),
            None => Err(StoreError::unavailable(format!(
                "{reason}; the waiter's key was not made"
            ))),
        }
    }
}

impl EtcdPlace {
    /// The comparisons that keep a grant to this waiter's turn: its key is still the one it
    /// made, and no waiter key in the line is older.
    fn turn(&self) -> [Compare; 2] {
        let (waiter, entry) = (&self.waiter, &self.entry);
        let nobody_ahead = Compare {
            result: CompareResult::Greater as i32,
            range_end: waiter.line_end.clone(),
            ..compare(
                &waiter.line,
                CompareTarget::Create,
                TargetUnion::CreateRevision(entry.revision - 1),
            )
        };
        let still_mine = compare(
            &entry.key,
            CompareTarget::Create,
            TargetUnion::CreateRevision(entry.revision),
        );
        [still_mine, nobody_ahead]
    }

    /// Leaves the line as part of a grant's transaction.
    fn leave_line(&self) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: self.entry.key.clone(),
                range_end: Vec::new(),
                prev_kv: false,
            })),
        }
    }

    /// Puts the owner's holder key if the key's holders admit this waiter, which is first, and
    /// deletes the waiter's key, in one transaction.
    async fn take_held(&mut self) -> Result<TryLockOutcome, StoreError> {
        let waiter = &self.waiter;
        let read = waiter
            .client
            .read_together(TxnRequest {
                compare: Vec::new(),
                success: vec![read_range(&waiter.holders, &waiter.holders_end, false)],
                failure: Vec::new(),
            })
            .await?;
        let read_at = revision_of(&read);
        let kvs = ranges(read).pop().map_or_else(Vec::new, |range| range.kvs);
        let mut after = holders::record(&kvs, |_| holders::NEVER);
        let acquired = after.acquire(holders::NOW, &waiter.owner, waiter.ttl, waiter.kind, 0);
        match acquired.outcome {
            TryLockOutcome::Granted(_) if acquired.drew_token => {}
            // Holders of another limit leave in time, and then this waiter's turn comes.
            TryLockOutcome::Refused(Conflict::LimitMismatch { .. }) => {
                return Ok(TryLockOutcome::Held)
            }
            TryLockOutcome::Refused(conflict) => return Ok(TryLockOutcome::Refused(conflict)),
            // Held, or held by its own owner already (see the module's doc).
            _ => return Ok(TryLockOutcome::Held),
        }
        let holding = Holding {
            mode: after.mode,
            limit: after.limit,
            holds: 1,
        };
        let value = holding.encode();
        let lease = waiter
            .client
            .grant(EtcdStore::lease_seconds(waiter.ttl))
            .await?
            .id;
        let [still_mine, nobody_ahead] = self.turn();
        let sent = waiter
            .client
            .txn(TxnRequest {
                compare: vec![
                    absent(&waiter.lock),
                    unwritten_since(&waiter.holders, &waiter.holders_end, read_at),
                    still_mine,
                    nobody_ahead,
                ],
                success: vec![put(&waiter.holder, &value, lease), self.leave_line()],
                failure: Vec::new(),
            })
            .await;
        let granted = match sent {
            Ok(Sent::Answered(answer)) if answer.succeeded => Some(revision_of(&answer)),
            Ok(Sent::Answered(_)) => None,
            // After a lost answer the holder key says whether the grant landed: on its lease.
            Ok(Sent::Unknown(_)) => {
                let answer = waiter.client.range(RangeRequest {
                    key: waiter.holder.clone(),
                    ..RangeRequest::default()
                });
                let found = answer.await.map(|answer| answer.kvs);
                let found = found.inspect_err(|_| waiter.client.discard(lease))?;
                found
                    .into_iter()
                    .find(|kv| kv.lease == lease && kv.value == value)
                    .map(|kv| kv.create_revision)
            }
            Err(error) => {
                waiter.client.discard(lease);
                return Err(error);
            }
        };
        let Some(revision) = granted else {
            waiter.client.discard(lease);
            return Ok(TryLockOutcome::Held);
        };
        waiter.client.discard(self.entry.lease);
        Ok(TryLockOutcome::Granted(Grant::first(Some(revision as u64))))
    }

    /// Puts the lock key for the owner if this waiter is first and the lock is free, deleting
    /// the waiter's key, in one transaction.
    async fn take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let (waiter, entry) = (&self.waiter, &self.entry);
        let lease = waiter.leases.for_lock(waiter.ttl).await?;
        let planned = Planned::new(&waiter.owner, waiter.ttl);
        let [still_mine, nobody_ahead] = self.turn();
        let leave_line = self.leave_line();
        let sent = waiter
            .client
            .txn(TxnRequest {
                compare: vec![
                    absent(&waiter.lock),
                    none_in(&waiter.holders, &waiter.holders_end),
                    still_mine,
                    nobody_ahead,
                ],
                success: vec![put(&waiter.lock, &planned.value, lease), leave_line],
                failure: Vec::new(),
            })
            .await?;
        let granted = match sent {
            Sent::Answered(answer) if answer.succeeded => {
                Some(answer.header.map_or(0, |h| h.revision))
            }
            Sent::Answered(_) => None,
            // After a lost answer the lock key says whether the grant landed: with the value it
            // put. A copy that lands later holds the lock unseen until that value's deadline,
            // as a lock of a sidecar that died does (the lease is shared: revoking it is no
            // undo).
            Sent::Unknown(_) => {
                let answer = waiter
                    .client
                    .range(RangeRequest {
                        key: waiter.lock.clone(),
                        ..RangeRequest::default()
                    })
                    .await?;
                answer
                    .kvs
                    .into_iter()
                    .find(|kv| kv.lease == lease && kv.value == planned.value)
                    .map(|kv| kv.create_revision)
            }
        };
        let Some(revision) = granted else {
            return Ok(TryLockOutcome::Held);
        };
        waiter.client.discard(entry.lease);
        planned.landed(&waiter.timers, &waiter.lock, revision);
        Ok(TryLockOutcome::Granted(Grant::first(Some(revision as u64))))
    }
}

#[async_trait]
impl Place for EtcdPlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let waiter = &self.waiter;
        // Reads first: a waiter that is not first, or a held lock, costs etcd no write.
        let line = waiter
            .client
            .range(RangeRequest {
                key: waiter.line.clone(),
                range_end: waiter.line_end.clone(),
                keys_only: true,
                ..RangeRequest::default()
            })
            .await?;
        if !line.kvs.iter().any(|kv| kv.key == self.entry.key) {
            tracing::warn!("a waiter's lease ended (etcd out of reach?): it joins the line again");
            self.entry = waiter.enter().await?;
            return Ok(TryLockOutcome::Held);
        }
        self.ahead = line
            .kvs
            .into_iter()
            .filter(|kv| kv.create_revision < self.entry.revision)
            .max_by_key(|kv| kv.create_revision)
            .map(|kv| kv.key);
        if self.ahead.is_some()
            || deadline::live(&waiter.client, &waiter.lock)
                .await?
                .is_some()
        {
            return Ok(TryLockOutcome::Held);
        }
        if !waiter.kind.is_plain() {
            return self.take_held().await;
        }
        if any_in(&waiter.client, &waiter.holders, &waiter.holders_end).await? {
            return Ok(TryLockOutcome::Held);
        }
        self.take().await
    }

    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        let waiter = &self.waiter;
        let max_wait = match &self.ahead {
            Some(_) => max_wait,
            None => deadline::until_deadline(&waiter.client, &waiter.lock, max_wait).await?,
        };
        let spans = match &self.ahead {
            Some(ahead) => vec![(&ahead[..], &[][..])],
            // First: the lock key, or a holder's place.
            None => vec![
                (&waiter.lock[..], &[][..]),
                (&waiter.holders[..], &waiter.holders_end[..]),
            ],
        };
        watch::deleted(&waiter.client, &waiter.released, &spans, max_wait).await
    }

    async fn leave(self: Box<Self>) {
        let lease = self.entry.lease;
        if let Err(error) = self.waiter.client.revoke(lease).await {
            tracing::debug!("lease {lease:x} of a waiter left to expire: {error}");
        }
    }
}
