//! One change at a time per blob from this sidecar. A sidecar's own changes to a hot blob (a
//! holder's release, the first waiter's take, a waiter joining the line, a renewal) would
//! otherwise race each other at the ETag, and every race lost costs a read and another write:
//! with many waiters on one sidecar, most of a hand-over's requests. Changes from other
//! sidecars still race; the ETag condition decides those, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{Mutex as Turn, OwnedMutexGuard};

/// Blobs remembered before the ones nobody is changing are forgotten.
const TIDY_AT: usize = 1024;

#[derive(Default)]
pub(crate) struct Turnstile {
    blobs: Mutex<HashMap<String, Weak<Turn<()>>>>,
}

impl Turnstile {
    fn blobs(&self) -> MutexGuard<'_, HashMap<String, Weak<Turn<()>>>> {
        // Each change under this mutex is one map operation: poisoning leaves nothing half done.
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no other change of `blob` from this sidecar runs; the change runs while
    /// the answer is held. First come, first served.
    pub(crate) async fn pass(&self, blob: &str) -> OwnedMutexGuard<()> {
        let turn = {
            let mut blobs = self.blobs();
            match blobs.get(blob).and_then(Weak::upgrade) {
                Some(turn) => turn,
                None => {
                    if blobs.len() >= TIDY_AT {
                        blobs.retain(|_, turn| turn.strong_count() > 0);
                    }
                    let turn = Arc::new(Turn::new(()));
                    blobs.insert(blob.to_string(), Arc::downgrade(&turn));
                    turn
                }
            }
        };
        turn.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_change_per_blob_at_a_time_and_other_blobs_pass() {
        let turnstile = Turnstile::default();
        let first = turnstile.pass("a").await;
        let other = tokio::time::timeout(Duration::from_millis(50), turnstile.pass("b")).await;
        assert!(other.is_ok(), "another blob waited");
        let second = tokio::time::timeout(Duration::from_millis(50), turnstile.pass("a")).await;
        assert!(second.is_err(), "two changes of one blob ran at once");
        drop(first);
        let again = tokio::time::timeout(Duration::from_millis(50), turnstile.pass("a")).await;
        assert!(again.is_ok(), "the blob stayed closed after its change");
    }
}
