//! Held sessions: a lock kept while a client stays connected. The sidecar renews it at a third
//! of its expiry (as Redisson's watchdog does), watches the store's release signal so a lock
//! deleted by force is noticed at once, and gives up when the store says the lock is gone
//! (saying whether it expired or was taken away before its expiry) or when its own deadline
//! comes without a confirmed renewal. Releasing is the caller's last step.
//!
//! The deadline is what makes a lost lock known before anyone else can have it: the store's
//! expiry runs from no sooner than the moment the last confirmed renewal (or the grant) was
//! *sent*, so until that moment plus the expiry nobody else can be granted the lock. The
//! session stops believing it holds the lock a margin earlier (`clock_margin`), for the two
//! clocks' rates: ours and the store's may differ by a bounded drift, never by a pause. A
//! session whose process is paused (a long GC, SIGSTOP, a VM migration) cannot notice
//! anything until it runs again; fencing tokens are the only protection against that. Every
//! store call on the way is bounded by the deadline, so a call that hangs (inside a client
//! library's reconnect) cannot keep the session past it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, timeout_at, Instant};

use super::api_log::{Call, Outcome};
use super::events::{self, What};
use super::multi;
use super::request::CheckedLock;
use super::service::SHUTTING_DOWN;
use super::{AcquireRequest, ApiError, Grant, LockService, LockStore, OwnerChecked, StoreError};

/// The share of a lock's expiry by which a session's deadline comes before the store's
/// earliest expiry, for the difference between the two clocks' rates: 10%, far beyond the drift
/// of any clock that keeps time (NTP refuses more than 0.05%).
const CLOCK_MARGIN_DIVISOR: u32 = 10;

/// The least margin, for the timers' own lateness on a busy machine.
const MIN_CLOCK_MARGIN: Duration = Duration::from_millis(50);

/// How soon a renewal that failed is tried again (sooner if the next one was due sooner): often
/// enough that a short outage costs no lock, seldom enough not to flood a store that struggles.
const RETRY: Duration = Duration::from_millis(250);

/// How much earlier than the store's earliest expiry a session gives up its lock.
pub(crate) fn clock_margin(ttl: Duration) -> Duration {
    (ttl / CLOCK_MARGIN_DIVISOR).max(MIN_CLOCK_MARGIN).min(ttl)
}

