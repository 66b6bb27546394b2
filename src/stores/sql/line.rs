//! The fair line of waiters on a SQL lock table (`Capabilities::line`), written once for both
//! databases: blocking acquires of every kind, from every sidecar, are granted in the order
//! they arrived (KINDS.md, rule 3).
//!
//! A waiters table beside the lock table keeps one row per waiter: its arrival number (from a
//! sequence or an auto-increment counter, so later arrivals get larger numbers), the key it
//! waits for, and its lease deadline by the database's clock. A waiter renews its lease at
//! each look at its turn, which it makes at least every `LOOK_EVERY`; a waiter whose sidecar
//! died stops renewing, and every statement that reads the line counts only live leases. So a
//! dead waiter holds the line up for `WAITER_LEASE` at most and never stalls it; its row goes
//! with the store's cleanup.
//!
//! Only the first live waiter may take the lock, and the check is made in the transaction that
//! takes it, after the key's row is locked (`Turn`): no live waiter with an earlier arrival.
//! The grant and the waiter's leaving the line commit together. So a waiting writer holds back
//! the readers behind it, and readers ahead of a writer are granted one after the other (each
//! reader, once granted, leaves the line to the next). A try (no wait) is refused while any
//! waiter's lease runs, unless it is a holder's re-entry, which would otherwise wait on itself.
//!
//! Waking is cheap where the line allows: the first waiter, and the one behind it, which will
//! be first at the next grant, look again at every release the store hears of (PostgreSQL's
//! notifications, MySQL's own releases and polls); waiters further back look less often the
//! further back they are (`LOOK_STEP` per place, `LOOK_EVERY` at most), to renew their leases
//! and to move up, and in between count the releases they hear as places moved up, without a
//! statement: a release sends two waiters per sidecar to the database at most, never the
//! whole line.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::lock::look::{Look, Looking};
use crate::lock::{Kind, LockStore, Place, StoreError, TryLockOutcome};

/// How long a waiter stays in line without looking at its turn.
pub(crate) const WAITER_LEASE: Duration = Duration::from_secs(3);

/// How long a waiter with more than one other ahead of it pauses between looks, for each
/// waiter ahead of it but one: a waiter k places back waits for at least k - 1 grants (or
/// leaves) before its turn, so it looks about as often as its place can change.
const LOOK_STEP: Duration = Duration::from_millis(250);

/// The longest pause between a waiter's looks: well within its lease, and rare enough that a
/// long line costs the database little.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The line check a take makes in the transaction that locks the key's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// No check: a release, a renewal, a multi-lock (which stands in no line).
    Aside,
    /// A try: refused while anyone waits, but for a holder's re-entry.
    Try,
    /// The waiter with this arrival: granted only with no live waiter ahead of it, and then
    /// out of the line.
    Waiter(i64),
}

impl Turn {
    /// The arrival below which live waiters stand ahead of the take; `None`: no check.
    pub(crate) fn ahead_of(self) -> Option<i64> {
        match self {
            Turn::Aside => None,
            Turn::Try => Some(i64::MAX),
            Turn::Waiter(arrival) => Some(arrival),
        }
    }

    /// The waiter that leaves the line when the take is granted.
    pub(crate) fn waiter(self) -> Option<i64> {
        match self {
            Turn::Waiter(arrival) => Some(arrival),
            Turn::Aside | Turn::Try => None,
        }
    }
}

/// What a SQL store does for its line, each in its own dialect.
#[async_trait]
pub(crate) trait LineStore: LockStore {
    /// Adds a waiter for `key` at the end of the line, on a lease of `WAITER_LEASE`, and
    /// answers its arrival.
    async fn join_line(&self, key: &str) -> Result<i64, StoreError>;

    /// Renews the waiter's lease and counts the live waiters ahead of it; `None` when its lease
    /// had lapsed (the line dropped it).
    async fn look(&self, key: &str, waiter: i64) -> Result<Option<u64>, StoreError>;

    /// Takes `key` in one transaction when no live waiter is ahead of `waiter` and the holders
    /// allow it (`Turn::Waiter`), the waiter leaving the line with the grant.
    async fn take_turn(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
        waiter: i64,
    ) -> Result<TryLockOutcome, StoreError>;

    /// Takes the waiter out of the line.
    async fn leave_line(&self, waiter: i64) -> Result<(), StoreError>;
}

/// Joins `key`'s line in `store`: the place the core drives.
pub(crate) async fn join<S: LineStore>(
    store: Arc<S>,
    key: &str,
    owner: &str,
    ttl: Duration,
    kind: Kind,
) -> Result<Box<dyn Place>, StoreError> {
    let waiter = store.join_line(key).await?;
    Ok(Box::new(SqlPlace {
        store,
        key: key.to_string(),
        owner: owner.to_string(),
        ttl,
        kind,
        waiter,
        ahead: None,
        looked: Instant::now(),
        looking: Looking::default(),
    }))
}

