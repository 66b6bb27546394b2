//! `lock.etcd`: locks in an etcd cluster (v3 API), each a key `<keyPrefixPath>/<store key>`
//! whose value is the owner and the lock's deadline (`deadline.rs`). The key rides on a lease
//! this sidecar shares among its locks of about the same expiry (`leases.rs`), so an
//! uncontended lock and unlock is two writes to etcd, the put and the delete, with no lease
//! granted or revoked for it. The deadline ends the lock, for every reader, whichever sidecar
//! wrote it; the sidecar that wrote it deletes it then, and the shared lease clears away the
//! keys of a sidecar that died.
//!
//! Every change to a key is one etcd transaction guarded by a comparison (`requests.rs` builds
//! them): a grant puts the key only if it does not exist (create revision 0), after deleting
//! a key past its deadline; a release reads the key and deletes it only if it is still the
//! version read, which held the owner; a renewal puts the new deadline on it, again only on
//! the version read. A write whose answer was lost is never simply sent again: the key is read
//! back to learn whether it ran (`client.rs`, `change_version`). The revision that created the
//! key is the fencing token: etcd's revisions rise across the whole cluster, so a later holder
//! always has a larger one. Deletions, by release, by a deadline's timer or by an expired
//! lease, reach waiters through one watch (`watch.rs`).
//!
//! Blocking acquires wait in a line kept in etcd (`place.rs`): a key per waiter under
//! `<keyPrefixPath>/\xff`, ordered by create revision. No lock key starts there (store keys
//! are UTF-8, which never holds the byte 0xFF), yet the line stays under the lock prefix, so
//! the one permission on `<keyPrefixPath>/` and the one release watch cover it too. A grant to
//! the first waiter and a try-lock both put the lock key only if it is absent and nobody ahead
//! waits, in one transaction, so a try-lock never jumps the line.
//!
//! Shared, limited and reentrant locks keep a key per holder under `<keyPrefixPath>/\xfe`, on
//! a lease per holder (`holders.rs`). The plain lock key is left as it was, so a plain grant
//! only adds one comparison: that no holder's key exists.
//!
//! A multi-lock is taken and released in one transaction over all its keys (`multi.rs`).
//!
//! etcd leases are whole seconds, and etcd grants no lease shorter than its minimum (one and a
//! half election timeouts, rounded up: 2 s with etcd's defaults). The store learns that minimum
//! at start-up and says so in the log when it is above one second; plain locks, timed by their
//! deadlines, are exact whatever it is, while a shared or reentrant holder lasts at least the
//! minimum.

mod client;
mod deadline;
mod holders;
mod leases;
mod multi;
mod place;
#[cfg(all(test, any(feature = "postgresql", feature = "mysql")))]
mod raw_bench;
mod requests;
mod settings;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::config::ConfigError;
use crate::config::Metadata;
use crate::lock::{
    Capabilities, Grant, Kind, LockInfo, LockStore, ManyOutcome, OwnerChecked, Place, Released,
    StoreError, TryLockOutcome,
};
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareTarget, TargetUnion},
    request_op::Request as Op,
    RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::etcd::mvccpb::KeyValue;
use client::{AuthFailure, Client, Sent};
use deadline::{Planned, Record, Timers};
use leases::Leases;
use place::Waiter;
use requests::{absent, compare, delete, first_record, none_in, prefix_end, put, read};
use settings::Settings;

/// The byte after the lock prefix where the lines of waiters start: never in a UTF-8 key.
const LINE: u8 = 0xff;