/// A lock held for a client: the lock its acquire checked, the grant, and when the call that
/// got the grant was sent.
pub(crate) struct Session<'a> {
    service: &'a LockService,
    lock: CheckedLock,
    pub(crate) grant: Grant,
    asked: Instant,
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
            Some((lock, grant, asked)) => Started::Held(Session {
                service: self,
                lock,
                grant,
                asked,
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
        if !lock.many.is_empty() && !self.ended_here() {
            // Losing one key loses a multi-lock whole: the keys still held go too, so nobody
            // waits for them until their expiry.
            if let Err(error) = self.service.release_checked(lock, false).await {
                tracing::warn!(store = %lock.store.name, key = %lock.key,
                    "releasing the rest of a lost multi-lock failed; it frees at its expiry: \
                     {error}");
            }
        }
        // One line per session that ends so: the holder is told, and so is the operator.
        if self.ended_here() {
            tracing::info!(store = %lock.store.name, resource = %lock.resource_id,
                owner = %lock.owner, "session ended, its lock released: {reason}");
        } else {
            tracing::warn!(store = %lock.store.name, resource = %lock.resource_id,
                owner = %lock.owner, "session lost its lock, and its client was told: {reason}");
        }
        let lost = What::Lost {
            reason: reason.clone(),
        };
        events::publish(&lock.store.name, &lock.resource_id, &lock.owner, lost);
        reason
    }

    /// Whether the session was ended by this sidecar (a reload of its store, a shutdown),
    /// which released the lock, rather than losing it.
    fn ended_here(&self) -> bool {
        let retired = self.lock.store.retired();
        let shutting_down = self.service.shutting_down();
        futures_util::FutureExt::now_or_never(retired).is_some()
            || futures_util::FutureExt::now_or_never(shutting_down).is_some()
    }

    async fn keep_until_lost(&self) -> String {
        let CheckedLock {
            store, key, ttl, ..
        } = &self.lock;
        let keys = self.lock.keys();
        let period = *ttl / 3;
        // The store's expiry is no sooner than this: the last confirmed call went out then.
        let mut expires_no_sooner = self.asked + *ttl;
        let mut deadline = expires_no_sooner - clock_margin(*ttl);
        let mut next = self.asked + period;
        let mut failure = None;
        loop {
            let wake = next.min(deadline);
            let max_wait = wake.saturating_duration_since(Instant::now());
            tokio::select! {
                // Also a bound on the store's wait, which may hang as any store call may.
                () = sleep_until(wake) => {}
                // A release of this key (by force, or an expiry we missed) wakes us early; the
                // renewal below then finds out whether the lock is still ours.
                signal = released_any(&store.store, &keys, max_wait) => {
                    if signal.is_err() {
                        sleep_until(wake).await;
                    }
                }
                reason = store.retired() => return self.release_and_end(reason).await,
                () = self.service.shutting_down() => {
                    return self.release_and_end(SHUTTING_DOWN.to_string()).await;
                }
            }
            if Instant::now() >= deadline {
                return unconfirmed(failure);
            }
            let sent = Instant::now();
            let renewed = match timeout_at(deadline, self.renew_all(&keys)).await {
                Ok(renewed) => renewed,
                Err(_) => return unconfirmed(Some("the renewal got no answer".into())),
            };
            match renewed {
                Ok(OwnerChecked::Applied) => {
                    self.service.renewed(&self.lock);
                    expires_no_sooner = sent + *ttl;
                    deadline = expires_no_sooner - clock_margin(*ttl);
                    next = sent + period;
                    failure = None;
                }
                Ok(gone) => return lost(gone, Instant::now() < expires_no_sooner),
                Err(error) => {
                    // Once per streak of failures: the store's own health record logs the
                    // outage, and the session's end, if it comes, is logged once too.
                    if failure.is_none() {
                        tracing::warn!(key = %key, "renewal failed, retrying: {error}");
                    } else {
                        tracing::debug!(key = %key, "renewal failed again, retrying: {error}");
                    }
                    next = sent + RETRY.min(period);
                    failure = Some(error.to_string());
                }
            }
        }
    }

    /// Renews every key of the lock: applied only when every key was, since losing any key
    /// loses a multi-lock whole.
    async fn renew_all(&self, keys: &[String]) -> Result<OwnerChecked, StoreError> {
        let CheckedLock {
            store, owner, ttl, ..
        } = &self.lock;
        let mut each = Vec::with_capacity(keys.len());
        for key in keys {
            each.push(store.store.renew(key, owner, *ttl).await?);
        }
        Ok(multi::renewed_whole(&each))
    }

    /// Releases the session's hold of the lock (if still ours) and ends the session.
    pub(crate) async fn release(self) -> Result<OwnerChecked, ApiError> {
        let released = self.service.release_checked(&self.lock, false).await;
        released.map(|released| released.outcome)
    }

    /// The end of a session whose store a reload replaced or removed, or whose sidecar is
    /// shutting down: the lock is released (so that the owner can take it again on the new
    /// version, or through another sidecar, without waiting for its expiry), and the reason
    /// says what happened.
    async fn release_and_end(&self, reason: String) -> String {
        let lock = &self.lock;
        let released = self.service.release_checked(lock, false).await;
        if let Err(error) = released {
            tracing::warn!(store = %lock.store.name, key = %lock.key,
                "releasing the lock of an ended session failed ({reason}): {error}");
        }
        format!("{reason}; the session ended")
    }
}

/// The first release signal of any of `keys` (`LockStore::wait_for_release`).
async fn released_any(
    store: &Arc<dyn LockStore>,
    keys: &[String],
    max_wait: Duration,
) -> Result<(), StoreError> {
    let signals = keys.iter().map(|key| store.wait_for_release(key, max_wait));
    futures_util::future::select_all(signals).await.0
}

