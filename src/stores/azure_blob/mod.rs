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
//! The store has no release signal: a waiter polls (the core's backoff, jittered here), and
//! never sleeps past the moment the holder's deadline passes; a release through the same
//! sidecar wakes its waiters (the core's `SidecarLines`) and its sessions (`released`) at once.
//! What this sidecar last saw of a blob (`known.rs`) lets a holder's release or renewal, and a
//! try after a release here, skip the read before their conditional write.
//!
//! Requests per uncontended lock and unlock: a try reads the blob, writes the record and takes
//! the lease (3); a release writes the record and gives the lease back (2, the read skipped);
//! a try on a blob this sidecar saw released skips its read too (4 a pair then). A refused try
//! is one read. A blob is created once per key, on its first lock (one more request).

mod account;
mod client;
mod clock;
mod connection_string;
mod known;
mod names;
#[cfg(test)]
mod raw_bench;
mod record;
mod settings;
mod shared_key;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ring::digest::{digest, SHA256};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::config::{ConfigError, Metadata};
use crate::lock::{
    Capabilities, Grant, LockInfo, LockStore, OwnerChecked, StoreError, TryLockOutcome,
};
use client::{BlobClient, Failure, LeaseAction, Written};
use known::{Known, Seen};
use record::Record;
use settings::Settings;

