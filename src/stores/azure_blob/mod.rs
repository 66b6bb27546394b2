//! `lock.azure.blobstorage`: locks in an Azure Blob Storage container, one blob per key
//! (`names.rs`), configured with the storage account's connection string (`settings.rs`).
//!
//! The blob's metadata is the lock's record (`record.rs`): the owner, the deadline by the
//! storage service's clock (`clock.rs`), and a fencing counter. Every change to it is written
//! only if the blob's ETag is still the one just read, so of two sidecars racing for a key
//! exactly one write lands; that write is the grant. The grant then takes the blob's lease, so
//! that the blob shows as leased in Azure's tools and nothing that does not hold the lease can
//! write it: a release, a renewal or a force release writes the record under the holder's lease
//! id and the ETag, and a release also gives the lease back.
//!
//! Leases last until released or broken (Azure's own last 15 to 60 s, too long for a one-second
//! lock): the deadline in the record is what expires a lock, compared with the service's clock,
//! so a lock frees on time whether or not its holder's sidecar lives. A contender that finds
//! a lease on a blob whose record is free (expired, or released by a release cut short) breaks
//! it, again only at the ETag it read, and takes the key. Fencing tokens are the counter, one
//! more at each grant, written under the same condition: they rise through releases, expiries,
//! breaks and restarts, since the counter lives on the blob.
//!
//! Shared, limited and reentrant locks keep the key's holders as one more metadata value
//! (`form.rs`), each with its own deadline by the service's clock, under the core's rules
//! (`lock::holders`): a change reads the blob, applies the rules, and writes the holders back
//! with the same ETag condition, again on a lost race. Their grants draw from the same counter,
//! and take no lease. Releases, renewals, inspection and listing read either form, so Dapr's
//! unlock takes back one hold of a reentrant lock, and a plain try finds a key held by readers
//! held.
//!
//! Blocking acquires of every kind wait in one fair line kept in the blob beside the holders
//! (`line.rs`): each waiter on a lease by the service's clock, granted only when first, in the
//! write that takes it out of the line. The store has no release signal: a waiter looks at its
//! turn at a pace set by its place in line, and a change through the same sidecar wakes the
//! first waiter's place and the sessions (`released`) at once. A multi-lock stands in no line
//! and polls (the core's backoff, jittered here), never past the holder's deadline.
//! What this sidecar last saw of a blob (`known.rs`) lets a holder's release or renewal, and a
//! try after a release here, skip the read before their conditional write.
//!
//! Requests per uncontended lock and unlock: a try reads the blob, writes the record and takes
//! the lease (3); a release writes the record and gives the lease back (2, the read skipped);
//! a try on a blob this sidecar saw released skips its read too (4 a pair then). A refused try
//! is one read. A blob is created once per key, on its first lock (one more request). A shared
//! grant or release is one write, after a read unless this sidecar made the blob's last change
//! (1 or 2; 3 when what it last saw had gone stale: the failed write, a read, the write).

mod account;
mod client;
mod clock;
mod connection_string;
mod form;
mod known;
mod line;
mod names;
#[cfg(all(test, any(feature = "postgresql", feature = "mysql")))]
mod raw_bench;
mod record;
mod settings;
mod shared_key;
mod turnstile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ring::digest::{digest, SHA256};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::config::{ConfigError, Metadata};
use crate::lock::holders::Record as Holders;
use crate::lock::{
    Capabilities, Grant, Kind, LockInfo, LockStore, OwnerChecked, Place, Released, StoreError,
    TryLockOutcome,
};
use client::{BlobClient, Failure, LeaseAction, Written};
use known::{Known, Seen};
use line::Line;
use record::Record;
use settings::Settings;
use turnstile::Turnstile;

/// Reads and conditional writes one call makes before giving up on a key that keeps changing
/// under it.
const ATTEMPTS: usize = 8;

/// The same for a holder's own release or renewal, which must not fail for finding the blob
/// changed eight times in a row: a semaphore's holders release while its waiters rush each
/// place that frees, and on a busy service every look can come a moment too late.
const HOLDER_ATTEMPTS: usize = 64;
/// The most a change of holders waits, jittered and growing, after each write it lost to
/// another's, so that contenders spread out.
const BACKOFF_MAX_MS: u64 = 16;

