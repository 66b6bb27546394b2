//! A blocking acquire's place in a store's own line of waiters (`Capabilities::line`), and
//! the one rule that keeps such a line moving: a waiter that gives up leaves it at once.
//!
//! Giving up comes in two forms: the wait runs out, or the client disconnects and the API
//! drops the acquire's future. A dropped future cannot await, so leaving is a task spawned when
//! the place is dropped without having taken the lock. Joining runs in a task of its own for
//! the same reason: a future dropped half-way through joining would otherwise leave an entry
//! in the store that nobody drives, blocking the line until this sidecar's session or lease
//! ends. Stores only translate join, take, wait and leave to their primitives (`Place`).

use std::sync::Arc;
use std::time::Duration;

use super::{Grant, LockStore, Place, StoreError, TryLockOutcome};

/// A waiter's place in a store's line (the store's `Place`, driven by the core), left when
/// dropped before it took the lock.
pub struct StorePlace {
    /// `None` once the place took the lock.
    place: Option<Box<dyn Place>>,
}

impl StorePlace {
    /// Joins the end of `key`'s line in `store`.
    pub async fn join(
        store: Arc<dyn LockStore>,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<StorePlace, StoreError> {
        let (key, owner) = (key.to_string(), owner.to_string());
        // The place is wrapped inside the task: if nobody awaits it any more, the task's
        // answer is dropped there, and the place leaves the line.
        let joining = tokio::spawn(async move {
            let place = store.join(&key, &owner, ttl).await?;
            Ok(StorePlace { place: Some(place) })
        });
        joining
            .await
            .map_err(|e| StoreError::Failed(format!("joining the line failed: {e}")))?
    }

    /// Takes the lock if this place's turn has come; `None` while others are ahead or hold it.
    pub async fn try_take(&mut self) -> Result<Option<Grant>, StoreError> {
        match self.place().try_take().await? {
            TryLockOutcome::Granted(grant) => {
                self.place = None;
                Ok(Some(grant))
            }
            TryLockOutcome::Held => Ok(None),
        }
    }

    /// Returns when the place may have moved up, or after `max_wait`.
    pub async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        self.place().wait_turn(max_wait).await
    }

    fn place(&mut self) -> &mut Box<dyn Place> {
        // The acquire returns with the grant: a place that took the lock is never asked again.
        self.place
            .as_mut()
            .expect("a place that took the lock is used up")
    }
}

impl Drop for StorePlace {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            tokio::spawn(place.leave());
        }
    }
}
