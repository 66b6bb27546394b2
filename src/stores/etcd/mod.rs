//! `lock.etcd`: locks in an etcd cluster (v3 API), each a key `<keyPrefixPath>/<store key>`
//! holding the raw owner, attached to a lease of its own whose TTL is the lock's expiry, so
//! etcd deletes it on time by itself when the holder's sidecar is gone. A lock shorter than
//! etcd's minimum lease also carries its deadline, and its sidecar deletes it then
//! (`deadline.rs`); the lease is only the backstop for a sidecar that died.
//!
//! Every change to a key is one etcd transaction guarded by a comparison (`requests.rs` builds
//! them): a grant puts the key only if it does not exist (create revision 0); a release deletes
//! it only if it holds the owner (a short lock: only if it is still the version read, which
//! held the owner); a renewal to another TTL puts a new lease on it, again only if
//! it holds the owner. A renewal to the same TTL writes nothing: it restarts the lease of the
//! owner's grant, which no other grant shares, so it can extend nothing but that lock. The
//! revision that created the key is the fencing token: etcd's revisions rise across the whole
//! cluster, so a later holder always has a larger one. Deletions, by release or by an expired lease, reach waiters through
//! one watch (`watch.rs`).
//!
//! Blocking acquires wait in a line kept in etcd (`place.rs`): a key per waiter under
//! `<keyPrefixPath>/\xff`, ordered by create revision. No lock key starts there (store keys
//! are UTF-8, which never holds the byte 0xFF), yet the line stays under the lock prefix, so
//! the one permission on `<keyPrefixPath>/` and the one release watch cover it too. A grant to
//! the first waiter and a try-lock both put the lock key only if it is absent and nobody ahead
//! waits, in one transaction, so a try-lock never jumps the line.
//!
//! etcd leases are whole seconds, and etcd grants no lease shorter than its minimum (one and a
//! half election timeouts, rounded up: 2 s with etcd's defaults). The store learns that minimum
//! at start-up and says so in the log when it is above one second: a lock asked for less is
//! freed on time by its sidecar, and lasts the minimum only if that sidecar dies.

mod client;
mod deadline;
mod place;
mod requests;
mod settings;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::config::ConfigError;
use crate::config::Metadata;
use crate::lock::{
    Capabilities, Grant, LockInfo, LockStore, OwnerChecked, Place, StoreError, TryLockOutcome,
};
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareTarget, TargetUnion},
    request_op::Request as Op,
    RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::etcd::mvccpb::KeyValue;
use client::{AuthFailure, Client};
use deadline::{Planned, Record};
use place::Waiter;
use requests::{
    absent, compare, delete, exists, first_record, held_by, none_in, prefix_end, put, read,
};
use settings::Settings;

/// The byte after the lock prefix where the lines of waiters start: never in a UTF-8 key.
const LINE: u8 = 0xff;

pub(crate) struct EtcdStore {
    client: Arc<Client>,
    /// `<keyPrefixPath>/`: every lock key starts with it.
    prefix: String,
    /// `<keyPrefixPath>/\xff`: every waiter's key starts with it.
    line_prefix: Vec<u8>,
    /// Deleted lock keys, from the watch.
    released: broadcast::Sender<Vec<u8>>,
}

