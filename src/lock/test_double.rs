//! A lock store for the core's unit tests: in process, on tokio's clock (so paused time drives
//! its expiries), with faults a test switches on, and a record of what the core asked of it
//! that a test cannot see from outside (renewals, who joined and left its line).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    AcquireRequest, Capabilities, Grant, KeyPrefix, LoadedStore, LockInfo, LockRequest,
    LockService, LockStore, OwnerChecked, Place, Registry, Released, StoreError, TryLockOutcome,
    UnlockRequest,
};

/// How long the double takes to answer a join: a store's round trip, during which a test can
/// drop the acquire that is joining. The place is in the line from the start of it.
pub(crate) const JOIN_TIME: Duration = Duration::from_millis(10);

/// The store key of resource `r` in `service`'s store (app id `app`).
pub(crate) const KEY: &str = "lock||app||r";

/// `owner`'s acquire of resource `r` in the double (`DoubleStore::service`), for
/// `expiry_in_seconds`, waiting up to `wait`; its `lock` is the try-lock of the same.
pub(crate) fn acquire(owner: &str, expiry_in_seconds: i32, wait: Duration) -> AcquireRequest {
    AcquireRequest {
        lock: LockRequest {
            store: "store".into(),
            resource_id: "r".into(),
            owner: owner.into(),
            expiry_in_seconds,
        },
        wait,
        require_fencing: false,
        kind: crate::lock::Kind::PLAIN,
        resource_ids: Vec::new(),
    }
}

/// `owner`'s unlock of resource `r` in the double.
pub(crate) fn unlock(owner: &str) -> UnlockRequest {
    UnlockRequest {
        store: "store".into(),
        resource_id: "r".into(),
        owner: owner.into(),
    }
}

/// The double; clones share one state.
#[derive(Clone, Default)]
pub(crate) struct DoubleStore {
    state: Arc<Mutex<State>>,
    keeps_a_line: bool,
}

#[derive(Default)]
struct State {
    held: HashMap<String, Held>,
    /// The places in line per key, by place id, first in line first.
    lines: HashMap<String, VecDeque<u64>>,
    next_place: u64,
    unavailable: bool,
    refuse_renewal: bool,
    /// Renewals never answer while on, as in a client library that retries a lost connection
    /// without end.
    renewals_hang: bool,
    /// Release signals never come back while on, their `max_wait` ignored, as in a store that
    /// queues its waits.
    waits_hang: bool,
    /// How long try-locks, renewals and look-ups take to answer, after taking effect at once.
    answer_delay: Duration,
    /// When each renewal was asked for, answered or not.
    renewals: Vec<Instant>,
    /// `join <owner>` and `leave <owner>`, in order.
    line_events: Vec<String>,
}

struct Held {
    owner: String,
    until: Instant,
}

impl State {
    /// Who holds `key` now; expired locks are dropped first.
    fn holder(&mut self, key: &str) -> Option<&mut Held> {
        let now = Instant::now();
        self.held.retain(|_, held| held.until > now);
        self.held.get_mut(key)
    }

    fn fail_if_unavailable(&self) -> Result<(), StoreError> {
        if self.unavailable {
            return Err(StoreError::unavailable("switched off by the test"));
        }
        Ok(())
    }

    fn grant(&mut self, key: &str, owner: &str, ttl: Duration) -> TryLockOutcome {
        let held = Held {
            owner: owner.to_string(),
            until: Instant::now() + ttl,
        };
        self.held.insert(key.to_string(), held);
        TryLockOutcome::Granted(Grant::first(None))
    }
}

