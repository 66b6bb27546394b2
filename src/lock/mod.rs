//! The core of the sidecar: what a lock store must do (`store`), how a resource id becomes a
//! store key (`key`), the stores this sidecar loaded (`registry`), and the request checks and
//! dispatch that both front doors share (`service`), so HTTP and gRPC can never disagree.

pub mod error;
pub mod key;
pub mod registry;
pub mod request;
pub mod service;
pub mod session;
pub mod sidecar_line;
pub mod store;
pub mod store_line;

pub use error::{ApiError, ErrorKind, Operation};
pub use key::KeyPrefix;
pub use registry::{LoadedStore, Registry};
pub use request::{wait_timeout, AcquireRequest, LockRequest, UnlockRequest};
pub use service::{HeldLock, LockService};
pub use store::{
    Capabilities, Grant, LockInfo, LockStore, OwnerChecked, Place, StoreError, TryLockOutcome,
};
