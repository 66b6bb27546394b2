//! The background removal of expired rows, so a lock table stays as small as the set of held
//! locks. A row is free the moment its expiry passes (every statement compares with the
//! database's clock), so the removal is housekeeping only: late or failed rounds cost space,
//! never correctness. It stops when its store is dropped.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Runs `remove_expired` on `store` every `interval` (never when `interval` is zero) until the
/// store is gone; a failed round is logged and the next one tries again.
pub(crate) fn spawn<S, F, Fut>(store: &Arc<S>, interval: Duration, remove_expired: F)
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    if interval.is_zero() {
        return;
    }
    let store: Weak<S> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate: the table was just checked
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else { return };
            match remove_expired(store).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!("removed {removed} expired lock rows"),
                Err(e) => tracing::warn!("removing expired lock rows failed: {e}"),
            }
        }
    });
}
