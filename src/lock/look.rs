//! A waiter's look at its turn in a store's line, written once for the stores that keep each
//! waiter on a lease it renews by looking (Redis, the SQL stores, Azure Blob): what a look comes
//! to, and the one rule every such `Place` must keep about a look cut short.
//!
//! A look that finds the waiter first also takes the lock, so a caller who gives up half-way
//! (its wait ran out, its client went) may leave a grant being made in the store. The look
//! therefore runs in a task of its own: a later look, or the place's `leave`, sees it to its end,
//! and `leave` takes back a grant that nobody awaits any more.

use std::future::Future;

use tokio::task::JoinHandle;

use super::{Grant, StoreError, TryLockOutcome};

/// What one look at a waiter's turn came to.
pub(crate) enum Look {
    /// Its turn had come, and this is what its take came to.
    Took(TryLockOutcome),
    /// Others wait ahead of it: how many, where the store counts them.
    Behind(Option<u64>),
    /// Its lease lapsed and the line dropped it: it must join again.
    Gone,
}

/// The look under way, if any.
#[derive(Default)]
pub(crate) struct Looking(Option<JoinHandle<Result<Look, StoreError>>>);

impl Looking {
    /// Whether a look is under way: one whose caller gave up before it ended.
    pub(crate) fn is_under_way(&self) -> bool {
        self.0.is_some()
    }

    /// Answers the look under way, or else the one `look` starts.
    pub(crate) async fn look<F>(&mut self, look: impl FnOnce() -> F) -> Result<Look, StoreError>
    where
        F: Future<Output = Result<Look, StoreError>> + Send + 'static,
    {
        let task = self.0.get_or_insert_with(|| tokio::spawn(look()));
        let looked = task.await;
        self.0 = None;
        looked.map_err(|e| {
            StoreError::failed(format!("a waiter's look failed: {e}")).with_source(e)
        })?
    }

    /// For `leave`: the grant of the look under way, once it ends, which nobody awaits.
    pub(crate) async fn abandoned_grant(&mut self) -> Option<Grant> {
        match self.0.take()?.await {
            Ok(Ok(Look::Took(TryLockOutcome::Granted(grant)))) => Some(grant),
            _ => None,
        }
    }
}
