//! The lock-store backends, one module each. Which `spec.type` builds which is start-up's
//! table (`startup::StoreTypes`).

pub(crate) mod azure_blob;
pub(crate) mod etcd;
pub(crate) mod memory;
pub(crate) mod mysql;
pub(crate) mod postgresql;
pub(crate) mod redis;
pub(crate) mod sql;
pub(crate) mod zookeeper;
