//! The store's ZooKeeper sessions, each replaced by a new one when it ends, and the time bound
//! on every request.
//!
//! A ZooKeeper client reconnects by itself within its session (to any server of the ensemble)
//! and keeps its ephemeral nodes while it does. Once a session has expired it is dead for
//! good: the ensemble has deleted its ephemeral nodes, so every lock taken through it is gone.
//! The next request then opens a new session; nothing is carried over, and the lost locks
//! answer "not held" to their owners' renewals and unlocks, never "still yours".
//!
//! A store keeps a few sessions, and every request about one key goes through the same one
//! (chosen by a hash of the key's node). ZooKeeper answers a session's requests in order, so a
//! read waits for every write sent before it on that session; over several sessions, unrelated
//! keys don't wait behind each other. One key on one session keeps ZooKeeper's per-session
//! guarantee where it matters: a sidecar reads its own writes on a key.
//!
//! Requests are bounded by `requestTimeout` (connecting included) and fail as unavailable
//! after it, so a request made while the ensemble is away never hangs.
//!
//! A request whose session is cut off runs on another session of the store that is
//! connected, if one is (`stand_in`). A session cut off from the ensemble for half its timeout
//! is given up, and the next request opens a new one. Two reasons. The client library, reconnecting, waits longer and longer
//! between tries (up to seconds) and only calls the session over at 1.4 times its timeout; a
//! request made meanwhile waits for its next try, so the first requests after a server is
//! back would fail for nothing. And the ensemble may expire the session a timeout after it
//! last heard from us, which is no earlier than the library's idle limit (2/5 of the timeout)
//! before the cut was noticed: half the timeout after the cut leaves a tenth of it as margin,
//! so this sidecar stops counting on the session's nodes before the ensemble can hand its
//! locks to anyone else.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zookeeper_client::{Client, Connector, Error, SessionState};

use super::settings::Settings;
use crate::lock::StoreError;

/// How many sessions a store keeps.
const SESSIONS: usize = 4;

pub(crate) struct Sessions {
    servers: String,
    connector: Connector,
    request_timeout: Duration,
    slots: Vec<Slot>,
}

/// One session, and its replacement when it ends.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<Session>>,
    /// Held while a new session is being opened, so concurrent requests open only one.
    opening: tokio::sync::Mutex<()>,
}

impl Sessions {
    /// Opens the sessions, waiting at most the session timeout for the ensemble.
    pub(crate) async fn open(settings: &Settings) -> Result<Sessions, Error> {
        let mut connector = Client::connector().with_session_timeout(settings.session_timeout);
        if let Some(digest) = &settings.digest {
            connector = connector.with_auth("digest", digest.as_bytes());
        }
        let sessions = Sessions {
            servers: settings.servers.clone(),
            connector,
            request_timeout: settings.request_timeout,
            slots: (0..SESSIONS).map(|_| Slot::default()).collect(),
        };
        let wait = settings.session_timeout.max(settings.request_timeout);
        let opened = async {
            for slot in &sessions.slots {
                sessions.session(slot).await?;
            }
            Ok(())
        };
        tokio::time::timeout(wait, opened)
            .await
            .unwrap_or(Err(Error::Timeout))?;
        Ok(sessions)
    }

    /// The session, live or new, of the slot.
    async fn session(&self, slot: &Slot) -> Result<Session, Error> {
        if let Some(session) = slot.live() {
            return Ok(session);
        }
        let _opening = slot.opening.lock().await;
        if let Some(session) = slot.live() {
            return Ok(session);
        }
        let session = Session::new(self.connector.clone().connect(&self.servers).await?);
        let replaced = slot.current().replace(session.clone());
        let new = session.client.session_id();
        match replaced {
            Some(old) if old.given_up() => tracing::warn!(
                old = %old.client.session_id(),
                %new,
                "the ZooKeeper session was cut off for half its timeout: opened a new one; \
                 the locks of the old one are gone"
            ),
            Some(old) => tracing::warn!(
                old = %old.client.session_id(),
                %new,
                "the ZooKeeper session ended ({}): opened a new one; the locks of the old one are gone",
                old.client.state()
            ),
            None => tracing::debug!(session = %new, "ZooKeeper session opened"),
        }
        Ok(session)
    }

    /// Runs one request, about the key whose node is `key_node` (or about the root), on that
    /// key's session, within the request timeout. A request refused because the session had
    /// just ended, or waiting on a session given up, never reached the ensemble: it runs once
    /// more on a new session.
    pub(crate) async fn run<T, F, Fut>(&self, key_node: &str, request: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key_node.hash(&mut hasher);
        let slot = &self.slots[(hasher.finish() % SESSIONS as u64) as usize];
        let attempt = async {
            let mut session = self.session(slot).await?;
            if session.is_cut() {
                session = self.stand_in().unwrap_or(session);
            }
            let answer = tokio::select! {
                answer = request(session.client.clone()) => answer,
                () = session.cut_off_too_long() => Err(Error::SessionExpired),
            };
            match answer {
                Err(error) if ended(&error) => {
                    slot.discard(&session);
                    request(self.session(slot).await?.client).await
                }
                answer => answer,
            }
        };
        tokio::time::timeout(self.request_timeout, attempt)
            .await
            .unwrap_or(Err(Error::Timeout))
    }
}

