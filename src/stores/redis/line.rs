//! The fair line of waiters per lock, kept in Redis (`Capabilities::line`): blocking acquires
//! of every kind, from every sidecar, are granted in the order they arrived (KINDS.md, rule 3).
//!
//! Two sorted sets beside the lock key, in its hash slot (their names end with the lock key, as
//! the token record's does): `dlock||line||<lock>` orders the waiters by arrival (score: one
//! more than the last waiter's), `dlock||lease||<lock>` holds each waiter's lease deadline in
//! milliseconds by Redis's clock (`TIME`). A waiter renews its lease at every look at its
//! turn, which the core makes at least every `MAX_POLL`; a waiter whose sidecar died stops
//! renewing, and every script that reads the line first drops the waiters whose lease has
//! lapsed. So a dead waiter holds the line up for `WAITER_LEASE` at most and never stalls it
//! (the trap of a fair lock whose waiters have no lease of their own). Both sets expire a lease
//! after their last change, so a line whose sidecars all died leaves nothing behind.
//!
//! Only the first waiter may take the lock, and only by a script that checks it is first and
//! takes it out of the line in the same step: so a waiting writer holds back the readers behind
//! it, and readers ahead of a writer are granted one after the other, each grant of a shared
//! lock waking the next waiter. A try (no wait) is refused while any waiter's lease runs,
//! unless it is a holder's re-entry. daprd's `SET NX` does not look at the line: the lock key
//! and its value are unchanged, so daprd still sees a held lock held.
//!
//! A release wakes only the first waiter: each waiter listens on a channel of its own
//! (`dlock||turn||<lock>||<waiter>`), and a release publishes there rather than on the lock's
//! channel, so one release costs one message and one try, however many sidecars wait.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tokio::time::Instant;

use super::scripts::{LINE, NOW_MS};
use super::signal::Interest;
use super::{millis, RedisStore};
use crate::lock::look::{Look, Looking};
use crate::lock::{Kind, Place, StoreError, TryLockOutcome};

/// How long a waiter stays in line without looking at its turn. The core looks at least every
/// 200 ms while it waits; a dead sidecar's waiter holds up the line at most this long.
pub(crate) const WAITER_LEASE: Duration = Duration::from_secs(3);

/// How long a waiter with others ahead of it pauses between looks at its turn, unless woken
/// (`Place::pause`): it looks to renew its lease and to find the waiters ahead gone with their
/// lapsed leases. The first waiter looks as often as the core polls (10 ms doubling to 200 ms),
/// for a holder's expiry, which publishes nothing; a waiter behind is woken when it becomes
/// first by a release, a grant or a leave, so looking more often would find nothing new.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// How long a new waiter waits for its channel's subscription before it goes on polling.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(1);

/// The waiters of `lock` in arrival order.
pub(super) fn line_key(lock: &str) -> String {
    format!("dlock||line||{lock}")
}

/// The waiters of `lock` by lease deadline.
pub(super) fn leases_key(lock: &str) -> String {
    format!("dlock||lease||{lock}")
}

/// What a waiter's channel name starts with; its id follows.
pub(super) fn turn_prefix(lock: &str) -> String {
    format!("dlock||turn||{lock}||")
}

/// Puts a waiter at the end of the line. KEYS: line, leases. ARGV: waiter, lease ms.
fn join_script() -> Script {
    Script::new(&format!(
        r"
        if redis.replicate_commands then redis.replicate_commands() end
        {NOW_MS}{LINE}
        local now = now_ms()
        purge_line(KEYS[1], KEYS[2], now)
        local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
        local arrival = 1
        if last[2] then arrival = tonumber(last[2]) + 1 end
        redis.call('ZADD', KEYS[1], string.format('%.0f', arrival), ARGV[1])
        renew_lease(KEYS[1], KEYS[2], ARGV[1], now, tonumber(ARGV[2]))
        return arrival
        ",
    ))
}

/// Renews a waiter's lease and says where it stands: 1 first, 0 not first, -1 out of the line
/// (its lease lapsed). KEYS: line, leases. ARGV: waiter, lease ms.
fn turn_script() -> Script {
    Script::new(&format!(
        r"
        if redis.replicate_commands then redis.replicate_commands() end
        {NOW_MS}{LINE}
        return turn(KEYS[1], KEYS[2], ARGV[1], now_ms(), tonumber(ARGV[2]))
        ",
    ))
}

/// Takes a waiter out of the line, waking the next when it was first. KEYS: line, leases.
/// ARGV: waiter, turn prefix.
fn leave_script() -> Script {
    Script::new(&format!(
        r"
        {LINE}
        local was_first = first_in(KEYS[1]) == ARGV[1]
        leave_line(KEYS[1], KEYS[2], ARGV[1])
        if was_first then wake_first(KEYS[1], ARGV[2]) end
        return 1
        ",
    ))
}

/// The scripts of the line, loaded once per store.
pub(super) struct LineScripts {
    join: Script,
    turn: Script,
    leave: Script,
}

impl LineScripts {
    pub(super) fn new() -> LineScripts {
        LineScripts {
            join: join_script(),
            turn: turn_script(),
            leave: leave_script(),
        }
    }
}

