//! The waiting room: blocking acquires for one key on this sidecar queue up first come, first
//! served, and a release made through this sidecar wakes the first in line at once, without
//! waiting for the store's signal or a poll.
//!
//! Only the first waiter of a key asks the store; the others wait their turn, so a crowd of
//! waiters costs the store one request per attempt, not one per waiter. A ticket leaves the
//! queue when dropped: a waiter that gives up, times out or disconnects leaves no trace.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

#[derive(Default)]
pub struct WaitingRoom {
    queues: Mutex<HashMap<String, Queue>>,
}

struct Queue {
    next_id: u64,
    waiting: VecDeque<u64>,
    /// Wakes every waiter of the key: on a release through this sidecar, and when the line
    /// moves.
    changed: Arc<Notify>,
}

/// A place in a key's line.
pub struct Ticket<'a> {
    room: &'a WaitingRoom,
    key: String,
    id: u64,
    changed: Arc<Notify>,
}

impl WaitingRoom {
    fn queues(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        // Every change under this mutex is a single queue operation: poisoning can't leave a
        // queue half-changed.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the end of `key`'s line.
    pub fn join(&self, key: &str) -> Ticket<'_> {
        let mut queues = self.queues();
        let queue = queues.entry(key.to_string()).or_insert_with(|| Queue {
            next_id: 0,
            waiting: VecDeque::new(),
            changed: Arc::new(Notify::new()),
        });
        let id = queue.next_id;
        queue.next_id += 1;
        queue.waiting.push_back(id);
        Ticket {
            room: self,
            key: key.to_string(),
            id,
            changed: queue.changed.clone(),
        }
    }

    /// Says that `key` was released through this sidecar: its waiters look again.
    pub fn released(&self, key: &str) {
        if let Some(queue) = self.queues().get(key) {
            queue.changed.notify_waiters();
        }
    }

    /// How many wait for `key` (for tests and inspection).
    pub fn waiting(&self, key: &str) -> usize {
        self.queues().get(key).map_or(0, |q| q.waiting.len())
    }
}

impl Ticket<'_> {
    /// Whether this ticket is first in line.
    pub fn is_first(&self) -> bool {
        self.room
            .queues()
            .get(&self.key)
            .is_some_and(|q| q.waiting.front() == Some(&self.id))
    }

    /// A future that completes on the key's next release through this sidecar or move of the
    /// line. Create it before looking at the store, so nothing in between is missed.
    pub fn changed(&self) -> Pin<Box<Notified<'_>>> {
        let mut notified = Box::pin(self.changed.notified());
        notified.as_mut().enable();
        notified
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut queues = self.room.queues();
        if let Some(queue) = queues.get_mut(&self.key) {
            queue.waiting.retain(|id| *id != self.id);
            if queue.waiting.is_empty() {
                queues.remove(&self.key);
            } else {
                queue.changed.notify_waiters();
            }
        }
    }
}