/// Why a session gave up a lock whose renewal the store did not confirm in time, with the last
/// failure when there was one.
fn unconfirmed(failure: Option<String>) -> String {
    let why = "the store did not confirm a renewal before the lock could expire";
    match failure {
        Some(failure) => format!("{why}: {failure}"),
        None => why.to_string(),
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

    #[tokio::test(start_paused = true)]
    async fn a_sidecar_shutting_down_releases_the_lock_and_says_why() {
        let double = DoubleStore::default();
        let service = double.service();
        let session = start(&service).await;
        let stop = async {
            sleep(SECOND / 2).await;
            service.shut_down();
        };
        let (reason, ()) = tokio::join!(timeout(SECOND, session.keep()), stop);
        assert_eq!(
            reason.as_deref(),
            Ok("the sidecar is shutting down; the session ended")
        );
        assert_eq!(double.holder(KEY), None);
        // A blocking acquire started then ends at once too.
        let waited = timeout(SECOND, service.acquire(acquire("late", 3, SECOND * 60))).await;
        let refused = waited.unwrap().unwrap_err();
        assert_eq!(refused.kind, crate::lock::ErrorKind::ShuttingDown);
    }

    #[test]
    fn a_lock_gone_after_its_expiry_expired() {
        assert_eq!(lost(OwnerChecked::NotHeld, false), "the lock expired");
        assert_eq!(
            lost(OwnerChecked::HeldByOther, false),
            "the lock expired, and another owner holds it"
        );
    }

    /// The margin before the store's earliest expiry: 10% of a 3 s expiry.
    const MARGIN: Duration = Duration::from_millis(300);

    #[test]
    fn the_margin_is_a_tenth_of_the_expiry_and_at_least_50ms() {
        assert_eq!(clock_margin(SECOND * 3), MARGIN);
        assert_eq!(clock_margin(Duration::from_millis(200)), MIN_CLOCK_MARGIN);
        assert_eq!(
            clock_margin(Duration::from_millis(20)),
            Duration::from_millis(20)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_unavailable_until_the_deadline_ends_the_session_before_the_lock_frees() {
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
        let expected = "the store did not confirm a renewal before the lock could expire: \
                        lock store unavailable";
        assert!(reason.starts_with(expected), "{reason}");
        // The last confirmed renewal was sent at 1s: the store frees the lock no sooner than
        // 4s; the session gives up the margin before, while the store still holds it.
        assert_eq!(Instant::now() - start, SECOND * 4 - MARGIN);
        assert_eq!(double.holder(KEY).as_deref(), Some("owner"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_hangs_ends_the_session_at_its_deadline() {
        let double = DoubleStore::default();
        let service = double.service();
        let session = start(&service).await;
        let start = Instant::now();
        let hang = async {
            sleep(SECOND * 3 / 2).await;
            double.set_renewals_hang(true);
        };
        let (reason, ()) = tokio::join!(timeout(SECOND * 10, session.keep()), hang);
        let reason = reason.expect("a hanging renewal held the session past its deadline");
        assert_eq!(
            reason,
            "the store did not confirm a renewal before the lock could expire: the renewal got \
             no answer"
        );
        assert_eq!(Instant::now() - start, SECOND * 4 - MARGIN);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_runs_from_when_the_grant_was_asked_for() {
        let double = DoubleStore::default();
        let service = double.service();
        // The grant takes a second to arrive: the store's expiry began when it was asked for.
        double.set_answer_delay(SECOND);
        let asked = Instant::now();
        let session = start(&service).await;
        double.set_answer_delay(Duration::ZERO);
        double.set_unavailable(true);
        let reason = timeout(SECOND * 10, session.keep()).await.unwrap();
        assert!(reason.starts_with("the store did not confirm"), "{reason}");
        assert_eq!(Instant::now() - asked, SECOND * 3 - MARGIN);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_is_retried_soon() {
        let double = DoubleStore::default();
        let service = double.service();
        let session = start(&service).await;
        let start = Instant::now();
        double.set_unavailable(true);
        let back = async {
            sleep(SECOND * 11 / 10).await;
            double.set_unavailable(false);
        };
        let kept = timeout(SECOND * 2, async { tokio::join!(session.keep(), back) }).await;
        assert!(kept.is_err(), "the session ended: {kept:?}");
        let renewed: Vec<Duration> = double.renewals().iter().map(|at| *at - start).collect();
        // Failed at 1s, then renewed at 1.25s, and a third of the expiry after that.
        assert_eq!(renewed, [SECOND, SECOND * 5 / 4]);
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