impl Sessions {
    /// A session that is connected, to serve a request whose own session is cut off and
    /// waiting to reconnect: after a short outage the client library reconnects each session
    /// on its own schedule, and one may wait a second or more after the others are back.
    /// Any session will do: ZooKeeper orders every write in one log, so whichever session a
    /// decision reads through has seen the writes before its own; only a read-only answer may
    /// be a moment old, as ZooKeeper allows any read to be.
    fn stand_in(&self) -> Option<Session> {
        self.slots
            .iter()
            .filter_map(Slot::live)
            .find(|session| !session.is_cut())
    }
}

impl Slot {
    fn current(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        // Every change under this mutex is one assignment: poisoning can't leave it half-done.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> Option<Session> {
        self.current()
            .as_ref()
            .filter(|session| {
                !session.client.state().is_terminated()
                    && !session.ended.load(std::sync::atomic::Ordering::Acquire)
                    && !session.given_up()
            })
            .cloned()
    }

    /// Marks `session` ended, after a request heard so before the client's state says it: the
    /// slot's next request opens a new one, and says that the old one's locks are gone.
    fn discard(&self, session: &Session) {
        session
            .ended
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A session's client, and since when it has been cut off from the ensemble, if it is.
#[derive(Clone)]
struct Session {
    client: Client,
    cut_since: watch::Receiver<Option<Instant>>,
    /// Set when a request heard that the session ended (`Slot::discard`).
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// How long it may stay cut off before it is given up: half the negotiated timeout.
    patience: Duration,
}

impl Session {
    /// Follows the client's state changes in a task of its own, which ends with the session:
    /// when it terminates, or when the last copy of this `Session` is dropped (a store
    /// replaced or removed), whichever comes first, not at the next change of state.
    fn new(client: Client) -> Session {
        let (cut, cut_since) = watch::channel(None);
        let mut states = client.state_watcher();
        tokio::spawn(async move {
            loop {
                let state = tokio::select! {
                    state = states.changed() => state,
                    () = cut.closed() => return,
                };
                if state.is_terminated() {
                    return;
                }
                let now_cut = state != SessionState::SyncConnected;
                cut.send_if_modified(|since| match (since.is_some(), now_cut) {
                    (false, true) => since.replace(Instant::now()).is_none(),
                    (true, false) => since.take().is_some(),
                    _ => false,
                });
            }
        });
        Session {
            patience: client.session_timeout() / 2,
            client,
            cut_since,
            ended: Default::default(),
        }
    }

    fn is_cut(&self) -> bool {
        self.cut_since.borrow().is_some()
    }

    fn given_up(&self) -> bool {
        self.cut_since
            .borrow()
            .is_some_and(|since| since.elapsed() >= self.patience)
    }

    /// Resolves once the session has been cut off for its patience, without reconnecting.
    async fn cut_off_too_long(&self) {
        let mut cut_since = self.cut_since.clone();
        loop {
            let since = *cut_since.borrow_and_update();
            match since {
                Some(since) => tokio::select! {
                    () = tokio::time::sleep_until(since + self.patience) => return,
                    changed = cut_since.changed() => if changed.is_err() {
                        return std::future::pending().await;
                    },
                },
                None => {
                    if cut_since.changed().await.is_err() {
                        // The session has ended: the request answers that by itself.
                        return std::future::pending().await;
                    }
                }
            }
        }
    }
}

/// Errors saying the session is over.
fn ended(error: &Error) -> bool {
    matches!(
        error,
        Error::SessionExpired | Error::SessionMoved | Error::ClientClosed
    )
}

/// A ZooKeeper failure as the core sees it: an outage the caller may retry, or a wrong answer.
pub(crate) fn store_error(error: Error) -> StoreError {
    match error {
        Error::Timeout => StoreError::unavailable("ZooKeeper did not answer within requestTimeout")
            .with_source(error),
        Error::ConnectionLoss
        | Error::NoHosts
        | Error::SessionExpired
        | Error::SessionMoved
        | Error::ClientClosed
        | Error::Throttled
        | Error::NotReadOnly => {
            StoreError::unavailable(format!("ZooKeeper: {error}")).with_source(error)
        }
        other => StoreError::failed(format!("ZooKeeper: {other}")).with_source(other),
    }
}
