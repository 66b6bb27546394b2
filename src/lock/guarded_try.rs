//! A try at the store that cannot leave behind a lock nobody knows about.
//!
//! The API drops a request's future whenever its caller goes: a client that disconnects, a
//! gRPC deadline, a reload that ends a wait. Dropped while a `try_lock` is in flight, the
//! request cannot hear the answer, yet the store may grant it a moment later; that lock would
//! then be held, by nobody, until its expiry. So the try runs in a task of its own, and its
//! grant travels back as an `Unclaimed` value: a grant that no caller claims, because the
//! caller was gone before or while it arrived, is taken back (`LockStore::take_back`, which
//! never touches a newer grant of the same owner).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::multi::{self, ManyOutcome};
use super::{Grant, Kind, LockStore, StoreError, TryLockOutcome};

/// `store.acquire(key, owner, ttl, kind)`, with a grant that nobody receives taken back.
pub(crate) async fn acquire(
    store: &Arc<dyn LockStore>,
    key: &str,
    owner: &str,
    ttl: Duration,
    kind: Kind,
) -> Result<TryLockOutcome, StoreError> {
    let (asked, key_) = (store.clone(), key.to_string());
    let (owner_, keys) = (owner.to_string(), vec![key.to_string()]);
    let ask = async move {
        let outcome = asked.acquire(&key_, &owner_, ttl, kind).await?;
        Ok(ManyOutcome::of_one(outcome))
    };
    Ok(match guarded(store, keys, owner, ask).await? {
        ManyOutcome::Granted(grants) => grants
            .first()
            .map_or(TryLockOutcome::Held, |g| TryLockOutcome::Granted(*g)),
        ManyOutcome::Held => TryLockOutcome::Held,
        ManyOutcome::Refused(conflict) => TryLockOutcome::Refused(conflict),
    })
}

/// `store.acquire_many(keys, owner, ttl, kind)`, with a multi-lock that nobody receives
/// taken back, every key of it.
pub(crate) async fn acquire_many(
    store: &Arc<dyn LockStore>,
    keys: &[String],
    owner: &str,
    ttl: Duration,
    kind: Kind,
) -> Result<ManyOutcome, StoreError> {
    let (asked, keys_, owner_) = (store.clone(), keys.to_vec(), owner.to_string());
    let ask = async move { asked.acquire_many(&keys_, &owner_, ttl, kind).await };
    guarded(store, keys.to_vec(), owner, ask).await
}

/// Runs `ask` in a task of its own, and takes back the grants of `keys` it answers when
/// nobody hears them.
async fn guarded(
    store: &Arc<dyn LockStore>,
    keys: Vec<String>,
    owner: &str,
    ask: impl Future<Output = Result<ManyOutcome, StoreError>> + Send + 'static,
) -> Result<ManyOutcome, StoreError> {
    let (answer, answered) = oneshot::channel();
    let (store, owner) = (store.clone(), owner.to_string());
    tokio::spawn(async move {
        let landed = match ask.await {
            Ok(ManyOutcome::Granted(grants)) => Ok(Landed::Granted(Unclaimed {
                grants,
                store,
                keys,
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
            Ok(ManyOutcome::Granted(std::mem::take(&mut unclaimed.grants)))
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
    NotGranted(ManyOutcome),
}

/// Grants on their way to their caller, one per key; dropped before the caller took them
/// out, they are taken back.
struct Unclaimed {
    grants: Vec<Grant>,
    store: Arc<dyn LockStore>,
    keys: Vec<String>,
    owner: String,
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        let grants = std::mem::take(&mut self.grants);
        if grants.is_empty() {
            return;
        }
        // Dropped with the runtime itself, there is nothing left to run a release on: the
        // lock frees at its expiry.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, keys, owner) = (
            self.store.clone(),
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.owner),
        );
        runtime.spawn(async move {
            if let [key] = &keys[..] {
                match store.take_back(key, &owner, grants[0]).await {
                    Ok(outcome) => {
                        tracing::debug!(key = %key, owner = %owner, ?outcome,
                            "took back a lock granted after its waiter had gone");
                    }
                    Err(error) => {
                        tracing::warn!(key = %key, owner = %owner,
                            "a lock granted after its waiter had gone could not be taken \
                             back; it frees at its expiry: {error}");
                    }
                }
            } else {
                multi::give_back(&*store, &keys, &owner, &grants).await;
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
