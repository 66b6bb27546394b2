//! The lock-store backends, one module each. Which `spec.type` builds which is start-up's
//! table (`startup::StoreTypes`).

pub mod etcd;
pub mod memory;
pub mod redis;
pub mod zookeeper;
