//! The lock-store backends, one module each, each but the in-memory one behind the Cargo
//! feature of its name (Cargo.toml). Which `spec.type` builds which is start-up's table
//! (`startup::StoreTypes`).

#[cfg(feature = "azure-blob")]
pub(crate) mod azure_blob;
#[cfg(feature = "etcd")]
pub(crate) mod etcd;
pub(crate) mod memory;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "postgresql")]
pub(crate) mod postgresql;
#[cfg(feature = "redis")]
pub(crate) mod redis;
/// The SQL stores' shared kit.
#[cfg(any(feature = "postgresql", feature = "mysql"))]
pub(crate) mod sql;
#[cfg(feature = "zookeeper")]
pub(crate) mod zookeeper;
