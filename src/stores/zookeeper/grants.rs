//! This sidecar's grants: for each lock it granted and has not yet seen end, a timer that
//! deletes the lock's node at its deadline, and the node as this sidecar last wrote it. A key
//! may have several: one per shared holder this sidecar admitted.
//!
//! The timer makes the lock free on time and wakes the waiters of every sidecar through their
//! watches. ZooKeeper has no per-node expiry that fits (TTL nodes are reaped by a periodic
//! sweep, not on time, and can't be ephemeral); contenders check the deadline too, so an expiry
//! holds even when this sidecar is hung or cut off.
//!
//! The node as last written lets the owner's release or renewal through this sidecar be one
//! conditional write (a delete or `setData` with the version written), without reading the node
//! first: the write succeeds only if the node is still that node, unchanged since, which is
//! what reading it would have checked. Anything else falls back to reading.
//!
//! Every deletion here is conditional on the version read, so a renewal that lands in between
//! wins, and node names are unique (sequential), so a later lock is never deleted instead.
//!
//! A try-lock's grant also keeps the mark its entry left on the key's node (`LineMark`): it was
//! first in line then, so every node ahead of it was gone for good, and every node that joins
//! behind it moves the key node's version past the mark. Once its node is gone, the mark says
//! "the line was empty at this version", which lets this sidecar's next try-lock of the key
//! skip reading the line (`holding::try_lock`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;
use zookeeper_client::Error;

use super::line_mark::LineMark;
use super::names::key_node_of;
use super::record::Contender;
use super::session::Sessions;
use crate::lock::Mode;

/// The pause before trying again when ZooKeeper did not answer.
const RETRY: Duration = Duration::from_millis(250);

/// How many keys' empty-line marks are kept at most: enough for the keys one sidecar takes and
/// gives back over and over, bounded so that a sidecar that has taken many keys once does not
/// keep a mark for each. When full, they are all forgotten (a forgotten mark costs one read).
const MARKS_KEPT: usize = 1024;

#[derive(Default)]
pub(crate) struct Grants {
    by_key: Mutex<HashMap<String, Vec<Grant>>>,
    /// The keys whose line this sidecar's grant left empty when its node went, and the mark of
    /// that grant's entry.
    left_empty: Mutex<HashMap<String, LineMark>>,
}

struct Grant {
    node: Contender,
    timer: AbortHandle,
    /// The mark the grant's entry left on its key's node, when the grant was first in line.
    line: Option<LineMark>,
}

impl Grants {
    fn by_key(&self) -> MutexGuard<'_, HashMap<String, Vec<Grant>>> {
        // Every change under this mutex is one map or list operation: poisoning can't leave
        // it half-done.
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a lock this sidecar granted and starts its timer. `line`: the mark its entry
    /// left, given only when nothing was ahead of the node once it was granted.
    pub(crate) fn granted(
        self: &Arc<Self>,
        sessions: Arc<Sessions>,
        key: &str,
        node: Contender,
        line: Option<LineMark>,
    ) {
        let grants = Arc::downgrade(self);
        let (owned_key, path, wait) = (key.to_string(), node.path.clone(), node.time_left());
        let mut by_key = self.by_key();
        let timer = tokio::spawn(async move {
            expire(&sessions, &path, wait).await;
            forget(grants, &owned_key, &path);
        });
        let of_key = by_key.entry(key.to_string()).or_default();
        // An exclusive grant means every older node of the key is gone, and a shared one that
        // the owner's older node is: their timers have nothing to do.
        let exclusive = node.mode == Mode::Exclusive;
        of_key.retain(|old| {
            let gone = exclusive || old.node.owner == node.owner;
            if gone {
                old.timer.abort();
            }
            !gone
        });
        of_key.push(Grant {
            node,
            timer: timer.abort_handle(),
            line,
        });
    }

    /// The live lock this sidecar granted `owner` on `key`, as last written.
    pub(crate) fn of(&self, key: &str, owner: &str) -> Option<Contender> {
        self.by_key()
            .get(key)?
            .iter()
            .map(|grant| &grant.node)
            .find(|node| node.owner == owner && !node.expired())
            .cloned()
    }

    /// Records a rewrite of a lock this sidecar granted (nothing if `node` is another).
    pub(crate) fn rewritten(&self, key: &str, node: Contender) {
        let mut by_key = self.by_key();
        let grants = by_key.get_mut(key).into_iter().flatten();
        if let Some(grant) = grants.into_iter().find(|g| g.node.path == node.path) {
            grant.node = node;
        }
    }

    /// Forgets the lock at `path` once its node is gone, and stops its timer.
    pub(crate) fn ended(&self, key: &str, path: &str) {
        let Some(grant) = remove(&mut self.by_key(), key, path) else {
            return;
        };
        grant.timer.abort();
        if let Some(mark) = grant.line {
            let mut left_empty = self.left_empty();
            if left_empty.len() >= MARKS_KEPT {
                left_empty.clear();
            }
            left_empty.insert(key.to_string(), mark);
        }
    }

    /// The mark of the last grant of `key` here, if its node is gone and nothing was ahead of
    /// it: the key's line is empty while the key node's version is still the mark's. Taken out:
    /// the next entry leaves a mark of its own.
    pub(crate) fn left_empty_at(&self, key: &str) -> Option<LineMark> {
        self.left_empty().remove(key)
    }

    fn left_empty(&self) -> MutexGuard<'_, HashMap<String, LineMark>> {
        // One map operation at a time: poisoning can't leave it half-done.
        self.left_empty.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes the grant of the node at `path` out of `by_key`.
fn remove(by_key: &mut HashMap<String, Vec<Grant>>, key: &str, path: &str) -> Option<Grant> {
    let of_key = by_key.get_mut(key)?;
    let at = of_key.iter().position(|grant| grant.node.path == path)?;
    let grant = of_key.swap_remove(at);
    if of_key.is_empty() {
        by_key.remove(key);
    }
    Some(grant)
}

/// Forgets a grant whose timer has run its course.
fn forget(grants: Weak<Grants>, key: &str, path: &str) {
    if let Some(grants) = grants.upgrade() {
        remove(&mut grants.by_key(), key, path);
    }
}

/// Deletes the node at `path` once its lock has expired, first looking after `wait`.
async fn expire(sessions: &Sessions, path: &str, mut wait: Duration) {
    loop {
        tokio::time::sleep(wait).await;
        let read = sessions
            .run(key_node_of(path), |c| async move { c.get_data(path).await })
            .await;
        let (data, stat) = match read {
            Ok(found) => found,
            Err(Error::NoNode) => return, // released, or its session ended
            Err(_) => {
                wait = RETRY;
                continue;
            }
        };
        let Ok(holder) = Contender::parse(path, &data, stat) else {
            return;
        };
        if !holder.expired() {
            wait = holder.time_left(); // renewed
            continue;
        }
        let version = Some(stat.version);
        match sessions
            .run(key_node_of(path), |c| async move {
                c.delete(path, version).await
            })
            .await
        {
            Ok(()) | Err(Error::NoNode) => return,
            Err(Error::BadVersion) => wait = Duration::ZERO, // renewed meanwhile: read again
            Err(_) => wait = RETRY,
        }
    }
}
