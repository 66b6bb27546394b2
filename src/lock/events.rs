//! What this sidecar saw happen to locks and stores, as events: the console's feed and the
//! metrics' counters read them, so both tell the same story and no call path reports twice.
//!
//! The events are the process's own, like its log: one sidecar serves per process, and a
//! handle threaded through every store's health record, every session and the reloader would
//! add a parameter everywhere for nothing. Publishing is synchronous and cheap: observers
//! (the metrics) are called in place, so no count is lost; the last `RECENT` events are kept
//! for a page that opens later; and a broadcast carries them to live readers, which may lag
//! and then skip (a feed can, a counter cannot, hence the observers).

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use super::{Mode, OwnerChecked};

/// How many events are kept for a reader that arrives later.
const RECENT: usize = 500;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// When, by the wall clock.
    pub(crate) at: SystemTime,
    /// The lock store's component name.
    pub(crate) store: String,
    /// The lock's resource id; empty for an event of the store itself.
    pub(crate) resource: String,
    /// The lock's owner; empty where the event has none.
    pub(crate) owner: String,
    pub(crate) what: What,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    /// A lock was granted: by TryLock (`waited` is None), or by a blocking acquire or a held
    /// session after waiting `waited`.
    Granted {
        fencing_token: Option<u64>,
        waited: Option<Duration>,
        mode: Mode,
        /// The other resources of the multi-lock granted with this one, so whoever reads the
        /// events sees them as one lock (the store keeps each resource apart); empty for a
        /// lock of one resource.
        with: Vec<String>,
    },
    /// A lock was refused because another owner holds it: TryLock's answer, or a blocking
    /// acquire whose wait ran out after `waited`.
    Refused {
        waited: Option<Duration>,
        mode: Mode,
    },
    /// An owner asked to release a lock, and this is the store's answer.
    Released { outcome: OwnerChecked },
    /// A lock granted through this sidecar reached its expiry without being released.
    Expired,
    /// A held session lost its lock, for this reason.
    Lost { reason: String },
    /// An operator released a lock whoever held it.
    ForceReleased,
    /// The store's first failed call after it last served.
    StoreFailing { error: String },
    /// The store served again after failing for `after`.
    StoreRecovered { after: Duration, failed_calls: u64 },
    /// A component file changed under the running sidecar.
    Component { change: ComponentChange },
}

/// How a component changed (a store's name is the event's `store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ComponentChange {
    Added,
    Changed,
    Removed,
    /// The edit did not load; the running version stays. The reason names file and field.
    Rejected {
        reason: String,
    },
}

type Observer = Box<dyn Fn(&Event) + Send + Sync>;

struct Events {
    observers: RwLock<Vec<Observer>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
    live: broadcast::Sender<Arc<Event>>,
}

static EVENTS: LazyLock<Events> = LazyLock::new(|| Events {
    observers: RwLock::new(Vec::new()),
    recent: Mutex::new(VecDeque::with_capacity(RECENT)),
    live: broadcast::channel(RECENT).0,
});

/// Publishes an event: to every observer at once, to the recent list, and to live readers.
pub(crate) fn publish(store: &str, resource: &str, owner: &str, what: What) {
    let event = Arc::new(Event {
        at: SystemTime::now(),
        store: store.to_string(),
        resource: resource.to_string(),
        owner: owner.to_string(),
        what,
    });
    for observe in EVENTS
        .observers
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        observe(&event);
    }
    {
        let mut recent = EVENTS.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(event.clone());
    }
    // No live reader is no error.
    let _ = EVENTS.live.send(event);
}

/// Calls `observer` with every event from now on, synchronously, on the publisher's task: it
/// must be quick and must not publish.
pub(crate) fn observe(observer: impl Fn(&Event) + Send + Sync + 'static) {
    EVENTS
        .observers
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(observer));
}

/// The last events, oldest first.
pub(crate) fn recent() -> Vec<Arc<Event>> {
    let recent = EVENTS.recent.lock().unwrap_or_else(|e| e.into_inner());
    recent.iter().cloned().collect()
}

/// The events from now on, for a live reader; a reader that falls more than the recent
/// list behind is told how many it missed (`RecvError::Lagged`) and goes on.
pub(crate) fn subscribe() -> broadcast::Receiver<Arc<Event>> {
    EVENTS.live.subscribe()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    // Events are the process's: each test uses a store name of its own, since tests run in
    // parallel and all see each other's events.

    #[tokio::test]
    async fn an_event_reaches_observers_the_recent_list_and_live_readers() {
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        observe(|event| {
            if event.store == "events-test-1" {
                SEEN.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut live = subscribe();
        publish("events-test-1", "r", "o", What::ForceReleased);
        assert_eq!(SEEN.load(Ordering::Relaxed), 1);
        assert!(recent()
            .iter()
            .any(|e| e.store == "events-test-1" && e.what == What::ForceReleased));
        loop {
            let event = live.recv().await.unwrap();
            if event.store == "events-test-1" {
                assert_eq!((event.resource.as_str(), event.owner.as_str()), ("r", "o"));
                break;
            }
        }
    }

    #[test]
    fn the_recent_list_keeps_the_last_events() {
        for i in 0..RECENT + 10 {
            publish("events-test-2", &i.to_string(), "", What::Expired);
        }
        let recent = recent();
        assert!(recent.len() <= RECENT);
        let mine: Vec<&str> = recent
            .iter()
            .filter(|e| e.store == "events-test-2")
            .map(|e| e.resource.as_str())
            .collect();
        assert_eq!(mine.last(), Some(&(RECENT + 9).to_string().as_str()));
        assert!(!mine.contains(&"0"), "the oldest events are dropped");
    }
}
