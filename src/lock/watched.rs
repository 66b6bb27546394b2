//! A loaded store as the core calls it: every call goes to the store itself, and its outcome
//! to the store's health record (`health.rs`), so no call path can forget to report one. The
//! waits (`wait_for_release`, `Place::wait_turn`) are not recorded: a wait that runs out says
//! nothing about the store, and a store without a release signal waits without asking it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::health::StoreHealth;
use super::{Capabilities, LockInfo, LockStore, OwnerChecked, Place, StoreError, TryLockOutcome};

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
        self.seen(self.store.try_lock(key, owner, ttl).await)
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<OwnerChecked, StoreError> {
        self.seen(self.store.unlock(key, owner).await)
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        self.seen(self.store.renew(key, owner, ttl).await)
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        self.seen(self.store.inspect(key).await)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        self.seen(self.store.list(prefix).await)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        self.seen(self.store.force_release(key).await)
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        self.store.wait_for_release(key, max_wait).await
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Box<dyn Place>, StoreError> {
        let place = self.seen(self.store.join(key, owner, ttl).await)?;
        Ok(Box::new(WatchedPlace {
            place,
            health: self.health.clone(),
        }))
    }

    fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }

    fn servers(&self) -> Vec<String> {
        self.store.servers()
    }
}

impl Watched {
    fn seen<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        self.health.record(&outcome);
        outcome
    }
}

/// A place in a store's line, whose tries are recorded like the store's calls.
struct WatchedPlace {
    place: Box<dyn Place>,
    health: Arc<StoreHealth>,
}

#[async_trait]
impl Place for WatchedPlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let outcome = self.place.try_take().await;
        self.health.record(&outcome);
        outcome
    }

    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        self.place.wait_turn(max_wait).await
    }

    async fn leave(self: Box<Self>) {
        self.place.leave().await
    }
}
