//! The lock stores a sidecar loaded from its component files, by component name, and the
//! edits of those files that did not load.
//!
//! A registry is one version of the sidecar's stores: it never changes once built, and a
//! reload (`startup::reload`) builds the next one and swaps it in whole
//! (`LockService::swap_registry`). Stores are shared between versions (`Arc<LoadedStore>`),
//! so a store whose component did not change is the very same store in the next version, with
//! its connections, locks, sessions and waiters; a request keeps the store it looked up until
//! it is done. A store that leaves the registry (changed or removed) is retired: its sessions
//! and waiters end, saying why, and it is dropped with the last request that holds it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::health::StoreHealth;
use super::watched::Watched;
use super::{Health, KeyPrefix, LockStore, StoreError};

/// One loaded lock-store component.
pub struct LoadedStore {
    /// The component's `metadata.name`: the store name clients give.
    pub name: String,
    /// The component's `spec.type`, e.g. `lock.in-memory`.
    pub(crate) type_name: String,
    /// The component's `spec.version` as written (`v1` when empty).
    pub(crate) version: String,
    pub(crate) key_prefix: KeyPrefix,
    /// The store, every call of which feeds `health`.
    pub(crate) store: Arc<dyn LockStore>,
    /// The same store unwatched, for the health probe, whose outcomes are recorded apart.
    unwatched: Arc<dyn LockStore>,
    health: Arc<StoreHealth>,
    /// Why this store stopped serving, once it left the registry.
    retired: watch::Sender<Option<String>>,
}

impl LoadedStore {
    pub(crate) fn new(
        name: String,
        type_name: String,
        version: String,
        key_prefix: KeyPrefix,
        store: Arc<dyn LockStore>,
    ) -> Self {
        let health = Arc::new(StoreHealth::new(
            &name,
            &location(&type_name, &store.servers()),
        ));
        LoadedStore {
            name,
            type_name,
            version,
            key_prefix,
            store: Arc::new(Watched {
                store: store.clone(),
                health: health.clone(),
            }),
            unwatched: store,
            health,
            retired: watch::Sender::new(None),
        }
    }

    /// Takes the store out of service: its sessions and waiters end with `reason`.
    pub(crate) fn retire(&self, reason: String) {
        self.retired.send_replace(Some(reason));
    }

    /// Completes, with the reason, once the store is retired (at once if it is already).
    pub(crate) async fn retired(&self) -> String {
        let mut retired = self.retired.subscribe();
        let reason = retired.wait_for(Option::is_some).await;
        // The sender lives as long as `self`, so the wait ends only with a reason.
        reason.map_or_else(|_| String::new(), |r| r.clone().unwrap_or_default())
    }

    /// The store's type and where it points, e.g. `lock.redis at 10.0.0.5:6379` or
    /// `lock.in-memory, in process`: what the ready line and the health log lines show.
    pub fn location(&self) -> String {
        location(&self.type_name, &self.servers())
    }

    pub(crate) fn servers(&self) -> Vec<String> {
        self.store.servers()
    }

    pub(crate) fn health(&self) -> Health {
        self.health.now()
    }

    /// Asks the store its health probe (`LockStore::probe`) and records the answer; no
    /// answer within `limit` is a failure too.
    pub(crate) async fn probe(&self, limit: Duration) {
        let answer = tokio::time::timeout(limit, self.unwatched.probe()).await;
        let outcome = answer.unwrap_or_else(|_| {
            Err(StoreError::unavailable(format!(
                "the health probe got no answer within {limit:?}"
            )))
        });
        self.health.record_probe(&outcome);
    }
}

fn location(type_name: &str, servers: &[String]) -> String {
    if servers.is_empty() {
        format!("{type_name}, in process")
    } else {
        format!("{type_name} at {}", servers.join(","))
    }
}

/// An edit of a component file that did not load: the version that runs (if any) stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadProblem {
    /// The component's name; empty when the file did not parse far enough to tell.
    pub(crate) component: String,
    pub(crate) file: PathBuf,
    /// Why, naming the field at fault where one is.
    pub(crate) reason: String,
}

/// One version of the loaded lock stores, and the edits that did not load.
#[derive(Clone, Default)]
pub struct Registry {
    stores: BTreeMap<String, Arc<LoadedStore>>,
    problems: Vec<LoadProblem>,
}

impl Registry {
    /// Adds a store; a second store of the same name is refused (the loader reports it first).
    pub(crate) fn insert(&mut self, store: LoadedStore) -> Result<(), String> {
        if self.stores.contains_key(&store.name) {
            return Err(format!("duplicate lock store name '{}'", store.name));
        }
        self.stores.insert(store.name.clone(), Arc::new(store));
        Ok(())
    }

    /// Puts `store` in place of the store of its name, if any; the store replaced.
    pub(crate) fn replace(&mut self, store: LoadedStore) -> Option<Arc<LoadedStore>> {
        self.stores.insert(store.name.clone(), Arc::new(store))
    }

    /// Takes the store `name` out; the store removed.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Arc<LoadedStore>> {
        self.stores.remove(name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<LoadedStore>> {
        self.stores.get(name)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// The loaded stores' names, in order, for a message that lists them.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.stores.keys().map(String::as_str).collect()
    }

    /// The loaded stores, shared, for a task that outlives this borrow.
    pub(crate) fn shared(&self) -> impl Iterator<Item = &Arc<LoadedStore>> {
        self.stores.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = &LoadedStore> {
        self.stores.values().map(Arc::as_ref)
    }

    /// The edits that did not load, as the last reload left them.
    pub(crate) fn problems(&self) -> &[LoadProblem] {
        &self.problems
    }

    pub(crate) fn set_problems(&mut self, problems: Vec<LoadProblem>) {
        self.problems = problems;
    }
}
