//! `lock.redis`: locks in Redis, interchangeable with daprd's. The lock key and its value are
//! daprd's (the store key, the raw owner, `SET … NX` with the expiry, an owner-checked release
//! script with daprd's answers), so daprd and dlockd fleets on one Redis share every lock.
//! Fencing, renewal, inspection and the release signal live beside it (see `scripts.rs`).
//!
//! One multiplexed connection, re-established by itself after a failure, carries every
//! request; a second connection subscribes to the release channel. While Redis is away,
//! requests fail within the read timeout and nothing is granted.

mod scripts;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Script};
use tokio::sync::broadcast;

use crate::config::Metadata;
use crate::lock::{
    Capabilities, Grant, LockInfo, LockStore, ReleaseOutcome, StoreError, TryLockOutcome,
};
use crate::stores::StoreInitError;
use settings::Settings;

/// How many keys one SCAN step asks for.
const SCAN_COUNT: usize = 500;

pub struct RedisStore {
    conn: ConnectionManager,
    released: broadcast::Sender<String>,
    acquire: Script,
    unlock: Script,
    renew: Script,
    inspect: Script,
    force_release: Script,
}

fn fence_key(key: &str) -> String {
    format!("dlock||fence||{key}")
}

fn token_key(key: &str) -> String {
    format!("dlock||token||{key}")
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

/// A Redis failure as the core sees it: a connection or timeout problem is an outage the
/// caller may retry; anything else is a wrong answer.
fn store_error(error: redis::RedisError) -> StoreError {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
    {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Failed(error.to_string())
    }
}

/// The -1 / -2 / other answers of the release and renew scripts.
fn outcome(answer: i64) -> ReleaseOutcome {
    match answer {
        -1 => ReleaseOutcome::NotHeld,
        -2 => ReleaseOutcome::HeldByOther,
        _ => ReleaseOutcome::Done,
    }
}

impl RedisStore {
    /// Connects as a `lock.redis` component's metadata says; fails if Redis can't be reached
    /// or is a master with replicas (a failover could lose a lock the replica never saw).
    pub async fn connect(metadata: &Metadata) -> Result<Arc<RedisStore>, StoreInitError> {
        let settings = Settings::from_metadata(metadata)?;
        let mut redis_info = RedisConnectionInfo::default().set_db(settings.db);
        if let Some(username) = &settings.username {
            redis_info = redis_info.set_username(username);
        }
        if let Some(password) = &settings.password {
            redis_info = redis_info.set_password(password);
        }
        let info = ConnectionAddr::Tcp(settings.host.clone(), settings.port)
            .into_connection_info()
            .map_err(|e| StoreInitError::field("redisHost", e.to_string()))?
            .set_redis_settings(redis_info);
        let client = redis::Client::open(info)
            .map_err(|e| StoreInitError::field("redisHost", e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.dial_timeout))
            .set_response_timeout(Some(settings.read_timeout))
            .set_number_of_retries(settings.max_retries)
            .set_min_delay(settings.min_retry_interval)
            .set_max_delay(settings.max_retry_interval);
        let address = format!("{}:{}", settings.host, settings.port);
        let mut conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| {
                StoreInitError::new(format!("can't connect to Redis at {address}: {e}"))
            })?;

        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                StoreInitError::new(format!("Redis at {address} did not answer INFO: {e}"))
            })?;
        let replicas = replication
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if replicas > 0 {
            return Err(StoreInitError::field(
                "redisHost",
                format!(
                    "Redis at {address} is a master with {replicas} replica(s): a lock written to \
                     it can be lost if a replica that never saw it is promoted. Use Sentinel \
                     (failover: true, sentinelMasterName) so failovers are handled, as daprd \
                     requires"
                ),
            ));
        }

        let (released, _) = broadcast::channel(1024);
        tokio::spawn(listen_for_releases(client, released.clone()));
        Ok(Arc::new(RedisStore {
            conn,
            released,
            acquire: scripts::acquire(),
            unlock: scripts::unlock(),
            renew: scripts::renew(),
            inspect: scripts::inspect(),
            force_release: scripts::force_release(),
        }))
    }
}

