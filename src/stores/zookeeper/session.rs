//! The store's ZooKeeper session, replaced by a new one when it ends, and the time bound on
//! every request.
//!
//! A ZooKeeper client reconnects by itself within its session (to any server of the ensemble)
//! and keeps its ephemeral nodes while it does. Once the session has expired it is dead for
//! good: the ensemble has deleted its ephemeral nodes, so every lock this sidecar held through
//! it is gone. The next request then opens a new session; nothing is carried over, and the
//! lost locks answer "not held" to their owners' renewals and unlocks, never "still yours".
//!
//! Requests are bounded by `requestTimeout` (connecting included) and fail as unavailable
//! after it, so a request made while the ensemble is away never hangs.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use zookeeper_client::{Client, Connector, Error};

use super::settings::Settings;
use crate::lock::StoreError;

pub struct Sessions {
    servers: String,
    connector: Connector,
    request_timeout: Duration,
    current: Mutex<Option<Client>>,
    /// Held while a new session is being opened, so concurrent requests open only one.
    opening: tokio::sync::Mutex<()>,
}

impl Sessions {
    /// Opens the first session, waiting at most the session timeout for the ensemble.
    pub async fn open(settings: &Settings) -> Result<Sessions, Error> {
        let mut connector = Client::connector().with_session_timeout(settings.session_timeout);
        if let Some(digest) = &settings.digest {
            connector = connector.with_auth("digest", digest.as_bytes());
        }
        let sessions = Sessions {
            servers: settings.servers.clone(),
            connector,
            request_timeout: settings.request_timeout,
            current: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        };
        let wait = settings.session_timeout.max(settings.request_timeout);
        tokio::time::timeout(wait, sessions.client())
            .await
            .unwrap_or(Err(Error::Timeout))?;
        Ok(sessions)
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Client>> {
        // Every change under this mutex is one assignment: poisoning can't leave it half-done.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session in use, or a new one when it has ended.
    async fn client(&self) -> Result<Client, Error> {
        if let Some(client) = self.live() {
            return Ok(client);
        }
        let _opening = self.opening.lock().await;
        if let Some(client) = self.live() {
            return Ok(client);
        }
        let client = self.connector.clone().connect(&self.servers).await?;
        let replaced = self.current().replace(client.clone());
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

    fn live(&self) -> Option<Client> {
        self.current()
            .as_ref()
            .filter(|client| !client.state().is_terminated())
            .cloned()
    }

    /// Forgets `client`'s session if it is still the current one.
    fn discard(&self, client: &Client) {
        let mut current = self.current();
        if current
            .as_ref()
            .is_some_and(|c| c.session_id() == client.session_id())
        {
            *current = None;
        }
    }

    /// Runs one request on the live session, within the request timeout. A request refused
    /// because the session had just ended never reached the ensemble: it runs once more on a
    /// new session.
    pub async fn run<T, F, Fut>(&self, request: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let attempt = async {
            let client = self.client().await?;
            match request(client.clone()).await {
                Err(error) if ended(&error) => {
                    self.discard(&client);
                    request(self.client().await?).await
                }
                answer => answer,
            }
        };
        tokio::time::timeout(self.request_timeout, attempt)
            .await
            .unwrap_or(Err(Error::Timeout))
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
pub fn store_error(error: Error) -> StoreError {
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