/// Whose turn an acquire takes, which the grant scripts check in the step that grants.
#[derive(Debug, Clone, Copy)]
pub(super) enum Turn<'a> {
    /// A try: granted only while nobody waits.
    Try,
    /// A waiter: granted only when first in line, which it then leaves.
    Waiter(&'a str),
}

impl Turn<'_> {
    /// The grant scripts' argument: '-' for a try, else the waiter.
    pub(super) fn arg(self) -> String {
        match self {
            Turn::Try => "-".to_string(),
            Turn::Waiter(waiter) => waiter.to_string(),
        }
    }
}

/// A waiter's place: its entry in the line, its channel, and a take under way.
pub(super) struct RedisPlace {
    store: Arc<RedisStore>,
    key: String,
    lock: String,
    owner: String,
    ttl: Duration,
    kind: Kind,
    waiter: String,
    /// Subscribed for as long as the place lives.
    turn: Interest,
    looking: Looking,
    /// When the last look found others ahead, while no wake has come since.
    behind_since: Option<Instant>,
}

impl RedisStore {
    /// Joins `key`'s line, and subscribes to the waiter's channel meanwhile: the place's
    /// arrival is its entry, which waits for no subscription, and the first look at its turn
    /// comes after both, so no wake it needs can be missed.
    pub(super) async fn join_line(
        self: Arc<Self>,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<RedisPlace, StoreError> {
        let lock = self.layout.lock_key(key);
        let waiter = format!(
            "{:016x}{:08x}",
            RandomState::new().hash_one(owner),
            std::process::id()
        );
        let deadline = Instant::now() + SUBSCRIBE_WITHIN;
        let channel = format!("{}{waiter}", turn_prefix(&lock));
        let (turn, entered) = tokio::join!(
            self.signal.watch(channel, deadline),
            self.enter_line(&lock, &waiter)
        );
        entered?;
        Ok(RedisPlace {
            key: key.to_string(),
            lock,
            owner: owner.to_string(),
            ttl,
            kind,
            waiter,
            turn,
            looking: Looking::default(),
            behind_since: None,
            store: self,
        })
    }

    async fn enter_line(&self, lock: &str, waiter: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .line
            .join
            .key(line_key(lock))
            .key(leases_key(lock))
            .arg(waiter)
            .arg(millis(WAITER_LEASE))
            .invoke_async(&mut self.connection.handle())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// One try of a waiter: the plain lock in one script; another kind after a look at its
    /// turn, so a waiter that is not first costs one script.
    async fn take_turn(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
        waiter: &str,
    ) -> Result<Look, StoreError> {
        let turn = Turn::Waiter(waiter);
        if kind.is_plain() {
            return self.acquire_plain(key, owner, ttl, turn).await;
        }
        let lock = self.layout.lock_key(key);
        let stands: i64 = self
            .line
            .turn
            .key(line_key(&lock))
            .key(leases_key(&lock))
            .arg(waiter)
            .arg(millis(WAITER_LEASE))
            .invoke_async(&mut self.connection.handle())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(match stands {
            -1 => Look::Gone,
            1 => Look::Took(self.acquire_record(key, owner, ttl, kind, turn).await?),
            _ => Look::Behind(None),
        })
    }
}

#[async_trait]
impl Place for RedisPlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let store = self.store.clone();
        let (key, owner, waiter) = (self.key.clone(), self.owner.clone(), self.waiter.clone());
        let (ttl, kind) = (self.ttl, self.kind);
        let looked = self
            .looking
            .look(|| async move { store.take_turn(&key, &owner, ttl, kind, &waiter).await })
            .await?;
        self.behind_since = None;
        match looked {
            Look::Took(outcome) => Ok(outcome),
            Look::Behind(_) => {
                self.behind_since = Some(Instant::now());
                Ok(TryLockOutcome::Held)
            }
            Look::Gone => {
                tracing::warn!(
                    "a waiter's lease lapsed (Redis out of reach?): it joins the line again"
                );
                self.store.enter_line(&self.lock, &self.waiter).await?;
                Ok(TryLockOutcome::Held)
            }
        }
    }

    fn pause(&self, poll: Duration) -> Duration {
        match self.behind_since {
            Some(at) => (at + LOOK_EVERY)
                .saturating_duration_since(Instant::now())
                .max(poll),
            None => poll,
        }
    }

    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        if tokio::time::timeout(max_wait, self.turn.released())
            .await
            .is_ok()
        {
            self.behind_since = None;
        }
        Ok(())
    }

    async fn leave(mut self: Box<Self>) {
        if let Some(grant) = self.looking.abandoned_grant().await {
            let taken_back = self.store.take_back_at(&self.lock, &self.owner, grant);
            if let Err(error) = taken_back.await {
                tracing::warn!("a grant nobody awaits stays until it expires: {error}");
            }
            return;
        }
        let left: Result<i64, _> = self
            .store
            .line
            .leave
            .key(line_key(&self.lock))
            .key(leases_key(&self.lock))
            .arg(&self.waiter)
            .arg(turn_prefix(&self.lock))
            .invoke_async(&mut self.store.connection.handle())
            .await;
        if let Err(error) = left {
            tracing::debug!("a waiter left to its lease's expiry: {error}");
        }
    }
}