/// A waiter's place: its row in the waiters table and a take under way.
struct SqlPlace<S: LineStore> {
    store: Arc<S>,
    key: String,
    owner: String,
    ttl: Duration,
    kind: Kind,
    waiter: i64,
    /// How many waited ahead at the last look; `None` before the first.
    ahead: Option<u64>,
    looked: Instant,
    looking: Looking,
}

/// How often a waiter with `ahead` others ahead of it at its last look looks again; `None`
/// for the first and the next in line (or one yet to look), which look at every release and
/// at the core's polling pace.
fn look_every(ahead: Option<u64>) -> Option<Duration> {
    let places = ahead.filter(|&ahead| ahead > 1)? - 1;
    let places = u32::try_from(places).unwrap_or(u32::MAX);
    Some(LOOK_STEP.saturating_mul(places).min(LOOK_EVERY))
}

/// One look of a waiter at its turn (renewing its lease), and the take when it is first.
async fn take<S: LineStore>(
    store: Arc<S>,
    key: String,
    owner: String,
    ttl: Duration,
    kind: Kind,
    waiter: i64,
) -> Result<Look, StoreError> {
    Ok(match store.look(&key, waiter).await? {
        None => Look::Gone,
        Some(0) => Look::Took(store.take_turn(&key, &owner, ttl, kind, waiter).await?),
        Some(ahead) => Look::Behind(Some(ahead)),
    })
}

#[async_trait]
impl<S: LineStore> Place for SqlPlace<S> {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let (store, key, owner) = (self.store.clone(), self.key.clone(), self.owner.clone());
        let (ttl, kind, waiter) = (self.ttl, self.kind, self.waiter);
        let looked = self
            .looking
            .look(|| take(store, key, owner, ttl, kind, waiter))
            .await?;
        self.looked = Instant::now();
        match looked {
            Look::Took(outcome) => {
                self.ahead = Some(0);
                Ok(outcome)
            }
            Look::Behind(ahead) => {
                self.ahead = ahead;
                Ok(TryLockOutcome::Held)
            }
            Look::Gone => {
                tracing::warn!(
                    "a waiter's lease lapsed (the database out of reach?): it joins the line again"
                );
                self.waiter = self.store.join_line(&self.key).await?;
                self.ahead = None;
                Ok(TryLockOutcome::Held)
            }
        }
    }

    fn pause(&self, poll: Duration) -> Duration {
        match look_every(self.ahead) {
            Some(every) => (self.looked + every)
                .saturating_duration_since(Instant::now())
                .max(poll),
            None => poll,
        }
    }

    /// A waiter further back listens to the releases too, without looking: each one it
    /// hears moves it up a place (the first in line takes the key), and once it counts itself
    /// next it waits as the next does, for the release that makes it first. Its pause (the
    /// `max_wait` the core gives) still ends at its next look, which renews its lease and
    /// corrects the count where it strayed (a waiter ahead that left, releases another
    /// sidecar's store did not tell this one of).
    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        let until = Instant::now() + max_wait;
        while let Some(ahead) = self.ahead.filter(|_| look_every(self.ahead).is_some()) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.store.wait_for_release(&self.key, left).await?;
            if Instant::now() >= until {
                return Ok(());
            }
            self.ahead = Some(ahead - 1);
        }
        let left = until.saturating_duration_since(Instant::now());
        self.store.wait_for_release(&self.key, left).await
    }

    async fn leave(mut self: Box<Self>) {
        if let Some(grant) = self.looking.abandoned_grant().await {
            let taken_back = self.store.take_back(&self.key, &self.owner, grant);
            if let Err(error) = taken_back.await {
                tracing::warn!("a grant nobody awaits stays until it expires: {error}");
            }
            return;
        }
        if let Err(error) = self.store.leave_line(self.waiter).await {
            tracing::debug!("a waiter left to its lease's expiry: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_further_back_a_waiter_the_rarer_its_looks() {
        assert_eq!(look_every(None), None);
        assert_eq!(look_every(Some(0)), None);
        assert_eq!(look_every(Some(1)), None);
        assert_eq!(look_every(Some(2)), Some(LOOK_STEP));
        assert_eq!(look_every(Some(3)), Some(LOOK_STEP * 2));
        assert_eq!(look_every(Some(u64::MAX)), Some(LOOK_EVERY));
        assert!(
            LOOK_EVERY < WAITER_LEASE / 2,
            "a waiter renews well within its lease"
        );
    }

    #[test]
    fn a_try_counts_every_waiter_and_a_waiter_those_before_it() {
        assert_eq!(Turn::Aside.ahead_of(), None);
        assert_eq!(Turn::Try.ahead_of(), Some(i64::MAX));
        assert_eq!(Turn::Waiter(7).ahead_of(), Some(7));
        assert_eq!(Turn::Waiter(7).waiter(), Some(7));
        assert_eq!(Turn::Try.waiter(), None);
    }
}
