//! Held sessions: a lock kept while a client stays connected. The sidecar renews it at a third
//! of its expiry (as Redisson's watchdog does), watches the store's release signal so a lock
//! deleted by force is noticed at once, and gives up only when the store says the lock is gone
//! (saying whether it expired or was taken away before its expiry) or could not confirm it for
//! a whole expiry. Releasing is the caller's last step.

use tokio::time::Instant;

use super::api_log::{Call, Outcome};
use super::events::{self, What};
use super::request::CheckedLock;
use super::{AcquireRequest, ApiError, Grant, LockService, OwnerChecked};

/// A lock held for a client: the lock its acquire checked, and the grant.
pub(crate) struct Session<'a> {
    service: &'a LockService,
    lock: CheckedLock,
    pub(crate) grant: Grant,
}

/// How a session's acquisition ended.
pub(crate) enum Started<'a> {
    Held(Session<'a>),
    TimedOut,
}

impl LockService {
    /// Acquires as `acquire` does and, when granted, returns the session that keeps the lock.
    pub(crate) async fn start_session(
        &self,
        request: AcquireRequest,
    ) -> Result<Started<'_>, ApiError> {
        let r = &request.lock;
        let call = self.call("Hold", &r.store, &r.resource_id, &r.owner);
        let started = self.take(request).await.map(|taken| match taken {
            Some((lock, grant)) => Started::Held(Session {
                service: self,
                lock,
                grant,
            }),
            None => Started::TimedOut,
        });
        Call::end(call, started)
    }
}

/// A held session's start, in the API log (its end is no call of its own).
impl Outcome for Started<'_> {
    fn outcome(&self) -> String {
        match self {
            Started::Held(_) => "acquired",
            Started::TimedOut => "timed out",
        }
        .into()
    }
}

impl Session<'_> {
    /// Keeps the lock until it is lost, and says why (and publishes it). Runs until dropped
    /// otherwise.
    pub(crate) async fn keep(&self) -> String {
        let reason = self.keep_until_lost().await;
        let lock = &self.lock;
        let lost = What::Lost {
            reason: reason.clone(),
        };
        events::publish(&lock.store.name, &lock.resource_id, &lock.owner, lost);
        reason
    }

    async fn keep_until_lost(&self) -> String {
        let CheckedLock {
            store,
            key,
            owner,
            ttl,
            ..
        } = &self.lock;
        let period = *ttl / 3;
        let mut confirmed_until = Instant::now() + *ttl;
        // The store's expiry is at least this late: a confirmed renewal's request went out at
        // this time or after. The grant counts as confirmed when its answer arrives, which a
        // store gives within milliseconds of taking the lock.
        let mut expires_no_sooner = Instant::now() + *ttl;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                // A release of this key (by force, or an expiry we missed) wakes us early; the
                // renewal below then finds out whether the lock is still ours.
                _ = store.store.wait_for_release(key, period) => {}
                reason = store.retired() => return self.end_on_retired(reason).await,
            }
            let sent = Instant::now();
            let renewed = store.store.renew(key, owner, *ttl).await;
            let before_expiry = Instant::now() < expires_no_sooner;
            match renewed {
                Ok(OwnerChecked::Applied) => {
                    self.service.renewed(&self.lock);
                    confirmed_until = Instant::now() + *ttl;
                    expires_no_sooner = sent + *ttl;
                }
                Ok(gone) => return lost(gone, before_expiry),
                Err(error) if Instant::now() >= confirmed_until => {
                    return format!(
                        "the store could not renew the lock before it expired: {error}"
                    );
                }
                Err(error) => {
                    tracing::warn!(key = %key, "renewal failed, retrying: {error}");
                }
            }
        }
    }

    /// Releases the lock (if still ours) and ends the session.
    pub(crate) async fn release(self) -> Result<OwnerChecked, ApiError> {
        let lock = &self.lock;
        self.service
            .release(&lock.store, &lock.key, &lock.resource_id, &lock.owner)
            .await
    }

    /// The end of a session whose store a reload replaced or removed: the lock is released on
    /// the old version (so that the owner can take it again on the new one without waiting
    /// for its expiry), and the reason says what happened.
    async fn end_on_retired(&self, reason: String) -> String {
        let lock = &self.lock;
        let released = self
            .service
            .release(&lock.store, &lock.key, &lock.resource_id, &lock.owner)
            .await;
        if let Err(error) = released {
            tracing::warn!(store = %lock.store.name, key = %lock.key,
                "releasing the lock of a session on a retired store failed: {error}");
        }
        format!("{reason}; the session ended")
    }
}

