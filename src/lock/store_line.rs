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

use super::{Grant, Kind, LockStore, Place, StoreError, TryLockOutcome};

/// A waiter's place in a store's line (the store's `Place`, driven by the core), left when
/// dropped before it took the lock.
pub(crate) struct StorePlace {
    /// `None` once the place took the lock.
    place: Option<Box<dyn Place>>,
}

impl StorePlace {
    /// Joins the end of `key`'s line in `store`, asking for `kind`.
    pub(crate) async fn join(
        store: Arc<dyn LockStore>,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<StorePlace, StoreError> {
        let (key, owner) = (key.to_string(), owner.to_string());
        // The place is wrapped inside the task: if nobody awaits it any more, the task's
        // answer is dropped there, and the place leaves the line.
        let joining = tokio::spawn(async move {
            let place = store.join(&key, &owner, ttl, kind).await?;
            Ok(StorePlace { place: Some(place) })
        });
        joining.await.map_err(|e| {
            StoreError::failed(format!("joining the line failed: {e}")).with_source(e)
        })?
    }

    /// Takes the lock if this place's turn has come; `None` while others are ahead or hold it.
    pub(crate) async fn try_take(&mut self) -> Result<Option<Grant>, StoreError> {
        match self.place().try_take().await? {
            TryLockOutcome::Granted(grant) => {
                self.place = None;
                Ok(Some(grant))
            }
            TryLockOutcome::Held => Ok(None),
            TryLockOutcome::Refused(conflict) => Err(StoreError::failed(format!(
                "a place in the store's line was refused: {conflict:?}"
            ))),
        }
    }

    /// How long to wait before the next try, when the core's own pause would be `poll`.
    pub(crate) fn pause(&self, poll: Duration) -> Duration {
        self.place
            .as_ref()
            .expect("a place that took the lock is used up")
            .pause(poll)
    }

    /// Returns when the place may have moved up, or after `max_wait`.
    pub(crate) async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{sleep, timeout};

    use super::super::test_double::{acquire, unlock, DoubleStore, JOIN_TIME, KEY};
    use super::super::{LockService, OwnerChecked, TryLockOutcome};

    const LONG: Duration = Duration::from_secs(60);

    /// A core on a double that keeps a line, with `r` held by `holder`.
    async fn held() -> (DoubleStore, LockService) {
        let double = DoubleStore::keeping_a_line();
        let service = double.service();
        let tried = service.try_lock(acquire("holder", 60, LONG).lock).await;
        assert!(matches!(tried, Ok(TryLockOutcome::Granted(_))));
        (double, service)
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_the_stores_line() {
        let (double, service) = held().await;
        // The wait runs out.
        let answer = service
            .acquire(acquire("timed-out", 60, JOIN_TIME * 5))
            .await;
        assert_eq!(answer, Ok(None));
        // The client disconnects: the API drops its acquire.
        let dropped = timeout(LONG / 2, service.acquire(acquire("dropped", 60, LONG))).await;
        assert!(dropped.is_err());
        // Leaving runs in a task of its own.
        sleep(JOIN_TIME).await;
        assert_eq!(
            double.line_events(),
            [
                "join timed-out",
                "leave timed-out",
                "join dropped",
                "leave dropped"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_acquire_dropped_while_joining_still_leaves() {
        let (double, service) = held().await;
        let dropped = timeout(JOIN_TIME / 2, service.acquire(acquire("w", 60, LONG))).await;
        assert!(dropped.is_err());
        sleep(JOIN_TIME * 2).await;
        assert_eq!(double.line_events(), ["join w", "leave w"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_takes_the_lock_keeps_it() {
        let (double, service) = held().await;
        let waiting = service.acquire(acquire("w", 60, LONG));
        let releasing = async {
            sleep(JOIN_TIME * 5).await;
            service.unlock(unlock("holder")).await
        };
        let (answer, released) = tokio::join!(waiting, releasing);
        assert_eq!(released, Ok(OwnerChecked::Applied));
        assert!(answer.unwrap().is_some());
        sleep(JOIN_TIME).await;
        // Leaving would release the lock the place took.
        assert_eq!(double.line_events(), ["join w"]);
        assert_eq!(double.holder(KEY).as_deref(), Some("w"));
    }
}
