//! The contract every lock store fulfils, with one meaning for every backend.
//!
//! Keys arrive fully built (see `key.rs`); a store never sees resource ids or key prefixes.
//! TTLs are honoured by the store itself, by its own clock where it has one, so a lock frees on
//! time even when the sidecar that took it has died. Release and renewal are owner-checked and
//! atomic inside the store, never read-then-write from the sidecar.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::kind::{Conflict, Holder, Kind, Mode, Released};
use super::multi::{self, ManyOutcome};
use super::StoreError;

/// The key the default health probe looks up: without `||`, so no resource id's key is it.
pub(crate) const PROBE_KEY: &str = "dlock-health-probe";

/// A lock handed to an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// A number that strictly increases across successive holders of the same key, where the
    /// store can guarantee it (`Capabilities::fencing`); `None` where it cannot.
    pub(crate) fencing_token: Option<u64>,
    /// The owner's holds after this grant: 1 for a first grant, more for a reentrant one.
    pub(crate) holds: u32,
}

impl Grant {
    /// A first grant, with its token where the store has fencing.
    pub(crate) fn first(fencing_token: Option<u64>) -> Grant {
        Grant {
            fencing_token,
            holds: 1,
        }
    }
}

/// The answer to a try-lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryLockOutcome {
    Granted(Grant),
    /// Someone holds the key, possibly the same owner: Dapr's locks are not reentrant.
    Held,
    /// The request does not fit the key's holders (another limit, or a re-entry in the
    /// other mode): refused at once, since waiting would not change it.
    Refused(Conflict),
}

/// The answer to an owner-checked change (a release or a renewal); the numbering follows
/// Dapr's `UnlockResponse.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerChecked {
    /// The owner held the key, and the change was applied: it is now released, or renewed.
    Applied,
    /// Nobody holds the key.
    NotHeld,
    /// Another owner holds the key; nothing changed.
    HeldByOther,
}

/// Who holds a key now, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub(crate) key: String,
    /// The exclusive holder, or the first shared holder: what a client that knows only
    /// exclusive locks reads.
    pub(crate) owner: String,
    /// Time left before that holder's lock expires, by the store's clock.
    pub(crate) expires_in: Duration,
    pub(crate) fencing_token: Option<u64>,
    pub(crate) mode: Mode,
    /// Shared only: the most holders at once; 0 without a limit.
    pub(crate) limit: u32,
    /// Every holder, the first one above included.
    pub(crate) holders: Vec<Holder>,
}

impl LockInfo {
    /// A key held exclusively, once, by `owner`.
    pub(crate) fn exclusive(
        key: impl Into<String>,
        owner: impl Into<String>,
        expires_in: Duration,
        fencing_token: Option<u64>,
    ) -> LockInfo {
        let owner = owner.into();
        LockInfo {
            key: key.into(),
            owner: owner.clone(),
            expires_in,
            fencing_token,
            mode: Mode::Exclusive,
            limit: 0,
            holders: vec![Holder {
                owner,
                expires_in,
                fencing_token,
                holds: 1,
            }],
        }
    }
}

/// What a store can do beyond try-lock, unlock, renew and inspect, which every store does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Grants carry fencing tokens that strictly increase per key.
    pub fencing: bool,
    /// Held keys can be listed by prefix.
    pub listing: bool,
    /// The store tells waiters when a key is released; without it they poll with backoff.
    pub release_signal: bool,
    /// The store keeps its own line of waiters per key (`LockStore::join`; `WAIT_QUEUE` on the
    /// wire), so blocking acquires are served in arrival order across sidecars; without it each
    /// sidecar keeps its own line, and across sidecars whoever retries first after a release
    /// wins.
    pub line: bool,
    /// Shared holders (`Mode::Shared`): read locks.
    pub shared: bool,
    /// A limit on shared holders: counting semaphores.
    pub limit: bool,
    /// Reentrant holds, counted in the store's record.
    pub reentrant: bool,
    /// Multi-locks: several keys taken all or none (`LockStore::acquire_many`).
    pub multi: bool,
    /// A multi-lock is taken and released in one store operation, so no other client ever
    /// sees some of its keys held and the others not; without it the keys are taken one by
    /// one in sorted order and a failed try is rolled back.
    pub multi_atomic: bool,
}

