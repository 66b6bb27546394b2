//! `lock.redis`: locks in Redis, interchangeable with daprd's. The lock key and its value are
//! daprd's (the store key, the raw owner, `SET … NX` with the expiry, an owner-checked release
//! script with daprd's answers), so daprd and dlockd fleets on one Redis share every lock.
//! Fencing, renewal, inspection and the release signal live beside it (see `scripts.rs`),
//! in a bounded number of keys: nothing per resource id outlives its lock (see `keys.rs`).
//! Shared, limited and reentrant locks keep their holders as a record in the lock key itself
//! (see `records.rs`). Blocking acquires of every kind wait in one fair line kept beside the
//! lock key, each waiter on a lease of its own (see `line.rs`).
//!
//! The connection in each topology (one server, Sentinel, Cluster) is in `connection.rs`;
//! where keys live, hash tags for a cluster included, in `keys.rs`. What a failover can lose,
//! and what is kept regardless: `replicas.rs` (`waitReplicas`) and `scripts.rs` (tokens never
//! below the server's clock).

mod connection;
mod keys;
mod line;
mod multi;
mod records;
mod replicas;
mod scripts;
mod settings;
mod signal;

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::{RedisError, Script, ScriptInvocation};

use crate::config::ConfigError;
use crate::config::Metadata;
use crate::lock::holders;
use crate::lock::look::Look;
use crate::lock::{
    Capabilities, Grant, Kind, LockInfo, LockStore, ManyOutcome, OwnerChecked, Place, Released,
    StoreError, TryLockOutcome,
};
use connection::{Connection, Handle};
use keys::{legacy_fence_key, token_key, KeyLayout};
use line::{line_key, turn_prefix, LineScripts, Turn};
use records::{Checked, RACES};
use settings::{Settings, Topology, WaitReplicas};
use signal::ReleaseSignal;

/// How many times a grant the caller was told failed is asked back, and the pause before
/// the second ask (longer before each next).
const TAKE_BACK_TRIES: u32 = 3;
const TAKE_BACK_PAUSE: Duration = Duration::from_millis(100);

/// How many keys one SCAN step asks for.
const SCAN_COUNT: usize = 500;

pub(crate) struct RedisStore {
    /// The store itself, for the places of its line, which outlive a call.
    me: Weak<RedisStore>,
    connection: Arc<Connection>,
    /// `redisHost`'s `host:port`s: the server, the cluster's seed nodes, or the sentinels.
    servers: Vec<String>,
    layout: KeyLayout,
    signal: ReleaseSignal,
    acquire: Script,
    unlock: Script,
    renew: Script,
    look: Script,
    swap: Script,
    /// A multi-lock's compare-and-set (`multi.rs`).
    swap_many: Script,
    force_release: Script,
    release_grant: Script,
    line: LineScripts,
    /// `waitReplicas`: grants and renewals count once this many replicas have them.
    wait_replicas: Option<WaitReplicas>,
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

/// A Redis failure as the core sees it: a connection or timeout problem is an outage the
/// caller may retry; anything else is a wrong answer.
fn store_error(error: RedisError) -> StoreError {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
    {
        StoreError::unavailable(error.to_string()).with_source(error)
    } else {
        StoreError::failed(error.to_string()).with_source(error)
    }
}

/// The token record of `lock` (a Redis key), read on `handle`.
async fn token_record(handle: &mut Handle, lock: &str) -> Result<Option<String>, RedisError> {
    redis::cmd("GET")
        .arg(token_key(lock))
        .query_async(handle)
        .await
}

/// The -1 / -2 / other answers of the release and renew scripts.
fn outcome(answer: i64) -> OwnerChecked {
    match answer {
        -1 => OwnerChecked::NotHeld,
        -2 => OwnerChecked::HeldByOther,
        _ => OwnerChecked::Applied,
    }
}

impl RedisStore {
    /// Connects as a `lock.redis` component's metadata says; on one server, fails if Redis
    /// can't be reached or is a master with replicas (a failover could lose a lock the replica
    /// never saw; Sentinel is the way to run replicas, as daprd requires).
    pub(crate) async fn connect(metadata: &Metadata) -> Result<Arc<RedisStore>, ConfigError> {
        let settings = Settings::from_metadata(metadata)?;
        let connection = Arc::new(Connection::open(&settings).await?);
        if let Topology::Node((host, port)) = &settings.topology {
            let address = format!("{host}:{port}");
            let password_given = settings.password.is_some();
            refuse_replicated_master(connection.handle(), &address, password_given).await?;
        }
        let signal = ReleaseSignal::start(Arc::downgrade(&connection), settings.read_timeout);
        let servers = match &settings.topology {
            Topology::Node(address) => std::slice::from_ref(address),
            Topology::Cluster(nodes) => nodes.as_slice(),
            Topology::Sentinel { sentinels, .. } => sentinels.as_slice(),
        };
        Ok(Arc::new_cyclic(|me| RedisStore {
            me: me.clone(),
            servers: servers
                .iter()
                .map(|(host, port)| format!("{host}:{port}"))
                .collect(),
            layout: KeyLayout::new(matches!(settings.topology, Topology::Cluster(_))),
            connection,
            signal,
            acquire: scripts::acquire(),
            unlock: scripts::unlock(),
            renew: scripts::renew(),
            look: scripts::look(),
            swap: scripts::swap(),
            swap_many: scripts::swap_many(),
            force_release: scripts::force_release(),
            release_grant: scripts::release_grant(),
            line: LineScripts::new(),
            wait_replicas: settings.wait_replicas,
        }))
    }

