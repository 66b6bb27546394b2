//! The lock-store backends, one module each, and the table that maps a component's `spec.type`
//! to the code that builds it.

pub mod etcd;
pub mod memory;
pub mod redis;
pub mod zookeeper;

use std::sync::Arc;

use crate::lock::LockStore;

/// The `spec.type` of the embedded store.
pub const IN_MEMORY: &str = "lock.in-memory";
/// The `spec.type` of the Redis store.
pub const REDIS: &str = "lock.redis";
/// The `spec.type` of the etcd store.
pub const ETCD: &str = "lock.etcd";
/// The `spec.type` of the ZooKeeper store.
pub const ZOOKEEPER: &str = "lock.zookeeper";

/// The lock-store types this build supports, for error messages and the README.
pub const SUPPORTED_TYPES: &[&str] = &[IN_MEMORY, REDIS, ETCD, ZOOKEEPER];

/// Why a store could not start, naming the metadata field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInitError {
    pub field: Option<&'static str>,
    pub message: String,
}

impl From<crate::config::FieldError> for StoreInitError {
    fn from(error: crate::config::FieldError) -> Self {
        StoreInitError::field(error.field, error.message)
    }
}

impl StoreInitError {
    pub fn new(message: impl Into<String>) -> Self {
        StoreInitError {
            field: None,
            message: message.into(),
        }
    }

    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        StoreInitError {
            field: Some(field),
            message: message.into(),
        }
    }
}

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
        metadata: &crate::config::Metadata,
    ) -> Option<Result<Arc<dyn LockStore>, StoreInitError>> {
        Some(match type_name {
            IN_MEMORY => Ok(self.memory.clone()),
            REDIS => redis::RedisStore::connect(metadata)
                .await
                .map(|store| store as Arc<dyn LockStore>),
            ETCD => etcd::EtcdStore::connect(metadata)
                .await
                .map(|store| store as Arc<dyn LockStore>),
            ZOOKEEPER => zookeeper::ZookeeperStore::connect(metadata)
                .await
                .map(|store| store as Arc<dyn LockStore>),
            _ => return None,
        })
    }
}

impl Default for StoreFactory {
    fn default() -> Self {
        Self::new()
    }
}
