//! The keys released that this sidecar has heard of, for its waiters and sessions: a
//! broadcast that a store feeds (PostgreSQL from its notifications, which cover every
//! sidecar; MySQL from its own releases, which cover this one) and that `wait_for_release`
//! listens to. A waiter never relies on it alone: it also looks again at its polling interval.

use std::time::Duration;

use tokio::sync::broadcast;

/// How many released keys may wait for a slow listener before it is told it fell behind.
const BACKLOG: usize = 1024;

pub(crate) struct Releases {
    sender: broadcast::Sender<String>,
}

impl Releases {
    pub(crate) fn new() -> Releases {
        Releases {
            sender: broadcast::channel(BACKLOG).0,
        }
    }

    /// Says that `key` was released.
    pub(crate) fn announce(&self, key: &str) {
        let _ = self.sender.send(key.to_string());
    }

    /// A handle that announces, for a task that outlives a borrow of the store.
    pub(crate) fn sender(&self) -> broadcast::Sender<String> {
        self.sender.clone()
    }

    /// Returns when `key` is announced released, or after `max_wait`; also early when
    /// announcements were dropped (this listener fell behind), since one may have been `key`.
    pub(crate) async fn wait(&self, key: &str, max_wait: Duration) {
        let mut heard = self.sender.subscribe();
        let _ = tokio::time::timeout(max_wait, async {
            loop {
                match heard.recv().await {
                    Ok(released) if released == key => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        })
        .await;
    }
}