    /// A failed request: tells the connection (Sentinel then looks for a new master) and turns
    /// the error into the core's.
    fn failed(&self, error: RedisError) -> StoreError {
        self.connection.failed(&error);
        store_error(error)
    }

    /// Runs an owner-checked script (unlock, renew, release of a grant): its answer and, with
    /// `confirm`, how many replicas acknowledged.
    async fn owner_checked(
        &self,
        invocation: &ScriptInvocation<'_>,
        confirm: Option<WaitReplicas>,
    ) -> Result<(Checked, Option<u32>), StoreError> {
        let mut handle = self.connection.handle();
        match confirm {
            None => {
                let answer = invocation.invoke_async(&mut handle).await;
                Ok((answer.map_err(|e| self.failed(e))?, None))
            }
            Some(wait) => {
                let answered = replicas::run_confirmed(&mut handle, invocation, wait).await;
                let (answer, acknowledged) = answered.map_err(|e| self.failed(e))?;
                Ok((answer, Some(acknowledged)))
            }
        }
    }

    /// A renewal's outcome, or an outage when fewer replicas than asked for acknowledged it.
    /// Not undone: the replicas still have the expiry before it, which the holder had already
    /// been promised.
    fn confirmed_renewal(
        &self,
        outcome: OwnerChecked,
        acknowledged: Option<u32>,
    ) -> Result<OwnerChecked, StoreError> {
        if let (Some(wait), Some(acknowledged)) = (self.wait_replicas, acknowledged) {
            if outcome == OwnerChecked::Applied && acknowledged < wait.replicas {
                return Err(StoreError::unavailable(replicas::shortfall(
                    "the renewal",
                    acknowledged,
                    wait,
                )));
            }
        }
        Ok(outcome)
    }

    /// Takes back a grant that its replicas did not confirm, if the lock still holds it.
    /// Asked again after a failure (a connection being replaced in a failover is often back a
    /// moment later) when that is safe: the take-back names the grant's token, so a second
    /// ask never takes a later hold of the same owner.
    async fn release_unconfirmed(&self, lock: &str, owner: &str, grant: Grant) {
        let tries = if grant.fencing_token.is_some() {
            TAKE_BACK_TRIES
        } else {
            1
        };
        for tried in 1..=tries {
            match self.take_back_at(lock, owner, grant).await {
                Ok(_) => return,
                Err(error) if tried == tries => {
                    // Held until its expiry; the caller was told it was not granted either way.
                    tracing::warn!(
                        "an unconfirmed grant of {lock} stays until it expires: {error}"
                    );
                }
                Err(error) => {
                    tracing::debug!("taking back an unconfirmed grant of {lock} again: {error}");
                    tokio::time::sleep(TAKE_BACK_PAUSE * tried).await;
                }
            }
        }
    }

