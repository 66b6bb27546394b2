//! A loaded store as the core calls it: every call goes to the store itself, and its outcome
//! to the store's health record (`health.rs`), so no call path can forget to report one. The
//! waits (`wait_for_release`, `Place::wait_turn`) are not recorded: a wait that runs out says
//! nothing about the store, and a store without a release signal waits without asking it.
//! Each call's duration goes to the call observers (the metrics' store latency).

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::health::StoreHealth;
use super::{
    Capabilities, Grant, Kind, LockInfo, LockStore, ManyOutcome, OwnerChecked, Place, Released,
    StoreError, TryLockOutcome,
};

pub(crate) struct Watched {
    pub(crate) store: Arc<dyn LockStore>,
    pub(crate) health: Arc<StoreHealth>,
}

#[async_trait]
impl LockStore for Watched {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        self.seen("try_lock", self.store.try_lock(key, owner, ttl))
            .await
    }

    async fn acquire_kind(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        let acquired = self.store.acquire_kind(key, owner, ttl, kind);
        self.seen("acquire", acquired).await
    }

    async fn acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        let acquired = self.store.acquire_many(keys, owner, ttl, kind);
        self.seen("acquire_many", acquired).await
    }

    async fn release_many(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        let released = self.store.release_many(keys, owner, all_holds);
        self.seen("release_many", released).await
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        // One hold is Dapr's unlock, and keeps its name in the store latency metric.
        let operation = if all_holds { "release" } else { "unlock" };
        let released = self.store.release(key, owner, all_holds);
        self.seen(operation, released).await
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        self.seen("take_back", self.store.take_back(key, owner, grant))
            .await
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        self.seen("renew", self.store.renew(key, owner, ttl)).await
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        self.seen("inspect", self.store.inspect(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        self.seen("list", self.store.list(prefix)).await
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        self.seen("force_release", self.store.force_release(key))
            .await
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        self.store.wait_for_release(key, max_wait).await
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        let place = self
            .seen("join", self.store.join(key, owner, ttl, kind))
            .await?;
        Ok(Box::new(WatchedPlace {
            place,
            health: self.health.clone(),
        }))
    }

    fn line_takes(&self, kind: Kind) -> bool {
        self.store.line_takes(kind)
    }

    fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }

    fn servers(&self) -> Vec<String> {
        self.store.servers()
    }
}

impl Watched {
    async fn seen<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        watch(&self.health, operation, call).await
    }
}

/// Runs one store call, timing it for the call observers and recording its outcome.
async fn watch<T>(
    health: &StoreHealth,
    operation: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let outcome = call.await;
    let took = started.elapsed();
    for observe in CALL_OBSERVERS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        observe(health.name(), operation, took);
    }
    health.record(&outcome);
    outcome
}

type CallObserver = Box<dyn Fn(&str, &'static str, Duration) + Send + Sync>;

/// Process-wide, as the events are (`events.rs` says why).
static CALL_OBSERVERS: RwLock<Vec<CallObserver>> = RwLock::new(Vec::new());

/// Calls `observer` with every store call from now on: the store's name, the operation
/// (`try_lock`, `unlock`, `renew`, `inspect`, `list`, `force_release`, `join`, `try_take`) and
/// how long it took, failed calls included. Synchronous, on the caller's task: keep it quick.
pub(crate) fn observe_calls(
    observer: impl Fn(&str, &'static str, Duration) + Send + Sync + 'static,
) {
    CALL_OBSERVERS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(observer));
}

/// A place in a store's line, whose tries are recorded like the store's calls.
struct WatchedPlace {
    place: Box<dyn Place>,
    health: Arc<StoreHealth>,
}

#[async_trait]
impl Place for WatchedPlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        watch(&self.health, "try_take", self.place.try_take()).await
    }

    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        self.place.wait_turn(max_wait).await
    }

    fn pause(&self, poll: Duration) -> Duration {
        self.place.pause(poll)
    }

    async fn leave(self: Box<Self>) {
        self.place.leave().await
    }
}