/// Reads and conditional writes one call makes before giving up on a key that keeps changing
/// under it.
const ATTEMPTS: usize = 8;

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
    client: Arc<BlobClient>,
    known: Known,
    /// Keys released through this store (this sidecar's releases and force releases), for
    /// waiters and sessions here: the store has no signal of releases made elsewhere.
    released: broadcast::Sender<String>,
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
        Ok(Arc::new(AzureBlobStore {
            client,
            known: Known::default(),
            released: broadcast::channel(1024).0,
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
            etag: properties.etag,
            leased: properties.leased,
        };
        self.known.saw(blob, seen.clone());
        Ok(Some(seen))
    }

    fn held_now(&self, record: &Record) -> bool {
        record.held_at(self.client.clock.earliest_now())
    }

    /// A deadline `ttl` from now, by the latest time the service may have now.
    fn deadline(&self, ttl: Duration) -> i64 {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.client.clock.latest_now().saturating_add(ttl)
    }

    fn seen_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // Each change under this mutex is one map operation: poisoning leaves nothing half done.
        self.seen_held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `change` of the record of `key`'s blob, only while `owner` holds it: the change
    /// the owner's release or renewal makes.
    /// Releases `key` if `owner` holds it (under the grant of `token`, when given), and
    /// tells this sidecar's waiters.
    async fn release(
        &self,
        key: &str,
        owner: &str,
        token: Option<u64>,
    ) -> Result<OwnerChecked, StoreError> {
        let checked = self
            .owner_checked(key, owner, token, Record::released, true)
            .await?;
        if checked == OwnerChecked::Applied {
            let _ = self.released.send(key.to_string());
        }
        Ok(checked)
    }

    async fn owner_checked(
        &self,
        key: &str,
        owner: &str,
        token: Option<u64>,
        change: impl Fn(&Record) -> Record,
        release_lease: bool,
    ) -> Result<OwnerChecked, StoreError> {
        let blob = names::blob_name(key);
        let lease = lease_id(owner);
        // The owner's own lock as last seen here: changed without reading it first.
        let mut last_seen = self
            .known
            .get(&blob)
            .filter(|seen| seen.record.owner == owner && self.held_now(&seen.record));
        for _ in 0..ATTEMPTS {
            let seen = match last_seen.take() {
                Some(seen) => seen,
                None => match self.read(&blob).await? {
                    Some(seen) => seen,
                    None => return Ok(OwnerChecked::NotHeld),
                },
            };
            if !self.held_now(&seen.record) {
                return Ok(OwnerChecked::NotHeld);
            }
            if seen.record.owner != owner {
                return Ok(OwnerChecked::HeldByOther);
            }
            // Asked for one grant, and the owner holds a later one.
            if token.is_some_and(|token| token != seen.record.fencing) {
                return Ok(OwnerChecked::NotHeld);
            }
            let changed = change(&seen.record);
            let holder_lease = seen.leased.then_some(lease.as_str());
            let written = self
                .client
                .set_metadata(&blob, &changed.to_metadata(), holder_lease, &seen.etag)
                .await?;
            let Written::Done(etag) = written else {
                self.known.forget(&blob);
                continue;
            };
            let mut now = Seen {
                etag,
                leased: seen.leased,
                record: changed,
            };
            if release_lease && seen.leased {
                // The record is free already; a lease left behind is broken by the next taker.
                match self
                    .client
                    .lease(&blob, LeaseAction::Release(&lease), Some(&now.etag))
                    .await
                {
                    Ok(Written::Done(etag)) => {
                        now.etag = etag;
                        now.leased = false;
                    }
                    _ => now.etag.clear(), // unknown: read next time
                }
            }
            self.known.saw(&blob, now);
            return Ok(OwnerChecked::Applied);
        }
        Err(contended(key))
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
        // A blob last seen free (released through this sidecar, say) is tried without reading.
        let mut last_seen = self
            .known
            .get(&blob)
            .filter(|seen| !seen.leased && !self.held_now(&seen.record));
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
            if self.held_now(&seen.record) {
                let mut held = self.seen_held();
                if held.len() >= SEEN_HELD_LIMIT {
                    held.clear();
                }
                let past = self.client.clock.when_past(seen.record.deadline);
                held.insert(key.to_string(), past);
                return Ok(TryLockOutcome::Held);
            }
            if seen.leased {
                // The lease of a holder whose deadline passed, or of a release cut short.
                self.client
                    .lease(&blob, LeaseAction::Break, Some(&seen.etag))
                    .await?;
                continue;
            }
            let granted = seen.record.granted(key, owner, self.deadline(ttl))?;
            let Written::Done(etag) = self
                .client
                .set_metadata(&blob, &granted.to_metadata(), None, &seen.etag)
                .await?
            else {
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
                    },
                ),
                Written::Conflict => {
                    // Changed since our write: only a force release (or a contender whose
                    // clock says the lock already expired) does that. Ours if the record
                    // still is.
                    let now = self.read(&blob).await?.map(|seen| seen.record);
                    if now.as_ref() != Some(&granted) {
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

    async fn unlock(&self, key: &str, owner: &str) -> Result<OwnerChecked, StoreError> {
        self.release(key, owner, None).await
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        self.release(key, owner, grant.fencing_token).await
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let deadline = self.deadline(ttl);
        let renewed = |record: &Record| Record {
            deadline,
            ..record.clone()
        };
        self.owner_checked(key, owner, None, renewed, false).await
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let seen = self.read(&names::blob_name(key)).await?;
        Ok(seen.and_then(|seen| self.info(key, seen.record)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let mut found = Vec::new();
        for blob in self.client.list(&names::list_prefix(prefix)).await? {
            let Some(Seen { record, .. }) = self.read(&blob).await? else {
                continue; // deleted since the listing
            };
            // Hashed names match more than the prefix: the recorded key decides.
            if record.key.starts_with(prefix) {
                let key = record.key.clone();
                found.extend(self.info(&key, record));
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let blob = names::blob_name(key);
        for _ in 0..ATTEMPTS {
            let Some(Seen {
                etag,
                leased,
                record,
            }) = self.read(&blob).await?
            else {
                return Ok(false);
            };
            if leased {
                self.client
                    .lease(&blob, LeaseAction::Break, Some(&etag))
                    .await?;
                continue; // the record is cleared without a lease, as read again
            }
            if !self.held_now(&record) {
                return Ok(false);
            }
            let released = record.released().to_metadata();
            if let Written::Done(_) = self
                .client
                .set_metadata(&blob, &released, None, &etag)
                .await?
            {
                let _ = self.released.send(key.to_string());
                return Ok(true);
            }
        }
        Err(contended(key))
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

    fn servers(&self) -> Vec<String> {
        vec![self.client.origin().to_string()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: false,
            line: false,
            shared: false,
            limit: false,
            reentrant: false,
        }
    }
}

impl AzureBlobStore {
    /// The lock `record` describes, if it is held. The time left is the time it is surely
    /// held still, by the latest time the service's clock may show.
    fn info(&self, key: &str, record: Record) -> Option<LockInfo> {
        if !self.held_now(&record) {
            return None;
        }
        let left = record.deadline - self.client.clock.latest_now();
        Some(LockInfo::exclusive(
            key,
            record.owner,
            Duration::from_millis(left.max(0) as u64),
            Some(record.fencing),
        ))
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

fn contended(key: &str) -> StoreError {
    StoreError::unavailable(format!(
        "the blob of {key} changed under every one of {ATTEMPTS} attempts"
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