/// How well the store wants to know the service's clock, and how long it asks at most to
/// learn it (the date must tick over between two answers, once a second).
const CLOCK_TARGET: Duration = Duration::from_millis(50);
const CLOCK_BUDGET: Duration = Duration::from_secs(3);
const CLOCK_PROBE_GAP: Duration = Duration::from_millis(10);
/// How often the clock is checked, in case requests alone have not kept it known.
const CLOCK_CHECK_EVERY: Duration = Duration::from_secs(30);

/// Keys last seen held, at most; a waiter's entry is taken when it waits.
const SEEN_HELD_LIMIT: usize = 10_000;

pub(crate) struct AzureBlobStore {
    /// The store itself, for the places in its line, which outlive a call.
    me: Weak<AzureBlobStore>,
    client: Arc<BlobClient>,
    known: Known,
    /// This sidecar's changes of one blob, one at a time.
    turnstile: Turnstile,
    /// Keys released through this store (this sidecar's releases and force releases), for
    /// waiters and sessions here: the store has no signal of releases made elsewhere.
    released: broadcast::Sender<String>,
    /// The waiter first in a key's line after a change through this store that may have let
    /// it in (a release, the grant or leave of the waiter ahead), for its place here: the line's
    /// other places, here and elsewhere, keep looking at their own pace (`line.rs`).
    turns: broadcast::Sender<String>,
    /// For keys a try found held: the local instant by which the holder's deadline has surely
    /// passed, so a waiter never polls later than that.
    seen_held: Mutex<HashMap<String, Instant>>,
    /// The task keeping the service's clock, ended with the store.
    clock: AbortHandle,
}

impl Drop for AzureBlobStore {
    fn drop(&mut self) {
        self.clock.abort();
    }
}

impl AzureBlobStore {
    /// Connects as a `lock.azure.blobstorage` component's metadata says: creates the container
    /// if it does not exist (a refused credential stops start-up, naming its field), and learns
    /// the service's clock.
    pub(crate) async fn connect(metadata: &Metadata) -> Result<Arc<AzureBlobStore>, ConfigError> {
        let settings = Settings::from_metadata(metadata)?;
        let client = Arc::new(BlobClient::new(&settings).map_err(ConfigError::new)?);
        let container = client.container_url();
        match client.create_container().await {
            Ok(true) => tracing::info!(container, "created the lock container"),
            Ok(false) => {}
            Err(Failure::Unreachable(reason)) => {
                return Err(ConfigError::new(format!(
                    "can't reach Azure Blob Storage at {container}: {reason}"
                )))
            }
            // A SAS may not allow creating containers: enough if the container exists.
            Err(refused) if refused.is_auth() && client.probe().await.is_ok_and(|found| found) => {}
            Err(refused) if refused.is_auth() => {
                return Err(ConfigError::field(
                    settings.credential_field,
                    format!(
                        "Azure Blob Storage at {container} refused this credential ({refused}): \
                         check the account name and key, or the SAS token's permissions and \
                         expiry"
                    ),
                ))
            }
            Err(refused) => {
                return Err(ConfigError::field(
                    "containerName",
                    format!("can't create or use the container {container}: {refused}"),
                ))
            }
        }
        calibrate(&client).await;
        if client.clock.uncertainty() > CLOCK_TARGET {
            tracing::warn!(
                container,
                uncertainty = ?client.clock.uncertainty(),
                "the storage service's clock is not yet known well: locks may last longer \
                 than asked by up to this much"
            );
        }
        let clock = tokio::spawn(keep_the_clock(client.clone())).abort_handle();
        Ok(Arc::new_cyclic(|me| AzureBlobStore {
            me: me.clone(),
            client,
            known: Known::default(),
            turnstile: Turnstile::default(),
            released: broadcast::channel(1024).0,
            turns: broadcast::channel(1024).0,
            seen_held: Mutex::new(HashMap::new()),
            clock,
        }))
    }