pub(crate) struct EtcdStore {
    client: Arc<Client>,
    /// `<keyPrefixPath>/`: every lock key starts with it.
    prefix: String,
    /// `<keyPrefixPath>/\xfe`: every holder's key of a shared or reentrant lock starts with it.
    holders_prefix: Vec<u8>,
    /// `<keyPrefixPath>/\xff`: every waiter's key starts with it.
    line_prefix: Vec<u8>,
    /// The leases this sidecar's lock keys ride on.
    leases: Arc<Leases>,
    /// The deadlines of the locks this sidecar wrote.
    timers: Arc<Timers>,
    /// Deleted keys under the prefix (locks, holders, waiters), from the watch.
    released: broadcast::Sender<Vec<u8>>,
    /// The task relaying the watch, ended with the store: a store replaced by a reload, or
    /// removed, closes its watch at once rather than at its next event.
    relay: AbortHandle,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

impl EtcdStore {
    /// Releases the plain lock `current`, read at `path`, if `owner` holds it; with `token`,
    /// only the grant of that token (its key's create revision), never a later grant of the
    /// same owner. The delete is guarded by the version read, which lets a delete whose answer
    /// was lost be told apart from one that never ran.
    async fn release_plain(
        &self,
        path: &[u8],
        current: KeyValue,
        owner: &str,
        token: Option<u64>,
    ) -> Result<OwnerChecked, StoreError> {
        if Record::read(&current.value).owner != owner {
            return Ok(OwnerChecked::HeldByOther);
        }
        if token.is_some_and(|token| u64::try_from(current.create_revision) != Ok(token)) {
            return Ok(OwnerChecked::NotHeld);
        }
        let (checked, _) = self
            .change_version(path, Some(owner), current, Change::Release)
            .await?;
        if checked == OwnerChecked::Applied {
            self.timers.disarm(path);
        }
        Ok(checked)
    }

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
                StoreError::Unavailable(cause) => unreachable(cause.to_string()),
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
        // A fact of the cluster's settings, not a fault (etcd's defaults give two seconds):
        // said once at info, where an operator reading the start-up finds it.
        if probe.ttl > 1 {
            tracing::info!(
                "etcd at {} grants no lease shorter than {}s (1.5 election timeouts): shared \
                 and reentrant holders asked for less last {}s (plain locks end at their own \
                 deadline)",
                client.addresses(),
                probe.ttl,
                probe.ttl
            );
        }