impl Capabilities {
    /// The names reported in the metadata API, in a stable order.
    pub(crate) fn names(&self) -> Vec<String> {
        [
            (self.fencing, "FENCING"),
            (self.listing, "LISTING"),
            (self.release_signal, "RELEASE_SIGNAL"),
            (self.line, "WAIT_QUEUE"),
            (self.shared, "SHARED"),
            (self.limit, "LIMIT"),
            (self.reentrant, "REENTRANT"),
            (self.multi, "MULTI"),
            (self.multi_atomic, "MULTI_ATOMIC"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_string())
        .collect()
    }
}

/// A lock backend. Implementations turn each call into that backend's own primitives and do
/// nothing more: validation, key building, waiting and renewal loops live in the core.
///
/// Public so that the contract tests can hold a store (`Arc<dyn LockStore>`), but implemented
/// only in this crate: a `Grant` can't be made outside it, so every store is one of ours and
/// passes the contract suite (`contract/`) in this repository.
#[async_trait]
pub trait LockStore: Send + Sync + 'static {
    /// Takes `key` for `owner` for `ttl` if nobody holds it.
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError>;

    /// Takes `key` for `owner` for `ttl` in a kind other than the plain one (`kind.rs`), if
    /// the key's holders allow it, on a store that declares the kind
    /// (`Capabilities::{shared, limit, reentrant}`): the core refuses a kind before asking a
    /// store that lacks it.
    async fn acquire_kind(
        &self,
        _key: &str,
        _owner: &str,
        _ttl: Duration,
        _kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        Err(StoreError::Unsupported("shared and reentrant locks"))
    }

    /// Takes `key` in the kind asked: the plain kind by `try_lock`, the others by
    /// `acquire_kind`. The one way the core acquires; stores implement the two it chooses from.
    async fn acquire(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        if kind.is_plain() {
            self.try_lock(key, owner, ttl).await
        } else {
            self.acquire_kind(key, owner, ttl, kind).await
        }
    }

    /// Takes back one of `owner`'s holds of `key` (the whole hold of a lock held once), or
    /// every one with `all_holds`, and says how many are left.
    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError>;