    /// After a grant of `owner` at `lock` whose answer was lost (a timeout, a broken
    /// connection), takes it back if it landed, so that an error never leaves a lock held.
    /// `handle` is the connection the grant went on: Redis runs one connection's commands in
    /// order, so what is read there comes after the grant, whether it ran late or not at all.
    /// Every grant draws a new token, so a token record of `owner` other than the one read
    /// `before` the grant is this grant's, never an earlier hold of the same owner.
    async fn take_back_unanswered(
        &self,
        mut handle: Handle,
        lock: &str,
        owner: &str,
        before: Option<String>,
    ) {
        let after = match token_record(&mut handle, lock).await {
            Ok(after) => after,
            Err(error) => {
                // The connection is gone, and with it a grant not yet run; one that ran is
                // left to its expiry (docs/stores.md says so).
                tracing::warn!(
                    "a grant of {lock} whose answer was lost was not looked for: {error}"
                );
                return;
            }
        };
        if after == before {
            return;
        }
        if let Some(token) = records::plain_token(owner, after.as_deref()) {
            self.release_unconfirmed(lock, owner, Grant::first(Some(token)))
                .await;
        }
    }

    /// Takes back one of `owner`'s holds at `lock` (a Redis key), or all of them: the plain
    /// release script, and for a record, a compare-and-set of it.
    async fn release_at(
        &self,
        lock: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        for _ in 0..RACES {
            let mut invocation = self.unlock.key(lock);
            invocation
                .key(token_key(lock))
                .key(line_key(lock))
                .arg(owner)
                .arg(signal::channel(lock))
                .arg(turn_prefix(lock));
            let (now_ms, value) = match self.owner_checked(&invocation, None).await?.0 {
                Checked::Plain(answer) => {
                    return Ok(Released {
                        outcome: outcome(answer),
                        holds_left: 0,
                    })
                }
                Checked::Record { now_ms, value } => (now_ms, value),
            };
            let release = |record: &mut holders::Record, now| record.release(now, owner, all_holds);
            if let Some((released, _)) = self.change(lock, now_ms, &value, None, release).await? {
                return Ok(released);
            }
        }
        Err(records::lost_races(lock))
    }

    /// Takes back one hold of `grant` of `owner` at `lock` (a Redis key), only while the lock
    /// is still held under that grant's token: never a later grant of the same owner.
    async fn take_back_at(
        &self,
        lock: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        let Some(token) = grant.fencing_token else {
            return Ok(self.release_at(lock, owner, false).await?.outcome);
        };
        for _ in 0..RACES {
            let mut invocation = self.release_grant.key(lock);
            invocation
                .key(token_key(lock))
                .key(line_key(lock))
                .arg(owner)
                .arg(format!("{owner}|{token}"))
                .arg(signal::channel(lock))
                .arg(turn_prefix(lock));
            let (now_ms, value) = match self.owner_checked(&invocation, None).await?.0 {
                Checked::Plain(1) => return Ok(OwnerChecked::Applied),
                Checked::Plain(_) => return Ok(OwnerChecked::NotHeld),
                Checked::Record { now_ms, value } => (now_ms, value),
            };
            let take_back = |record: &mut holders::Record, now| record.take_back(now, owner, grant);
            if let Some((outcome, _)) = self.change(lock, now_ms, &value, None, take_back).await? {
                return Ok(outcome);
            }
        }
        Err(records::lost_races(lock))
    }

