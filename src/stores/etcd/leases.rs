//! This sidecar's shared leases: one lease per bucket of TTLs, granted once, kept alive by a
//! task of its own, and put under every key of that bucket that this sidecar writes. A lock
//! then costs etcd no lease grant and no revoke (both are Raft writes, each fsynced): its
//! expiry is the deadline in its value (`deadline.rs`), and the lease only clears away the
//! keys of a sidecar that died, once nobody keeps it alive.
//!
//! A key put on a lease goes when the lease ends, so a lock must never be put on a lease that
//! might end before the lock's deadline: `lease` answers one known (by the last keep-alive,
//! timed from before it was sent) to last at least what the caller asks, and renews it first
//! when it might not. A lock's bucket is twice the next power of two above its expiry in
//! seconds, kept alive every third of its TTL, so a lease always has more left than its locks
//! ask and the renewal on the way is rare; the key of a dead sidecar's lock outlives its
//! deadline by less than four times its expiry, and is treated as free meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio::task::AbortHandle;

use super::client::Client;
use crate::lock::StoreError;

/// How long a lease must last beyond what a caller asks: the time until its write lands.
const SLACK: Duration = Duration::from_secs(1);

pub(crate) struct Leases {
    client: Arc<Client>,
    /// By the TTL asked of etcd.
    buckets: Arc<Mutex<HashMap<i64, Shared>>>,
    /// The keep-alive tasks, ended with the store.
    keepers: StdMutex<Vec<AbortHandle>>,
}

struct Shared {
    id: i64,
    /// When the lease ends at the earliest, by the last keep-alive etcd answered.
    ends: Instant,
}

impl Drop for Leases {
    fn drop(&mut self) {
        for keeper in self
            .keepers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            keeper.abort();
        }
    }
}

impl Leases {
    pub(crate) fn new(client: Arc<Client>) -> Leases {
        Leases {
            client,
            buckets: Arc::default(),
            keepers: StdMutex::default(),
        }
    }

    /// The shared lease for a lock of `ttl`: it lasts past the lock's deadline.
    pub(crate) async fn for_lock(&self, ttl: Duration) -> Result<i64, StoreError> {
        self.lease(bucket(ttl), ttl + SLACK).await
    }

    /// The shared lease of `seconds`, known to last at least `at_least` from now.
    pub(crate) async fn lease(&self, seconds: i64, at_least: Duration) -> Result<i64, StoreError> {
        // Held across a grant, so that locks arriving together share the first one.
        let mut buckets = self.buckets.lock().await;
        let needed = Instant::now() + at_least;
        if let Some(shared) = buckets.get_mut(&seconds) {
            if shared.ends >= needed {
                return Ok(shared.id);
            }
            let sent = Instant::now();
            let left = self.client.keep_alive(shared.id).await?;
            if left > 0 {
                shared.ends = sent + Duration::from_secs(left as u64);
                if shared.ends >= needed {
                    return Ok(shared.id);
                }
            }
            // Gone (etcd was out of reach longer than its TTL), or shorter than asked: a new one.
        }
        let sent = Instant::now();
        let granted = self.client.grant(seconds).await?;
        let ends = sent + Duration::from_secs(granted.ttl.max(0) as u64);
        buckets.insert(
            seconds,
            Shared {
                id: granted.id,
                ends,
            },
        );
        let keeper = tokio::spawn(keep_alive(
            self.client.clone(),
            Arc::downgrade(&self.buckets),
            seconds,
            granted.id,
            granted.ttl,
        ));
        let mut keepers = self.keepers.lock().unwrap_or_else(|e| e.into_inner());
        keepers.retain(|keeper| !keeper.is_finished());
        keepers.push(keeper.abort_handle());
        Ok(granted.id)
    }
}

/// A lock's bucket: the TTL of its shared lease, in seconds.
fn bucket(ttl: Duration) -> i64 {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0) + 1;
    let power = seconds.checked_next_power_of_two().unwrap_or(u64::MAX / 2);
    (power.saturating_mul(2)).min(i64::MAX as u64) as i64
}

/// Keeps the lease `id` of bucket `seconds` alive every third of its TTL, until etcd says it
/// is gone or another lease took its bucket; the store's end aborts it.
async fn keep_alive(
    client: Arc<Client>,
    buckets: std::sync::Weak<Mutex<HashMap<i64, Shared>>>,
    seconds: i64,
    id: i64,
    ttl: i64,
) {
    let every = Duration::from_secs(ttl.max(1) as u64) / 3;
    loop {
        tokio::time::sleep(every).await;
        let sent = Instant::now();
        let answer = client.keep_alive(id).await;
        let Some(buckets) = buckets.upgrade() else {
            return;
        };
        let mut buckets = buckets.lock().await;
        let Some(shared) = buckets.get_mut(&seconds).filter(|shared| shared.id == id) else {
            return; // replaced by a new lease
        };
        match answer {
            Ok(left) if left > 0 => shared.ends = sent + Duration::from_secs(left as u64),
            Ok(_) => {
                buckets.remove(&seconds);
                return;
            }
            Err(error) => tracing::debug!("shared lease {id:x} was not renewed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_outlasts_its_locks_by_a_third_of_its_ttl_to_spare() {
        assert_eq!(bucket(Duration::from_millis(100)), 4);
        assert_eq!(bucket(Duration::from_secs(1)), 4);
        assert_eq!(bucket(Duration::from_secs(3)), 8);
        assert_eq!(bucket(Duration::from_secs(30)), 64);
        // Kept alive every third of its TTL, a lease has two thirds left, always more than a
        // lock of the bucket asks with the slack.
        for seconds in 1..1000 {
            let ttl = Duration::from_secs(seconds);
            let two_thirds = Duration::from_secs(bucket(ttl) as u64) * 2 / 3;
            assert!(two_thirds >= ttl + SLACK, "{seconds}");
        }
    }
}
