//! What the front doors ask of the core, as typed requests, and every check of a request, in
//! the order of the error table (docs/contract.md §2): a request wrong in two ways gets the
//! earlier row's error. The doors only parse their protocol; a check written here is never
//! written again in a door, so HTTP and gRPC answer a bad request alike.

use std::time::Duration;

use super::{ApiError, ErrorKind, LoadedStore, LockService, Operation};

/// A lock as a request names it, with the time it is asked for: Dapr's TryLock, and renew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// The lock store's component name.
    pub store: String,
    pub resource_id: String,
    pub owner: String,
    pub expiry_in_seconds: i32,
}

/// Dapr's Unlock: a resource and the owner that releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockRequest {
    pub store: String,
    pub resource_id: String,
    pub owner: String,
}

/// A blocking acquire, and the start of a held session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireRequest {
    pub lock: LockRequest,
    /// How long to wait while someone else holds the lock (see `wait_timeout`).
    pub wait: Duration,
    /// Refuses a store that can't issue fencing tokens.
    pub require_fencing: bool,
}

/// A request that passed the checks: the store it names, the key it built, the owner and the
/// time to live. A session keeps it, so what it renews is what was checked.
pub(crate) struct CheckedLock<'s> {
    pub store: &'s LoadedStore,
    pub key: String,
    pub owner: String,
    pub ttl: Duration,
}

/// The wait a blocking acquire asks for, from the wire's milliseconds. A negative wait is
/// refused before every row of the table: a door checks it while it reads the request.
pub fn wait_timeout(wait_timeout_ms: i64) -> Result<Duration, ApiError> {
    let millis = u64::try_from(wait_timeout_ms)
        .map_err(|_| ApiError::new(ErrorKind::MalformedRequest, "WaitTimeoutMs is negative"))?;
    Ok(Duration::from_millis(millis))
}

impl LockService {
    /// Rows 1 to 6 for a request that names a lock and its time to live.
    pub(crate) fn check(
        &self,
        op: Operation,
        request: LockRequest,
    ) -> Result<CheckedLock<'_>, ApiError> {
        let ttl = expiry(&request.store, request.expiry_in_seconds)?;
        let (store, key) = self.locate(
            op,
            &request.store,
            &request.resource_id,
            Some(&request.owner),
        )?;
        Ok(CheckedLock {
            store,
            key,
            owner: request.owner,
            ttl,
        })
    }

    /// Rows 1 to 6, then the acquire's own: fencing from a store that can't give it.
    pub(crate) fn check_acquire(
        &self,
        request: AcquireRequest,
    ) -> Result<CheckedLock<'_>, ApiError> {
        let lock = self.check(Operation::Acquire, request.lock)?;
        if request.require_fencing && !lock.store.store.capabilities().fencing {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                format!("lock store {} can't issue fencing tokens", lock.store.name),
            ));
        }
        Ok(lock)
    }

    /// Rows 2 to 6, and the store key. Calls without an owner (inspect, force release) skip
    /// the owner's row.
    pub(crate) fn locate(
        &self,
        op: Operation,
        store_name: &str,
        resource_id: &str,
        owner: Option<&str>,
    ) -> Result<(&LoadedStore, String), ApiError> {
        if self.registry().is_empty() {
            return Err(not_configured());
        }
        if resource_id.is_empty() {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("ResourceId is empty in lock store {store_name}"),
            ));
        }
        if owner.is_some_and(str::is_empty) {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("LockOwner is empty in lock store {store_name}"),
            ));
        }
        let store = self.store(store_name)?;
        let key = store
            .key_prefix
            .store_key(self.app_id(), &store.name, resource_id)
            .map_err(|detail| ApiError::failed(op, detail))?;
        Ok((store, key))
    }

    /// Rows 2 and 5 for a list, which names no resource, then its own: a store that can't
    /// list.
    pub(crate) fn check_list(&self, store_name: &str) -> Result<&LoadedStore, ApiError> {
        let store = self.store(store_name)?;
        if !store.store.capabilities().listing {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                format!("lock store {store_name} can't list its locks"),
            ));
        }
        Ok(store)
    }

    /// Rows 2 and 5: the named store.
    fn store(&self, store_name: &str) -> Result<&LoadedStore, ApiError> {
        if self.registry().is_empty() {
            return Err(not_configured());
        }
        self.registry().get(store_name).ok_or_else(|| {
            ApiError::new(
                ErrorKind::StoreNotFound,
                format!("lock store {store_name} not found"),
            )
        })
    }
}

/// Row 1.
fn expiry(store_name: &str, expiry_in_seconds: i32) -> Result<Duration, ApiError> {
    if expiry_in_seconds <= 0 {
        return Err(ApiError::new(
            ErrorKind::MalformedRequest,
            format!("ExpiryInSeconds is not positive in lock store {store_name}"),
        ));
    }
    Ok(Duration::from_secs(expiry_in_seconds as u64))
}

fn not_configured() -> ApiError {
    ApiError::new(
        ErrorKind::StoreNotConfigured,
        "lock store is not configured",
    )
}
