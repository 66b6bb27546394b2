//! The lock stores a sidecar loaded from its component files, by component name.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{KeyPrefix, LockStore};

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
    pub(crate) store: Arc<dyn LockStore>,
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

    pub fn iter(&self) -> impl Iterator<Item = &LoadedStore> {
        self.stores.values()
    }
}