    /// Takes every key of `keys` (sorted, no key twice) for `owner` for `ttl` in `kind`, or
    /// none of them: a multi-lock. The default takes them one by one in sorted order and takes
    /// back what it got when one is refused (`multi.rs`); a store that can do it in one
    /// operation overrides it and declares `Capabilities::multi_atomic`.
    async fn acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        multi::in_sorted_order(self, keys, owner, ttl, kind).await
    }

    /// Takes back one of `owner`'s holds of every key of a multi-lock (or all of them): the
    /// lock is released as a whole. The default releases the keys one by one; a store with
    /// `Capabilities::multi_atomic` releases them in one operation.
    async fn release_many(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        multi::release_each(self, keys, owner, all_holds).await
    }

    /// Releases `key` if `owner` holds it: one hold, as Dapr's UnlockAlpha1 does.
    async fn unlock(&self, key: &str, owner: &str) -> Result<OwnerChecked, StoreError> {
        Ok(self.release(key, owner, false).await?.outcome)
    }

    /// Extends `owner`'s hold of `key` to `ttl` from now if it still holds it; another
    /// holder's deadline never moves.
    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError>;

    /// Who holds `key` now; `None` when it is free.
    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError>;

    /// The held keys starting with `prefix`, where `Capabilities::listing` says it can.
    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError>;

    /// Takes back `grant`, which an acquire got from `try_lock` after its caller had gone (a
    /// client that disconnected, a wait cut short by a reload or a deadline), so that no lock
    /// stays held that nobody knows about. It must never release a newer grant of the same
    /// owner: a store whose grants carry fencing tokens releases only while the key is still
    /// held under `grant`'s token, and of a reentrant grant it takes back one hold. The
    /// default is the owner-checked `unlock`, which is exact
    /// for a store without tokens: there the lock cannot have changed hands to the same owner
    /// in between, since the owner's next try is refused while the grant holds.
    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        _grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        self.unlock(key, owner).await
    }

    /// Releases `key` whoever holds it (an operator's action). True when something was held.
    async fn force_release(&self, key: &str) -> Result<bool, StoreError>;

    /// Returns when `key` may have been released, or after `max_wait` at the latest. A store
    /// with `Capabilities::release_signal` returns early on a release; the default just waits,
    /// which makes the caller's retry loop a poll with backoff.
    async fn wait_for_release(&self, _key: &str, max_wait: Duration) -> Result<(), StoreError> {
        tokio::time::sleep(max_wait).await;
        Ok(())
    }

    /// Joins the end of the store's own line of waiters for `key`, asking for `kind`, where
    /// `line_takes(kind)` says the line serves it. The core drives the place it answers (see
    /// `Place`) and leaves the line for a waiter that gives up.
    async fn join(
        &self,
        _key: &str,
        _owner: &str,
        _ttl: Duration,
        _kind: Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        Err(StoreError::Unsupported(
            "a line of waiters kept in the store",
        ))
    }

    /// Whether a blocking acquire of `kind` waits in the store's own line (`join`). The default
    /// serves the plain kind only, where the store keeps a line at all: a line that takes every
    /// kind in one order (KINDS.md, rule 3) says so; the other kinds then wait in this
    /// sidecar's line.
    fn line_takes(&self, kind: Kind) -> bool {
        self.capabilities().line && kind.is_plain()
    }

    /// A cheap question whose answer says the store is reachable and answering, for the
    /// background health probe (`probe.rs`), so an idle sidecar notices an outage too. The
    /// default looks up a key no lock uses (`PROBE_KEY`): one read, on every store.
    async fn probe(&self) -> Result<(), StoreError> {
        self.inspect(PROBE_KEY).await.map(drop)
    }

    fn capabilities(&self) -> Capabilities;

    /// The servers the store talks to, as `host:port`, for the ready line, the logs and the
    /// status API: never credentials. Empty for a store kept in this process.
    fn servers(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The store a place belongs to, from the store's weak reference to itself: a place outlives
/// the call that made it, so it holds the store strongly, and a store already being dropped (a
/// reload replaced it, the sidecar is stopping) makes no more places.
pub(crate) fn for_a_place<S>(me: &Weak<S>) -> Result<Arc<S>, StoreError> {
    me.upgrade()
        .ok_or_else(|| StoreError::unavailable("the store is shutting down"))
}

/// A waiter's place in a store's own line for one key (`LockStore::join`): an entry in the
/// store, ordered by the store among every sidecar's waiters, and tied to this sidecar's
/// session or lease, so it vanishes with a sidecar that dies. The store translates each call to
/// its primitives; the deadline, the retries and leaving on cancellation belong to the core.
#[async_trait]
pub trait Place: Send + Sync + 'static {
    /// Takes the lock for `ttl`, in the kind the place joined with, if this place is first in
    /// line and the key's holders allow it: `Held` otherwise. A granted place is used up: its entry has become the lock or is gone.
    /// A place whose entry vanished (a session or lease the store lost) joins again at the end.
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError>;

    /// Returns when the place may have moved up (the waiter ahead left, or the holder
    /// released), or after `max_wait` at the latest.
    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError>;

    /// How long the core waits for this place's turn before it tries again, when its own pause
    /// would be `poll`. The default keeps `poll`; a store that wakes every place whose turn may
    /// have come pauses longer a place that others wait ahead of.
    fn pause(&self, poll: Duration) -> Duration {
        poll
    }

    /// Leaves the line. Also releases a lock that a `try_take` cut short may have taken, so a
    /// waiter that gave up never holds the lock afterwards.
    async fn leave(self: Box<Self>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_in_a_stable_order() {
        let all = Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
            line: true,
            shared: true,
            limit: true,
            reentrant: true,
            multi: true,
            multi_atomic: true,
        };
        assert_eq!(
            all.names(),
            [
                "FENCING",
                "LISTING",
                "RELEASE_SIGNAL",
                "WAIT_QUEUE",
                "SHARED",
                "LIMIT",
                "REENTRANT",
                "MULTI",
                "MULTI_ATOMIC"
            ]
        );
        let some = Capabilities {
            line: true,
            ..Capabilities::default()
        };
        assert_eq!(some.names(), ["WAIT_QUEUE"]);
    }
}