    /// Takes the plain lock at `key` in one script, on `turn`: a try while nobody waits, or a
    /// waiter first in line.
    async fn acquire_plain(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        turn: Turn<'_>,
    ) -> Result<Look, StoreError> {
        let lock = self.layout.lock_key(key);
        let mut invocation = self.acquire.key(&lock);
        invocation
            .key(self.layout.fencing_counter(&lock))
            .key(token_key(&lock))
            .key(legacy_fence_key(&lock))
            .key(line_key(&lock))
            .key(line::leases_key(&lock))
            .arg(owner)
            .arg(millis(ttl))
            .arg(turn.arg())
            .arg(millis(line::WAITER_LEASE));
        let mut handle = self.connection.handle();
        let token: i64 = match self.wait_replicas {
            None => invocation
                .invoke_async(&mut handle)
                .await
                .map_err(|e| self.failed(e))?,
            Some(wait) => {
                let before = token_record(&mut handle, &lock)
                    .await
                    .map_err(|e| self.failed(e))?;
                let answered = replicas::run_confirmed(&mut handle, &invocation, wait).await;
                let (token, acknowledged) = match answered {
                    Ok(answered) => answered,
                    Err(error) => {
                        let error = self.failed(error);
                        self.take_back_unanswered(handle, &lock, owner, before)
                            .await;
                        return Err(error);
                    }
                };
                if token > 0 && acknowledged < wait.replicas {
                    let grant = Grant::first(Some(token as u64));
                    self.release_unconfirmed(&lock, owner, grant).await;
                    return Err(StoreError::unavailable(replicas::shortfall(
                        "the grant",
                        acknowledged,
                        wait,
                    )));
                }
                token
            }
        };
        Ok(match token {
            -1 => Look::Gone,
            -2 => Look::Behind(None),
            0 => Look::Took(TryLockOutcome::Held),
            token => Look::Took(TryLockOutcome::Granted(Grant::first(Some(token as u64)))),
        })
    }

    /// Who holds the lock at `lock` (a Redis key), reported under the store key `key`.
    async fn inspect_lock(&self, key: &str, lock: &str) -> Result<Option<LockInfo>, StoreError> {
        let look = self.look(lock).await?;
        let Some(value) = look.value.as_deref() else {
            return Ok(None);
        };
        if let Some(record) = records::decode(lock, value)? {
            return Ok(record.info(key, look.now_ms));
        }
        let fencing_token = records::plain_token(value, look.token_record.as_deref());
        // -1: no expiry (set by hand); shown as no time left rather than forever.
        let expires_in = Duration::from_millis(look.pttl.max(0) as u64);
        Ok(Some(LockInfo::exclusive(
            key,
            value,
            expires_in,
            fencing_token,
        )))
    }
}

/// daprd's start-up check: a lone master with replicas can lose a granted lock on failover.
async fn refuse_replicated_master(
    mut handle: Handle,
    address: &str,
    password_given: bool,
) -> Result<(), ConfigError> {
    let replication: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut handle)
        .await
        .map_err(|e| {
            let what = format!("Redis at {address}");
            connection::password_refused(&e, &what, password_given)
                .unwrap_or_else(|| ConfigError::new(format!("{what} did not answer INFO: {e}")))
        })?;
    let replicas = replication
        .lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if replicas > 0 {
        return Err(ConfigError::field(
            "redisHost",
            format!(
                "Redis at {address} is a master with {replicas} replica(s): a lock written to \
                 it can be lost if a replica that never saw it is promoted. Use Sentinel \
                 (failover: true, sentinelMasterName) so failovers are handled, as daprd \
                 requires"
            ),
        ));
    }
    Ok(())
}

