//! The holder's side of expiry: a timer per lock this sidecar granted, which deletes the lock's
//! node at its deadline (or later, if it was renewed meanwhile), so the lock frees on time and
//! waiters on every sidecar are woken by their watches.
//!
//! ZooKeeper has no per-node expiry of its own that fits (TTL nodes are reaped by a periodic
//! sweep, not on time, and can't be ephemeral). The timer is the common case; contenders check
//! the deadline too (see `try_lock`), so an expiry holds even when this sidecar is hung or cut
//! off. The deletion is conditional on the version read, so a renewal that lands in between
//! wins, and the node's name is unique (sequential), so a later lock is never deleted instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::AbortHandle;
use zookeeper_client::Error;

use super::record::Holder;
use super::session::Sessions;

/// The pause before trying again when ZooKeeper did not answer.
const RETRY: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Expiries {
    timers: Mutex<HashMap<String, AbortHandle>>,
}

impl Expiries {
    fn timers(&self) -> MutexGuard<'_, HashMap<String, AbortHandle>> {
        // Every change under this mutex is one map operation: poisoning can't leave it
        // half-done.
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deletes the node at `path` once its lock has expired, first looking after `ttl`.
    pub fn schedule(self: &Arc<Self>, sessions: Arc<Sessions>, path: String, ttl: Duration) {
        let expiries = Arc::downgrade(self);
        let mut timers = self.timers();
        let key = path.clone();
        let task = tokio::spawn(async move {
            expire(&sessions, &path, ttl).await;
            if let Some(expiries) = expiries.upgrade() {
                expiries.timers().remove(&path);
            }
        });
        timers.insert(key, task.abort_handle());
    }

    /// Stops the timer of a node this sidecar deleted.
    pub fn cancel(&self, path: &str) {
        if let Some(timer) = self.timers().remove(path) {
            timer.abort();
        }
    }
}

async fn expire(sessions: &Sessions, path: &str, ttl: Duration) {
    let mut wait = ttl;
    loop {
        tokio::time::sleep(wait).await;
        let read = sessions
            .run(|c| async move { c.get_data(path).await })
            .await;
        let (data, stat) = match read {
            Ok(found) => found,
            Err(Error::NoNode) => return, // released, or its session ended
            Err(_) => {
                wait = RETRY;
                continue;
            }
        };
        let Ok(holder) = Holder::parse(path, &data, stat) else {
            return;
        };
        if !holder.expired() {
            wait = holder.time_left(); // renewed
            continue;
        }
        let version = Some(stat.version);
        match sessions
            .run(|c| async move { c.delete(path, version).await })
            .await
        {
            Ok(()) | Err(Error::NoNode) => return,
            Err(Error::BadVersion) => wait = Duration::ZERO, // renewed meanwhile: read again
            Err(_) => wait = RETRY,
        }
    }
}