impl EtcdStore {
    /// Connects as a `lock.etcd` component's metadata says: authenticates when a user is given
    /// (bad credentials fail start-up, naming the field), checks the prefix can be read, learns
    /// etcd's minimum lease, and starts the release watch.
    pub(crate) async fn connect(metadata: &Metadata) -> Result<Arc<EtcdStore>, ConfigError> {
        let settings = Settings::from_metadata(metadata)?;
        let client = Arc::new(Client::new(&settings)?);
        let unreachable = |reason: String| {
            ConfigError::new(format!(
                "can't reach etcd at {}: {reason}",
                client.addresses()
            ))
        };
        if let Some(credentials) = &settings.credentials {
            match client.authenticate().await {
                Ok(()) => {}
                Err(AuthFailure::Refused(reason)) if reason.contains("not enabled") => {
                    return Err(ConfigError::field(
                        "username",
                        format!(
                            "etcd at {} has authentication turned off: remove username and \
                             password, or turn it on (etcdctl auth enable)",
                            client.addresses()
                        ),
                    ))
                }
                Err(AuthFailure::Refused(reason)) => {
                    return Err(ConfigError::field(
                        "password",
                        format!(
                            "etcd refused user '{}' with this password: {reason}",
                            credentials.username
                        ),
                    ))
                }
                Err(AuthFailure::Unreachable(reason)) => return Err(unreachable(reason)),
            }
        }
        let prefix = format!("{}/", settings.key_prefix);
        let range_end = prefix_end(prefix.as_bytes());
        client
            .range(RangeRequest {
                key: prefix.clone().into_bytes(),
                range_end: range_end.clone(),
                count_only: true,
                ..RangeRequest::default()
            })
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(reason) => unreachable(reason),
                other => ConfigError::field(
                    "keyPrefixPath",
                    format!("can't read the keys under '{prefix}': {other}"),
                ),
            })?;
        // The shortest lease etcd grants: ask for one second and see what comes back.
        let probe = client
            .grant(1)
            .await
            .map_err(|e| ConfigError::new(format!("etcd refused a lease: {e}")))?;
        let _ = client.revoke(probe.id).await;
        if probe.ttl > 1 {
            tracing::warn!(
                "etcd at {} grants no lease shorter than {}s (1.5 election timeouts): locks \
                 asked for less are freed on time by their sidecar, and last {}s if it dies",
                client.addresses(),
                probe.ttl,
                probe.ttl
            );
        }

        let (released, _) = broadcast::channel(1024);
        tokio::spawn(watch::relay_releases(
            Arc::downgrade(&client),
            prefix.clone().into_bytes(),
            range_end,
            released.clone(),
        ));
        let mut line_prefix = prefix.clone().into_bytes();
        line_prefix.push(LINE);
        Ok(Arc::new(EtcdStore {
            client,
            prefix,
            line_prefix,
            released,
        }))
    }

    fn path(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    /// The whole seconds to ask etcd for: Dapr's expiries are whole seconds already.
    fn lease_seconds(ttl: Duration) -> i64 {
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        seconds.clamp(1, i64::MAX as u64) as i64
    }

    /// The key's record, if it exists.
    async fn get(&self, path: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let answer = self
            .client
            .range(RangeRequest {
                key: path.to_vec(),
                ..RangeRequest::default()
            })
            .await?;
        Ok(answer.kvs.into_iter().next())
    }

    /// The range of `key`'s waiters: `<line prefix><length of key>:<key>/`. The length keeps
    /// the line of `a/b` out of the range of `a`'s, which would otherwise include it.
    fn line(&self, key: &str) -> (Vec<u8>, Vec<u8>) {
        let mut start = self.line_prefix.clone();
        start.extend_from_slice(format!("{}:{key}/", key.len()).as_bytes());
        let end = prefix_end(&start);
        (start, end)
    }

    /// A held key as the core sees it, with the time left: to a short lock's deadline, else
    /// on its lease. `None` when the lease is already gone (the key goes with it) or the
    /// deadline has passed (a dead sidecar's short lock, which its lease still keeps).
    async fn info(&self, kv: KeyValue) -> Result<Option<LockInfo>, StoreError> {
        let record = Record::read(&kv.value);
        let seconds_left = if kv.lease == 0 || record.deadline.is_some() {
            0 // without a lease, put by hand: shown as no time left rather than forever
        } else {
            self.client.time_to_live(kv.lease).await?
        };
        if seconds_left < 0 {
            return Ok(None);
        }
        let Some(expires_in) = record.left(Duration::from_secs(seconds_left as u64)) else {
            return Ok(None);
        };
        let key = String::from_utf8_lossy(&kv.key);
        Ok(Some(LockInfo {
            key: key.strip_prefix(&self.prefix).unwrap_or(&key).to_string(),
            owner: record.owner,
            expires_in,
            fencing_token: Some(kv.create_revision as u64),
        }))
    }

    /// Runs `change` on the key at `path` in one transaction, only while the key holds
    /// `owner`, and answers with the revision it ran at. Once it ran, the key's old lease
    /// names no lock any more (the change deleted the key or put it on another lease), so it
    /// is discarded.
    async fn owner_checked(
        &self,
        path: &[u8],
        owner: &str,
        change: RequestOp,
    ) -> Result<(OwnerChecked, i64), StoreError> {
        let mut guard = held_by(path, owner);
        loop {
            let answer = self
                .client
                .txn(TxnRequest {
                    compare: vec![guard],
                    success: vec![change.clone()],
                    failure: vec![read(path)],
                })
                .await?;
            let succeeded = answer.succeeded;
            let revision = answer.header.as_ref().map_or(0, |h| h.revision);
            let record = first_record(answer);
            if succeeded {
                self.client.discard(record.map_or(0, |kv| kv.lease));
                return Ok((OwnerChecked::Applied, revision));
            }
            // Why it failed, from the key as the transaction read it.
            let Some(kv) = record else {
                return Ok((OwnerChecked::NotHeld, 0));
            };
            if Record::read(&kv.value).owner != owner {
                return Ok((OwnerChecked::HeldByOther, 0));
            }
            // The owner's short lock, whose value is more than the owner: again, only while
            // the key is the version just read.
            guard = compare(
                path,
                CompareTarget::Mod,
                TargetUnion::ModRevision(kv.mod_revision),
            );
        }
    }
}

