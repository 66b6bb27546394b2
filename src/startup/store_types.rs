//! The store types this build serves: one row per `spec.type`, saying how its store is built.
//! The same table builds a component's store and, when a type is unknown, lists the types
//! there are. Adding a store is adding its row.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{ConfigError, Metadata};
use crate::lock::LockStore;
#[cfg(feature = "azure-blob")]
use crate::stores::azure_blob;
#[cfg(feature = "etcd")]
use crate::stores::etcd;
use crate::stores::memory;
#[cfg(feature = "mysql")]
use crate::stores::mysql;
#[cfg(feature = "postgresql")]
use crate::stores::postgresql;
#[cfg(feature = "redis")]
use crate::stores::redis;
#[cfg(feature = "zookeeper")]
use crate::stores::zookeeper;

/// The `spec.type` of the embedded store, which is also served when no component files are
/// given.
pub(super) const IN_MEMORY: &str = "lock.in-memory";

/// Every store type of this build, in the order the "this build supports" message lists them;
/// one row each (kept as a table, so rustfmt leaves it be), each but the embedded one there
/// only with its Cargo feature.
#[rustfmt::skip]
const TABLE: &[(&str, Build)] = &[
    (IN_MEMORY, Build::Embedded),
    #[cfg(feature = "redis")]
    ("lock.redis", Build::Connect(|m| connected(redis::RedisStore::connect(m)))),
    #[cfg(feature = "etcd")]
    ("lock.etcd", Build::Connect(|m| connected(etcd::EtcdStore::connect(m)))),
    #[cfg(feature = "zookeeper")]
    ("lock.zookeeper", Build::Connect(|m| connected(zookeeper::ZookeeperStore::connect(m)))),
    #[cfg(feature = "postgresql")]
    ("lock.postgresql", Build::Connect(|m| connected(postgresql::PostgresStore::connect(m)))),
    #[cfg(feature = "mysql")]
    ("lock.mysql", Build::Connect(|m| connected(mysql::MysqlStore::connect(m)))),
    #[cfg(feature = "azure-blob")]
    ("lock.azure.blobstorage", Build::Connect(|m| connected(azure_blob::AzureBlobStore::connect(m)))),
];

/// How a type's store comes to be.
enum Build {
    /// The process's one in-memory keyspace, shared by every component of the type.
    Embedded,
    /// A connection made as the component's metadata says.
    Connect(for<'a> fn(&'a Metadata) -> Connecting<'a>),
}

/// A store on its way: connecting takes time, and may fail naming a metadata field.
type Connecting<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<dyn LockStore>, ConfigError>> + Send + 'a>>;

fn connected<'a, S: LockStore + 'static>(
    connect: impl Future<Output = Result<Arc<S>, ConfigError>> + Send + 'a,
) -> Connecting<'a> {
    Box::pin(async move { Ok(connect.await? as Arc<dyn LockStore>) })
}

/// Builds the stores of one sidecar. It holds the embedded keyspace, so that every
/// `lock.in-memory` component of the sidecar shares it; a clone shares it too.
#[derive(Clone)]
pub struct StoreTypes {
    memory: Arc<memory::MemoryStore>,
}

impl StoreTypes {
    pub fn new() -> Self {
        StoreTypes {
            memory: memory::MemoryStore::new(),
        }
    }

    /// The `spec.type` of every store type this build serves.
    pub(crate) fn names() -> impl Iterator<Item = &'static str> {
        TABLE.iter().map(|(name, _)| *name)
    }

    /// The store of type `type_name`, built from its (resolved) metadata; `None` when this
    /// build has no such type. An error names the metadata field at fault, if one is.
    pub async fn build(
        &self,
        type_name: &str,
        metadata: &Metadata,
    ) -> Option<Result<Arc<dyn LockStore>, ConfigError>> {
        let (_, build) = TABLE.iter().find(|(name, _)| *name == type_name)?;
        Some(match build {
            Build::Embedded => Ok(self.memory.clone()),
            Build::Connect(connect) => connect(metadata).await,
        })
    }
}

impl Default for StoreTypes {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_served_are_the_features_built() {
        let names: Vec<&str> = StoreTypes::names().collect();
        assert_eq!(names[0], IN_MEMORY, "the embedded store is always built");
        let features = [
            ("lock.redis", cfg!(feature = "redis")),
            ("lock.etcd", cfg!(feature = "etcd")),
            ("lock.zookeeper", cfg!(feature = "zookeeper")),
            ("lock.postgresql", cfg!(feature = "postgresql")),
            ("lock.mysql", cfg!(feature = "mysql")),
            ("lock.azure.blobstorage", cfg!(feature = "azure-blob")),
        ];
        for (type_name, built) in features {
            assert_eq!(names.contains(&type_name), built, "{type_name}");
        }
        assert_eq!(names.len(), 1 + features.iter().filter(|(_, b)| *b).count());
    }
}
