//! The lock API's behaviour, shared by the HTTP and gRPC front doors: the checks of each
//! request (`request.rs`), the call to the store, and what we add beyond Dapr: blocking
//! acquire, renewal, inspection, listing, force release.
//!
//! A blocking acquire waits in a line: the store's own (`store_line.rs`) where the store keeps
//! one (`Capabilities::line`), so waiters are served in arrival order across sidecars;
//! otherwise this sidecar's (`sidecar_line.rs`), in arrival order among this sidecar's waiters.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::api_log::Call;
use super::events::{self, What};
use super::guarded_try;
use super::held_here::HeldHere;
use super::multi::ManyOutcome;
use super::request::{CheckedLock, Named};
use super::sidecar_line::SidecarLines;
use super::store_line::StorePlace;
use super::waiting_here::{TooManyWaiters, WaitingHere};
use super::{
    AcquireRequest, ApiError, Conflict, ErrorKind, Grant, Holder, Kind, LoadedStore, LockInfo,
    LockRequest, Mode, Operation, OwnerChecked, Registry, ReleaseRequest, Released, StoreError,
    TryLockOutcome, UnlockRequest,
};

/// The first and the longest pause between a first-in-line waiter's attempts, when the
/// store's release signal does not come sooner (or the store has none).
const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(200);

/// Why waits and sessions end when the sidecar stops.
pub(crate) const SHUTTING_DOWN: &str = "the sidecar is shutting down";

/// A held lock as a client sees it: by resource id, not store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldLock {
    pub(crate) resource_id: String,
    pub(crate) owner: String,
    pub(crate) expires_in: Duration,
    pub(crate) fencing_token: Option<u64>,
    /// How many blocking acquires wait for it through this sidecar (`waiting_here.rs`).
    pub(crate) waiting: u32,
    pub(crate) mode: Mode,
    pub(crate) limit: u32,
    pub(crate) holders: Vec<Holder>,
}

/// Serves lock requests for one sidecar.
pub struct LockService {
    app_id: String,
    /// The stores now: a reload swaps in the next version whole, and a request keeps the
    /// version it looked its store up in (`registry.rs`).
    registry: RwLock<Arc<Registry>>,
    lines: SidecarLines,
    /// The locks granted through this sidecar, which publish their expiries.
    held_here: Arc<HeldHere>,
    /// The blocking acquires waiting through this sidecar, which Inspect and List count.
    waiting_here: WaitingHere,
    /// Whether every call is logged (`api_log.rs`).
    api_log: bool,
    /// Set once the sidecar begins to shut down: waits end, sessions release their locks.
    shutting_down: watch::Sender<bool>,
}

impl LockService {
    pub fn new(app_id: impl Into<String>, registry: Registry) -> Self {
        LockService {
            app_id: app_id.into(),
            registry: RwLock::new(Arc::new(registry)),
            lines: SidecarLines::default(),
            held_here: Arc::default(),
            waiting_here: WaitingHere::default(),
            api_log: false,
            shutting_down: watch::Sender::new(false),
        }
    }