    /// The blob as it is now, remembered; `None` when it does not exist.
    async fn read(&self, blob: &str) -> Result<Option<Seen>, StoreError> {
        let Some(properties) = self.client.properties(blob).await? else {
            self.known.forget(blob);
            return Ok(None);
        };
        let seen = Seen {
            record: Record::from_metadata(blob, &properties.metadata)?,
            holders: form::from_metadata(&properties.metadata),
            line: Line::from_metadata(&properties.metadata),
            etag: properties.etag,
            leased: properties.leased,
        };
        self.known.saw(blob, seen.clone());
        Ok(Some(seen))
    }

    /// The service's clock now, as the holders' deadlines are kept: the earliest time it may
    /// show, so that a holder counts as expired only once its deadline has surely passed.
    fn now(&self) -> Now {
        Now {
            ms: u64::try_from(self.client.clock.earliest_now()).unwrap_or(0),
            slack: self.client.clock.uncertainty(),
        }
    }

    /// The key's holders in `seen` that are live now, whichever form the blob has.
    fn live_holders(&self, seen: &Seen) -> Holders {
        let mut holders = form::holders(&seen.record, seen.holders.as_ref());
        holders.purge(self.now().ms);
        holders
    }

    fn held_now(&self, seen: &Seen) -> bool {
        !self.live_holders(seen).is_free()
    }

    /// The waiters in `seen`'s line whose lease runs now.
    fn live_line(&self, seen: &Seen) -> Line {
        let mut line = seen.line.clone();
        line.purge(self.now().ms);
        line
    }

    /// A deadline `ttl` from now, by the latest time the service may have now.
    fn deadline(&self, ttl: Duration) -> i64 {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.client.clock.latest_now().saturating_add(ttl)
    }

    /// Remembers, for a waiter, when the first of the live `holders` of `key` surely expires.
    fn saw_held(&self, key: &str, holders: &Holders) {
        let Some(first) = holders.holders.iter().map(|e| e.deadline_ms).min() else {
            return;
        };
        let past = self
            .client
            .clock
            .when_past(i64::try_from(first).unwrap_or(i64::MAX));
        let mut held = self.seen_held();
        if held.len() >= SEEN_HELD_LIMIT {
            held.clear();
        }
        held.insert(key.to_string(), past);
    }

    fn seen_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // Each change under this mutex is one map operation: poisoning leaves nothing half done.
        self.seen_held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `record`, `holders` where given, and `line` over the blob as `seen`, if it is
    /// still as seen: every write carries the line on.
    async fn write(
        &self,
        blob: &str,
        seen: &Seen,
        record: &Record,
        holders: Option<&Holders>,
        line: &Line,
        lease: Option<&str>,
    ) -> Result<Written, StoreError> {
        let metadata = form::metadata(record, holders, line)?;
        let written = self.client.set_metadata(blob, &metadata, lease, &seen.etag);
        Ok(written.await?)
    }