impl RedisStore {
    /// Runs an owner-checked script (release or renew) on a lock and its token record; both
    /// take the owner and one more argument and answer -1 / -2 / done.
    async fn owner_checked(
        &self,
        script: &Script,
        key: &str,
        owner: &str,
        extra: impl redis::ToRedisArgs,
    ) -> Result<ReleaseOutcome, StoreError> {
        let answer: i64 = script
            .key(key)
            .key(token_key(key))
            .arg(owner)
            .arg(extra)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(outcome(answer))
    }
}

/// Relays the keys published on the release channel to local waiters, reconnecting with
/// backoff when the subscription breaks (waiters poll meanwhile). Ends when the store is gone.
async fn listen_for_releases(client: redis::Client, released: broadcast::Sender<String>) {
    use tokio_stream::StreamExt;
    let mut backoff = Duration::from_millis(100);
    loop {
        if released.receiver_count() == 0 && released.strong_count() == 1 {
            return;
        }
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(scripts::RELEASED).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        if let Ok(key) = message.get_payload::<String>() {
                            let _ = released.send(key);
                        }
                    }
                }
            }
            Err(error) => tracing::debug!("release signal unavailable, waiters poll: {error}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[async_trait]
impl LockStore for RedisStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        let token: u64 = self
            .acquire
            .key(key)
            .key(fence_key(key))
            .key(token_key(key))
            .arg(owner)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(if token == 0 {
            TryLockOutcome::Held
        } else {
            TryLockOutcome::Granted(Grant {
                fencing_token: Some(token),
            })
        })
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<ReleaseOutcome, StoreError> {
        self.owner_checked(&self.unlock, key, owner, scripts::RELEASED)
            .await
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<ReleaseOutcome, StoreError> {
        self.owner_checked(&self.renew, key, owner, millis(ttl))
            .await
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let found: Option<(String, i64, String)> = self
            .inspect
            .key(key)
            .key(token_key(key))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(found.map(|(owner, pttl, record)| {
            // The token record is `<owner>|<token>`; a lock taken by daprd has none, and a
            // record left by an earlier holder names another owner.
            let fencing_token = record
                .rsplit_once('|')
                .filter(|(who, _)| *who == owner)
                .and_then(|(_, token)| token.parse().ok());
            LockInfo {
                key: key.to_string(),
                owner,
                // -1: no expiry (set by hand); shown as no time left rather than forever.
                expires_in: Duration::from_millis(pttl.max(0) as u64),
                fencing_token,
            }
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let pattern = format!("{}*", escape_glob(prefix));
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            // Gone between the scan and the look: not held any more.
            if let Some(info) = self.inspect(&key).await? {
                found.push(info);
            }
        }
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .force_release
            .key(key)
            .key(token_key(key))
            .arg(scripts::RELEASED)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(deleted > 0)
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        // Subscribed before looking, so a release in between is not missed.
        let mut released = self.released.subscribe();
        let pttl: i64 = self.conn.clone().pttl(key).await.map_err(store_error)?;
        if pttl == -2 {
            return Ok(()); // free already
        }
        // A release by daprd publishes nothing, and an expiry publishes nothing: the wait is
        // bounded by the holder's expiry and by max_wait, so those are seen by polling.
        let wait = if pttl > 0 {
            max_wait.min(Duration::from_millis(pttl as u64))
        } else {
            max_wait
        };
        let signal = async {
            loop {
                match released.recv().await {
                    Ok(k) if k == key => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        let _ = tokio::time::timeout(wait, signal).await;
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
        }
    }
}

/// Escapes Redis glob characters so a prefix matches itself only.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_escaped() {
        assert_eq!(escape_glob("lock||a*b?[c]\\"), "lock||a\\*b\\?\\[c\\]\\\\");
    }
}