    /// Keeps at most `max` blocking acquires waiting at once (`--max-waiters`).
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.waiting_here = WaitingHere::with_max(max);
        self
    }

    /// Logs every call of the lock API at info (daprd's `--enable-api-logging`).
    pub fn log_api_calls(mut self, on: bool) -> Self {
        self.api_log = on;
        self
    }

    /// Begins the sidecar's shutdown: every blocking acquire ends with an error, and every
    /// session releases its lock and tells its client it lost it (`session.rs`), so that no
    /// lock stays held in the store for a sidecar that is going away.
    pub(crate) fn shut_down(&self) {
        self.shutting_down.send_replace(true);
    }

    /// Completes once the sidecar is shutting down (at once if it is already).
    pub(crate) async fn shutting_down(&self) {
        let mut shutting_down = self.shutting_down.subscribe();
        // The sender lives as long as `self`.
        let _ = shutting_down.wait_for(|down| *down).await;
    }

    /// A call starting, for the API log.
    pub(crate) fn call(
        &self,
        method: &'static str,
        store: &str,
        resource: &str,
        owner: &str,
    ) -> Option<Call> {
        Call::begin(self.api_log, method, store, resource, owner)
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The stores as they are now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serves `next` from now on. Only the reloader calls it, so no version is lost between
    /// its read and this swap.
    pub(crate) fn swap_registry(&self, next: Registry) {
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }

    /// How many locks are held through this sidecar, by store name.
    pub(crate) fn held_here(&self) -> std::collections::BTreeMap<String, usize> {
        self.held_here.counts()
    }

    /// A grant or a refusal, as the events tell it; a grant is kept until released.
    fn granted(&self, lock: &CheckedLock, grant: Option<&Grant>, waited: Option<Duration>) {
        let resource_ids = lock.resource_ids();
        for (key, resource_id) in lock.keys().iter().zip(&resource_ids) {
            let resource_id = *resource_id;
            let what = match grant {
                Some(grant) => {
                    self.held_here.granted(
                        &lock.store.name,
                        key,
                        resource_id,
                        &lock.owner,
                        lock.ttl,
                    );
                    What::Granted {
                        fencing_token: grant.fencing_token,
                        waited,
                        mode: lock.kind.mode,
                        with: resource_ids
                            .iter()
                            .filter(|other| **other != resource_id)
                            .map(|other| other.to_string())
                            .collect(),
                    }
                }
                None => What::Refused {
                    waited,
                    mode: lock.kind.mode,
                },
            };
            events::publish(&lock.store.name, resource_id, &lock.owner, what);
        }
    }

    /// A renewal the store applied, which moves the lock's expiry here too.
    pub(crate) fn renewed(&self, lock: &CheckedLock) {
        for key in lock.keys() {
            self.held_here
                .renewed(&lock.store.name, &key, &lock.owner, lock.ttl);
        }
    }

    /// Dapr's TryLockAlpha1.
    pub(crate) async fn try_lock(&self, request: LockRequest) -> Result<TryLockOutcome, ApiError> {
        let r = &request;
        let call = self.call("TryLockAlpha1", &r.store, &r.resource_id, &r.owner);
        let op = Operation::TryLock;
        let tried = async {
            let lock = self.check(op, request)?;
            let store = &lock.store.store;
            // Where the waiters wait in this sidecar's line, the store can't refuse a try
            // that would jump them: this sidecar does.
            let jumps_the_line = !store.line_takes(Kind::PLAIN)
                && self.lines.anyone_waits(&lock.store.name, &lock.key);
            let outcome = if jumps_the_line {
                TryLockOutcome::Held
            } else {
                guarded_try::acquire(store, &lock.key, &lock.owner, lock.ttl, Kind::PLAIN)
                    .await
                    .map_err(|e| ApiError::failed(op, e))?
            };
            let grant = match &outcome {
                TryLockOutcome::Granted(grant) => Some(grant),
                // A plain request is never refused for its kind; an exclusive holder sees a
                // key held in any mode as held.
                TryLockOutcome::Held | TryLockOutcome::Refused(_) => None,
            };
            self.granted(&lock, grant, None);
            Ok(outcome)
        };
        Call::end(call, tried.await)
    }

    /// Dapr's UnlockAlpha1. A release wakes this sidecar's first waiter for the key at once.
    pub(crate) async fn unlock(&self, request: UnlockRequest) -> Result<OwnerChecked, ApiError> {
        let r = &request;
        let call = self.call("UnlockAlpha1", &r.store, &r.resource_id, &r.owner);
        let released = async {
            let (store, key) =
                self.locate(Operation::Unlock, &r.store, &r.resource_id, Some(&r.owner))?;
            let released = self
                .release(&store, &key, &r.resource_id, &r.owner, false)
                .await;
            released.map(|released| released.outcome)
        };
        Call::end(call, released.await)
    }

    /// dlock's Release: one of the owner's holds, or all of them.
    pub(crate) async fn release_holds(
        &self,
        request: ReleaseRequest,
    ) -> Result<Released, ApiError> {
        let r = &request.unlock;
        let call = self.call("Release", &r.store, &r.resource_id, &r.owner);
        let released = async {
            let (store, many) = if request.resource_ids.is_empty() {
                let (store, key) =
                    self.locate(Operation::Release, &r.store, &r.resource_id, Some(&r.owner))?;
                let one = Named {
                    key,
                    resource_id: r.resource_id.clone(),
                };
                (store, vec![one])
            } else {
                self.locate_many(Operation::Release, r, &request.resource_ids)?
            };
            // A multi-lock's keys are held alike: its first key's holds are the lock's.
            let key = &many[0].key;
            if let Some(expected) = request.expected_holds {
                let holds = self.holds_of(&store, key, &r.owner).await?;
                if holds + 1 == expected {
                    // The release this one resends already landed.
                    return Ok(Released {
                        outcome: OwnerChecked::Applied,
                        holds_left: holds,
                    });
                }
                if holds != expected {
                    let message = format!(
                        "{}: the holds of {} on {} in lock store {} are {holds}, the release \
                         expected {expected}",
                        Operation::Release.failure_prefix(),
                        r.owner,
                        many[0].resource_id,
                        r.store
                    );
                    return Err(ApiError::new(ErrorKind::HoldsMismatch, message));
                }
            }
            let released = self.release_all(&store, &many, &r.owner, request.all_holds);
            // Dapr's Unlock answers a store failure with ERR_UNLOCK; this call is ours.
            released.await.map_err(|error| match error.kind {
                ErrorKind::Failed(Operation::Unlock) => ApiError {
                    kind: ErrorKind::Failed(Operation::Release),
                    ..error
                },
                _ => error,
            })
        };
        Call::end(call, released.await)
    }

    /// How many holds `owner` has of `key` now (0: none). Read before a release that says how
    /// many it expects: exact for a client that sends one release at a time, as a client
    /// resending a release whose answer it lost does (only its owner changes its holds, but
    /// for an expiry, which drops them all).
    async fn holds_of(&self, store: &LoadedStore, key: &str, owner: &str) -> Result<u32, ApiError> {
        let info = store
            .store
            .inspect(key)
            .await
            .map_err(|e| ApiError::failed(Operation::Release, e))?;
        let holder = info.and_then(|info| info.holders.into_iter().find(|h| h.owner == owner));
        Ok(holder.map_or(0, |h| h.holds))
    }

    /// The owner-checked release behind unlock, Release and the end of a session: one hold,
    /// or all of them. A release wakes this sidecar's first waiter for the key.
    pub(crate) async fn release(
        &self,
        store: &LoadedStore,
        key: &str,
        resource_id: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, ApiError> {
        let released = store
            .store
            .release(key, owner, all_holds)
            .await
            .map_err(|e| ApiError::failed(Operation::Unlock, e))?;
        let outcome = released.outcome;
        if outcome == OwnerChecked::Applied && released.holds_left == 0 {
            self.held_here.released(&store.name, key, owner);
            self.lines.released(&store.name, key);
        }
        events::publish(&store.name, resource_id, owner, What::Released { outcome });
        Ok(released)
    }

    /// The release of a multi-lock, as a whole (one key: `release`): one hold of every key,
    /// or all of them. A release wakes this sidecar's first waiter for each key.
    pub(crate) async fn release_all(
        &self,
        store: &LoadedStore,
        many: &[Named],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, ApiError> {
        if let [one] = many {
            return (self.release(store, &one.key, &one.resource_id, owner, all_holds)).await;
        }
        let keys: Vec<String> = many.iter().map(|named| named.key.clone()).collect();
        let released = store
            .store
            .release_many(&keys, owner, all_holds)
            .await
            .map_err(|e| ApiError::failed(Operation::Unlock, e))?;
        let outcome = released.outcome;
        for named in many {
            if outcome == OwnerChecked::Applied && released.holds_left == 0 {
                self.held_here.released(&store.name, &named.key, owner);
                self.lines.released(&store.name, &named.key);
            }
            let what = What::Released { outcome };
            events::publish(&store.name, &named.resource_id, owner, what);
        }
        Ok(released)
    }

    /// Releases what `lock` took, as a whole: the end of a session.
    pub(crate) async fn release_checked(
        &self,
        lock: &CheckedLock,
        all_holds: bool,
    ) -> Result<Released, ApiError> {
        let one = [Named {
            key: lock.key.clone(),
            resource_id: lock.resource_id.clone(),
        }];
        let many = if lock.many.is_empty() {
            &one[..]
        } else {
            &lock.many
        };
        self.release_all(&lock.store, many, &lock.owner, all_holds)
            .await
    }

    /// Takes the lock, waiting up to `wait` while someone else holds it; `None` when the wait
    /// ran out. Waiters are served in arrival order: across sidecars where the store keeps the
    /// line, else among this sidecar's waiters. Dropping the future (a client that gives up or
    /// disconnects) leaves the line.
    pub(crate) async fn acquire(&self, request: AcquireRequest) -> Result<Option<Grant>, ApiError> {
        let r = &request.lock;
        let call = self.call("Acquire", &r.store, &r.resource_id, &r.owner);
        let taken = self.take(request).await;
        Call::end(call, taken.map(|taken| taken.map(|(_, grant, _)| grant)))
    }

    /// `acquire`, answering with the grant the lock it checked, for a session to keep, and
    /// when the call that got the grant was sent: the store's expiry runs from no sooner.
    pub(crate) async fn take(
        &self,
        request: AcquireRequest,
    ) -> Result<Option<(CheckedLock, Grant, Instant)>, ApiError> {
        let wait = request.wait;
        let lock = self.check_acquire(request)?;
        let now = Instant::now();
        let started = now;
        let deadline = now
            .checked_add(wait)
            .unwrap_or(now + Duration::from_secs(u32::MAX.into()));
        let waiter = self
            .waiting_here
            .wait(&lock.store.name, &lock.key)
            .map_err(|TooManyWaiters(max)| {
                ApiError::new(
                    ErrorKind::TooManyWaiters,
                    format!(
                        "{}: this sidecar already keeps {max} acquires waiting, the most \
                         --max-waiters allows; try again later",
                        Operation::Acquire.failure_prefix()
                    ),
                )
            })?;
        let waited = async {
            // A multi-lock stands in no line (`wait_for_all`); a kind the store's line does not
            // take waits in this sidecar's line.
            if !lock.many.is_empty() {
                self.wait_for_all(&lock, deadline).await
            } else if lock.store.store.line_takes(lock.kind) {
                self.wait_in_store_line(&lock, deadline).await
            } else {
                self.wait_in_sidecar_line(&lock, deadline).await
            }
        };
        // A reload that replaces or removes the store ends the wait: the line is the old
        // version's. A grant that arrives at the same moment wins.
        let grant = tokio::select! {
            biased;
            grant = waited => grant?,
            reason = lock.store.retired() => {
                let prefix = Operation::Acquire.failure_prefix();
                let message = format!("{prefix}: {reason}; the wait ended, ask again");
                return Err(ApiError::new(ErrorKind::Reconfigured, message));
            }
            () = self.shutting_down() => {
                let prefix = Operation::Acquire.failure_prefix();
                let message = format!("{prefix}: {SHUTTING_DOWN}; the wait ended");
                return Err(ApiError::new(ErrorKind::ShuttingDown, message));
            }
        };
        drop(waiter);
        self.granted(
            &lock,
            grant.as_ref().map(|(g, _)| g),
            Some(started.elapsed()),
        );
        Ok(grant.map(|(grant, asked)| (lock, grant, asked)))
    }

    /// `acquire` on a store that keeps no line: this sidecar's line, whose first waiter alone
    /// asks the store, on every release through this sidecar and at a backing-off poll.
    async fn wait_in_sidecar_line(
        &self,
        lock: &CheckedLock,
        deadline: Instant,
    ) -> Result<Option<(Grant, Instant)>, ApiError> {
        let failed = |e| ApiError::failed(Operation::Acquire, e);
        let store = &lock.store.store;
        let place = self.lines.join(&lock.store.name, &lock.key);
        let mut poll = FIRST_POLL;
        loop {
            // Listening before looking: a release in between still wakes us.
            let changed = place.changed();
            let first = place.is_first();
            if first {
                if let Some(grant) = try_once(lock).await? {
                    return Ok(Some(grant));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            if first {
                tokio::select! {
                    _ = changed => {}
                    signal = bounded(poll.min(left), store.wait_for_release(&lock.key, poll.min(left))) => {
                        signal.map_err(failed)?;
                    }
                }
                poll = (poll * 2).min(MAX_POLL);
            } else {
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep(left) => {}
                }
            }
        }
    }

    /// `acquire` of a multi-lock: all or none at each try, so it never holds a key while it
    /// waits; tried again whenever any of its keys is released (or at a backing-off poll).
    /// It stands in no line: a release of one key may let a single-key waiter in first.
    async fn wait_for_all(
        &self,
        lock: &CheckedLock,
        deadline: Instant,
    ) -> Result<Option<(Grant, Instant)>, ApiError> {
        let failed = |e| ApiError::failed(Operation::Acquire, e);
        let store = &lock.store.store;
        let keys = lock.keys();
        let mut poll = FIRST_POLL;
        loop {
            if let Some(grant) = try_all(lock, &keys).await? {
                return Ok(Some(grant));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let max_wait = poll.min(left);
            let signals = keys.iter().map(|key| store.wait_for_release(key, max_wait));
            bounded_any(max_wait, signals).await.map_err(failed)?;
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// `acquire` on a store that keeps the line: a try first, which never jumps the line (such
    /// a store refuses it while anyone waits), then a place at the end of the line, taken up
    /// when its turn comes and left when the wait runs out or the future is dropped.
    async fn wait_in_store_line(
        &self,
        lock: &CheckedLock,
        deadline: Instant,
    ) -> Result<Option<(Grant, Instant)>, ApiError> {
        let failed = |e| ApiError::failed(Operation::Acquire, e);
        let store = &lock.store.store;
        if let Some(grant) = try_once(lock).await? {
            return Ok(Some(grant));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        let mut place =
            StorePlace::join(store.clone(), &lock.key, &lock.owner, lock.ttl, lock.kind)
                .await
                .map_err(failed)?;
        let mut poll = FIRST_POLL;
        loop {
            let asked = Instant::now();
            if let Some(grant) = place.try_take().await.map_err(failed)? {
                return Ok(Some((grant, asked)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let max_wait = place.pause(poll).min(left);
            bounded(max_wait, place.wait_turn(max_wait))
                .await
                .map_err(failed)?;
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// Extends the lock's expiry to `expiry_in_seconds` from now if its owner holds it.
    pub(crate) async fn renew(&self, request: LockRequest) -> Result<OwnerChecked, ApiError> {
        let r = &request;
        let call = self.call("Renew", &r.store, &r.resource_id, &r.owner);
        let op = Operation::Renew;
        let renewed = async {
            let lock = self.check(op, request)?;
            let outcome = lock
                .store
                .store
                .renew(&lock.key, &lock.owner, lock.ttl)
                .await
                .map_err(|e| ApiError::failed(op, e))?;
            if outcome == OwnerChecked::Applied {
                self.renewed(&lock);
            }
            Ok(outcome)
        };
        Call::end(call, renewed.await)
    }

    /// Who holds the lock now.
    pub(crate) async fn inspect(
        &self,
        store_name: &str,
        resource_id: &str,
    ) -> Result<Option<HeldLock>, ApiError> {
        let call = self.call("Inspect", store_name, resource_id, "");
        let op = Operation::Inspect;
        let inspected = async {
            let (store, key) = self.locate(op, store_name, resource_id, None)?;
            let info = store
                .store
                .inspect(&key)
                .await
                .map_err(|e| ApiError::failed(op, e))?;
            let waiting = self.waiting_here.count(&store.name, &key);
            Ok(info.map(|info| held(resource_id.to_string(), info, waiting)))
        };
        Call::end(call, inspected.await)
    }

    /// The held locks of this sidecar's view of the store whose resource ids start with
    /// `prefix`, sorted by resource id.
    pub(crate) async fn list(
        &self,
        store_name: &str,
        prefix: &str,
    ) -> Result<Vec<HeldLock>, ApiError> {
        let call = self.call("List", store_name, prefix, "");
        let op = Operation::List;
        let listed = async {
            let store = self.check_list(store_name)?;
            let base = store.key_prefix.base(&self.app_id, &store.name);
            let found = store
                .store
                .list(&format!("{base}{prefix}"))
                .await
                .map_err(|e| ApiError::failed(op, e))?;
            let mut locks: Vec<HeldLock> = found
                .into_iter()
                .filter_map(|info| {
                    let resource =
                        store
                            .key_prefix
                            .resource_id(&self.app_id, &store.name, &info.key)?;
                    let waiting = self.waiting_here.count(&store.name, &info.key);
                    Some(held(resource.to_string(), info, waiting))
                })
                .collect();
            locks.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
            Ok(locks)
        };
        Call::end(call, listed.await)
    }

    /// Releases the lock whoever holds it. The caller has checked the admin token.
    pub(crate) async fn force_release(
        &self,
        store_name: &str,
        resource_id: &str,
    ) -> Result<bool, ApiError> {
        let call = self.call("ForceRelease", store_name, resource_id, "");
        let op = Operation::ForceRelease;
        let released = async {
            let (store, key) = self.locate(op, store_name, resource_id, None)?;
            let released = store
                .store
                .force_release(&key)
                .await
                .map_err(|e| ApiError::failed(op, e))?;
            if released {
                tracing::warn!(
                    store = store_name,
                    resource = resource_id,
                    "lock released by force"
                );
                self.held_here.released_all(store_name, &key);
                self.lines.released(store_name, &key);
                events::publish(store_name, resource_id, "", What::ForceReleased);
            }
            Ok(released)
        };
        Call::end(call, released.await)
    }
}

fn held(resource_id: String, info: LockInfo, waiting: u32) -> HeldLock {
    HeldLock {
        resource_id,
        owner: info.owner,
        expires_in: info.expires_in,
        fencing_token: info.fencing_token,
        waiting,
        mode: info.mode,
        limit: info.limit,
        holders: info.holders,
    }
}

/// One try at the store for a waiter: the grant and when it was asked for, or `None` while
/// someone holds the key.
async fn try_once(lock: &CheckedLock) -> Result<Option<(Grant, Instant)>, ApiError> {
    let asked = Instant::now();
    let store = &lock.store.store;
    let tried = guarded_try::acquire(store, &lock.key, &lock.owner, lock.ttl, lock.kind).await;
    match tried.map_err(|e| ApiError::failed(Operation::Acquire, e))? {
        TryLockOutcome::Granted(grant) => Ok(Some((grant, asked))),
        TryLockOutcome::Held => Ok(None),
        TryLockOutcome::Refused(conflict) => Err(refused(lock, conflict)),
    }
}

/// One all-or-none try of a multi-lock's `keys`: the first key's grant (the lock's token, as
/// docs/contract.md says) and when it was asked for, or `None` while any key is held.
async fn try_all(
    lock: &CheckedLock,
    keys: &[String],
) -> Result<Option<(Grant, Instant)>, ApiError> {
    let asked = Instant::now();
    let store = &lock.store.store;
    let tried = guarded_try::acquire_many(store, keys, &lock.owner, lock.ttl, lock.kind).await;
    match tried.map_err(|e| ApiError::failed(Operation::Acquire, e))? {
        ManyOutcome::Granted(grants) => Ok(grants.first().map(|grant| (*grant, asked))),
        ManyOutcome::Held => Ok(None),
        ManyOutcome::Refused(conflict) => Err(refused(lock, conflict)),
    }
}

/// A request that does not fit the key's holders, refused at once: waiting would not help.
fn refused(lock: &CheckedLock, conflict: Conflict) -> ApiError {
    let (kind, why) = match conflict {
        Conflict::LimitMismatch { held } => (
            ErrorKind::LimitMismatch,
            format!(
                "its holders took it with limit {held}, this request asks for limit {}",
                lock.kind.limit
            ),
        ),
        Conflict::ModeConflict { held } => (
            ErrorKind::ModeConflict,
            format!(
                "the owner holds it {} and asked again {}; a lock's mode can't change while \
                 it is held",
                held.name(),
                lock.kind.mode.name()
            ),
        ),
    };
    let prefix = Operation::Acquire.failure_prefix();
    ApiError::new(
        kind,
        format!(
            "{prefix} {} in lock store {}: {why}",
            lock.resource_id, lock.store.name
        ),
    )
}

/// A store's wait (`wait_for_release`, `Place::wait_turn`), ended by the core after
/// `max_wait` whatever the store does: a store that queues its waits, or a client library
/// that retries a lost connection inside one, cannot keep a waiter past its deadline.
async fn bounded(
    max_wait: Duration,
    wait: impl std::future::Future<Output = Result<(), StoreError>>,
) -> Result<(), StoreError> {
    tokio::time::timeout(max_wait, wait).await.unwrap_or(Ok(()))
}

/// The first of several store waits to end (`wait_for_release` of each key of a multi-lock),
/// ended by the core after `max_wait` as `bounded` ends one.
async fn bounded_any<W>(
    max_wait: Duration,
    waits: impl IntoIterator<Item = W>,
) -> Result<(), StoreError>
where
    W: std::future::Future<Output = Result<(), StoreError>> + Unpin,
{
    let any = futures_util::future::select_all(waits);
    match tokio::time::timeout(max_wait, any).await {
        Ok((signal, _, _)) => signal,
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{timeout, Instant};

    use super::super::test_double::{acquire, DoubleStore};
    use super::super::{ErrorKind, TryLockOutcome};

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_waiter_past_the_cap_is_refused_at_once() {
        let double = DoubleStore::default();
        let service = double.service().max_waiters(1);
        let tried = service.try_lock(acquire("holder", 60, SECOND).lock).await;
        assert!(matches!(tried, Ok(TryLockOutcome::Granted(_))));
        let first = service.acquire(acquire("w1", 60, SECOND * 60));
        let second = async {
            tokio::time::sleep(SECOND).await;
            service.acquire(acquire("w2", 60, SECOND * 60)).await
        };
        let refused = tokio::select! {
            _ = first => panic!("the first waiter ended"),
            refused = second => refused,
        };
        let refused = refused.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::TooManyWaiters);
        assert!(refused.message.contains("--max-waiters"), "{refused}");
        // With the first gone, there is room again.
        let waited = service.acquire(acquire("w3", 60, SECOND)).await;
        assert_eq!(waited, Ok(None));
    }

    /// A store whose waits ignore their limit keeps no waiter past its wait timeout, in
    /// either kind of line.
    #[tokio::test(start_paused = true)]
    async fn the_core_ends_a_store_wait_that_ignores_its_limit() {
        for double in [DoubleStore::default(), DoubleStore::keeping_a_line()] {
            let service = double.service();
            let tried = service.try_lock(acquire("holder", 60, SECOND).lock).await;
            assert!(matches!(tried, Ok(TryLockOutcome::Granted(_))));
            double.set_waits_hang(true);
            let started = Instant::now();
            let waited = timeout(SECOND * 10, service.acquire(acquire("w", 60, SECOND * 2))).await;
            assert_eq!(waited, Ok(Ok(None)), "the wait outlived its timeout");
            assert!(started.elapsed() <= SECOND * 2 + Duration::from_millis(20));
        }
    }
}
