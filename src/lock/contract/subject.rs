//! The store under test, the keys the checks use, and the few steps every check repeats.
//!
//! Real stores are shared by tests running at once, so every key a check uses is new: it
//! carries this process's id, the time the process first asked for a key, and a counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::lock::{Capabilities, Grant, LockStore, TryLockOutcome};

/// A lock that outlives any check: whatever frees it, its expiry did not.
pub(crate) const LONG: Duration = Duration::from_secs(30);

/// How long after its expiry a store may take to free a lock: etcd revokes expired leases on
/// a tick of its own, up to a second late.
pub(crate) const LATE: Duration = Duration::from_secs(1);

/// How soon a release reaches a waiter that the store tells.
pub(crate) const PROMPTLY: Duration = Duration::from_secs(1);

/// A wait a check expects to run out.
pub(crate) const SHORT_WAIT: Duration = Duration::from_millis(300);

/// How long a check leaves a waiter waiting before a release, to show that it does wait.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);

/// How often a check that waits for a key to come free asks again.
pub(crate) const POLL: Duration = Duration::from_millis(25);

/// A lock store under test, with the TTL its expiry checks use.
pub struct Subject {
    pub(crate) store: Arc<dyn LockStore>,
    /// The store as a second sidecar sees it: another instance on the same server, or the
    /// same instance for a store kept in one process.
    pub(crate) peer: Arc<dyn LockStore>,
    /// A short TTL the store honours exactly enough for "held at half of it, free soon after
    /// it": the checks that wait for an expiry take locks of this TTL, so the smallest one the
    /// store supports keeps the suite fast.
    pub(crate) short_ttl: Duration,
}

impl Subject {
    pub fn new(store: Arc<dyn LockStore>, short_ttl: Duration) -> Subject {
        Subject {
            peer: store.clone(),
            store,
            short_ttl,
        }
    }

    /// The subject, with `peer` as the second sidecar's instance of the store.
    pub fn with_peer(self, peer: Arc<dyn LockStore>) -> Subject {
        Subject { peer, ..self }
    }

    /// A namespace no other check or test run uses: `lock||contract-<unique>||`, followed by
    /// a resource id it is a key.
    pub(crate) fn namespace(&self) -> String {
        static RUN: OnceLock<u128> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let run = RUN.get_or_init(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros())
        });
        let next = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("lock||contract-{}-{run}-{next}||", std::process::id())
    }

    /// A key no other check or test run uses.
    pub(crate) fn key(&self, label: &str) -> String {
        self.namespace() + label
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }

    /// Takes `key` for `owner`, which must be granted.
    pub(crate) async fn grant(&self, key: &str, owner: &str, ttl: Duration) -> Grant {
        match self.store.try_lock(key, owner, ttl).await {
            Ok(TryLockOutcome::Granted(grant)) => self.checked(grant),
            other => panic!("{key} should be granted to {owner}: {other:?}"),
        }
    }

    /// Tries `key` for `owner`, which must be refused.
    pub(crate) async fn refused(&self, key: &str, owner: &str) {
        assert_eq!(
            self.store.try_lock(key, owner, LONG).await,
            Ok(TryLockOutcome::Held),
            "{key} should be refused to {owner}"
        );
    }

    /// Takes `key` for `owner` as soon as it comes free, which must be before `deadline`.
    pub(crate) async fn grant_once_free(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        deadline: Instant,
    ) -> Grant {
        loop {
            match self.store.try_lock(key, owner, ttl).await {
                Ok(TryLockOutcome::Granted(grant)) => return self.checked(grant),
                Ok(TryLockOutcome::Held) => {}
                Ok(TryLockOutcome::Refused(conflict)) => {
                    panic!("try_lock({key}, {owner}) refused: {conflict:?}")
                }
                Err(error) => panic!("try_lock({key}, {owner}) failed: {error}"),
            }
            assert!(
                Instant::now() < deadline,
                "{key} is still held {:?} past the deadline",
                Instant::now() - deadline
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The latest moment a lock of `ttl` taken at `taken` may still be held.
    pub(crate) fn freed_by(&self, taken: Instant, ttl: Duration) -> Instant {
        taken + ttl + LATE
    }

    /// Checks that `later`, granted after `earlier` on the same key, is fenced after it: a
    /// larger token where the store has `Capabilities::fencing`, no tokens where it has not.
    pub(crate) fn assert_fenced_after(&self, earlier: Grant, later: Grant) {
        if self.capabilities().fencing {
            assert!(
                later.fencing_token > earlier.fencing_token,
                "fencing token {:?} after {:?}",
                later.fencing_token,
                earlier.fencing_token
            );
        } else {
            assert_eq!((earlier.fencing_token, later.fencing_token), (None, None));
        }
    }

    /// Checks that the store's capabilities are the ones its instantiation of the suite
    /// declared, so a store that loses or gains one fails instead of skipping checks.
    pub fn assert_capabilities(&self, declared: Capabilities) {
        assert_eq!(
            self.capabilities(),
            declared,
            "the store's capabilities differ from those its contract suite declares"
        );
    }

    /// The grant, once checked to carry a fencing token exactly when the store has FENCING.
    fn checked(&self, grant: Grant) -> Grant {
        assert_eq!(
            grant.fencing_token.is_some(),
            self.capabilities().fencing,
            "a grant carries a fencing token exactly when the store has FENCING: {grant:?}"
        );
        grant
    }
}