#[async_trait]
impl LockStore for RedisStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        match self.acquire_plain(key, owner, ttl, Turn::Try).await? {
            Look::Took(outcome) => Ok(outcome),
            Look::Gone | Look::Behind(_) => Err(StoreError::failed(
                "a try was answered as a waiter in the line".to_string(),
            )),
        }
    }

    async fn acquire_kind(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        self.acquire_record(key, owner, ttl, kind, Turn::Try).await
    }

    async fn acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        self.acquire_all(keys, owner, ttl, kind).await
    }

    async fn release_many(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        self.release_all(keys, owner, all_holds).await
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        self.release_at(&self.layout.lock_key(key), owner, all_holds)
            .await
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        self.take_back_at(&self.layout.lock_key(key), owner, grant)
            .await
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let lock = self.layout.lock_key(key);
        let confirm = self.wait_replicas;
        for _ in 0..RACES {
            let mut invocation = self.renew.key(&lock);
            invocation.key(token_key(&lock)).arg(owner).arg(millis(ttl));
            let (now_ms, value) = match self.owner_checked(&invocation, confirm).await? {
                (Checked::Plain(answer), acknowledged) => {
                    return self.confirmed_renewal(outcome(answer), acknowledged)
                }
                (Checked::Record { now_ms, value }, _) => (now_ms, value),
            };
            let renew = |record: &mut holders::Record, now| record.renew(now, owner, ttl);
            if let Some((renewed, acknowledged)) =
                self.change(&lock, now_ms, &value, confirm, renew).await?
            {
                return self.confirmed_renewal(renewed, acknowledged);
            }
        }
        Err(records::lost_races(&lock))
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        self.inspect_lock(key, &self.layout.lock_key(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let pattern = self.layout.scan_pattern(prefix);
        let mut keys = Vec::new();
        let targets = self
            .connection
            .scan_targets()
            .await
            .map_err(|e| self.failed(e))?;
        for mut target in targets {
            let mut cursor = 0u64;
            loop {
                let step = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .clone();
                let (next, batch): (u64, Vec<String>) =
                    target.run(&step).await.map_err(|e| self.failed(e))?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.sort();
        keys.dedup();
        let mut found = Vec::with_capacity(keys.len());
        for lock in keys {
            let Some(key) = self.layout.store_key(&lock) else {
                continue;
            };
            // Gone between the scan and the look: not held any more.
            if let Some(info) = self.inspect_lock(key, &lock).await? {
                found.push(info);
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let lock = self.layout.lock_key(key);
        let deleted: i64 = self
            .force_release
            .key(&lock)
            .key(token_key(&lock))
            .key(line_key(&lock))
            .arg(signal::channel(&lock))
            .arg(turn_prefix(&lock))
            .invoke_async(&mut self.connection.handle())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(deleted > 0)
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        // max_wait bounds all of it: subscribing, looking, waiting.
        let deadline = tokio::time::Instant::now() + max_wait;
        let lock = self.layout.lock_key(key);
        // Subscribed before looking, so a release in between is not missed.
        let mut interest = self.signal.watch(signal::channel(&lock), deadline).await;
        let look = match tokio::time::timeout_at(deadline, self.look(&lock)).await {
            Ok(look) => look?,
            Err(_) => return Ok(()), // out of time: the caller looks again
        };
        let Some(value) = look.value.as_deref() else {
            return Ok(()); // free already
        };
        // A place comes free at the first holder's deadline; a plain lock's is the key's.
        let left_ms = match records::decode(&lock, value)? {
            Some(mut record) => {
                record.purge(look.now_ms);
                if record.is_free() {
                    return Ok(());
                }
                let left = record.holders.iter().map(|e| e.deadline_ms - look.now_ms);
                left.min()
            }
            None => u64::try_from(look.pttl).ok().filter(|ms| *ms > 0),
        };
        // A release by daprd publishes nothing, and an expiry publishes nothing: the wait is
        // bounded by the holder's expiry and by max_wait, so those are seen by polling.
        let until = match left_ms {
            Some(ms) => deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms)),
            None => deadline,
        };
        let _ = tokio::time::timeout_at(until, interest.released()).await;
        Ok(())
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        let me = crate::lock::store::for_a_place(&self.me)?;
        Ok(Box::new(me.join_line(key, owner, ttl, kind).await?))
    }

    /// Every kind waits in the one line.
    fn line_takes(&self, _kind: Kind) -> bool {
        true
    }

    fn servers(&self) -> Vec<String> {
        self.servers.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
            line: true,
            shared: true,
            limit: true,
            reentrant: true,
            multi: true,
            multi_atomic: self.multi_atomic(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_an_outage_caused_by_the_redis_error() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let redis_error = RedisError::from(refused);
        let words = redis_error.to_string();
        let error = store_error(redis_error);
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("lock store unavailable: {words}")
        );
        let source = std::error::Error::source(&error).expect("the Redis error is the source");
        assert!(source.is::<RedisError>(), "{source:?}");
    }
}
