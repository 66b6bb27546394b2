//! The release signal: a release publishes on the lock's own channel
//! (`dlock||released||<lock key>`), and a sidecar subscribes to a lock's channel only while
//! one of its waiters waits for that lock.
//!
//! One channel for every release would make every release cost every sidecar of the fleet a
//! message, waiters or not (measured: a fifth of the sidecar's work per lock+unlock pair with
//! one sidecar). Publishing to a channel nobody listens on costs Redis almost nothing.
//!
//! One pub/sub connection per store carries the subscriptions. When it breaks, waiters fall
//! back to polling (their waits are bounded anyway) while it reconnects with backoff, and the
//! channels still wanted are subscribed again. Its task ends when the store is dropped (a
//! reload, a shutdown), not at its next message, which may never come.
//!
//! A waiter's time limit covers its subscription too: SUBSCRIBEs queue behind one another on
//! the one connection, and a waiter whose limit passes in the queue goes on without it. The
//! SUBSCRIBE itself runs to its end in a task of its own, so the connection's state stays the
//! one the waiters' interests ask for.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::PubSubSink;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connection::Connection;

/// The channel a release of `lock_key` is published on.
pub(crate) fn channel(lock_key: &str) -> String {
    format!("dlock||released||{lock_key}")
}

pub(crate) struct ReleaseSignal {
    shared: Arc<Shared>,
    listener: JoinHandle<()>,
}

struct Shared {
    /// Channels waited on, with their waiter count and the sender that wakes them.
    wanted: Mutex<HashMap<String, (usize, watch::Sender<()>)>>,
    /// The live subscription connection and what it is subscribed to; an async lock, held
    /// across SUBSCRIBE/UNSUBSCRIBE so they reach Redis in the order they were decided.
    live: tokio::sync::Mutex<Option<(PubSubSink, HashSet<String>)>>,
    /// Bounds a SUBSCRIBE or UNSUBSCRIBE; past it the waiter polls.
    timeout: Duration,
}

/// A waiter's interest in one channel; dropping it gives the interest up.
pub(crate) struct Interest {
    shared: Arc<Shared>,
    channel: String,
    released: watch::Receiver<()>,
}

impl ReleaseSignal {
    /// Starts the subscription connection's task, which ends when this is dropped.
    pub(crate) fn start(connection: Weak<Connection>, timeout: Duration) -> ReleaseSignal {
        let shared = Arc::new(Shared {
            wanted: Mutex::new(HashMap::new()),
            live: tokio::sync::Mutex::new(None),
            timeout,
        });
        let listener = tokio::spawn(listen(connection, Arc::downgrade(&shared)));
        ReleaseSignal { shared, listener }
    }

    /// Registers interest in `channel`, subscribed before it returns, so a release published
    /// after this is seen; or not subscribed (the waiter then polls) if that takes until
    /// `deadline`.
    pub(crate) async fn watch(&self, channel: String, deadline: Instant) -> Interest {
        let released = {
            let mut wanted = self.shared.wanted.lock().expect("not poisoned");
            let (count, sender) = wanted
                .entry(channel.clone())
                .or_insert_with(|| (0, watch::channel(()).0));
            *count += 1;
            sender.subscribe()
        };
        // Made before the wait, so a waiter that gives up still gives its interest back.
        let interest = Interest {
            shared: self.shared.clone(),
            channel,
            released,
        };
        let shared = self.shared.clone();
        let channel = interest.channel.clone();
        let subscribing = tokio::spawn(async move { shared.reconcile(&channel).await });
        let _ = tokio::time::timeout_at(deadline, subscribing).await;
        interest
    }
}

impl Drop for ReleaseSignal {
    fn drop(&mut self) {
        // Its connection closes with it.
        self.listener.abort();
    }
}

impl Interest {
    /// Returns when a release is published on the channel (never, if none is).
    pub(crate) async fn released(&mut self) {
        if self.released.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        let last = {
            let mut wanted = self.shared.wanted.lock().expect("not poisoned");
            match wanted.get_mut(&self.channel) {
                Some((count, _)) if *count > 1 => {
                    *count -= 1;
                    false
                }
                _ => {
                    wanted.remove(&self.channel);
                    true
                }
            }
        };
        if last {
            let shared = self.shared.clone();
            let channel = std::mem::take(&mut self.channel);
            tokio::spawn(async move { shared.reconcile(&channel).await });
        }
    }
}

impl Shared {
    /// Subscribes to or unsubscribes from `channel` so the connection matches the waiters.
    async fn reconcile(&self, channel: &str) {
        let mut live = self.live.lock().await;
        let Some((sink, subscribed)) = live.as_mut() else {
            return; // disconnected: the listener subscribes what is wanted when it reconnects
        };
        let wanted = self
            .wanted
            .lock()
            .expect("not poisoned")
            .contains_key(channel);
        let done = match (wanted, subscribed.contains(channel)) {
            (true, false) => tokio::time::timeout(self.timeout, sink.subscribe(channel)).await,
            (false, true) => tokio::time::timeout(self.timeout, sink.unsubscribe(channel)).await,
            _ => return,
        };
        match done {
            Ok(Ok(())) if wanted => {
                subscribed.insert(channel.to_string());
            }
            Ok(Ok(())) => {
                subscribed.remove(channel);
            }
            // The connection is failing: the listener will start over.
            Ok(Err(error)) => tracing::debug!("release signal: {error}"),
            Err(_) => tracing::debug!("release signal: no answer to (un)subscribe"),
        }
    }

    fn wake(&self, channel: &str) {
        if let Some((_, sender)) = self.wanted.lock().expect("not poisoned").get(channel) {
            sender.send_replace(());
        }
    }
}

/// Keeps a subscription connection up, through the first node that answers, and wakes the
/// waiters of each channel a release is published on.
async fn listen(connection: Weak<Connection>, shared: Weak<Shared>) {
    use tokio_stream::StreamExt;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(subscribers) = connection.upgrade().map(|c| c.subscribers()) else {
            return;
        };
        for client in subscribers {
            let pubsub = match client.get_async_pubsub().await {
                Ok(pubsub) => pubsub,
                Err(error) => {
                    tracing::debug!("release signal unavailable, waiters poll: {error}");
                    continue;
                }
            };
            let (sink, mut messages) = pubsub.split();
            {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                *shared.live.lock().await = Some((sink, HashSet::new()));
                let channels: Vec<String> = shared
                    .wanted
                    .lock()
                    .expect("not poisoned")
                    .keys()
                    .cloned()
                    .collect();
                for channel in channels {
                    shared.reconcile(&channel).await;
                }
            }
            backoff = Duration::from_millis(100);
            while let Some(message) = messages.next().await {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.wake(message.get_channel_name());
            }
            match shared.upgrade() {
                Some(shared) => *shared.live.lock().await = None,
                None => return,
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_watch_queued_behind_a_slow_subscribe_keeps_its_deadline() {
        let signal = ReleaseSignal::start(Weak::new(), Duration::from_secs(3));
        // Another waiter's SUBSCRIBE is in flight on the one connection.
        let in_flight = signal.shared.live.lock().await;
        let deadline = Instant::now() + Duration::from_millis(100);
        let interest = tokio::time::timeout(
            Duration::from_secs(60),
            signal.watch("c".to_string(), deadline),
        )
        .await
        .expect("the watch returned by its deadline");
        assert!(Instant::now() <= deadline);
        drop(interest);
        assert!(signal.shared.wanted.lock().unwrap().is_empty());
        drop(in_flight);
    }
}
