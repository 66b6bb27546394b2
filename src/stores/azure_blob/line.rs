//! The fair line of waiters per lock, kept in the lock's blob (`Capabilities::line`):
//! blocking acquires of every kind, from every sidecar, are granted in the order they arrived
//! (KINDS.md, rule 3).
//!
//! The line is one more metadata value of the blob (`line`, beside the record and the holders
//! of `form.rs`): the waiters in arrival order, each with an id, the kind it asks for, and a
//! lease deadline by the storage service's clock, the clock the holders' deadlines are kept
//! by. Every change to the line is a write conditioned on the blob's ETag, as every change to
//! the holders is, and in the same write: joining appends a waiter; a take checks that the
//! waiter is first and the holders allow its kind, then adds it to the holders and removes it
//! from the line at once; leaving removes it. Whoever writes next drops the waiters whose
//! lease has passed, so a waiter whose sidecar died holds the line up for `WAITER_LEASE` at
//! most. Only the first waiter may take: a waiting writer holds back the readers behind it,
//! and readers in a row are granted one after the other. A try (no wait) is refused while a
//! live waiter is in line, unless it is a holder's re-entry.
//!
//! Every write to the blob replaces all its metadata, so every write carries the line on. A
//! sidecar from before the line (no version in the record tells them apart) does not: its
//! plain try ignores the line, and its write drops it; the waiters then find themselves out
//! of line and join again at its end. Mixed versions lose the order, never a lock.
//!
//! Azure has no push, so waiters look, and each look is a read billed by Azure: the first
//! waiter looks often (every 50 ms at most), the next one every 200 ms, the rest every 2 s.
//! A change through this sidecar that may let the first waiter in (a release, the grant or
//! leave of the waiter ahead) wakes that waiter's place at once if it is here, and no other.
//! So a release elsewhere costs the first waiter's next read, not one read per sidecar. A
//! waiter renews its lease only when a look finds it half spent: a write per waiter every four
//! seconds, since each write also makes every other writer's ETag stale (one more read for
//! them), and Azurite answers a few hundred requests a second.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{contended, AzureBlobStore, Step, ATTEMPTS, HOLDER_ATTEMPTS};
use crate::lock::look::{Look, Looking};
use crate::lock::{Kind, Mode, Place, StoreError, TryLockOutcome};

/// How long a waiter stays in line without renewing. A dead sidecar's waiter holds the line
/// up this long at most.
pub(crate) const WAITER_LEASE: Duration = Duration::from_secs(6);

/// A look renews the waiter's lease once less than this is left: about every four seconds.
const RENEW_WHEN_LEFT: Duration = Duration::from_secs(3);

/// How long the first waiter pauses between looks, at most: a release elsewhere is seen
/// this late at worst.
const FIRST_LOOK: Duration = Duration::from_millis(50);

/// The same for the second waiter, next after a grant.
const NEXT_LOOK: Duration = Duration::from_millis(200);

/// The same for a waiter further back: it looks to renew its lease and to move up.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// The metadata name of the line, in base64url (metadata values are ASCII).
const LINE: &str = "line";

/// The waiters of one key, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Line {
    #[serde(rename = "w")]
    waiters: Vec<Waiter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Waiter {
    #[serde(rename = "i")]
    id: String,
    /// When the waiter leaves the line unless renewed, in ms by the service's clock.
    #[serde(rename = "d")]
    lease_ms: u64,
    /// What it waits for, so that whoever reads the blob sees why a key is waited on.
    #[serde(rename = "s", default, skip_serializing_if = "is_false")]
    shared: bool,
    #[serde(rename = "l", default, skip_serializing_if = "is_zero")]
    limit: u32,
}

