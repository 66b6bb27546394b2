//! The lock-store backends, one module each, and the table that maps a component's `spec.type`
//! to the code that builds it.

pub mod etcd;
pub mod memory;
pub mod redis;
pub mod zookeeper;

use std::sync::Arc;

use crate::config::ConfigError;
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
    ) -> Option<Result<Arc<dyn LockStore>, ConfigError>> {
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