/// Why a renewal found the lock gone. Only the owner (this session) releases a lock, so a lock
/// gone before its expiry was released by force, by an operator, or lost by the store (a
/// restart without persistence); after its expiry, it expired.
fn lost(outcome: OwnerChecked, before_expiry: bool) -> String {
    let how = if before_expiry {
        "the lock was released by an operator (or lost by the store) before it expired"
    } else {
        "the lock expired"
    };
    match outcome {
        OwnerChecked::HeldByOther => format!("{how}, and another owner holds it"),
        _ => how.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{sleep, timeout};

    use super::super::test_double::{acquire, DoubleStore, KEY};
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// `owner`'s session on resource `r`, for a three-second expiry.
    async fn start(service: &LockService) -> Session<'_> {
        let started = service.start_session(acquire("owner", 3, Duration::ZERO));
        match started.await {
            Ok(Started::Held(session)) => session,
            _ => panic!("the session did not start"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn renewed_at_a_third_of_its_expiry() {
        let double = DoubleStore::default();
        let service = double.service();
        let session = start(&service).await;
        let start = Instant::now();
        let kept = timeout(SECOND * 7 / 2, session.keep()).await;
        assert!(kept.is_err(), "the session ended: {kept:?}");
        let renewed: Vec<Duration> = double.renewals().iter().map(|at| *at - start).collect();
        assert_eq!(renewed, [SECOND, SECOND * 2, SECOND * 3]);
        assert_eq!(double.holder(KEY).as_deref(), Some("owner"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lock_ends_the_session_with_the_reason() {
        let double = DoubleStore::default();
        let service = double.service();
        let session = start(&service).await;
        double.lose(KEY);
        let reason = timeout(SECOND * 10, session.keep()).await;
        let vanished = "the lock was released by an operator (or lost by the store) before it \
                        expired";
        assert_eq!(reason.as_deref(), Ok(vanished));

        let session = start(&service).await;
        double.set_refuse_renewal(true);
        let reason = timeout(SECOND * 10, session.keep()).await;
        let taken = "the lock was released by an operator (or lost by the store) before it \
                     expired, and another owner holds it";
        assert_eq!(reason.as_deref(), Ok(taken));
    }

    #[test]
    fn a_lock_gone_after_its_expiry_expired() {
        assert_eq!(lost(OwnerChecked::NotHeld, false), "the lock expired");
        assert_eq!(
            lost(OwnerChecked::HeldByOther, false),
            "the lock expired, and another owner holds it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_unavailable_for_a_whole_expiry_ends_the_session() {
        let double = DoubleStore::default();
        let service = double.service();
        let session = start(&service).await;
        let start = Instant::now();
        let outage = async {
            sleep(SECOND * 3 / 2).await;
            double.set_unavailable(true);
        };
        let (reason, ()) = tokio::join!(timeout(SECOND * 10, session.keep()), outage);
        let reason = reason.unwrap();
        let expected = "the store could not renew the lock before it expired: ";
        assert!(reason.starts_with(expected), "{reason}");
        // The store last confirmed the lock at 1s: the session gives up one expiry later.
        assert_eq!(Instant::now() - start, SECOND * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_outage_is_ridden_out() {
        let double = DoubleStore::default();
        let service = double.service();
        let session = start(&service).await;
        double.set_unavailable(true);
        let back = async {
            sleep(SECOND * 3 / 2).await;
            double.set_unavailable(false);
        };
        let kept = timeout(SECOND * 10, async { tokio::join!(session.keep(), back) }).await;
        assert!(kept.is_err(), "the session ended: {kept:?}");
        assert_eq!(double.holder(KEY).as_deref(), Some("owner"));
    }
}