        let (released, _) = broadcast::channel(1024);
        let relay = tokio::spawn(watch::relay_releases(
            client.clone(),
            prefix.clone().into_bytes(),
            range_end,
            released.clone(),
        ))
        .abort_handle();
        let mut holders_prefix = prefix.clone().into_bytes();
        holders_prefix.push(holders::HOLDERS);
        let mut line_prefix = prefix.clone().into_bytes();
        line_prefix.push(LINE);
        Ok(Arc::new(EtcdStore {
            leases: Arc::new(Leases::new(client.clone())),
            timers: Arc::new(Timers::new(client.clone())),
            client,
            prefix,
            holders_prefix,
            line_prefix,
            released,
            relay,
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

    /// A held key as the core sees it, with the time left to its deadline (on its lease, for a
    /// key written before deadlines were). `None` when the deadline has passed (a dead
    /// sidecar's lock, which its lease still keeps) or the lease is already gone.
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
        Ok(Some(LockInfo::exclusive(
            key.strip_prefix(&self.prefix).unwrap_or(&key),
            record.owner,
            expires_in,
            Some(kv.create_revision as u64),
        )))
    }

    /// Runs `change` on the key at `path` in one transaction, only while the key is still the
    /// version `current` read (its mod revision), and answers with the revision it ran at.
    /// While the key changes under it but still holds `owner` (anyone's, for `None`), it reads
    /// the new version and tries again.
    ///
    /// The guard lets at most one copy of the transaction run, so one whose answer was lost is
    /// sent again only while the key is still the version guarded: then no copy has run yet.
    /// Otherwise what the key became tells whether a copy ran (`Change::landed`), and that is
    /// the answer, not the failed comparison of a later copy.
    async fn change_version(
        &self,
        path: &[u8],
        owner: Option<&str>,
        mut current: KeyValue,
        change: Change,
    ) -> Result<(OwnerChecked, i64), StoreError> {
        let mut lost_answers = 0;
        loop {
            let guard = compare(
                path,
                CompareTarget::Mod,
                TargetUnion::ModRevision(current.mod_revision),
            );
            let sent = self
                .client
                .txn(TxnRequest {
                    compare: vec![guard],
                    success: vec![change.request(path)],
                    failure: vec![read(path)],
                })
                .await?;
            let now = match sent {
                Sent::Answered(answer) if answer.succeeded => {
                    return Ok((
                        OwnerChecked::Applied,
                        answer.header.map_or(0, |h| h.revision),
                    ));
                }
                Sent::Answered(answer) => first_record(answer),
                Sent::Unknown(reason) => {
                    lost_answers += 1;
                    let now = self.get(path).await?;
                    let unchanged = now
                        .as_ref()
                        .is_some_and(|kv| kv.mod_revision == current.mod_revision);
                    if unchanged && lost_answers < LOST_ANSWERS {
                        continue; // no copy ran: sending another is safe
                    }
                    if unchanged {
                        return Err(StoreError::unavailable(reason));
                    }
                    now
                }
            };
            if lost_answers > 0 {
                if let Some(revision) = change.landed(&current, now.as_ref()) {
                    return Ok((OwnerChecked::Applied, revision));
                }
            }
            let Some(kv) = now else {
                return Ok((OwnerChecked::NotHeld, 0));
            };
            if owner.is_some_and(|owner| Record::read(&kv.value).owner != owner) {
                return Ok((OwnerChecked::HeldByOther, 0));
            }
            current = kv;
        }
    }

    /// After a grant whose answer was lost: the revision that created the key if the grant
    /// landed (the key holds the value it put, on its lease). A lease of the grant's own
    /// (`own_lease`) is revoked if it did not, or the key can't be read, so a copy still on
    /// its way lands on no lease and fails, or is deleted with it. A shared lease can't be: a
    /// copy that lands late holds the lock unseen until the deadline in its value, as the lock
    /// of a sidecar that died does.
    async fn grant_landed(
        &self,
        path: &[u8],
        (value, lease): (&[u8], i64),
        own_lease: bool,
        reason: String,
    ) -> Result<TryLockOutcome, StoreError> {
        let undo = || {
            if own_lease {
                self.client.discard(lease);
            }
        };
        let now = match self.get(path).await {
            Ok(now) => now,
            Err(error) => {
                // Unknown still: revoking the lease undoes the grant if it landed.
                undo();
                return Err(error);
            }
        };
        if let Some(kv) = now
            .as_ref()
            .filter(|kv| kv.lease == lease && kv.value == value)
        {
            return Ok(TryLockOutcome::Granted(Grant::first(Some(
                kv.create_revision as u64,
            ))));
        }
        undo();
        match now {
            Some(_) => Ok(TryLockOutcome::Held),
            None => Err(StoreError::unavailable(format!(
                "{reason}; it did not land, the lock is free"
            ))),
        }
    }
}

/// How many lost answers one change rides out before it fails.
const LOST_ANSWERS: u32 = 3;

/// What `change_version` does to a held key.
enum Change {
    /// Deletes it: an unlock or a forced release.
    Release,
    /// Puts the owner's lock on a new lease: a renewal.
    Extend { value: Vec<u8>, lease: i64 },
}

impl Change {
    fn request(&self, path: &[u8]) -> RequestOp {
        match self {
            Change::Release => RequestOp {
                request: Some(Op::RequestDeleteRange(delete(path))),
            },
            Change::Extend { value, lease } => put(path, value, *lease),
        }
    }

    /// Whether a copy of the change landed on `guarded`, now that the key is `now`, and at
    /// which revision. A release landed once the lock `guarded` belongs to is gone (deleted,
    /// or replaced by another grant): the owner's lock is released, whichever delete did it.
    /// A renewal landed when the key holds its new value (a deadline to the millisecond) on
    /// its lease, in the same grant.
    fn landed(&self, guarded: &KeyValue, now: Option<&KeyValue>) -> Option<i64> {
        match (self, now) {
            (Change::Release, None) => Some(0),
            (Change::Release, Some(kv)) => {
                (kv.create_revision != guarded.create_revision).then_some(0)
            }
            (Change::Extend { value, lease }, Some(kv)) => (kv.create_revision
                == guarded.create_revision
                && kv.lease == *lease
                && kv.value == *value)
                .then_some(kv.mod_revision),
            (Change::Extend { .. }, None) => None,
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
        // A held key is refused by a read alone: a waiter retrying costs etcd no write, and
        // the answer comes sooner.
        if deadline::live(&self.client, &path).await?.is_some() {
            return Ok(TryLockOutcome::Held);
        }
        let lease = self.leases.for_lock(ttl).await?;
        // Free, held by no shared or reentrant holder, and nobody waiting for it: a try never
        // jumps the line.
        let (line, line_end) = self.line(key);
        let (holders, holders_end) = self.holders(key);
        let planned = Planned::new(owner, ttl);
        let sent = self
            .client
            .txn(TxnRequest {
                compare: vec![
                    absent(&path),
                    none_in(&line, &line_end),
                    none_in(&holders, &holders_end),
                ],
                success: vec![put(&path, &planned.value, lease)],
                failure: Vec::new(),
            })
            .await?;
        let outcome = match sent {
            // The transaction's revision is the put's, which created the key.
            Sent::Answered(answer) if answer.succeeded => TryLockOutcome::Granted(Grant::first(
                Some(answer.header.map_or(0, |h| h.revision) as u64),
            )),
            Sent::Answered(_) => TryLockOutcome::Held,
            Sent::Unknown(reason) => {
                self.grant_landed(&path, (&planned.value, lease), false, reason)
                    .await?
            }
        };
        if let TryLockOutcome::Granted(Grant {
            fencing_token: Some(revision),
            ..
        }) = outcome
        {
            planned.landed(&self.timers, &path, revision as i64);
        }
        Ok(outcome)
    }

    async fn acquire_kind(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        self.acquire_held(key, owner, ttl, kind).await
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        let path = self.path(key);
        // A plain lock first, as Dapr's unlock finds most; else the key's holders.
        match self.get(&path).await? {
            Some(current) => Ok(Released {
                outcome: self.release_plain(&path, current, owner, None).await?,
                holds_left: 0,
            }),
            None => self.release_held(key, owner, all_holds).await,
        }
    }

    async fn acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        self.acquire_all(keys, owner, ttl, kind).await
    }

    async fn release_many(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        self.release_all(keys, owner, all_holds).await
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        let path = self.path(key);
        match self.get(&path).await? {
            Some(current) => {
                self.release_plain(&path, current, owner, grant.fencing_token)
                    .await
            }
            None => {
                self.change_held(key, owner, |record| record.take_back(0, owner, grant))
                    .await
            }
        }
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let path = self.path(key);
        let Some(current) = self.get(&path).await? else {
            return self.renew_held(key, owner, ttl).await;
        };
        let record = Record::read(&current.value);
        if record.owner != owner {
            return Ok(OwnerChecked::HeldByOther);
        }
        if record.left(Duration::ZERO).is_none() {
            return Ok(OwnerChecked::NotHeld); // past its deadline: free to anyone
        }
        // The new deadline, on the shared lease of its bucket, written only while the owner
        // still holds the key: one write.
        let lease = self.leases.for_lock(ttl).await?;
        let planned = Planned::new(owner, ttl);
        let extend = Change::Extend {
            value: planned.value.clone(),
            lease,
        };
        let (checked, revision) = self
            .change_version(&path, Some(owner), current, extend)
            .await?;
        if checked == OwnerChecked::Applied {
            planned.landed(&self.timers, &path, revision);
        }
        Ok(checked)
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        match self.get(&self.path(key)).await? {
            Some(kv) => self.info(kv).await,
            None => self.inspect_held(key).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let start = self.path(prefix);
        // Plain lock keys only: the holders and the lines of waiters sort after every one.
        let range_end = prefix_end(&start).min(self.holders_prefix.clone());
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
        found.extend(self.list_held(prefix).await?);
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.path(key);
        let Some(current) = self.get(&path).await? else {
            return self.force_release_held(key).await;
        };
        let (checked, _) = self
            .change_version(&path, None, current, Change::Release)
            .await?;
        if checked == OwnerChecked::Applied {
            self.timers.disarm(&path);
        }
        Ok(checked == OwnerChecked::Applied)
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        // The plain lock, or any holder's place.
        let path = self.path(key);
        let max_wait = deadline::until_deadline(&self.client, &path, max_wait).await?;
        let (holders, holders_end) = self.holders(key);
        let spans = [(&path[..], &[][..]), (&holders[..], &holders_end[..])];
        watch::deleted(&self.client, &self.released, &spans, max_wait).await
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        let (line, line_end) = self.line(key);
        let (holders, holders_end) = self.holders(key);
        let waiter = Waiter {
            client: self.client.clone(),
            leases: self.leases.clone(),
            timers: self.timers.clone(),
            released: self.released.clone(),
            lock: self.path(key),
            holders,
            holders_end,
            line,
            line_end,
            owner: owner.to_string(),
            holder: self.holder(key, owner),
            ttl,
            kind,
        };
        Ok(Box::new(waiter.join().await?))
    }

    /// Every kind waits in the one line of waiter keys (KINDS.md rule 3, `place.rs`).
    fn line_takes(&self, _kind: Kind) -> bool {
        true
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

    #[test]
    fn leases_are_whole_seconds() {
        assert_eq!(EtcdStore::lease_seconds(Duration::from_secs(3)), 3);
        assert_eq!(EtcdStore::lease_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(EtcdStore::lease_seconds(Duration::from_millis(10)), 1);
    }
}