#[async_trait]
impl LockStore for EtcdStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        let path = self.path(key);
        // A held key is refused by a read alone: a waiter retrying costs etcd no writes (the
        // lease and the transaction below are two), and the answer comes sooner.
        if exists(&self.client, &path).await? {
            return Ok(TryLockOutcome::Held);
        }
        let lease = self.client.grant(Self::lease_seconds(ttl)).await?;
        // Free, and nobody waiting for it: a try never jumps the line.
        let (line, line_end) = self.line(key);
        let planned = Planned::new(owner, ttl, lease.ttl);
        let answer = self
            .client
            .txn(TxnRequest {
                compare: vec![absent(&path), none_in(&line, &line_end)],
                success: vec![put(&path, &planned.value, lease.id)],
                failure: Vec::new(),
            })
            .await?;
        if !answer.succeeded {
            self.client.discard(lease.id);
            return Ok(TryLockOutcome::Held);
        }
        // The transaction's revision is the put's, which created the key.
        let revision = answer.header.map_or(0, |h| h.revision);
        planned.landed(&self.client, &path, revision);
        Ok(TryLockOutcome::Granted(Grant {
            fencing_token: Some(revision as u64),
        }))
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<OwnerChecked, StoreError> {
        let path = self.path(key);
        let release = RequestOp {
            request: Some(Op::RequestDeleteRange(delete(&path))),
        };
        Ok(self.owner_checked(&path, owner, release).await?.0)
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let path = self.path(key);
        let Some(current) = self.get(&path).await? else {
            return Ok(OwnerChecked::NotHeld);
        };
        let record = Record::read(&current.value);
        if record.owner != owner {
            return Ok(OwnerChecked::HeldByOther);
        }
        if record.left(Duration::ZERO).is_none() {
            return Ok(OwnerChecked::NotHeld); // past its deadline: its timer is deleting it
        }
        let seconds = Self::lease_seconds(ttl);
        if current.lease != 0 && record.deadline.is_none() {
            // The lease names this grant alone, so restarting it extends this holder's lock
            // and nothing else. Exact when the lease already has the TTL asked for.
            let now = self.client.keep_alive(current.lease).await?;
            if now <= 0 {
                return Ok(OwnerChecked::NotHeld); // expired since the read
            }
            if now == seconds && Duration::from_secs(now as u64) <= ttl {
                return Ok(OwnerChecked::Applied);
            }
        }
        // Another TTL, or a short lock's new deadline: a new lease, swapped in only while the
        // owner still holds the key.
        let lease = self.client.grant(seconds).await?;
        let planned = Planned::new(owner, ttl, lease.ttl);
        let (checked, revision) = self
            .owner_checked(&path, owner, put(&path, &planned.value, lease.id))
            .await?;
        if checked == OwnerChecked::Applied {
            planned.landed(&self.client, &path, revision);
        } else {
            self.client.discard(lease.id);
        }
        Ok(checked)
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        match self.get(&self.path(key)).await? {
            Some(kv) => self.info(kv).await,
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let start = self.path(prefix);
        // Lock keys only: the lines of waiters sort after every one of them.
        let range_end = prefix_end(&start).min(self.line_prefix.clone());
        let answer = self
            .client
            .range(RangeRequest {
                range_end,
                key: start,
                ..RangeRequest::default()
            })
            .await?;
        let mut found = Vec::with_capacity(answer.kvs.len());
        for kv in answer.kvs {
            if let Some(info) = self.info(kv).await? {
                found.push(info);
            }
        }
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let answer = self.client.delete(delete(&self.path(key))).await?;
        for kv in &answer.prev_kvs {
            self.client.discard(kv.lease);
        }
        Ok(answer.deleted > 0)
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        watch::deleted(&self.client, &self.released, &self.path(key), max_wait).await
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Box<dyn Place>, StoreError> {
        let (line, line_end) = self.line(key);
        let waiter = Waiter {
            client: self.client.clone(),
            released: self.released.clone(),
            lock: self.path(key),
            line,
            line_end,
            owner: owner.to_string(),
            ttl,
            lease_seconds: Self::lease_seconds(ttl),
        };
        Ok(Box::new(waiter.join().await?))
    }

    fn servers(&self) -> Vec<String> {
        self.client.members()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
            line: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_whole_seconds() {
        assert_eq!(EtcdStore::lease_seconds(Duration::from_secs(3)), 3);
        assert_eq!(EtcdStore::lease_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(EtcdStore::lease_seconds(Duration::from_millis(10)), 1);
    }
}
