//! A try at the store that cannot leave behind a lock nobody knows about.
//!
//! The API drops a request's future whenever its caller goes: a client that disconnects, a
//! gRPC deadline, a reload that ends a wait. Dropped while a `try_lock` is in flight, the
//! request cannot hear the answer, yet the store may grant it a moment later; that lock would
//! then be held, by nobody, until its expiry. So the try runs in a task of its own, and its
//! grant travels back as an `Unclaimed` value: a grant that no caller claims, because the
//! caller was gone before or while it arrived, is taken back (`LockStore::take_back`, which
//! never touches a newer grant of the same owner).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Grant, Kind, LockStore, StoreError, TryLockOutcome};

/// `store.acquire(key, owner, ttl, kind)`, with a grant that nobody receives taken back.
pub(crate) async fn acquire(
    store: &Arc<dyn LockStore>,
    key: &str,
    owner: &str,
    ttl: Duration,
    kind: Kind,
) -> Result<TryLockOutcome, StoreError> {
    let (answer, answered) = oneshot::channel();
    let (store, key, owner) = (store.clone(), key.to_string(), owner.to_string());
    tokio::spawn(async move {
        let landed = match store.acquire(&key, &owner, ttl, kind).await {
            Ok(TryLockOutcome::Granted(grant)) => Ok(Landed::Granted(Unclaimed {
                grant: Some(grant),
                store,
                key,
                owner,
            })),
            Ok(other) => Ok(Landed::NotGranted(other)),
            Err(e) => Err(e),
        };
        // With the caller gone, the answer is dropped here (or in the channel, if the
        // caller goes after this send), and an unclaimed grant is taken back.
        let _ = answer.send(landed);
    });
    match answered.await {
        Ok(Ok(Landed::Granted(mut unclaimed))) => {
            let grant = unclaimed.grant.take();
            Ok(grant.map_or(TryLockOutcome::Held, TryLockOutcome::Granted))
        }
        Ok(Ok(Landed::NotGranted(outcome))) => Ok(outcome),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StoreError::failed(
            "the try at the store ended without an answer",
        )),
    }
}

enum Landed {
    Granted(Unclaimed),
    /// Held, or refused.
    NotGranted(TryLockOutcome),
}

/// A grant on its way to its caller; dropped before the caller took it out, it is taken back.
struct Unclaimed {
    grant: Option<Grant>,
    store: Arc<dyn LockStore>,
    key: String,
    owner: String,
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        let Some(grant) = self.grant.take() else {
            return;
        };
        // Dropped with the runtime itself, there is nothing left to run a release on: the
        // lock frees at its expiry.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, key, owner) = (
            self.store.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        );
        runtime.spawn(async move {
            match store.take_back(&key, &owner, grant).await {
                Ok(outcome) => {
                    tracing::debug!(key = %key, owner = %owner, ?outcome,
                        "took back a lock granted after its waiter had gone");
                }
                Err(error) => {
                    tracing::warn!(key = %key, owner = %owner,
                        "a lock granted after its waiter had gone could not be taken back; \
                         it frees at its expiry: {error}");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{sleep, timeout};

    use super::super::test_double::{acquire, DoubleStore, KEY};

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_grant_that_lands_after_its_acquire_was_dropped_is_taken_back() {
        let double = DoubleStore::default();
        let service = double.service();
        // The store grants at once and answers a second later: the client leaves in between.
        double.set_answer_delay(SECOND);
        let dropped = timeout(
            SECOND / 2,
            service.acquire(acquire("gone", 60, SECOND * 60)),
        )
        .await;
        assert!(dropped.is_err());
        assert_eq!(double.holder(KEY).as_deref(), Some("gone"));
        sleep(SECOND).await;
        assert_eq!(
            double.holder(KEY),
            None,
            "the grant nobody heard is still held"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dapr_try_lock_dropped_in_flight_leaves_no_lock() {
        let double = DoubleStore::default();
        let service = double.service();
        double.set_answer_delay(SECOND);
        let dropped = timeout(
            SECOND / 2,
            service.try_lock(acquire("gone", 60, SECOND).lock),
        )
        .await;
        assert!(dropped.is_err());
        sleep(SECOND).await;
        assert_eq!(double.holder(KEY), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_grant_that_is_heard_is_kept() {
        let double = DoubleStore::default();
        let service = double.service();
        double.set_answer_delay(SECOND);
        let taken = service.acquire(acquire("kept", 60, SECOND * 60)).await;
        assert!(matches!(taken, Ok(Some(_))));
        sleep(SECOND * 2).await;
        assert_eq!(double.holder(KEY).as_deref(), Some("kept"));
    }
}
