//! The lock-store backends, one module each, and the table that maps a component's `spec.type`
//! to the code that builds it.

pub mod memory;

use std::sync::Arc;

use crate::lock::LockStore;

/// The `spec.type` of the embedded store.
pub const IN_MEMORY: &str = "lock.in-memory";

/// The lock-store types this build supports, for error messages and the README.
pub const SUPPORTED_TYPES: &[&str] = &[IN_MEMORY];

/// Builds the stores of one sidecar. The embedded store is one keyspace per process, shared by
/// every `lock.in-memory` component, so it is created once here.
pub struct StoreFactory {
    memory: Arc<memory::MemoryStore>,
}

impl StoreFactory {
    pub fn new() -> Self {
        StoreFactory {
            memory: memory::MemoryStore::new(),
        }
    }

    /// The store for a component of type `type_name` with the given (resolved) metadata, or
    /// `None` when this build has no such type.
    pub async fn build(
        &self,
        type_name: &str,
        _metadata: &crate::config::Metadata,
    ) -> Option<Result<Arc<dyn LockStore>, String>> {
        match type_name {
            IN_MEMORY => Some(Ok(self.memory.clone())),
            _ => None,
        }
    }
}

impl Default for StoreFactory {
    fn default() -> Self {
        Self::new()
    }
}
