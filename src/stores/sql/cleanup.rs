//! The background removal of expired rows, so a lock table stays as small as the set of held
//! locks. A row is free the moment its expiry passes (every statement compares with the
//! database's clock), so the removal is housekeeping only: late or failed rounds cost space,
//! never correctness. It ends when its store is dropped, at once, not at its next round.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;

/// The running cleanup, held by its store: dropped with the store, it ends the task.
pub(crate) struct Cleanup(Option<AbortHandle>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Runs `remove_expired` on `store` every `interval` (never when `interval` is zero) until the
/// returned `Cleanup` is dropped; a failed round is logged and the next one tries again. The
/// store is given weakly so that it can hold the `Cleanup` (`Arc::new_cyclic`).
pub(crate) fn spawn<S, F, Fut>(store: Weak<S>, interval: Duration, remove_expired: F) -> Cleanup
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    if interval.is_zero() {
        return Cleanup(None);
    }
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate: the table was just checked
        loop {
            ticks.tick().await;
            // Not yet there only while the store is being built; once it is gone, the task
            // has been aborted.
            let Some(store) = store.upgrade() else {
                continue;
            };
            match remove_expired(store).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!("removed {removed} expired lock rows"),
                Err(e) => tracing::warn!("removing expired lock rows failed: {e}"),
            }
        }
    });
    Cleanup(Some(task.abort_handle()))
}
