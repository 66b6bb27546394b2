//! The lock API's behaviour, shared by the HTTP and gRPC front doors: Dapr's checks in Dapr's
//! order (SPEC.md §2), key building, and the call to the store.

use std::time::Duration;

use super::{ApiError, ErrorKind, LoadedStore, Registry, ReleaseOutcome, TryLockOutcome};

/// Serves lock requests for one sidecar.
pub struct LockService {
    app_id: String,
    registry: Registry,
}

/// Which call a request is, for the checks and messages that differ between them.
#[derive(Clone, Copy)]
enum Call {
    TryLock,
    Unlock,
}

impl Call {
    fn failure(self, detail: impl std::fmt::Display) -> ApiError {
        match self {
            Call::TryLock => ApiError::new(
                ErrorKind::TryLockFailed,
                format!("failed to try acquiring lock: {detail}"),
            ),
            Call::Unlock => ApiError::new(
                ErrorKind::UnlockFailed,
                format!("failed to release lock: {detail}"),
            ),
        }
    }
}

impl LockService {
    pub fn new(app_id: impl Into<String>, registry: Registry) -> Self {
        LockService {
            app_id: app_id.into(),
            registry,
        }
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Dapr's TryLockAlpha1.
    pub async fn try_lock(
        &self,
        store_name: &str,
        resource_id: &str,
        lock_owner: &str,
        expiry_in_seconds: i32,
    ) -> Result<TryLockOutcome, ApiError> {
        if expiry_in_seconds <= 0 {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("ExpiryInSeconds is not positive in lock store {store_name}"),
            ));
        }
        let (store, key) = self.locate(Call::TryLock, store_name, resource_id, lock_owner)?;
        let ttl = Duration::from_secs(expiry_in_seconds as u64);
        store
            .store
            .try_lock(&key, lock_owner, ttl)
            .await
            .map_err(|e| Call::TryLock.failure(e))
    }

    /// Dapr's UnlockAlpha1.
    pub async fn unlock(
        &self,
        store_name: &str,
        resource_id: &str,
        lock_owner: &str,
    ) -> Result<ReleaseOutcome, ApiError> {
        let (store, key) = self.locate(Call::Unlock, store_name, resource_id, lock_owner)?;
        store
            .store
            .unlock(&key, lock_owner)
            .await
            .map_err(|e| Call::Unlock.failure(e))
    }

    /// Checks 2 to 6 of SPEC.md's table, in order, and builds the store key.
    fn locate(
        &self,
        call: Call,
        store_name: &str,
        resource_id: &str,
        lock_owner: &str,
    ) -> Result<(&LoadedStore, String), ApiError> {
        if self.registry.is_empty() {
            return Err(ApiError::new(
                ErrorKind::StoreNotConfigured,
                "lock store is not configured",
            ));
        }
        if resource_id.is_empty() {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("ResourceId is empty in lock store {store_name}"),
            ));
        }
        if lock_owner.is_empty() {
            return Err(ApiError::new(
                ErrorKind::MalformedRequest,
                format!("LockOwner is empty in lock store {store_name}"),
            ));
        }
        let store = self.registry.get(store_name).ok_or_else(|| {
            ApiError::new(
                ErrorKind::StoreNotFound,
                format!("lock store {store_name} not found"),
            )
        })?;
        let key = store
            .key_prefix
            .store_key(&self.app_id, &store.name, resource_id)
            .map_err(|detail| call.failure(detail))?;
        Ok((store, key))
    }
}