fn is_false(b: &bool) -> bool {
    !b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Line {
    /// The line in a blob's metadata; none when absent (or written by something else).
    pub(crate) fn from_metadata(metadata: &std::collections::HashMap<String, String>) -> Line {
        metadata
            .get(LINE)
            .and_then(|value| URL_SAFE_NO_PAD.decode(value).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The metadata value keeping the line; none for an empty line.
    pub(crate) fn to_metadata(&self) -> Option<(&'static str, String)> {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        (!self.waiters.is_empty()).then(|| (LINE, URL_SAFE_NO_PAD.encode(json)))
    }

    /// Drops the waiters whose lease is not after `now_ms`.
    pub(crate) fn purge(&mut self, now_ms: u64) {
        self.waiters.retain(|waiter| waiter.lease_ms > now_ms);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }

    /// The first waiter's id.
    pub(crate) fn first(&self) -> Option<&str> {
        self.waiters.first().map(|waiter| waiter.id.as_str())
    }

    fn join(&mut self, id: &str, kind: Kind, lease_ms: u64) {
        self.waiters.push(Waiter {
            id: id.to_string(),
            lease_ms,
            shared: kind.mode == Mode::Shared,
            limit: kind.limit,
        });
    }

    /// How many wait ahead of `id`; `None` when it is not in line.
    fn ahead_of(&self, id: &str) -> Option<usize> {
        self.waiters.iter().position(|waiter| waiter.id == id)
    }

    /// Moves `id`'s lease to `lease_ms` if it ends before `due_ms`; true when it did.
    fn renew_if_due(&mut self, id: &str, due_ms: u64, lease_ms: u64) -> bool {
        match self.waiters.iter_mut().find(|waiter| waiter.id == id) {
            Some(waiter) if waiter.lease_ms < due_ms => {
                waiter.lease_ms = lease_ms;
                true
            }
            _ => false,
        }
    }

    /// Takes `id` out of the line; true when it was in it.
    fn remove(&mut self, id: &str) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|waiter| waiter.id != id);
        self.waiters.len() < before
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl AzureBlobStore {
    /// Puts `waiter` at the end of `key`'s line, asking for `kind`.
    async fn enter_line(&self, key: &str, waiter: &str, kind: Kind) -> Result<(), StoreError> {
        self.change_holders(key, HOLDER_ATTEMPTS, |_, line, now, _| {
            let lease = now.ms.saturating_add(millis(now.ttl(WAITER_LEASE)));
            line.join(waiter, kind, lease);
            Step::new((), true)
        })
        .await?
        .ok_or_else(|| contended(key, HOLDER_ATTEMPTS))
    }

    /// One look of `waiter` at its turn: the grant, if it is first and the holders allow its
    /// kind, in the write that takes it out of the line; its lease renewed when due.
    async fn take_turn(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
        waiter: &str,
    ) -> Result<Look, StoreError> {
        let taken = self
            .change_holders(key, ATTEMPTS, |holders, line, now, next_token| {
                let Some(ahead) = line.ahead_of(waiter) else {
                    return Step::new(Look::Gone, false);
                };
                let due = now.ms.saturating_add(millis(RENEW_WHEN_LEFT));
                let lease = now.ms.saturating_add(millis(now.ttl(WAITER_LEASE)));
                let renewed = line.renew_if_due(waiter, due, lease);
                if ahead > 0 {
                    return Step::new(Look::Behind(Some(ahead as u64)), renewed);
                }
                let acquired = holders.acquire(now.ms, owner, now.ttl(ttl), kind, next_token);
                if !matches!(acquired.outcome, TryLockOutcome::Granted(_)) {
                    return Step::new(Look::Took(acquired.outcome), renewed);
                }
                line.remove(waiter);
                Step {
                    answer: Look::Took(acquired.outcome),
                    changed: true,
                    drew_token: acquired.drew_token,
                }
            })
            .await?;
        // Every write lost to another's: a look that saw nothing.
        Ok(taken.unwrap_or(Look::Took(TryLockOutcome::Held)))
    }

    /// Takes `waiter` out of `key`'s line.
    async fn leave_line(&self, key: &str, waiter: &str) -> Result<(), StoreError> {
        self.change_holders(key, HOLDER_ATTEMPTS, |_, line, _, _| {
            Step::new((), line.remove(waiter))
        })
        .await?
        .ok_or_else(|| contended(key, HOLDER_ATTEMPTS))
    }

    /// Wakes the place of the first waiter in `line`, if it is here.
    pub(super) fn wake_first(&self, line: &Line) {
        if let Some(first) = line.first() {
            let _ = self.turns.send(first.to_string());
        }
    }

    /// Joins `key`'s line for `owner`, asking for `kind`.
    pub(super) async fn join_line(
        self: Arc<Self>,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<AzurePlace, StoreError> {
        let waiter = format!("{:016x}", fastrand::u64(..));
        // Listening before joining: a wake between the two is not lost.
        let woken = self.turns.subscribe();
        self.enter_line(key, &waiter, kind).await?;
        Ok(AzurePlace {
            key: key.to_string(),
            owner: owner.to_string(),
            ttl,
            kind,
            waiter,
            ahead: None,
            woken,
            looking: Looking::default(),
            store: self,
        })
    }
}

/// A waiter's place: its entry in the blob's line, and a take under way.
pub(super) struct AzurePlace {
    store: Arc<AzureBlobStore>,
    key: String,
    owner: String,
    ttl: Duration,
    kind: Kind,
    waiter: String,
    /// How many waited ahead at the last look; `None` before the first.
    ahead: Option<u64>,
    /// The waiters whose turn may have come by a change through this sidecar.
    woken: broadcast::Receiver<String>,
    looking: Looking,
}

#[async_trait]
impl Place for AzurePlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        if !self.looking.is_under_way() {
            // The look reads the blob after every wake so far: they are stale.
            while !matches!(
                self.woken.try_recv(),
                Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
            ) {}
        }
        let store = self.store.clone();
        let (key, owner, waiter) = (self.key.clone(), self.owner.clone(), self.waiter.clone());
        let (ttl, kind) = (self.ttl, self.kind);
        let looked = self
            .looking
            .look(|| async move { store.take_turn(&key, &owner, ttl, kind, &waiter).await })
            .await?;
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
                    "a waiter's lease in the blob's line passed (Azure out of reach?): it joins \
                     the line again"
                );
                self.ahead = None;
                self.store
                    .enter_line(&self.key, &self.waiter, self.kind)
                    .await?;
                Ok(TryLockOutcome::Held)
            }
        }
    }

    fn pause(&self, poll: Duration) -> Duration {
        match self.ahead {
            None | Some(0) => poll.min(FIRST_LOOK),
            Some(1) => NEXT_LOOK,
            Some(_) => LOOK_EVERY,
        }
    }

    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        let waiter = &self.waiter;
        let woken = async {
            loop {
                match self.woken.recv().await {
                    Ok(woken) if woken != *waiter => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        let _ = tokio::time::timeout(max_wait, woken).await;
        Ok(())
    }

    async fn leave(mut self: Box<Self>) {
        if let Some(grant) = self.looking.abandoned_grant().await {
            use crate::lock::LockStore;
            let taken_back = self.store.take_back(&self.key, &self.owner, grant).await;
            if let Err(error) = taken_back {
                tracing::warn!("a grant nobody awaits stays until it expires: {error}");
            }
            return;
        }
        if let Err(error) = self.store.leave_line(&self.key, &self.waiter).await {
            tracing::debug!("a waiter left to its lease's expiry: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_line_survives_the_metadata_and_an_empty_one_is_not_written() {
        assert_eq!(Line::default().to_metadata(), None);
        let mut line = Line::default();
        line.join("a", Kind::PLAIN, 10);
        line.join("b", Kind::shared(3), 20);
        let (name, value) = line.to_metadata().unwrap();
        assert!(value.is_ascii());
        let metadata = HashMap::from([(name.to_string(), value)]);
        assert_eq!(Line::from_metadata(&metadata), line);
        assert_eq!(Line::from_metadata(&HashMap::new()), Line::default());
    }

    #[test]
    fn waiters_keep_their_order_and_leave_at_their_lease() {
        let mut line = Line::default();
        line.join("a", Kind::PLAIN, 10);
        line.join("b", Kind::PLAIN, 30);
        line.join("c", Kind::PLAIN, 20);
        assert_eq!(line.ahead_of("c"), Some(2));
        line.purge(10);
        assert_eq!((line.ahead_of("a"), line.ahead_of("b")), (None, Some(0)));
        // Renewed only once the lease is due.
        assert!(!line.renew_if_due("c", 15, 40));
        assert!(line.renew_if_due("c", 25, 40));
        line.purge(30);
        assert_eq!((line.len(), line.ahead_of("c")), (1, Some(0)));
        assert!(line.remove("c") && !line.remove("c"));
        assert!(line.is_empty());
    }
}
