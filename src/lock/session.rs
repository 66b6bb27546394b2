//! Held sessions: a lock kept while a client stays connected. The sidecar renews it at a third
//! of its expiry (as Redisson's watchdog does), watches the store's release signal so a lock
//! deleted by force is noticed at once, and gives up only when the store says the lock is gone
//! or could not confirm it for a whole expiry. Releasing is the caller's last step.

use std::time::{Duration, Instant};

use super::{ApiError, Grant, LoadedStore, LockService, Operation, OwnerChecked};

/// A lock held for a client.
pub struct Session<'a> {
    service: &'a LockService,
    store: &'a LoadedStore,
    key: String,
    owner: String,
    ttl: Duration,
    pub grant: Grant,
}

/// How a session's acquisition ended.
pub enum Started<'a> {
    Held(Session<'a>),
    TimedOut,
}

impl LockService {
    /// Acquires as `acquire` does and, when granted, returns the session that keeps the lock.
    pub async fn start_session(
        &self,
        store_name: &str,
        resource_id: &str,
        lock_owner: &str,
        expiry_in_seconds: i32,
        wait: Duration,
        require_fencing: bool,
    ) -> Result<Started<'_>, ApiError> {
        let granted = self
            .acquire(
                store_name,
                resource_id,
                lock_owner,
                expiry_in_seconds,
                wait,
                require_fencing,
            )
            .await?;
        let Some(grant) = granted else {
            return Ok(Started::TimedOut);
        };
        // acquire() has checked all of this already; locate only rebuilds the key.
        let (store, key) = self.locate(
            Operation::Acquire,
            store_name,
            resource_id,
            Some(lock_owner),
        )?;
        Ok(Started::Held(Session {
            service: self,
            store,
            key,
            owner: lock_owner.to_string(),
            ttl: Duration::from_secs(expiry_in_seconds as u64),
            grant,
        }))
    }
}

impl Session<'_> {
    /// Keeps the lock until it is lost, and says why. Runs until dropped otherwise.
    pub async fn keep(&self) -> String {
        let period = self.ttl / 3;
        let mut confirmed_until = Instant::now() + self.ttl;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                // A release of this key (by force, or an expiry we missed) wakes us early; the
                // renewal below then finds out whether the lock is still ours.
                _ = self.store.store.wait_for_release(&self.key, period) => {}
            }
            match self
                .store
                .store
                .renew(&self.key, &self.owner, self.ttl)
                .await
            {
                Ok(OwnerChecked::Applied) => confirmed_until = Instant::now() + self.ttl,
                Ok(OwnerChecked::NotHeld) => {
                    return "the lock expired or was released by force".into();
                }
                Ok(OwnerChecked::HeldByOther) => {
                    return "the lock expired and another owner holds it".into();
                }
                Err(error) if Instant::now() >= confirmed_until => {
                    return format!(
                        "the store could not renew the lock before it expired: {error}"
                    );
                }
                Err(error) => {
                    tracing::warn!(key = %self.key, "renewal failed, retrying: {error}");
                }
            }
        }
    }

    /// Releases the lock (if still ours) and ends the session.
    pub async fn release(self) -> Result<OwnerChecked, ApiError> {
        self.service
            .release(self.store, &self.key, &self.owner)
            .await
    }
}