    /// Applies `change` to `key`'s live holders, whichever form its blob has, and to its line
    /// of live waiters, and writes what it leaves if the blob is still as read; on a lost
    /// race, reads and applies it again, in
    /// `attempts` at most (`None` then). A change from what this sidecar last saw skips the
    /// read; an answer that writes nothing is always given from a fresh read.
    async fn change_holders<T>(
        &self,
        key: &str,
        attempts: usize,
        mut change: impl FnMut(&mut Holders, &mut Line, Now, u64) -> Step<T>,
    ) -> Result<Option<T>, StoreError> {
        let blob = names::blob_name(key);
        let _turn = self.turnstile.pass(&blob).await;
        let mut last_seen = self.known.get(&blob);
        let mut lost = 0;
        for _ in 0..attempts {
            let from_memory = last_seen.is_some();
            let seen = match last_seen.take() {
                Some(seen) => Some(seen),
                None => self.read(&blob).await?,
            };
            let (before, mut line) = match &seen {
                Some(seen) => (self.live_holders(seen), self.live_line(seen)),
                None => (Holders::free(), Line::default()),
            };
            let fencing = seen.as_ref().map_or(0, |seen| seen.record.fencing);
            let mut holders = before.clone();
            let first_before = line.first().map(str::to_string);
            let step = change(
                &mut holders,
                &mut line,
                self.now(),
                fencing.saturating_add(1),
            );
            if !step.changed {
                if from_memory {
                    continue;
                }
                return Ok(Some(step.answer));
            }
            let Some(seen) = seen else {
                self.client.create(&blob).await?;
                continue;
            };
            // A lease is only ever the exclusive holder's, taken with its plain grant.
            let lease = match (seen.leased, before.holders.first()) {
                (false, _) => None,
                (true, Some(holder)) => Some(lease_id(&holder.owner)),
                (true, None) => {
                    // The lease of a holder whose deadline passed, or of a release cut short.
                    let etag = Some(seen.etag.as_str());
                    self.client.lease(&blob, LeaseAction::Break, etag).await?;
                    continue;
                }
            };
            let fencing = if step.drew_token {
                seen.record.next_token(key)?
            } else {
                fencing
            };
            let (record, kept) = form::state(key, &holders, fencing);
            let written = self
                .write(
                    &blob,
                    &seen,
                    &record,
                    kept.as_ref(),
                    &line,
                    lease.as_deref(),
                )
                .await?;
            let Written::Done(etag) = written else {
                self.known.forget(&blob);
                // What this sidecar last saw was merely old: no one to make way for.
                if !from_memory {
                    lost += 1;
                    let most = BACKOFF_MAX_MS.min(1 << lost);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=most))).await;
                }
                continue;
            };
            let mut now = Seen {
                etag,
                leased: seen.leased,
                record,
                holders: kept,
                line,
            };
            if let (Some(lease), true) = (&lease, holders.is_free()) {
                // The key is free already; a lease left behind is broken by the next taker.
                match self
                    .client
                    .lease(&blob, LeaseAction::Release(lease), Some(&now.etag))
                    .await
                {
                    Ok(Written::Done(etag)) => {
                        now.etag = etag;
                        now.leased = false;
                    }
                    _ => now.etag.clear(), // unknown: read next time
                }
            }
            let released = holders.holders.len() < before.holders.len();
            if released || now.line.first() != first_before.as_deref() {
                self.wake_first(&now.line);
            }
            self.known.saw(&blob, now);
            if released {
                let _ = self.released.send(key.to_string());
            }
            return Ok(Some(step.answer));
        }
        Ok(None)
    }
}

/// The service's clock as a change of holders sees it.
#[derive(Clone, Copy)]
struct Now {
    /// The earliest time the service's clock may show, in ms since the epoch.
    ms: u64,
    /// How much later it may show.
    slack: Duration,
}

impl Now {
    /// The time to live to give the holders' rules so that the deadline lies `ttl` after the
    /// latest time the service may show: a lock lasts at least its TTL, as a plain one does.
    fn ttl(self, ttl: Duration) -> Duration {
        ttl.saturating_add(self.slack)
    }
}

/// What a change of holders answers, and whether it changed them (and then whether the grant
/// drew the next fencing token).
struct Step<T> {
    answer: T,
    changed: bool,
    drew_token: bool,
}

impl<T> Step<T> {
    fn new(answer: T, changed: bool) -> Step<T> {
        Step {
            answer,
            changed,
            drew_token: false,
        }
    }
}

