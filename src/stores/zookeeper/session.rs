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

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use zookeeper_client::{Client, Connector, Error};

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
    current: Mutex<Option<Client>>,
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
                sessions.client(slot).await?;
            }
            Ok(())
        };
        tokio::time::timeout(wait, opened)
            .await
            .unwrap_or(Err(Error::Timeout))?;
        Ok(sessions)
    }

    /// The session, live or new, of the slot.
    async fn client(&self, slot: &Slot) -> Result<Client, Error> {
        if let Some(client) = slot.live() {
            return Ok(client);
        }
        let _opening = slot.opening.lock().await;
        if let Some(client) = slot.live() {
            return Ok(client);
        }
        let client = self.connector.clone().connect(&self.servers).await?;
        let replaced = slot.current().replace(client.clone());
        match replaced {
            Some(old) => tracing::warn!(
                old = %old.session_id(),
                new = %client.session_id(),
                "the ZooKeeper session ended ({}): opened a new one; the locks of the old one are gone",
                old.state()
            ),
            None => tracing::debug!(session = %client.session_id(), "ZooKeeper session opened"),
        }
        Ok(client)
    }

    /// Runs one request, about the key whose node is `key_node` (or about the root), on that
    /// key's session, within the request timeout. A request refused because the session had
    /// just ended never reached the ensemble: it runs once more on a new session.
    pub(crate) async fn run<T, F, Fut>(&self, key_node: &str, request: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key_node.hash(&mut hasher);
        let slot = &self.slots[(hasher.finish() % SESSIONS as u64) as usize];
        let attempt = async {
            let client = self.client(slot).await?;
            match request(client.clone()).await {
                Err(error) if ended(&error) => {
                    slot.discard(&client);
                    request(self.client(slot).await?).await
                }
                answer => answer,
            }
        };
        tokio::time::timeout(self.request_timeout, attempt)
            .await
            .unwrap_or(Err(Error::Timeout))
    }
}

impl Slot {
    fn current(&self) -> std::sync::MutexGuard<'_, Option<Client>> {
        // Every change under this mutex is one assignment: poisoning can't leave it half-done.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> Option<Client> {
        self.current()
            .as_ref()
            .filter(|client| !client.state().is_terminated())
            .cloned()
    }

    /// Forgets `client`'s session if it is still the slot's.
    fn discard(&self, client: &Client) {
        let mut current = self.current();
        if current
            .as_ref()
            .is_some_and(|c| c.session_id() == client.session_id())
        {
            *current = None;
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
        Error::Timeout => {
            StoreError::Unavailable("ZooKeeper did not answer within requestTimeout".into())
        }
        Error::ConnectionLoss
        | Error::NoHosts
        | Error::SessionExpired
        | Error::SessionMoved
        | Error::ClientClosed
        | Error::Throttled
        | Error::NotReadOnly => StoreError::Unavailable(format!("ZooKeeper: {error}")),
        other => StoreError::Failed(format!("ZooKeeper: {other}")),
    }
}
