//! Waiting for a release: bounded by its `max_wait` in every store, and cut short by the
//! release itself where the store tells waiters (`Capabilities::release_signal`).

use std::time::Instant;

use super::subject::{Subject, LONG, PROMPTLY, SETTLE, SHORT_WAIT};
use crate::lock::OwnerChecked;

/// `wait_for_release` on a key that stays held returns by its `max_wait`, not at the lock's
/// expiry.
pub async fn wait_is_bounded(s: &Subject) {
    let key = s.key("wait-bounded");
    s.grant(&key, "a", LONG).await;
    let started = Instant::now();
    assert_eq!(s.store.wait_for_release(&key, SHORT_WAIT).await, Ok(()));
    assert!(
        started.elapsed() < SHORT_WAIT + PROMPTLY,
        "a wait of {SHORT_WAIT:?} returned after {:?}",
        started.elapsed()
    );
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::Applied));
}

/// A waiter on a held key waits, and returns promptly when the key is released, by its
/// holder or by force.
pub async fn release_wakes_a_waiter(s: &Subject) {
    for forced in [false, true] {
        let key = s.key("wake");
        s.grant(&key, "a", LONG).await;
        let waiter = {
            let (store, key) = (s.store.clone(), key.clone());
            tokio::spawn(async move { store.wait_for_release(&key, LONG).await })
        };
        tokio::time::sleep(SETTLE).await;
        assert!(
            !waiter.is_finished(),
            "wait_for_release returned while the key was held"
        );
        if forced {
            assert_eq!(s.store.force_release(&key).await, Ok(true));
        } else {
            assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::Applied));
        }
        let woken = tokio::time::timeout(PROMPTLY, waiter).await;
        assert!(
            matches!(woken, Ok(Ok(Ok(())))),
            "a waiter was not woken within {PROMPTLY:?} of a release (forced: {forced}): \
             {woken:?}"
        );
    }
}