#[async_trait]
impl LockStore for AzureBlobStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        let blob = names::blob_name(key);
        let _turn = self.turnstile.pass(&blob).await;
        // A blob last seen free (released through this sidecar, say) is tried without reading.
        let mut last_seen = self
            .known
            .get(&blob)
            .filter(|seen| !seen.leased && !self.held_now(seen) && self.live_line(seen).is_empty());
        for _ in 0..ATTEMPTS {
            let seen = match last_seen.take() {
                Some(seen) => seen,
                None => match self.read(&blob).await? {
                    Some(seen) => seen,
                    None => {
                        self.client.create(&blob).await?;
                        continue;
                    }
                },
            };
            let holders = self.live_holders(&seen);
            if !holders.is_free() {
                self.saw_held(key, &holders);
                return Ok(TryLockOutcome::Held);
            }
            if !self.live_line(&seen).is_empty() {
                return Ok(TryLockOutcome::Held); // a try never jumps the line
            }
            if seen.leased {
                // The lease of a holder whose deadline passed, or of a release cut short.
                self.client
                    .lease(&blob, LeaseAction::Break, Some(&seen.etag))
                    .await?;
                continue;
            }
            let granted = seen.record.granted(key, owner, self.deadline(ttl))?;
            // Nobody waits: the line's expired waiters go with this write.
            let nobody = Line::default();
            let written = self.write(&blob, &seen, &granted, None, &nobody, None);
            let Written::Done(etag) = written.await? else {
                continue; // someone else wrote first: look again
            };
            // The key is ours; the lease shuts out writers that do not hold it.
            let leased = self
                .client
                .lease(&blob, LeaseAction::Acquire(&lease_id(owner)), Some(&etag))
                .await?;
            match leased {
                Written::Done(etag) => self.known.saw(
                    &blob,
                    Seen {
                        etag,
                        leased: true,
                        record: granted.clone(),
                        holders: None,
                        line: Line::default(),
                    },
                ),
                Written::Conflict => {
                    // Changed since our write: only a force release (or a contender whose
                    // clock says the lock already expired) does that. Ours if the record
                    // still is.
                    let now = self.read(&blob).await?;
                    if !now.is_some_and(|seen| seen.record == granted && seen.holders.is_none()) {
                        continue;
                    }
                }
            }
            self.seen_held().remove(key);
            return Ok(TryLockOutcome::Granted(Grant::first(Some(granted.fencing))));
        }
        // Every look found the key free and every write lost to another: under contention
        // this heavy (fifty owners on one key), other owners keep taking it between our read
        // and our write. That is a refusal, as a try-lock's answer, not a store failure.
        Ok(TryLockOutcome::Held)
    }

    async fn acquire_kind(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        let mut refused_by = None;
        let outcome = self
            .change_holders(key, ATTEMPTS, |holders, line, now, next_token| {
                // A try never jumps the line, but a holder's re-entry waits for nobody.
                if !line.is_empty() && !holders.holders.iter().any(|h| h.owner == owner) {
                    refused_by = Some(holders.clone());
                    return Step::new(TryLockOutcome::Held, false);
                }
                let acquired = holders.acquire(now.ms, owner, now.ttl(ttl), kind, next_token);
                let granted = matches!(acquired.outcome, TryLockOutcome::Granted(_));
                refused_by = (!granted).then(|| holders.clone());
                Step {
                    answer: acquired.outcome,
                    changed: granted,
                    drew_token: acquired.drew_token,
                }
            })
            .await?;
        match outcome {
            Some(TryLockOutcome::Granted(grant)) => {
                self.seen_held().remove(key);
                Ok(TryLockOutcome::Granted(grant))
            }
            Some(refused) => {
                if let Some(holders) = refused_by {
                    self.saw_held(key, &holders);
                }
                Ok(refused)
            }
            // Every write lost to another's, as in `try_lock`: a refusal, not a failure.
            None => Ok(TryLockOutcome::Held),
        }
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        let released = self
            .change_holders(key, HOLDER_ATTEMPTS, |holders, _, now, _| {
                let released = holders.release(now.ms, owner, all_holds);
                Step::new(released, released.outcome == OwnerChecked::Applied)
            })
            .await?;
        released.ok_or_else(|| contended(key, HOLDER_ATTEMPTS))
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        let taken = self
            .change_holders(key, HOLDER_ATTEMPTS, |holders, _, now, _| {
                let taken = holders.take_back(now.ms, owner, grant);
                Step::new(taken, taken == OwnerChecked::Applied)
            })
            .await?;
        taken.ok_or_else(|| contended(key, HOLDER_ATTEMPTS))
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let renewed = self
            .change_holders(key, HOLDER_ATTEMPTS, |holders, _, now, _| {
                let renewed = holders.renew(now.ms, owner, now.ttl(ttl));
                Step::new(renewed, renewed == OwnerChecked::Applied)
            })
            .await?;
        renewed.ok_or_else(|| contended(key, HOLDER_ATTEMPTS))
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let seen = self.read(&names::blob_name(key)).await?;
        Ok(seen.and_then(|seen| self.info(key, &seen)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let mut found = Vec::new();
        for blob in self.client.list(&names::list_prefix(prefix)).await? {
            let Some(seen) = self.read(&blob).await? else {
                continue; // deleted since the listing
            };
            // Hashed names match more than the prefix: the recorded key decides.
            if seen.record.key.starts_with(prefix) {
                found.extend(self.info(&seen.record.key, &seen));
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let blob = names::blob_name(key);
        for _ in 0..ATTEMPTS {
            let Some(seen) = self.read(&blob).await? else {
                return Ok(false);
            };
            if seen.leased {
                self.client
                    .lease(&blob, LeaseAction::Break, Some(&seen.etag))
                    .await?;
                continue; // the record is cleared without a lease, as read again
            }
            if !self.held_now(&seen) {
                return Ok(false);
            }
            let released = seen.record.released();
            let line = self.live_line(&seen);
            if let Written::Done(_) = self
                .write(&blob, &seen, &released, None, &line, None)
                .await?
            {
                self.wake_first(&line);
                let _ = self.released.send(key.to_string());
                return Ok(true);
            }
        }
        Err(contended(key, ATTEMPTS))
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        let mut released = self.released.subscribe();
        // Jitter, so that waiters on several sidecars spread their polls.
        let mut until = Instant::now() + max_wait.mul_f64(0.75 + fastrand::f64() / 4.0);
        if let Some(past) = self.seen_held().remove(key) {
            until = until.min(past);
        }
        let released_here = async {
            loop {
                match released.recv().await {
                    Ok(released) if released != key => continue,
                    // The key, or releases missed: look again.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        tokio::select! {
            _ = released_here => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
        Ok(())
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        let me = crate::lock::store::for_a_place(&self.me)?;
        Ok(Box::new(me.join_line(key, owner, ttl, kind).await?))
    }

    /// The line takes every kind, in one order (KINDS.md, rule 3).
    fn line_takes(&self, _kind: Kind) -> bool {
        true
    }

    fn servers(&self) -> Vec<String> {
        vec![self.client.origin().to_string()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: false,
            line: true,
            shared: true,
            limit: true,
            reentrant: true,
            multi: true,
            multi_atomic: false,
        }
    }
}

impl AzureBlobStore {
    /// The lock `seen` shows, if it is held. The time each holder has left is the time it is
    /// surely held still, by the latest time the service's clock may show, less what the clock
    /// of the sidecar that set the deadline may have run ahead (about `CLOCK_TARGET`): so it
    /// is never more than the TTL that sidecar was asked for, and never more than is sure.
    fn info(&self, key: &str, seen: &Seen) -> Option<LockInfo> {
        let holders = form::holders(&seen.record, seen.holders.as_ref());
        let now = self.now();
        let mut info = holders.info(key, now.ms)?;
        let unsure = now.slack + now.slack.max(CLOCK_TARGET);
        info.expires_in = info.expires_in.saturating_sub(unsure);
        for holder in &mut info.holders {
            holder.expires_in = holder.expires_in.saturating_sub(unsure);
        }
        Some(info)
    }
}

/// The lease id of `owner`'s grants: Azure wants a GUID; this one is the owner's SHA-256, cut
/// to 128 bits, so the owner's release needs nothing but the owner.
fn lease_id(owner: &str) -> String {
    let hash = digest(&SHA256, owner.as_bytes());
    let hex: String = hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn contended(key: &str, attempts: usize) -> StoreError {
    StoreError::unavailable(format!(
        "the blob of {key} changed under every one of {attempts} attempts"
    ))
}

/// Asks the service for its time until the clock is known to `CLOCK_TARGET`, or the budget
/// runs out.
async fn calibrate(client: &BlobClient) {
    let started = Instant::now();
    while client.clock.uncertainty() > CLOCK_TARGET && started.elapsed() < CLOCK_BUDGET {
        let _ = client.probe().await;
        tokio::time::sleep(CLOCK_PROBE_GAP).await;
    }
}

/// Keeps the clock known while the store lives (it aborts this on drop): requests usually do,
/// an idle store asks.
async fn keep_the_clock(client: Arc<BlobClient>) {
    loop {
        tokio::time::sleep(CLOCK_CHECK_EVERY).await;
        calibrate(&client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_are_guids_per_owner() {
        let id = lease_id("owner-1");
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(id, lease_id("owner-1"));
        assert_ne!(id, lease_id("owner-2"));
    }
}
