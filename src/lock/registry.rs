//! The lock stores a sidecar loaded from its component files, by component name.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::health::StoreHealth;
use super::watched::Watched;
use super::{Health, KeyPrefix, LockStore};

/// One loaded lock-store component.
#[derive(Clone)]
pub struct LoadedStore {
    /// The component's `metadata.name`: the store name clients give.
    pub name: String,
    /// The component's `spec.type`, e.g. `lock.in-memory`.
    pub type_name: String,
    /// The component's `spec.version` as written (`v1` when empty).
    pub(crate) version: String,
    pub(crate) key_prefix: KeyPrefix,
    /// The store, every call of which feeds `health`.
    pub(crate) store: Arc<dyn LockStore>,
    health: Arc<StoreHealth>,
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
                store,
                health: health.clone(),
            }),
            health,
        }
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
}

fn location(type_name: &str, servers: &[String]) -> String {
    if servers.is_empty() {
        format!("{type_name}, in process")
    } else {
        format!("{type_name} at {}", servers.join(","))
    }
}

/// The loaded lock stores. Read-only once the sidecar serves.
#[derive(Clone, Default)]
pub struct Registry {
    stores: BTreeMap<String, LoadedStore>,
}

impl Registry {
    /// Adds a store; a second store of the same name is refused (the loader reports it first).
    pub(crate) fn insert(&mut self, store: LoadedStore) -> Result<(), String> {
        if self.stores.contains_key(&store.name) {
            return Err(format!("duplicate lock store name '{}'", store.name));
        }
        self.stores.insert(store.name.clone(), store);
        Ok(())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&LoadedStore> {
        self.stores.get(name)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// The loaded stores' names, in order, for a message that lists them.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.stores.keys().map(String::as_str).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &LoadedStore> {
        self.stores.values()
    }
}