impl DoubleStore {
    /// A store that keeps its own line of waiters (`Capabilities::line`).
    pub(crate) fn keeping_a_line() -> Self {
        DoubleStore {
            keeps_a_line: true,
            ..DoubleStore::default()
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Every call fails with `StoreError::Unavailable` while on.
    pub(crate) fn set_unavailable(&self, on: bool) {
        self.state().unavailable = on;
    }

    /// Renewals answer `HeldByOther` while on, as if the lock expired and another took it.
    pub(crate) fn set_refuse_renewal(&self, on: bool) {
        self.state().refuse_renewal = on;
    }

    /// Renewals never answer while on (those already asked included).
    pub(crate) fn set_renewals_hang(&self, on: bool) {
        self.state().renewals_hang = on;
    }

    /// Waits for a release never return while on.
    pub(crate) fn set_waits_hang(&self, on: bool) {
        self.state().waits_hang = on;
    }

    /// Try-locks, renewals and look-ups answer `delay` after they took effect, as over a slow
    /// network.
    pub(crate) fn set_answer_delay(&self, delay: Duration) {
        self.state().answer_delay = delay;
    }

    /// Waits `answer_delay`, then hangs for as long as `renewals_hang` says (when `renewal`).
    async fn answer(&self, renewal: bool) {
        let delay = self.state().answer_delay;
        tokio::time::sleep(delay).await;
        while renewal && self.state().renewals_hang {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The lock on `key` vanishes, as if deleted by force behind the sidecar's back.
    pub(crate) fn lose(&self, key: &str) {
        self.state().held.remove(key);
    }

    pub(crate) fn holder(&self, key: &str) -> Option<String> {
        self.state().holder(key).map(|held| held.owner.clone())
    }

    pub(crate) fn renewals(&self) -> Vec<Instant> {
        self.state().renewals.clone()
    }

    pub(crate) fn line_events(&self) -> Vec<String> {
        self.state().line_events.clone()
    }

    /// A sidecar core (app id `app`) with this double loaded as the lock store `store`.
    pub(crate) fn service(&self) -> LockService {
        service_of(&[("store", self)])
    }
}

/// A sidecar core (app id `app`) with each double loaded under its name; with the app id as
/// their key prefix, every store gives resource `r` the same key (`KEY`).
pub(crate) fn service_of(stores: &[(&str, &DoubleStore)]) -> LockService {
    let mut registry = Registry::default();
    for (name, double) in stores {
        let loaded = LoadedStore::new(
            name.to_string(),
            "lock.double".into(),
            "v1".into(),
            KeyPrefix::AppId,
            Arc::new((*double).clone()),
        );
        registry.insert(loaded).unwrap();
    }
    LockService::new("app", registry)
}

#[async_trait]
impl LockStore for DoubleStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        let outcome = {
            let mut state = self.state();
            state.fail_if_unavailable()?;
            // A store that keeps a line refuses a try while anyone waits.
            let waiting = state.lines.get(key).is_some_and(|line| !line.is_empty());
            if state.holder(key).is_some() || waiting {
                TryLockOutcome::Held
            } else {
                state.grant(key, owner, ttl)
            }
        };
        self.answer(false).await;
        Ok(outcome)
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        _all_holds: bool,
    ) -> Result<Released, StoreError> {
        let mut state = self.state();
        state.fail_if_unavailable()?;
        let outcome = match state.holder(key) {
            None => OwnerChecked::NotHeld,
            Some(held) if held.owner != owner => OwnerChecked::HeldByOther,
            Some(_) => OwnerChecked::Applied,
        };
        if outcome == OwnerChecked::Applied {
            state.held.remove(key);
        }
        Ok(Released {
            outcome,
            holds_left: 0,
        })
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let outcome = {
            let mut state = self.state();
            state.renewals.push(Instant::now());
            state.fail_if_unavailable()?;
            if state.refuse_renewal {
                OwnerChecked::HeldByOther
            } else {
                match state.holder(key) {
                    None => OwnerChecked::NotHeld,
                    Some(held) if held.owner != owner => OwnerChecked::HeldByOther,
                    Some(held) => {
                        held.until = Instant::now() + ttl;
                        OwnerChecked::Applied
                    }
                }
            }
        };
        self.answer(true).await;
        Ok(outcome)
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let info = {
            let mut state = self.state();
            state.fail_if_unavailable()?;
            state.holder(key).map(|held| {
                LockInfo::exclusive(key, held.owner.clone(), held.until - Instant::now(), None)
            })
        };
        self.answer(false).await;
        Ok(info)
    }

    async fn list(&self, _prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        Err(StoreError::Unsupported("listing"))
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        state.fail_if_unavailable()?;
        let held = state.holder(key).is_some();
        state.held.remove(key);
        Ok(held)
    }

    async fn wait_for_release(&self, _key: &str, max_wait: Duration) -> Result<(), StoreError> {
        if self.state().waits_hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(max_wait).await;
        Ok(())
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        _kind: crate::lock::Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        let id = {
            let mut state = self.state();
            state.fail_if_unavailable()?;
            let id = state.next_place;
            state.next_place += 1;
            state
                .lines
                .entry(key.to_string())
                .or_default()
                .push_back(id);
            state.line_events.push(format!("join {owner}"));
            id
        };
        tokio::time::sleep(JOIN_TIME).await;
        Ok(Box::new(DoublePlace {
            state: self.state.clone(),
            key: key.to_string(),
            owner: owner.to_string(),
            ttl,
            id,
        }))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            line: self.keeps_a_line,
            ..Capabilities::default()
        }
    }
}

/// A place in the double's line.
struct DoublePlace {
    state: Arc<Mutex<State>>,
    key: String,
    owner: String,
    ttl: Duration,
    id: u64,
}

#[async_trait]
impl Place for DoublePlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let mut state = self.state.lock().unwrap();
        state.fail_if_unavailable()?;
        let first = state.lines.get(&self.key).and_then(|line| line.front()) == Some(&self.id);
        if !first || state.holder(&self.key).is_some() {
            return Ok(TryLockOutcome::Held);
        }
        if let Some(line) = state.lines.get_mut(&self.key) {
            line.pop_front();
        }
        Ok(state.grant(&self.key, &self.owner, self.ttl))
    }

    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        if self.state.lock().unwrap().waits_hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(max_wait).await;
        Ok(())
    }

    async fn leave(self: Box<Self>) {
        let mut state = self.state.lock().unwrap();
        if let Some(line) = state.lines.get_mut(&self.key) {
            line.retain(|id| *id != self.id);
        }
        state.line_events.push(format!("leave {}", self.owner));
    }
}
