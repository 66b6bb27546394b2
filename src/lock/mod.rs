//! The core of the sidecar: what a lock store must do (`store`), how a resource id becomes a
//! store key (`key`), the stores this sidecar loaded (`registry`), the requests and their
//! checks (`request`), and the dispatch that every front door shares (`service`), so HTTP and
//! gRPC can never disagree; then the lines of waiters and sessions, the API log of every
//! call (`api_log`), and the events the sidecar saw (`events`, `held_here`), and how
//! many wait through it for each lock (`waiting_here`).
//!
//! One word, one meaning, here and in every layer above:
//!
//! - **lock**: a named resource held by at most one owner at a time, until it is released or
//!   its expiry runs out. Dapr's locks are not reentrant.
//! - **owner**: the id a client gives to say who holds a lock (`lockOwner` on the wire); only
//!   the owner may release or renew it (`OwnerChecked`).
//! - **key**: the store's name for a lock, built from the resource id by the component's
//!   `keyPrefix` (`key.rs`). Stores see keys only, never resource ids.
//! - **grant**: a lock handed to an owner (`Grant`), with its fencing token where there is one.
//! - **fencing token**: a number that strictly increases across successive holders of one key,
//!   so a resource can refuse a late writer (`Capabilities::fencing`).
//! - **line of waiters**: the blocking acquires waiting for one key, served in arrival order.
//!   The store keeps it where it can (`Capabilities::line`, `store_line.rs`), else this sidecar
//!   keeps its own (`sidecar_line.rs`).
//! - **place**: one waiter's position in a line (`Place` in the store, `StorePlace`,
//!   `SidecarPlace`); a waiter that gives up leaves its place at once.
//! - **session**: a held lock that the sidecar renews for a client as long as it stays
//!   connected (`session.rs`).
//! - **event**: something this sidecar saw happen to a lock or a store (`events.rs`), which
//!   the console's feed and the metrics read.
//! - **store**: a lock backend (`LockStore`), loaded from a component file under a name that
//!   requests give.

pub mod api_log;
#[cfg(any(test, feature = "test-support"))]
pub mod contract;
pub(crate) mod error;
pub(crate) mod events;
mod guarded_try;
pub(crate) mod health;
mod held_here;
pub(crate) mod holders;
pub(crate) mod key;
pub(crate) mod kind;
pub(crate) mod look;
pub(crate) mod multi;
pub mod probe;
pub(crate) mod registry;
pub(crate) mod request;
pub(crate) mod service;
pub(crate) mod session;
pub(crate) mod sidecar_line;
pub(crate) mod store;
pub(crate) mod store_error;
pub(crate) mod store_line;
#[cfg(test)]
mod test_double;
mod waiting_here;
pub(crate) mod watched;

pub(crate) use error::{ApiError, ErrorKind, Operation};
pub(crate) use health::Health;
pub(crate) use key::KeyPrefix;
pub use kind::Kind;
pub(crate) use kind::{Conflict, Holder, Mode, Released};
pub use multi::ManyOutcome;
pub(crate) use registry::{LoadedStore, Registry};
pub(crate) use request::{
    wait_timeout, AcquireRequest, LockRequest, ReleaseRequest, UnlockRequest,
};
pub(crate) use service::HeldLock;
pub use service::LockService;
pub use store::{Capabilities, LockStore, OwnerChecked, TryLockOutcome};
pub(crate) use store::{Grant, LockInfo, Place};
pub(crate) use store_error::StoreError;
